#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::adapters::adapter::AttemptResult;
use crate::config::mapping::Transform;
use serde_json::json;

fn delivery(mapping: Value, payload: Value) -> Delivery {
    Delivery {
        delivery_id: "dlv_1".into(),
        attempt: 1,
        event_id: "e1".into(),
        event: "user.signup".into(),
        resource: "global".into(),
        resource_id: Some("acct_9".into()),
        workspace: "ws".into(),
        created_at_ms: 0,
        rule_id: "r1".into(),
        metadata: serde_json::from_value(json!({"action": "add_to_list"})).unwrap(),
        payload: payload.into(),
        mapping: Arc::new(serde_json::from_value(mapping).unwrap()),
        warnings: Warnings::default(),
    }
}

/// One transform chain on one value.
fn run(transforms: Value, v: Value) -> Result<Value, &'static str> {
    let ts: Vec<Transform> = serde_json::from_value(transforms).unwrap();
    ts.iter().try_fold(v, |v, t| transform::apply(t, v))
}

#[test]
fn to_string_renders_scalars_and_refuses_objects() {
    assert_eq!(run(json!(["to_string"]), json!(42)), Ok(json!("42")));
    assert_eq!(run(json!(["to_string"]), json!(2.5)), Ok(json!("2.5")));
    assert_eq!(run(json!(["to_string"]), json!(true)), Ok(json!("true")));
    assert_eq!(run(json!(["to_string"]), json!("x")), Ok(json!("x")));
    assert!(run(json!(["to_string"]), json!({"a": 1})).is_err());
    assert!(run(json!(["to_string"]), json!([1])).is_err());
}

