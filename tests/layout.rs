//! The layout rules of docs/ARCHITECTURE.md, held by a test: no file in `src/` over 400
//! lines, no function over 60, `cli/` at most 35 % of `src/`, and no import cycle between the
//! top-level modules. A change that breaks one fails here with the place and the number.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 400;
const MAX_FN_LINES: usize = 60;
const MAX_CLI_SHARE: f64 = 0.35;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            (rel, fs::read_to_string(&p).expect("read source"))
        })
        .collect()
}

/// The code with comments, strings and char literals blanked (newlines kept), so that
/// braces and `fn` can be counted.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let (mut out, mut i) = (String::with_capacity(b.len()), 0);
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let rest = |n: usize| b.get(i + n).copied().unwrap_or('\0');
        let end = if b[i] == '/' && rest(1) == '/' {
            (i..b.len()).find(|&j| b[j] == '\n').unwrap_or(b.len())
        } else if b[i] == '/' && rest(1) == '*' {
            (i + 2..b.len())
                .find(|&j| b[j - 1] == '*' && b[j] == '/')
                .map_or(b.len(), |j| j + 1)
        } else if b[i] == 'r' && (rest(1) == '"' || rest(1) == '#') && !rest_is_ident(&b, i) {
            let hashes = (i + 1..b.len()).take_while(|&j| b[j] == '#').count();
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let from = i + 2 + hashes;
            let tail: String = b[from.min(b.len())..].iter().collect();
            tail.find(&close)
                .map_or(b.len(), |k| from + tail[..k].chars().count() + close.len())
        } else if b[i] == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            j + 1
        } else if b[i] == '\'' && (rest(2) == '\'' || rest(1) == '\\') {
            let from = if rest(1) == '\\' { i + 3 } else { i + 2 };
            (from..b.len())
                .find(|&j| b[j] == '\'')
                .map_or(b.len(), |j| j + 1)
        } else {
            out.push(b[i]);
            i += 1;
            continue;
        };
        let end = end.min(b.len());
        out.extend(b[i..end].iter().map(|&c| blank(c)));
        i = end;
    }
    out
}

/// Whether the `r` at `i` ends an identifier (as in `for"`), not a raw string.
fn rest_is_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// (name, first line, lines) of every function with a body.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let starts_word =
            |k: usize| !line[..k].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let Some((at, _)) = line.match_indices("fn ").find(|&(k, _)| starts_word(k)) else {
            continue;
        };
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let (mut depth, mut opened) = (0i32, false);
        'scan: for (m, l) in lines.iter().enumerate().skip(n) {
            let from = if m == n { at } else { 0 };
            for c in l[from..].chars() {
                match c {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    ';' if !opened => break 'scan,
                    _ => {}
                }
                if opened && depth == 0 {
                    found.push((name.clone(), n + 1, m - n + 1));
                    break 'scan;
                }
            }
        }
    }
    found
}

#[test]
fn no_file_in_src_is_over_400_lines() {
    let long: Vec<String> = src()
        .iter()
        .map(|(f, t)| (f, t.lines().count()))
        .filter(|(_, n)| *n > MAX_FILE_LINES)
        .map(|(f, n)| format!("src/{f}: {n} lines"))
        .collect();
    assert!(long.is_empty(), "over {MAX_FILE_LINES} lines: {long:#?}");
}

#[test]
fn no_function_in_src_is_over_60_lines() {
    let mut long = Vec::new();
    for (file, text) in src() {
        for (name, line, n) in functions(&code_only(&text)) {
            if n > MAX_FN_LINES {
                long.push(format!("src/{file}:{line} fn {name}: {n} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:#?}"
    );
}

#[test]
fn the_function_counter_sees_braces_only_in_code() {
    let text = "fn a() {\n    let s = \"}}}\";\n    let r = r#\"{{\"#;\n    let c = '{';\n    // }\n}\nfn b<'x>(v: &'x str) -> &'x str {\n    v\n}\n";
    let got = functions(&code_only(text));
    assert_eq!(got, vec![("a".into(), 1, 6), ("b".into(), 7, 3)]);
}

#[test]
fn cli_is_at_most_35_percent_of_src() {
    let files = src();
    let lines = |pred: &dyn Fn(&str) -> bool| -> usize {
        files
            .iter()
            .filter(|(f, _)| pred(f))
            .map(|(_, t)| t.lines().count())
            .sum()
    };
    let (cli, all) = (lines(&|f| f.starts_with("cli/")), lines(&|_| true));
    let share = cli as f64 / all as f64;
    assert!(
        share <= MAX_CLI_SHARE,
        "cli/ is {cli} of {all} lines ({:.1} %)",
        share * 100.0
    );
}

#[test]
fn the_top_level_modules_import_each_other_without_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in src() {
        let module = file.split(['/', '.']).next().unwrap().to_owned();
        let uses = graph.entry(module.clone()).or_default();
        let code = code_only(&text);
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                uses.insert(name);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_owned());
        for next in g.get(m).into_iter().flatten() {
            visit(next, g, path, done);
        }
        path.pop();
        done.insert(m.to_owned());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    assert!(
        graph["pipeline"].contains("contract"),
        "the graph was read: {graph:?}"
    );
}
