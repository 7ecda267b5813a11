//! The Terraform module's `.tf` files, parsed by hcl-rs, for the tests that hold them to the
//! Rust side of the contract (docs/DESIGN.md §12): [`super::terraform`] and the counted
//! events' tests. `terraform/verify.sh` checks the module against the provider's schema.

use std::path::{Path, PathBuf};

use hcl::{Body, Expression, Operation};

/// The module's folder.
fn module_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("terraform")
}

fn parse(path: &Path) -> Body {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    hcl::parse(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Every `.tf` file of the module (not its examples), as one body.
pub fn module() -> Body {
    let mut files: Vec<PathBuf> = std::fs::read_dir(module_dir())
        .expect("terraform/ next to Cargo.toml")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {:?}", module_dir());
    files.iter().flat_map(|p| parse(p).into_inner()).collect()
}

/// One file of the module.
pub fn file(name: &str) -> Body {
    parse(&module_dir().join(name))
}

/// Every string literal and quoted template of `body`, at any depth, with its escapes
/// decoded (`\"` reads `"`; a template keeps its `${…}` as written).
pub fn strings(body: &Body) -> Vec<String> {
    let mut out = Vec::new();
    for a in body.attributes() {
        strings_in(a.expr(), &mut out);
    }
    for b in body.blocks() {
        out.extend(strings(b.body()));
    }
    out
}

fn strings_in(e: &Expression, out: &mut Vec<String>) {
    let mut walk = |e: &Expression| strings_in(e, out);
    match e {
        Expression::String(s) => out.push(s.clone()),
        Expression::TemplateExpr(t) => out.push(t.to_string()),
        Expression::Array(items) => items.iter().for_each(walk),
        Expression::Object(o) => o.values().for_each(walk),
        Expression::FuncCall(f) => f.args.iter().for_each(walk),
        Expression::Parenthesis(p) => walk(p),
        Expression::Conditional(c) => [&c.cond_expr, &c.true_expr, &c.false_expr]
            .into_iter()
            .for_each(walk),
        Expression::ForExpr(f) => [&f.collection_expr, &f.value_expr]
            .into_iter()
            .chain(f.key_expr.iter())
            .chain(f.cond_expr.iter())
            .for_each(walk),
        Expression::Operation(op) => match &**op {
            Operation::Unary(u) => walk(&u.expr),
            Operation::Binary(b) => [&b.lhs_expr, &b.rhs_expr].into_iter().for_each(walk),
        },
        _ => {}
    }
}

/// The bodies of the blocks `ident "label"…` at the top of `body` whose labels start with
/// `labels`.
pub fn blocks<'a>(body: &'a Body, ident: &str, labels: &[&str]) -> impl Iterator<Item = &'a Body> {
    body.blocks()
        .filter(move |b| b.identifier() == ident)
        .filter(move |b| {
            b.labels().len() >= labels.len()
                && labels.iter().zip(b.labels()).all(|(l, b)| b.as_str() == *l)
        })
        .map(|b| b.body())
}

/// The body of the one block `ident "label"…`.
pub fn block<'a>(body: &'a Body, ident: &str, labels: &[&str]) -> &'a Body {
    let found: Vec<&Body> = blocks(body, ident, labels).collect();
    assert_eq!(found.len(), 1, "expected one block `{ident} {labels:?}`");
    found[0]
}

/// The value of the attribute `key` at the top of `body`.
pub fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// The entries of an object (`{ key = value, … }`), keys as written.
pub fn entries(object: &Expression) -> Vec<(String, &Expression)> {
    let Expression::Object(o) = object else {
        panic!("not an object: {object}")
    };
    o.iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The entry `key` of an object.
pub fn entry<'a>(object: &'a Expression, key: &str) -> Option<&'a Expression> {
    entries(object)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The value of a string literal.
pub fn string(value: &Expression) -> &str {
    match value {
        Expression::String(s) => s,
        other => panic!("not a string literal: {other}"),
    }
}
