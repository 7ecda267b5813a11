//! Wire-level pieces of the Vertex AI fake: google.rpc error replies and the resource-name
//! rules the real API enforces. CopyModelRequest's destination is `state::destination`'s.

use serde_json::{Value, json};

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    /// A google.rpc error body, as Google APIs send over HTTP/JSON.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
        let message = message.into();
        let body = json!({"error": {"code": status, "message": message, "status": code}});
        Reply { status, body }
    }

    pub fn not_found(message: impl Into<String>) -> Reply {
        Reply::error(404, "NOT_FOUND", message)
    }

    pub fn invalid(message: impl Into<String>) -> Reply {
        Reply::error(400, "INVALID_ARGUMENT", message)
    }
}

/// Splits `…/models/ID@V` into the name without version and the version.
pub(crate) fn split_version(name: &str) -> (&str, Option<&str>) {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].find('@') {
        Some(at) => (&name[..last_slash + at], Some(&name[last_slash + at + 1..])),
        None => (name, None),
    }
}

pub(crate) fn is_model_name(name: &str) -> bool {
    let segments: Vec<&str> = name.split('/').collect();
    matches!(segments.as_slice(), ["projects", p, "locations", l, "models", m]
        if !p.is_empty() && !l.is_empty() && !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split_off_the_last_segment_only() {
        let cases = [
            (
                "projects/p/locations/l/models/m@2",
                ("projects/p/locations/l/models/m", Some("2")),
            ),
            (
                "projects/p/locations/l/models/m",
                ("projects/p/locations/l/models/m", None),
            ),
            (
                "projects/a@b/locations/l/models/m",
                ("projects/a@b/locations/l/models/m", None),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(split_version(name), want, "{name}");
        }
    }
}
