//! Which requests `copy-worker wait` waits for, and from when: the ids of `--file` (publish's
//! stdout, or one id a line), and the time a new subscription of its own is seeked back to.

use std::time::{Duration, SystemTime};

use super::WaitArgs;
use crate::clients::lines::Lines;

/// How far before a `published_at` a wait looks: the host that published and Pub/Sub may
/// disagree on the time by this much.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What a `--file` holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileIds {
    pub ids: Vec<String>,
    /// The earliest `published_at` of publish's output lines, if any has one.
    pub published_at: Option<SystemTime>,
}

/// The request ids of a file (read in bounded memory): `request_id` of each JSON line, or
/// the line itself; and the earliest `published_at` of those lines.
pub fn ids_of<R: std::io::BufRead>(lines: Lines<R>) -> Result<FileIds, String> {
    let mut file = FileIds::default();
    for line in lines {
        let (n, bytes) = line.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&bytes);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('{') {
            file.ids.push(line.to_owned());
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {n}: not JSON: {e}"))?;
        if v.get("summary").is_some() {
            continue;
        }
        match v.get("request_id").and_then(|r| r.as_str()) {
            Some(id) => file.ids.push(id.to_owned()),
            None => return Err(format!("line {n}: no \"request_id\"")),
        }
        if let Some(at) = v.get("published_at").and_then(|t| t.as_str()) {
            let at = humantime::parse_rfc3339_weak(at)
                .map_err(|e| format!("line {n}: published_at {at:?}: {e}"))?;
            file.published_at = Some(file.published_at.map_or(at, |t| t.min(at)));
        }
    }
    Ok(file)
}

/// Where a new subscription of its own is seeked back to: the earliest `published_at` of
/// the file (less the clock skew), and `--since` ago for ids that came without one.
pub fn since(args: &WaitArgs, published_at: Option<SystemTime>) -> SystemTime {
    let now = SystemTime::now();
    let from_file = published_at.map(|t| t - CLOCK_SKEW);
    let from_flag = (from_file.is_none() || !args.request_ids.is_empty()).then(|| now - args.since);
    from_file.into_iter().chain(from_flag).min().unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_publish_output_or_plain_lines_with_the_earliest_publish_time() {
        let lines = |t: &'static str| Lines::new(t.as_bytes(), "test", 200);
        let text = "{\"request_id\":\"a\",\"message_id\":\"1\",\"published_at\":\"2026-11-22T10:00:05Z\"}\n\nb\n{\"request_id\":\"c\",\"published_at\":\"2026-11-22T10:00:01Z\"}\n{\"summary\":{}}\n";
        let file = ids_of(lines(text)).unwrap();
        assert_eq!(file.ids, ["a", "b", "c"]);
        assert_eq!(
            file.published_at,
            Some(humantime::parse_rfc3339("2026-11-22T10:00:01Z").unwrap())
        );
        let e = ids_of(lines("{\"message_id\":\"1\"}")).unwrap_err();
        assert!(e.contains("line 1") && e.contains("request_id"), "{e}");
        let e = ids_of(lines("{\"request_id\":\"a\",\"published_at\":\"soon\"}")).unwrap_err();
        assert!(e.contains("line 1: published_at"), "{e}");
    }
}
