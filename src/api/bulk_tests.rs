//! The hand-written bulk answer is the JSON the serde types gave.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::store::EventRecord;
use serde_json::json;

fn stored(id: &str, resource_id: Option<&str>) -> crate::store::Ingested {
    let event = EventRecord {
        id: id.into(),
        workspace: "ws".into(),
        event: "user.\"signup\"".into(),
        resource: "user".into(),
        resource_id: resource_id.map(str::to_string),
        created_by: "publishable_key".into(),
        created_at: 1_700_000_000_123,
    };
    crate::store::Ingested { event, duplicate: false }
}

#[test]
fn bulk_answer_is_the_serde_shape() {
    let stored = [stored("a", Some("u-1")), stored("b", None)];
    let errs = vec![FieldError { param: "event".into(), msg: "expected a string".into() }];
    let slots = vec![Ok(0), Err(errs.clone()), Ok(1)];
    let records: Vec<&EventRecord> = stored.iter().map(|d| &d.event).collect();
    let out = bulk_answer(&slots, &records, 1);
    let expected = json!({
        "count": 2,
        "error_count": 1,
        "records": [
            { "event": render::event_out(&stored[0].event) },
            item_error(1, &errs),
            { "event": render::event_out(&stored[1].event) },
        ],
    });
    assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&expected).unwrap());
}

/// Every event refused is a 400 that carries the error shape every other 400
/// has, beside the bulk result.
#[test]
fn an_all_refused_answer_is_also_an_error_body() {
    let e = |p: &str, m: &str| vec![FieldError { param: p.into(), msg: m.into() }];
    let slots = vec![Err(e("event", "expected a string")), Err(e("payload", "required"))];
    let out: Value = serde_json::from_slice(&bulk_answer(&slots, &[], 2)).unwrap();
    let message = "all 2 events were refused; the first: [0].event: expected a string";
    assert_eq!(out["message"], message);
    assert_eq!(
        out["error"],
        json!({ "name": "ValidationError", "message": message, "data": [
            { "param": "[0].event", "msg": "expected a string" },
            { "param": "[1].payload", "msg": "required" },
        ] })
    );
    assert_eq!((&out["count"], &out["error_count"]), (&json!(0), &json!(2)));
    assert_eq!(out["records"][1], item_error(1, &slots[1].clone().unwrap_err()));
}
