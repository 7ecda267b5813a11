//! The copy request as JSON (DESIGN.md §3): the wire types, derived with serde, and the one
//! parser that turns request bytes into them.
//!
//! Every field is optional on the wire; what is required, and every default, is decided in
//! `domain::request`. Each field type has a deserializer that names the rule it broke
//! (`must be a string, got a number`), and `serde_path_to_error` supplies the field's path,
//! so every [`Rejection`] reads `field: rule`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::rejection::{Rejection, clip};

/// Largest request accepted, in bytes of JSON.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest number of `context` pairs echoed into the completion event.
pub const MAX_CONTEXT_PAIRS: usize = 16;

/// The full form of a copy request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CopyRequestWire {
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub source_model: Option<String>,
    #[serde(deserialize_with = "object", skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationWire>,
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub kms_key_name: Option<String>,
    #[serde(
        deserialize_with = "context",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub context: BTreeMap<String, String>,
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// The fields of [`CopyRequestWire`], named in the unknown-field rejection.
pub const FIELDS: &[&str] = &[
    "request_id",
    "source_model",
    "destination",
    "kms_key_name",
    "context",
    "callback_url",
];

/// `destination`: at most one of `model_id` and `parent_model`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DestinationWire {
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub parent_model: Option<String>,
}

/// The fields of [`DestinationWire`].
pub const DESTINATION_FIELDS: &[&str] = &["project", "location", "model_id", "parent_model"];

/// The seed's two-field form, `{"source_model_id": …, "destination_model_id": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedRequestWire {
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub source_model_id: Option<String>,
    #[serde(deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub destination_model_id: Option<String>,
}

/// The fields of [`SeedRequestWire`].
pub const SEED_FIELDS: &[&str] = &["source_model_id", "destination_model_id"];

/// A request as it arrived: the full form or the seed's two-field form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestWire {
    Full(CopyRequestWire),
    Seed(SeedRequestWire),
}

impl CopyRequestWire {
    /// The JSON bytes of this request.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a request of strings always serialises")
    }
}

/// Parses request bytes as received on the wire (UTF-8 JSON, at most 64 KiB, no key given
/// twice). A body that names either seed field is read as the seed's two-field form.
pub fn parse(bytes: &[u8]) -> Result<RequestWire, Rejection> {
    if bytes.is_empty() {
        return Err(Rejection::new(
            "request",
            "message has no data; expected a JSON copy request",
        ));
    }
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(Rejection::new(
            "request",
            format!("is {} bytes; the limit is {MAX_REQUEST_BYTES}", bytes.len()),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Rejection::new("request", format!("is not valid UTF-8 ({e})")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Rejection::new("request", format!("is not valid JSON ({e})")))?;
    super::unique_keys::refuse_duplicate_keys(text)?;
    let Value::Object(map) = &value else {
        return Err(Rejection::new(
            "request",
            format!("must be a JSON object, got {}", kind(&value)),
        ));
    };
    if SEED_FIELDS.iter().any(|k| map.contains_key(*k)) {
        from_value(&value, SEED_FIELDS).map(RequestWire::Seed)
    } else {
        from_value(&value, FIELDS).map(RequestWire::Full)
    }
}

/// Deserializes one form. Every field deserializer reports its own rule; what is left is an
/// unknown field, which `serde_path_to_error` names as the last segment of the path.
fn from_value<T: DeserializeOwned>(value: &Value, fields: &[&str]) -> Result<T, Rejection> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let keys: Vec<String> = e
            .path()
            .iter()
            .map(|s| match s {
                serde_path_to_error::Segment::Map { key } => key.clone(),
                other => other.to_string(),
            })
            .collect();
        let known = match keys.as_slice() {
            [k] if !fields.contains(&k.as_str()) => Some((fields, "")),
            [d, k] if d == "destination" && !DESTINATION_FIELDS.contains(&k.as_str()) => {
                Some((DESTINATION_FIELDS, "destination."))
            }
            _ => None,
        };
        match known {
            Some((known, prefix)) => Rejection::new(
                format!("{prefix}{}", clip(keys.last().map_or("", String::as_str))),
                format!("is not a known field (known: {})", known.join(", ")),
            ),
            None => Rejection::new(keys.join("."), e.inner().to_string()),
        }
    })
}

