#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use serde_json::json;

/// What an attempt was given before payloads stayed text: the stored bytes
/// parsed into a `Value` (`null` when they did not parse), serialized compact.
fn through_value(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null).to_string()
}

#[test]
fn stored_bytes_become_what_a_value_round_trip_gave() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<&[u8]> = vec![
        br#" { "a" : 1.0 , "b" : [ 1 , 2 ] } "#,
        b"{\n  \"email\": \"a@b.c\",\n  \"n\": [1e2, -0, 1.50, 0.1, -7, 2E-3]\n}",
        br#"{"big":18446744073709551616,"neg":-9223372036854775809,"max":18446744073709551615}"#,
        br#"{"s":"\u00e9\/\n\ud83d\ude00 \"q\" \\ \u0001 <>&'"}"#,
        br#"{"o":{},"a":[],"n":null,"t":true,"f":false,"x":[{},[[]],{"y":[null]}]}"#,
        br#"{"a":1,"b":2,"a":3}"#,
        br#"{"a":{"k":1,"k":{"z":[1]}},"b":[{"d":1,"d":2}]}"#,
        br#"{"z":1,"a":2,"m":{"y":1,"b":2}}"#,
        br#"[1, "x"]"#,
        br#""text""#,
        b"null",
        b"42",
        deep.as_bytes(),
        // Corrupt: each becomes `null`, as it always has.
        br#"{"a":"#,
        br#"{"a":1} trailing"#,
        br#"{"a":1e400}"#,
        b"{\"a\":\"\xff\"}",
        b"",
    ];
    for stored in cases {
        let held = Payload::from_stored(stored);
        assert_eq!(held.as_str(), through_value(stored), "{}", String::from_utf8_lossy(stored));
    }
}

#[test]
fn the_held_payload_is_the_stored_text_and_requests_share_it() {
    let mut stored = br#"{"email":"a@b.c","a":["#.to_vec();
    stored.extend(std::iter::repeat_n(&b"0,"[..], 512 * 1024).flatten());
    stored.extend_from_slice(b"0]}");
    let held = Payload::from_stored(&stored);
    // Already compact, so the text kept is the stored text, byte for byte
    // (no tree, which would be tens of times its size).
    assert_eq!(held.as_str().as_bytes(), &stored[..]);
    let body = held.bytes();
    assert_eq!(body.as_ptr(), held.as_str().as_ptr(), "a request body copies the payload");
    assert_eq!(held.clone().as_str().as_ptr(), held.as_str().as_ptr());
    assert_eq!(format!("{held:?}"), format!("Payload({} bytes)", stored.len()));
}

/// `template::lookup`-style indexing of a whole `Value`, the reference.
fn indexed(v: &Value, path: &[&str]) -> Option<Value> {
    path.iter()
        .try_fold(v, |v, key| match v {
            Value::Object(m) => m.get(*key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
        .cloned()
}

#[test]
fn lookup_finds_what_indexing_the_value_finds() {
    let text = br#"{"user":{"name":"Ada","emails":["a@x","b@x"],"n":1.5},"":{"":7},
        "d":1,"d":{"k":[0,{"deep":true}]},"list":[[1,2],[3]],"s":"str","nil":null}"#;
    let held = Payload::from_stored(text);
    let whole: Value = serde_json::from_slice(text).unwrap();
    let paths: &[&[&str]] = &[
        &[],
        &["user"],
        &["user", "name"],
        &["user", "emails", "1"],
        &["user", "emails", "01"],
        &["user", "emails", "2"],
        &["user", "emails", "x"],
        &["user", "name", "x"],
        &["user", "n"],
        &["", ""],
        &["d"],
        &["d", "k", "1", "deep"],
        &["list", "0", "1"],
        &["list", "1", "0"],
        &["list", "-1"],
        &["s", "0"],
        &["nil"],
        &["nil", "x"],
        &["missing"],
    ];
    for path in paths {
        assert_eq!(held.lookup(path), indexed(&whole, path), "{path:?}");
    }
    // All at once, twice over (a template may repeat a placeholder), in
    // one pass: the same answers in the same order.
    let twice: Vec<&[&str]> = paths.iter().chain(paths.iter().rev()).copied().collect();
    let expected: Vec<_> = twice.iter().map(|p| indexed(&whole, p)).collect();
    assert_eq!(held.lookup_all(&twice), expected);
    let deep_only: Vec<&[&str]> = twice.iter().filter(|p| !p.is_empty()).copied().collect();
    let expected: Vec<_> = deep_only.iter().map(|p| indexed(&whole, p)).collect();
    assert_eq!(held.lookup_all(&deep_only), expected);
    assert!(held.lookup_all(&[]).is_empty());
    let corrupt = Payload::from_stored(b"{");
    assert_eq!((corrupt.lookup(&["a"]), corrupt.lookup(&[])), (None, Some(Value::Null)));
}

#[test]
fn fields_picks_top_level_keys_only() {
    let held = Payload::from_stored(
        br#"{"email":"a@b.c","skip":{"email":"no"},"phone":1,"email":" last ","n":[1]}"#,
    );
    let got = held.fields(&["email", "phone", "name"]);
    assert_eq!(Value::Object(got), json!({"email": " last ", "phone": 1}));
    for other in [&b"[1,2]"[..], b"\"x\"", b"null", b"{"] {
        assert!(Payload::from_stored(other).fields(&["email"]).is_empty());
    }
}

#[test]
fn a_value_converts_to_its_compact_text() {
    let p = Payload::from(json!({"b": 1, "a": [true, null]}));
    assert_eq!(p.as_str(), r#"{"b":1,"a":[true,null]}"#);
    assert_eq!(p.raw().get(), p.as_str());
    assert_eq!(p, Payload::from_stored(br#"{ "b": 1, "a": [ true, null ] }"#));
}

proptest::proptest! {
    /// Any value and any set of paths: one pass finds what indexing the
    /// parsed value finds, path by path.
    #[test]
    fn lookup_all_agrees_with_indexing(
        whole in json_value(),
        paths in proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(&["a", "b", "0", "1", ""][..]), 0..4),
            0..8,
        ),
    ) {
        let held = Payload::from(&whole);
        let paths: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
        let expected: Vec<_> = paths.iter().map(|p| indexed(&whole, p)).collect();
        proptest::prop_assert_eq!(held.lookup_all(&paths), expected);
    }
}

/// Small JSON values whose keys are the ones the paths above use.
fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::from)
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let key = proptest::sample::select(&["a", "b", "0", "1", ""][..]).prop_map(String::from);
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::vec((key, inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}
