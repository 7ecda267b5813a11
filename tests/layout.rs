//! The layout rules of docs/ARCHITECTURE.md that no standard tool holds: no file in `src/`
//! over 400 lines, `cli/` at most 35 % of `src/`, and no import cycle between the top-level
//! modules. A change that breaks one fails here with the place and the number. (No function
//! over 60 lines is clippy's `too_many_lines`: the threshold is in clippy.toml, the lint is on
//! in Cargo.toml's `[workspace.lints]`.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};

const MAX_FILE_LINES: usize = 400;
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

/// The top-level modules that `stream` names as `crate::NAME`, read from Rust tokens, so that
/// comments and strings do not count.
fn crate_paths(stream: TokenStream, out: &mut BTreeSet<String>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(g) => crate_paths(g.stream(), out),
            TokenTree::Ident(id) if id == "crate" => {
                if let [
                    TokenTree::Punct(a),
                    TokenTree::Punct(b),
                    TokenTree::Ident(name),
                    ..,
                ] = &tokens[i + 1..]
                    && a.as_char() == ':'
                    && b.as_char() == ':'
                {
                    out.insert(name.to_string());
                }
            }
            _ => {}
        }
    }
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
        let tokens: TokenStream = text
            .parse()
            .unwrap_or_else(|e| panic!("src/{file} is not Rust: {e:?}"));
        let uses = graph.entry(module.clone()).or_default();
        crate_paths(tokens, uses);
        uses.remove(&module);
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
