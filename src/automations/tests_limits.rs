//! Bounds on what one write and one contact can grow to: the total-runs
//! budget, the per-contact tag and custom-field caps, and `set_field` values
//! for standard fields.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contact::{MAX_CONTACT_BYTES, MAX_CUSTOM_FIELDS, MAX_TAGS_PER_CONTACT, Upsert};
use super::engine::MAX_RUNS;
use super::service::{ContactError, Who, upsert_in};
use super::tests::{H, custom, harness, invalid};
use crate::store::{ContactRecord, event_key};
use serde_json::{Value, json};

impl H {
    /// The upsert's answer, refusals included.
    async fn try_upsert(&self, email: &str, u: Upsert) -> Result<ContactRecord, ContactError> {
        self.upsert_who(Who { external_id: None, email: Some(email.into()) }, u).await
    }

    /// Stores `c` as it is, past any cap (as automations could before the caps).
    async fn put(&self, c: ContactRecord) {
        self.store
            .writer()
            .run(move |t| {
                let old = t.contact(event_key(&c.id).unwrap())?;
                t.put_contact(&c, old.as_ref())
            })
            .await
            .unwrap();
    }

    /// The whole activity log, oldest first.
    fn all_activity(&self, c: &ContactRecord) -> Vec<Value> {
        let (key, mut cursor, mut out) = (event_key(&c.id).unwrap(), None, Vec::new());
        loop {
            let page = self.store.activity(key, cursor, 200).unwrap();
            out.extend(page.records.iter().map(|a| serde_json::to_value(a).unwrap()));
            let Some(next) = page.next_cursor else { break };
            cursor = Some(uuid::Uuid::parse_str(&next).unwrap().as_u128());
        }
        out.reverse();
        out
    }
}

fn tags(range: std::ops::Range<usize>) -> Upsert {
    Upsert { tag_names: range.map(|i| format!("t{i:04}")).collect(), ..Upsert::default() }
}

/// Four automations that each change the contact again would fan out to
/// 4^8 runs under the depth limit alone; the budget stops the write at
/// [`MAX_RUNS`] and records what it left out.
#[tokio::test]
async fn one_write_sets_off_at_most_the_run_budget() {
    let auto = |i: u32| {
        format!(
            "  - {{ id: grow{i}, trigger: contact_updated, actions: [ {{ set_field: {{ field: custom_fields.n{i}, value: \"{{{{contact.n{i}}}}}x\" }} }} ] }}\n"
        )
    };
    let h = harness(&format!("automations:\n{}", (1..=4).map(auto).collect::<String>()));
    let c = h.upsert("fan@example.com", Upsert::default(), 1).await;
    let c2 = h.upsert("fan@example.com", custom(&[("start", json!(1))]), 2).await;
    let act = h.all_activity(&c);
    let ran = act.iter().filter(|a| a["kind"] == "automation").count();
    assert_eq!(ran, MAX_RUNS, "runs stop at the budget");
    assert_eq!(act.len(), MAX_RUNS + 1, "the runs and one entry for the cut");
    let cut: Vec<&Value> = act.iter().filter(|a| a["kind"] == "loop_limit").collect();
    assert_eq!(cut.len(), 1);
    // 4 + 16 + 64 + 256 runs, then 660 of the next 1,024: 364 of those and
    // the 4 × 660 their changes fire are left out.
    let note = cut[0]["note"].as_str().unwrap();
    assert!(note.starts_with("not run: 3004 more automation runs (grow1 ×751"), "{note}");
    assert!(note.contains("limit 1000"), "{note}");
    assert_eq!(cut[0]["trigger"]["kind"], "contact_updated");
    // grow1 ran 1 + 4 + 16 + 64 + 165 times, each adding an x; the write committed.
    assert_eq!(c2.custom_fields["n1"].as_str().unwrap().len(), 250);
    assert_eq!(h.store.contact(event_key(&c.id).unwrap()).unwrap().unwrap(), c2);
}