#[test]
fn to_number_reads_numbers_written_as_text() {
    assert_eq!(run(json!(["to_number"]), json!("42")), Ok(json!(42)));
    assert_eq!(run(json!(["to_number"]), json!(" -7 ")), Ok(json!(-7)));
    assert_eq!(run(json!(["to_number"]), json!("3.5")), Ok(json!(3.5)));
    assert_eq!(run(json!(["to_number"]), json!("1e3")), Ok(json!(1000.0)));
    assert_eq!(run(json!(["to_number"]), json!(12)), Ok(json!(12)));
    for bad in [json!("12abc"), json!(""), json!("NaN"), json!("inf"), json!(true), json!([1])] {
        assert!(run(json!(["to_number"]), bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn to_boolean_reads_yes_no_one_zero() {
    for (input, want) in [
        (json!("yes"), true),
        (json!("No"), false),
        (json!("1"), true),
        (json!("0"), false),
        (json!(" TRUE "), true),
        (json!("off"), false),
        (json!("y"), true),
        (json!(1), true),
        (json!(0), false),
        (json!(false), false),
    ] {
        assert_eq!(run(json!(["to_boolean"]), input.clone()), Ok(json!(want)), "{input}");
    }
    for bad in [json!("maybe"), json!(2), json!(""), json!({})] {
        assert!(run(json!(["to_boolean"]), bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn to_date_reads_several_formats() {
    for (input, want) in [
        (json!("2024-02-29"), "2024-02-29"),
        (json!("2024/03/01"), "2024-03-01"),
        (json!("20240301"), "2024-03-01"),
        (json!("2024-03-01T23:30:00+05:00"), "2024-03-01"),
        (json!("2024-03-01 08:00"), "2024-03-01"),
        (json!(" 2024-03-01T08:00:00.123Z "), "2024-03-01"),
        (json!(1_700_000_000), "2023-11-14"),
        (json!(1_700_000_000_000_i64), "2023-11-14"),
        (json!("1700000000"), "2023-11-14"),
        (json!(0), "1970-01-01"),
        (json!(-86_400), "1969-12-31"),
    ] {
        assert_eq!(run(json!(["to_date"]), input.clone()), Ok(json!(want)), "{input}");
    }
    for bad in [
        json!("2023-02-29"),
        json!("2024-13-01"),
        json!("2024-01-32"),
        json!("01/02/2024"),
        json!("yesterday"),
        json!("2024-03-01T25:00:00Z"),
        json!("2024-03-01Tnoon"),
        json!("２０２４-03-01"),
        json!(true),
    ] {
        assert!(run(json!(["to_date"]), bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn to_datetime_is_rfc3339_and_keeps_the_offset() {
    for (input, want) in [
        (json!("2024-03-01"), "2024-03-01T00:00:00Z"),
        (json!("2024-03-01T08:05:09+0530"), "2024-03-01T08:05:09+05:30"),
        (json!("2024-03-01t08:05:09.5-02:00"), "2024-03-01T08:05:09.5-02:00"),
        (json!("2024-03-01 08:05"), "2024-03-01T08:05:00Z"),
        (json!(1_700_000_000), "2023-11-14T22:13:20Z"),
        (json!(1_700_000_000_123_i64), "2023-11-14T22:13:20Z"),
    ] {
        assert_eq!(run(json!(["to_datetime"]), input.clone()), Ok(json!(want)), "{input}");
    }
    assert!(run(json!(["to_datetime"]), json!("2024-03-01T08:05:09+25:00")).is_err());
}

#[test]
fn string_transforms_handle_unicode_and_scalars() {
    assert_eq!(run(json!(["trim"]), json!("  Ada \n")), Ok(json!("Ada")));
    assert_eq!(run(json!(["upper"]), json!("straße")), Ok(json!("STRASSE")));
    assert_eq!(run(json!(["lower"]), json!("ÀÉÎ")), Ok(json!("àéî")));
    assert_eq!(run(json!(["upper"]), json!(12)), Ok(json!("12")));
    assert_eq!(run(json!([{"substring": [0, 3]}]), json!("héllo wörld")), Ok(json!("hél")));
    assert_eq!(run(json!([{"substring": [6]}]), json!("héllo wörld")), Ok(json!("wörld")));
    assert_eq!(run(json!([{"substring": [1, 2]}]), json!("🎉ab🎉")), Ok(json!("ab")));
    assert_eq!(run(json!([{"substring": [50, 2]}]), json!("short")), Ok(json!("")));
    assert!(run(json!([{"substring": [-1]}]), json!("x")).is_err());
    assert!(run(json!(["trim"]), json!({"a": 1})).is_err());
    assert_eq!(
        run(json!(["trim", "lower", {"substring": [0, 4]}]), json!("  PRO PLAN ")),
        Ok(json!("pro "))
    );
}

#[test]
fn maps_standard_and_custom_fields_from_paths_and_literals() {
    let d = delivery(
        json!({
            "first_name": {"from": "payload.user.given_name", "transforms": ["trim"]},
            "email": {"from": "payload.user.emails.1"},
            "plan": {"from": "payload.plan", "transforms": ["upper"], "default": "FREE"},
            "company": {"value": "Acme"},
            "source": {"from": "event"},
            "account": {"from": "resource_id"},
            "seats": {"from": "payload.seats", "transforms": ["to_number"]},
            "nickname": {"from": "payload.user.given_name", "transforms": ["trim", {"substring": [0, 2]}]}
        }),
        json!({"email": "old@x.co", "user": {"given_name": " Ada ", "emails": ["a@x.co", "b@x.co"]}, "seats": "5"}),
    );
    let c = Contact::for_delivery(&d).unwrap();
    assert_eq!(c.first_name.as_deref(), Some("Ada"));
    assert_eq!(c.email.as_deref(), Some("b@x.co"));
    assert_eq!(
        Value::Object(c.custom),
        json!({"account": "acct_9", "company": "Acme", "nickname": "Ad", "plan": "FREE", "seats": 5, "source": "user.signup"})
    );
}

#[test]
fn defaults_fill_missing_null_and_empty_values_only() {
    let m = json!({"plan": {"from": "payload.plan", "transforms": ["trim"], "default": "FREE"}});
    for (payload, want) in [
        (json!({}), Some(json!("FREE"))),
        (json!({"plan": null}), Some(json!("FREE"))),
        (json!({"plan": "   "}), Some(json!("FREE"))),
        (json!({"plan": " pro "}), Some(json!("pro"))),
    ] {
        let c = Contact::for_delivery(&delivery(m.clone(), payload.clone())).unwrap();
        assert_eq!(c.custom.get("plan").cloned(), want, "{payload}");
    }
    let no_default = delivery(json!({"plan": {"from": "payload.plan"}}), json!({}));
    assert!(Contact::for_delivery(&no_default).unwrap().custom.is_empty());
}

#[test]
fn skip_field_drops_the_field_silently() {
    let d = delivery(
        json!({"seats": {"from": "payload.seats", "transforms": ["to_number"]}}),
        json!({"seats": "many", "first_name": "Ada"}),
    );
    let c = Contact::for_delivery(&d).unwrap();
    assert!(c.custom.is_empty());
    assert_eq!(c.first_name.as_deref(), Some("Ada"));
    assert_eq!(d.warnings.joined(), None);
}

#[test]
fn warn_action_delivers_without_the_field_and_records_why() {
    let d = delivery(
        json!({"seats": {"from": "payload.seats", "transforms": ["to_number"], "on_error": "warn_action"}}),
        json!({"seats": "many"}),
    );
    let c = Contact::for_delivery(&d).unwrap();
    assert!(c.custom.is_empty());
    assert_eq!(
        d.warnings.joined().unwrap(),
        "mapping field `seats`: `payload.seats` is \"many\"; `to_number` expected a number such as 42 or 3.5; delivered without it"
    );
}

#[test]
fn fail_action_is_a_permanent_mapping_error_naming_field_value_and_expectation() {
    let d = delivery(
        json!({"signup_date": {"from": "payload.created", "transforms": ["to_date"], "on_error": "fail_action"}}),
        json!({"created": "last tuesday"}),
    );
    let err = Contact::for_delivery(&d).unwrap_err();
    assert_eq!(err.outcome(), Outcome::MappingError);
    let AttemptResult::Permanent { message, .. } = err.result else { panic!("{err:?}") };
    assert_eq!(
        message,
        "mapping field `signup_date`: `payload.created` is \"last tuesday\"; `to_date` expected a date (YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, RFC 3339 or Unix time)"
    );
}

#[test]
fn the_rule_overrides_the_connection_per_field() {
    let conn: Mapping = serde_json::from_value(json!({
        "plan": {"value": "conn"}, "company": {"value": "Acme"}
    }))
    .unwrap();
    let rule: Mapping = serde_json::from_value(json!({"plan": {"value": "rule"}})).unwrap();
    let m = effective(Some(&conn), Some(&rule));
    assert_eq!(m["plan"].value, Some(json!("rule")));
    assert_eq!(m["company"].value, Some(json!("Acme")));
    assert!(effective(None, None).is_empty());
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "é".repeat(200);
    let d = delivery(
        json!({"n": {"from": "payload.n", "transforms": ["to_number"], "on_error": "fail_action"}}),
        json!({"n": long}),
    );
    let AttemptResult::Permanent { message, .. } = Contact::for_delivery(&d).unwrap_err().result
    else {
        panic!()
    };
    assert!(message.contains('…') && message.chars().count() < 200, "{message}");
}
