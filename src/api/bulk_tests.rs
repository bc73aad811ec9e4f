//! The hand-written bulk answer is the JSON the serde types gave.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::store::EventRecord;

fn stored(id: &str, resource_id: Option<&str>) -> store::Ingested {
    let event = EventRecord {
        id: id.into(),
        workspace: "ws".into(),
        event: "user.\"signup\"".into(),
        resource: "user".into(),
        resource_id: resource_id.map(str::to_string),
        created_by: "publishable_key".into(),
        created_at: 1_700_000_000_123,
    };
    store::Ingested { event, duplicate: false }
}

#[test]
fn bulk_answer_is_the_serde_shape() {
    let stored = vec![stored("a", Some("u-1")), stored("b", None)];
    let errs = vec![FieldError { param: "event".into(), msg: "expected a string".into() }];
    let slots = vec![Ok(0), Err(errs.clone()), Ok(1)];
    let out = bulk_answer(&slots, &stored, 1);
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