#[tokio::test]
async fn set_field_writes_scalars_as_text_and_null_clears() {
    let h = harness(
        r#"
automations:
  - id: fill
    trigger: { contact_updated: [go] }
    actions:
      - { set_field: { field: phone, value: 5551234 } }
      - { set_field: { field: first_name, value: true } }
      - { set_field: { field: last_name, value: null } }
"#,
    );
    let mut u = custom(&[("go", json!(0))]);
    u.fields.insert("last_name", json!("Lovelace"));
    h.upsert("s@example.com", u, 1).await;
    let c = h.upsert("s@example.com", custom(&[("go", json!(1))]), 2).await;
    assert_eq!(c.phone.as_deref(), Some("5551234"), "the number as its text, not cleared");
    assert_eq!(c.first_name.as_deref(), Some("true"));
    assert_eq!(c.last_name, None, "null clears");
    let act = h.all_activity(&c);
    let outcomes: Vec<&Value> = act[0]["actions"].as_array().unwrap().iter().collect();
    assert!(outcomes.iter().all(|o| o["outcome"] == "done"), "{outcomes:?}");
}

#[tokio::test]
async fn tags_are_capped_per_contact_but_other_changes_go_through() {
    let h = harness(
        r#"
automations:
  - id: more
    trigger: { contact_updated: [plan] }
    actions: [ { add_tag: one-too-many }, { set_field: { field: custom_fields.after, value: "yes" } } ]
"#,
    );
    let mut c = h.upsert("t@example.com", tags(0..MAX_TAGS_PER_CONTACT), 1).await;
    assert_eq!(c.tags.len(), MAX_TAGS_PER_CONTACT);
    let (param, msg) = invalid(h.try_upsert("t@example.com", tags(999..1001)).await);
    assert_eq!(param, "tag_names");
    assert!(msg.contains("1001 tags") && msg.contains("at most 1000"), "{msg}");
    // Tags it already has, and other fields, are not refused.
    let mut u = tags(0..10);
    u.fields.insert("first_name", json!("Ada"));
    c = h.try_upsert("t@example.com", u).await.unwrap();
    assert_eq!(c.first_name.as_deref(), Some("Ada"));
    // An automation's add_tag past the cap is a recorded skip; the run goes on.
    c = h.upsert("t@example.com", custom(&[("plan", json!("pro"))]), 3).await;
    assert_eq!((c.tags.len(), &c.custom_fields["after"]), (MAX_TAGS_PER_CONTACT, &json!("yes")));
    let act = h.all_activity(&c);
    let run = act.iter().find(|a| a["automation"] == "more").unwrap();
    assert_eq!(run["actions"][0]["outcome"], "skipped");
    assert_eq!(run["actions"][0]["detail"], "the contact already has 1000 tags, the most it keeps");
    assert_eq!(run["actions"][1]["outcome"], "done");
}

#[tokio::test]
async fn the_field_cap_refuses_only_keys_a_change_adds() {
    let h = harness(
        r#"
automations:
  - id: add-key
    trigger: { contact_updated: [k3] }
    actions:
      - { set_field: { field: custom_fields.brand_new, value: 1 } }
      - { set_field: { field: k0, value: changed } }
"#,
    );
    let mut c = h.upsert("f@example.com", Upsert::default(), 1).await;
    c.custom_fields = (0..=MAX_CUSTOM_FIELDS).map(|i| (format!("k{i}"), json!(i))).collect();
    h.put(c.clone()).await;
    // Already past the cap: a change that adds no key still goes through.
    let mut u = custom(&[("k1", json!("x")), ("k2", Value::Null)]);
    u.fields.insert("first_name", json!("Ada"));
    let stored = h.try_upsert("f@example.com", u).await.unwrap();
    assert_eq!((stored.first_name.as_deref(), stored.custom_fields.len()), (Some("Ada"), 500));
    let (param, msg) = invalid(h.try_upsert("f@example.com", custom(&[("new", json!(1))])).await);
    assert_eq!(param, "custom_fields");
    assert!(msg.contains("501 custom fields"), "{msg}");
    // The automation's new key is a recorded skip; changing a kept key is not.
    let c = h.upsert("f@example.com", custom(&[("k3", json!("go"))]), 3).await;
    let run = h.all_activity(&c).into_iter().find(|a| a["automation"] == "add-key").unwrap();
    assert_eq!(run["actions"][0]["outcome"], "skipped");
    assert!(run["actions"][0]["detail"].as_str().unwrap().contains("500 custom fields"));
    assert_eq!(run["actions"][1]["outcome"], "done");
    assert!(!c.custom_fields.contains_key("brand_new"));
    assert_eq!(c.custom_fields["k0"], "changed");
}

