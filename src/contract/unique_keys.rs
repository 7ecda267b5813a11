//! JSON objects with a key given twice are refused, naming the key's path (DESIGN.md §3).
//!
//! RFC 8259 §4 leaves duplicate names undefined ("the names within an object SHOULD be
//! unique"), and `serde_json` keeps the last one, so `{"request_id":"a","request_id":"b"}`
//! would be request `b` to this worker and maybe `a` to a proxy or a log reader before it. The
//! probe of issue 28 found them accepted; now the first duplicate is a rejection.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::rejection::{Rejection, clip};

/// Fails with a rejection naming the first key given twice in any object of `text`, as a
/// path (`destination.model_id`, `context.k`). Text that is not JSON passes: the parser
/// that follows names that problem.
pub fn refuse_duplicate_keys(text: &str) -> Result<(), Rejection> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = Walk {
        path: String::new(),
        duplicate: &found,
    }
    .deserialize(&mut de);
    match found.into_inner() {
        Some(path) => Err(Rejection::new(
            clip(&path),
            "is given more than once; send each key once",
        )),
        None => Ok(()),
    }
}

/// One value of the document at `path`; records the first duplicate key it meets.
struct Walk<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl Walk<'_> {
    fn child(&self, segment: &str) -> Self {
        let path = if self.path.is_empty() {
            segment.to_owned()
        } else {
            format!("{}.{segment}", self.path)
        };
        Walk {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if !seen.insert(key) {
                *self.duplicate.borrow_mut() = Some(child.path);
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(child)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq.next_element_seed(self.child(&i.to_string()))?.is_some() {
            i += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe: `{"request_id":"a","request_id":"b",…}` was accepted as request `b`.
    #[test]
    fn the_first_duplicate_key_is_named_by_its_path() {
        let cases = [
            (r#"{"request_id":"a","request_id":"b"}"#, "request_id"),
            (
                r#"{"destination":{"model_id":"a","project":"p","model_id":"b"}}"#,
                "destination.model_id",
            ),
            (r#"{"context":{"k":"1","k":"2"}}"#, "context.k"),
            (r#"[{"a":1},{"b":1,"b":2}]"#, "1.b"),
        ];
        for (text, path) in cases {
            let e = refuse_duplicate_keys(text).unwrap_err();
            assert_eq!(e.field, path, "{text}");
            assert!(e.rule.contains("more than once"), "{}", e.rule);
        }
    }

    #[test]
    fn unique_keys_and_text_that_is_not_json_pass() {
        for text in [
            r#"{"a":{"a":{"a":[1,2,{"a":null}]}},"b":"a"}"#,
            r#"{"context":{"k":"1","K":"2"}}"#,
            "not json",
            "",
        ] {
            assert!(refuse_duplicate_keys(text).is_ok(), "{text}");
        }
    }
}