/// How a JSON value is named in a rule: `a number`, `an array`.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn refuse<E: de::Error>(want: &str, got: &str) -> E {
    E::custom(format!("must be {want}, got {got}"))
}

/// The `visit_*` methods of a visitor that accepts none of these JSON kinds.
macro_rules! refuse {
    ($want:expr; $($method:ident($ty:ty) => $got:literal),* $(,)?) => {$(
        fn $method<E: de::Error>(self, _v: $ty) -> Result<Self::Value, E> {
            Err(refuse($want, $got))
        }
    )*};
}

/// A string field; null or absent is `None`.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        refuse! { "a string";
            visit_bool(bool) => "a boolean",
            visit_i64(i64) => "a number",
            visit_u64(u64) => "a number",
            visit_f64(f64) => "a number",
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(refuse("a string", "an array"))
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(refuse("a string", "an object"))
        }
    }
    d.deserialize_any(Text)
}

/// A nested object field (`destination`); null or absent is `None`.
fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Object<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        refuse! { "an object";
            visit_bool(bool) => "a boolean",
            visit_i64(i64) => "a number",
            visit_u64(u64) => "a number",
            visit_f64(f64) => "a number",
            visit_str(&str) => "a string",
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(refuse("an object", "an array"))
        }
    }
    d.deserialize_any(Object(std::marker::PhantomData))
}

/// `context`: at most [`MAX_CONTEXT_PAIRS`] string pairs; null or absent is empty.
fn context<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    /// One context value: a string, and nothing else (not even null).
    struct Pair(String);
    impl<'de> Deserialize<'de> for Pair {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match text(d)? {
                Some(s) => Ok(Pair(s)),
                None => Err(refuse("a string", "null")),
            }
        }
    }
    struct Context;
    impl<'de> Visitor<'de> for Context {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let too_many = |n: usize| {
                de::Error::custom(format!(
                    "has {n} pairs; at most {MAX_CONTEXT_PAIRS} are allowed"
                ))
            };
            if let Some(n) = map.size_hint().filter(|n| *n > MAX_CONTEXT_PAIRS) {
                return Err(too_many(n));
            }
            let mut out = BTreeMap::new();
            while let Some((k, Pair(v))) = map.next_entry::<String, Pair>()? {
                out.insert(k, v);
            }
            if out.len() > MAX_CONTEXT_PAIRS {
                return Err(too_many(out.len()));
            }
            Ok(out)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        refuse! { "an object of strings";
            visit_bool(bool) => "a boolean",
            visit_i64(i64) => "a number",
            visit_u64(u64) => "a number",
            visit_f64(f64) => "a number",
            visit_str(&str) => "a string",
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(refuse("an object of strings", "an array"))
        }
    }
    d.deserialize_any(Context)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field lists named in rejections are the fields serde knows: a request with every
    /// field set serialises to exactly these keys.
    #[test]
    fn field_lists_match_the_wire_types() {
        let full = CopyRequestWire {
            request_id: Some("r".into()),
            source_model: Some("m".into()),
            destination: Some(DestinationWire {
                project: Some("p".into()),
                location: Some("l".into()),
                model_id: Some("i".into()),
                parent_model: Some("pm".into()),
            }),
            kms_key_name: Some("k".into()),
            context: BTreeMap::from([("a".into(), "b".into())]),
            callback_url: Some("u".into()),
        };
        let v = serde_json::to_value(&full).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        let d: Vec<&str> = v["destination"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = DESTINATION_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(d, want);
        let seed = serde_json::to_value(SeedRequestWire {
            source_model_id: Some("a".into()),
            destination_model_id: Some("b".into()),
        })
        .unwrap();
        let keys: Vec<&str> = seed
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = SEED_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
    }

    #[test]
    fn a_parsed_request_serialises_back_to_the_same_value() {
        let text = r#"{"request_id":"r","source_model":"m","destination":{"project":"p","model_id":"x"},"context":{"k":"v"}}"#;
        let RequestWire::Full(w) = parse(text.as_bytes()).unwrap() else {
            panic!("full form expected")
        };
        assert_eq!(w.to_bytes(), text.as_bytes());
    }
}