/// The record cap holds for what automations add, not only for the API
/// request that set them off: a tag past it is a recorded skip.
#[tokio::test]
async fn automations_cannot_grow_a_contact_past_the_record_cap() {
    let h = harness(
        r#"
automations:
  - id: tag-it
    trigger: { contact_updated: [plan] }
    actions: [ { add_tag: one-more } ]
"#,
    );
    let mut c = h.upsert("r@example.com", custom(&[("plan", json!("free"))]), 1).await;
    // Stored as it is: within a few bytes of the cap.
    let room = MAX_CONTACT_BYTES - crate::automations::contact::json_len(&c);
    c.custom_fields.insert("pad".into(), json!("x".repeat(room - 12)));
    h.put(c.clone()).await;
    // A change that grows nothing passes; the tag it sets off would not fit.
    let c = h.upsert("r@example.com", custom(&[("plan", json!("paid"))]), 3).await;
    assert!(c.tags.is_empty(), "{:?}", c.tags);
    let run = h.all_activity(&c).into_iter().find(|a| a["automation"] == "tag-it").unwrap();
    assert_eq!(run["actions"][0]["outcome"], "skipped");
    let detail = run["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("at most 262144"), "{detail}");
}

/// Three loops set off by one change are cut three times at the depth
/// limit: each cut is in the activity log, and the write logs one line
/// naming them all (a line per cut flooded the log).
#[tokio::test]
async fn chains_cut_at_the_depth_limit_are_logged_once_per_write() {
    let pair = |i: u32| {
        format!(
            "  - {{ id: ping{i}, trigger: {{ tag_added: ping{i} }}, actions: [ {{ remove_tag: pong{i} }}, {{ add_tag: pong{i} }} ] }}\n\
             \x20 - {{ id: pong{i}, trigger: {{ tag_added: pong{i} }}, actions: [ {{ remove_tag: ping{i} }}, {{ add_tag: ping{i} }} ] }}\n"
        )
    };
    let h = harness(&format!("automations:\n{}", (1..=3).map(pair).collect::<String>()));
    let rt = h.rt.clone();
    let who = Who { external_id: None, email: Some("loops@example.com".into()) };
    let u =
        Upsert { tag_names: (1..=3).map(|i| format!("ping{i}")).collect(), ..Upsert::default() };
    let (lines, stored) = h
        .store
        .writer()
        .run(move |t| {
            // The run logs on the writer thread: capture there.
            let (_guard, logs) = crate::delivery::observe::tests::Logs::capture();
            let stored = upsert_in(t, rt.workspace(super::tests::WS).unwrap(), 5, &who, &u, 0)?;
            Ok((logs.lines(), stored))
        })
        .await
        .unwrap();
    let c = stored.unwrap().0.0;
    let cuts = h.all_activity(&c).into_iter().filter(|a| a["kind"] == "loop_limit").count();
    assert_eq!(cuts, 3, "one activity entry per cut");
    let cut: Vec<&String> = lines.iter().filter(|l| l.contains("depth limit")).collect();
    assert_eq!(cut.len(), 1, "{lines:#?}");
    assert!(cut[0].contains("WARN"), "{}", cut[0]);
    assert!(
        cut[0].ends_with(" cut=3 automations=ping1 ×1, ping2 ×1, ping3 ×1 limit=8"),
        "{}",
        cut[0]
    );
}
