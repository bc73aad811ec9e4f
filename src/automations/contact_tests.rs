//! Tests of contact changes, views and payloads.

use super::*;

fn contact() -> ContactRecord {
    ContactRecord::new("c1".into(), "ws".into(), 1)
}

#[test]
fn upsert_merges_and_reports_changes() {
    let mut c = contact();
    c.custom_fields.insert("plan".into(), json!("free"));
    c.custom_fields.insert("seats".into(), json!(3));
    let mut u = Upsert::default();
    u.fields.insert("first_name", json!("Ada"));
    u.custom_fields.insert("plan".into(), json!("pro"));
    u.tag_names = vec!["vip".into(), "vip".into()];
    let (changes, added) = apply(&mut c, &u);
    assert_eq!(c.custom_fields.get("seats"), Some(&json!(3)), "omitted keys are kept");
    assert_eq!(added, vec!["vip"]);
    assert_eq!(c.tags, vec!["vip"]);
    let keys: Vec<&str> = changes.keys().map(String::as_str).collect();
    assert_eq!(keys, ["custom_fields.plan", "first_name", "tags"]);
    let view = changes_view(&changes);
    assert_eq!(view["plan"], json!({"from": "free", "to": "pro"}));
    assert_eq!(view["custom_fields"]["plan"]["to"], json!("pro"));
    assert_eq!(view["first_name"]["from"], Value::Null);
    // The same upsert again changes nothing.
    assert!(apply(&mut c, &u).0.is_empty());
}

#[test]
fn null_clears_and_tags_stay_sorted() {
    let mut c = contact();
    let mut ch = Changes::new();
    for t in ["b", "a", "c"] {
        add_tag(&mut c, t, &mut ch);
    }
    assert_eq!(c.tags, ["a", "b", "c"]);
    assert!(remove_tag(&mut c, "b", &mut ch));
    assert!(!remove_tag(&mut c, "b", &mut ch));
    assert_eq!(ch["tags"].from, json!([]), "the first `from` is kept");
    set_custom(&mut c, "plan", json!("x"), &mut ch);
    set_custom(&mut c, "plan", Value::Null, &mut ch);
    assert!(!c.custom_fields.contains_key("plan"));
    assert_eq!(view(&c)["unsubscribed"], json!(false));
}

/// Custom fields stored under reserved names (before they were refused)
/// never stand in for the standard fields or the contact's state.
#[test]
fn reserved_custom_fields_never_pass_for_standard_ones() {
    let mut c = contact();
    for k in ["email", "tags", "unsubscribed", "id", "contact_id", "properties", "plan"] {
        c.custom_fields.insert(k.into(), json!("evil@example.com"));
    }
    let p = payload(&c);
    assert_eq!(p["email"], Value::Null, "no email: null, not the custom field");
    assert_eq!((&p["tags"], &p["id"], &p["contact_id"]), (&json!([]), &json!("c1"), &json!("c1")));
    assert!(!p.contains_key("unsubscribed") && !p.contains_key("properties"), "{p:?}");
    assert_eq!(p["plan"], "evil@example.com", "other custom fields are kept");
    let mut ch = Changes::new();
    set_custom(&mut c, "unsubscribed", json!(true), &mut ch);
    set_custom(&mut c, "email", json!("x@y.z"), &mut ch);
    let v = changes_view(&ch);
    assert!(v.get("unsubscribed").is_none() && v.get("email").is_none(), "{v}");
    assert_eq!(v["custom_fields"]["unsubscribed"]["to"], json!(true));
    assert_eq!(view(&c)["unsubscribed"], json!(false));
    assert!(custom_refused("tags", &json!(1)).unwrap().contains("`tags` is reserved"));
}

#[test]
fn custom_values_and_records_are_capped_by_encoded_size() {
    let big = json!("x".repeat(MAX_CUSTOM_VALUE_BYTES));
    let msg = custom_refused("blob", &big).unwrap();
    assert!(msg.contains("16386 bytes") && msg.contains("at most 16384"), "{msg}");
    assert!(!msg.contains("xxx"), "the value is not echoed");
    assert!(custom_refused("blob", &json!("x".repeat(MAX_CUSTOM_VALUE_BYTES - 2))).is_none());
    let mut c = contact();
    for i in 0..20 {
        c.custom_fields.insert(format!("k{i}"), json!("x".repeat(15_000)));
    }
    let msg = record_refused(&c, None).unwrap();
    assert!(msg.contains("at most 262144"), "{msg}");
    let smaller = {
        let mut s = c.clone();
        s.custom_fields.remove("k0");
        s
    };
    assert!(record_refused(&smaller, Some(&c)).is_none(), "one already too large may shrink");
    // Past the cap, a change that grows neither custom fields nor tags (an
    // unsubscribe, a name) still goes through; another tag does not.
    let mut suppressed = c.clone();
    suppressed.unsubscribed_at = Some(1_700_000_000_000);
    suppressed.first_name = Some("Ada".into());
    assert!(record_refused(&suppressed, Some(&c)).is_none(), "unsubscribing is never refused");
    let mut tagged = c.clone();
    tagged.tags.push("vip".into());
    assert!(record_refused(&tagged, Some(&c)).is_some(), "adding to it is");
    assert_eq!(json_len(&c), serde_json::to_vec(&c).unwrap().len());
}

#[test]
fn standard_fields_take_scalars_as_text_and_refuse_structures() {
    let mut c = contact();
    let mut ch = Changes::new();
    set_standard(&mut c, "phone", &json!(5551234), &mut ch).unwrap();
    assert_eq!((c.phone.as_deref(), &ch["phone"].to), (Some("5551234"), &json!("5551234")));
    for bad in [json!({"a": 1}), json!(["x"])] {
        assert!(set_standard(&mut c, "phone", &bad, &mut ch).unwrap_err().contains("`phone`"));
    }
    assert_eq!(c.phone.as_deref(), Some("5551234"), "a refused value clears nothing");
    let added = add_tags(&mut c, &["b".into(), "a".into(), "b".into()], &mut ch);
    assert_eq!((added, &ch["tags"].from), (vec!["b".to_string(), "a".into()], &json!([])));
}
