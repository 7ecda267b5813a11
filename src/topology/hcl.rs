//! A small reader of the Terraform module's HCL, for tests that hold `terraform/*.tf` to the
//! Rust side of the contract (docs/DESIGN.md §12). It knows blocks, one-line attributes,
//! strings with `${…}` interpolations and comments: what the module uses, nothing more.
//! `terraform/verify.sh` parses the module properly; this only has to find values.

use std::path::PathBuf;

/// The module's folder.
pub fn module_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("terraform")
}

/// Every `.tf` file of the module (not its examples), read as one body.
pub fn module() -> Hcl {
    let mut files: Vec<PathBuf> = std::fs::read_dir(module_dir())
        .expect("terraform/ next to Cargo.toml")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {:?}", module_dir());
    let text: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
        .collect();
    Hcl::parse(&text.join("\n"))
}

/// One file of the module.
pub fn file(name: &str) -> Hcl {
    let p = module_dir().join(name);
    Hcl::parse(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
}

/// A body of HCL with its comments blanked out.
#[derive(Debug, Clone)]
pub struct Hcl(pub String);

impl Hcl {
    pub fn parse(src: &str) -> Hcl {
        Hcl(scan(src).0)
    }

    /// Every block at the top of this body: (header, body). The header is the text before
    /// its `{`, without a trailing `=`: `resource "google_pubsub_topic" "topic"`, `locals`,
    /// `topics` (for `topics = {`).
    pub fn blocks(&self) -> Vec<(String, Hcl)> {
        let code = scan(&self.0).1;
        let bytes = self.0.as_bytes();
        let (mut out, mut depth, mut start, mut open) = (Vec::new(), 0usize, 0usize, 0usize);
        for (i, &b) in bytes.iter().enumerate() {
            if !code[i] {
                continue;
            }
            match b {
                b'{' if depth == 0 => {
                    open = i;
                    depth = 1;
                }
                b'{' => depth += 1,
                b'}' if depth == 1 => {
                    let header = self.0[start..open].rsplit('\n').next().unwrap_or("");
                    let header = header.trim().trim_end_matches('=').trim_end();
                    out.push((header.to_owned(), Hcl(self.0[open + 1..i].to_owned())));
                    depth = 0;
                    start = i + 1;
                }
                b'}' => depth = depth.saturating_sub(1),
                b'\n' if depth == 0 => start = i + 1,
                _ => {}
            }
        }
        out
    }

    /// The one block with this header.
    pub fn block(&self, header: &str) -> Hcl {
        let found: Vec<Hcl> = self
            .blocks()
            .into_iter()
            .filter(|(h, _)| h == header)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(found.len(), 1, "expected one block `{header}`");
        found.into_iter().next().unwrap()
    }

    /// A one-line attribute at the top of this body (`key = value`), its value as written.
    pub fn attr(&self, key: &str) -> Option<String> {
        let code = scan(&self.0).1;
        let mut depth = 0usize;
        let mut line_start = 0usize;
        let mut found = None;
        for (i, &b) in self.0.as_bytes().iter().enumerate() {
            if i == line_start && depth == 0 && found.is_none() {
                found = one_line_attr(&self.0[i..], key);
            }
            match b {
                b'{' if code[i] => depth += 1,
                b'}' if code[i] => depth = depth.saturating_sub(1),
                b'\n' => line_start = i + 1,
                _ => {}
            }
        }
        found
    }
}

fn one_line_attr(line: &str, key: &str) -> Option<String> {
    let line = line.split('\n').next().unwrap_or("").trim_start();
    let rest = line.strip_prefix(key)?.trim_start();
    let value = rest.strip_prefix('=')?;
    (!value.starts_with('=')).then(|| value.trim().to_owned())
}

/// A quoted literal without its quotes (`"copy-requests"` → `copy-requests`).
pub fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a quoted string: {value}"))
}

/// The text with comments blanked (newlines kept), and for each byte whether it is code
/// outside every string. Strings may hold `${…}`, which may hold strings again.
fn scan(src: &str) -> (String, Vec<bool>) {
    enum Mode {
        Code(usize),
        Str,
    }
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut code = vec![false; b.len()];
    let mut stack = vec![Mode::Code(0)];
    let mut i = 0;
    while i < b.len() {
        let top = stack.len() == 1;
        match stack.last_mut().expect("the outer code") {
            Mode::Code(depth) => {
                let comment = b[i] == b'#' || b[i..].starts_with(b"//");
                if comment {
                    while i < b.len() && b[i] != b'\n' {
                        out[i] = b' ';
                        i += 1;
                    }
                    continue;
                }
                code[i] = top;
                match b[i] {
                    b'"' => stack.push(Mode::Str),
                    b'{' => *depth += 1,
                    b'}' if !top && *depth == 0 => {
                        stack.pop();
                    }
                    b'}' => *depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            Mode::Str => match b[i] {
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                b'$' if b.get(i + 1) == Some(&b'{') => {
                    stack.push(Mode::Code(0));
                    i += 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    (
        String::from_utf8(out).expect("comments blanked at char boundaries"),
        code,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_attributes_are_found_past_strings_and_comments() {
        let hcl = Hcl::parse(
            r#"
# a comment with a { and a "
resource "a" "b" {
  name = local.names.x # trailing "comment"
  url  = "${try(local.m["k"], "")}/p{ath}"
  inner {
    name = "nested"
  }
}
locals {
  topics = {
    requests = local.names.requests_topic
  }
}
"#,
        );
        let blocks = hcl.blocks();
        let headers: Vec<&str> = blocks.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(headers, [r#"resource "a" "b""#, "locals"]);
        let r = hcl.block(r#"resource "a" "b""#);
        assert_eq!(r.attr("name").as_deref(), Some("local.names.x"));
        assert_eq!(
            r.attr("url").as_deref(),
            Some(r#""${try(local.m["k"], "")}/p{ath}""#)
        );
        assert_eq!(
            r.block("inner").attr("name").as_deref(),
            Some(r#""nested""#)
        );
        let topics = hcl.block("locals").block("topics");
        assert_eq!(
            topics.attr("requests").as_deref(),
            Some("local.names.requests_topic")
        );
    }
}
