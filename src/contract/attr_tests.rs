//! The shapes and limits attribute values are held to where they enter (issue 28, item 2 and
//! the lows): the probe sent `traceparent` and `waiter` values of any length, and the worker
//! carried them onto every message it published.

use std::collections::BTreeMap;

use super::*;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn traceparents_are_w3c_shaped_and_bounded() {
    assert!(is_traceparent(TP));
    let later_version = format!("01{}-extra", &TP[2..]);
    assert!(is_traceparent(&later_version));
    for bad in [
        String::new(),
        "x".repeat(100_000),
        format!("{TP}-extra"),
        format!("01{}-{}", &TP[2..], "x".repeat(300)),
        TP.to_uppercase(),
        format!("ff{}", &TP[2..]),
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-011".into(),
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01".into(),
        format!("01{}x", &TP[2..]),
    ] {
        assert!(!is_traceparent(&bad), "{:?}", clip(&bad));
    }
}

fn clip(s: &str) -> &str {
    &s[..s.len().min(80)]
}

#[test]
fn waiter_tags_are_sixteen_lowercase_hex_digits() {
    assert!(is_waiter("3f2a9c1e0b7d4a58"));
    for bad in [
        "",
        "3f2a9c1e0b7d4a5",
        "3f2a9c1e0b7d4a589",
        "3F2A9C1E0B7D4A58",
        "3f2a9c1e0b7d4a5g",
        &"a".repeat(1024),
    ] {
        assert!(!is_waiter(bad), "{bad:?}");
    }
}

/// The probe: a push whose `traceparent` and `waiter` were 1 KiB of junk had both carried
/// onto the watch message and the completion event.
#[test]
fn screening_drops_malformed_trace_and_waiter_and_what_breaks_pubsub_limits() {
    let mut a: BTreeMap<String, String> = BTreeMap::from([
        (TRACEPARENT.into(), "x".repeat(1024)),
        (WAITER.into(), "w".repeat(1024)),
        (REQUEST_ID.into(), "r1".into()),
        ("k".repeat(MAX_KEY_BYTES + 1), "v".into()),
        ("big".into(), "v".repeat(MAX_VALUE_BYTES + 1)),
        (String::new(), "empty key".into()),
    ]);
    for i in 0..120 {
        a.insert(format!("z{i:03}"), "v".into());
    }
    let dropped = screen_incoming(&mut a);
    for k in [TRACEPARENT, WAITER, "big", ""] {
        assert!(dropped.contains(&k.to_owned()), "{k:?} kept");
        assert!(!a.contains_key(k), "{k:?} kept");
    }
    assert_eq!(a.len(), MAX_ATTRIBUTES);
    assert_eq!(a[REQUEST_ID], "r1");
    assert!(a.keys().all(|k| k.len() <= MAX_KEY_BYTES));

    let mut good = BTreeMap::from([
        (TRACEPARENT.to_owned(), TP.to_owned()),
        (WAITER.to_owned(), "3f2a9c1e0b7d4a58".to_owned()),
    ]);
    let before = good.clone();
    assert!(screen_incoming(&mut good).is_empty());
    assert_eq!(good, before);
}
