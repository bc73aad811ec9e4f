#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn meta(v: serde_json::Value) -> Metadata {
    serde_json::from_value(v).unwrap()
}

/// A step list: `None` stands for a wait or a non-`notify` action.
struct Steps(Vec<Option<(String, Metadata, String)>>);

impl Steps {
    fn new(steps: Vec<Option<(&str, Metadata)>>) -> Steps {
        Steps(
            steps
                .into_iter()
                .map(|s| s.map(|(c, m)| (c.to_string(), m.clone(), fingerprint(c, &m))))
                .collect(),
        )
    }

    /// The index of the step the id resolves to.
    fn resolve(&self, id: &str) -> Result<usize, Gone> {
        let slot = |i: usize| {
            self.0.get(i)?.as_ref().map(|(c, m, f)| Slot {
                connection: c,
                metadata: m,
                fingerprint: f,
            })
        };
        let s = resolve(self.0.len(), slot, parse(id).unwrap())?;
        let at = |x: &Option<(String, Metadata, String)>| {
            x.as_ref().is_some_and(|(_, m, _)| std::ptr::eq(m, s.metadata))
        };
        Ok(self.0.iter().position(at).unwrap())
    }
}

fn email(template: &str) -> Option<(&'static str, Metadata)> {
    Some(("email", meta(json!({"action": "send_email_template", "id": template}))))
}

fn slack() -> Option<(&'static str, Metadata)> {
    Some(("team", meta(json!({"action": "send_message", "template": "hi"}))))
}

/// The id a delivery of `step` at `index` got when it was created.
fn id_of(index: usize, step: Option<(&str, Metadata)>) -> String {
    let (c, m) = step.unwrap();
    delivery_id("", "drip:v2", index, &fingerprint(c, &m))
}

#[test]
fn fingerprints_are_stable_and_split_content_from_kind() {
    let (a, b) = (fingerprint("email", &email("t1").unwrap().1), email("t2").unwrap());
    // Pinned (checked with Python hashlib): stored ids must resolve the same after an upgrade.
    assert_eq!(a, "602d37c1af69e579");
    let edited = fingerprint("email", &b.1);
    assert_ne!(a[..8], edited[..8], "other content");
    assert_eq!(a[8..], edited[8..], "same connection and action");
    let elsewhere = fingerprint("email2", &b.1);
    assert_ne!(edited[8..], elsewhere[8..]);
}

#[test]
fn ids_parse_from_the_right_and_older_ids_still_parse() {
    let fp = "0123456789abcdef";
    let new = format!("a:b:3:{fp}");
    assert_eq!(parse(&new), Some(Parsed { owner: "a:b", index: 3, fingerprint: Some(fp) }));
    assert_eq!(parse("a:b:3"), Some(Parsed { owner: "a:b", index: 3, fingerprint: None }));
    assert_eq!(parse("welcome:0"), Some(Parsed { owner: "welcome", index: 0, fingerprint: None }));
    assert_eq!(parse("welcome"), None);
    assert_eq!(parse("welcome:x"), None);
    assert_eq!(parse(&format!("w:{}", fp.to_uppercase())), None, "not a fingerprint, not an index");
}

#[test]
fn a_pending_delivery_follows_its_step() {
    let id = id_of(0, email("t1"));
    // 1. Unchanged: the step at its index.
    assert_eq!(Steps::new(vec![email("t1"), None, email("t3")]).resolve(&id), Ok(0));
    // 2. A step inserted before it: found where it moved, not the Slack step now at 0.
    assert_eq!(Steps::new(vec![slack(), email("t1")]).resolve(&id), Ok(1));
    assert_eq!(Steps::new(vec![None, email("t1")]).resolve(&id), Ok(1));
    // 3. Edited in place (same connection and action): the edit applies.
    assert_eq!(Steps::new(vec![email("t1-fixed"), email("t3")]).resolve(&id), Ok(0));
    // 4. Its place now delivers elsewhere, or is gone.
    assert_eq!(Steps::new(vec![slack(), email("t3")]).resolve(&id), Err(Gone::Changed));
    assert_eq!(Steps::new(vec![None, email("t3")]).resolve(&id), Err(Gone::Removed));
    assert_eq!(Steps::new(vec![]).resolve(&id), Err(Gone::Removed));
    // The same template through another connection is other content.
    let other = Some(("email2", email("t1").unwrap().1));
    assert_eq!(Steps::new(vec![other]).resolve(&id), Err(Gone::Changed));
}

#[test]
fn its_own_index_first_then_the_first_match() {
    let id = id_of(2, email("t1"));
    assert_eq!(Steps::new(vec![email("t1"), slack(), email("t1")]).resolve(&id), Ok(2));
    assert_eq!(Steps::new(vec![slack(), email("t1"), None, email("t1")]).resolve(&id), Ok(1));
}

#[test]
fn older_ids_keep_the_positional_lookup() {
    let steps = Steps::new(vec![slack(), email("t1")]);
    assert_eq!(steps.resolve("drip:v2:0"), Ok(0));
    assert_eq!(steps.resolve("drip:v2:1"), Ok(1));
    assert_eq!(steps.resolve("drip:v2:2"), Err(Gone::Removed));
    assert_eq!(Steps::new(vec![None]).resolve("drip:v2:0"), Err(Gone::Removed));
}
