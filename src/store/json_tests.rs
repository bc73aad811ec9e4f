//! The hand-written JSON is byte for byte serde_json's, for any record.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::model::Outcome;
use crate::store::Status;
use proptest::prelude::*;

/// Any text, with the characters that need escaping made common.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_./-]{0,40}", any::<String>(), "[\"\\\\\u{0}-\u{1f}\u{7f}é😀a]{0,12}",]
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop::sample::select(vec![
        Outcome::Delivered,
        Outcome::RejectedClientError,
        Outcome::RejectedServerError,
        Outcome::RateLimited,
        Outcome::AuthFailed,
        Outcome::Timeout,
        Outcome::NetworkError,
        Outcome::MappingError,
        Outcome::InternalError,
    ])
}

prop_compose! {
    fn event()(
        id in text(), workspace in text(), event in text(), resource in text(),
        resource_id in proptest::option::of(text()), created_by in text(), created_at in any::<u64>(),
    ) -> EventRecord {
        EventRecord { id, workspace, event, resource, resource_id, created_by, created_at }
    }
}

prop_compose! {
    fn counts()(
        attempts in any::<u32>(), budget_start in any::<u32>(), deferrals in 0..3u32,
        next_attempt_at in proptest::option::of(any::<u64>()),
        last_outcome in proptest::option::of(outcome()),
        last_http_status in proptest::option::of(any::<u16>()),
        last_error in proptest::option::of(text()),
        started_at in proptest::option::of(any::<u64>()),
        completed_at in proptest::option::of(any::<u64>()),
    ) -> ((u32, u32, u32), Option<u64>, Option<Outcome>, Option<u16>, Option<String>, Option<u64>, Option<u64>) {
        ((attempts, budget_start, deferrals), next_attempt_at, last_outcome, last_http_status, last_error, started_at, completed_at)
    }
}

prop_compose! {
    fn rule_event()(
        rule_id in text(), connection in text(), action in text(), conn_key in text(),
        status in status(), delivery_id in text(), created_at in any::<u64>(), c in counts(),
    ) -> RuleEventRecord {
        RuleEventRecord {
            rule_id, connection, action, conn_key, status,
            attempts: c.0.0, budget_start: c.0.1, deferrals: c.0.2, next_attempt_at: c.1,
            last_outcome: c.2, last_http_status: c.3, last_error: c.4, delivery_id, created_at,
            started_at: c.5, completed_at: c.6,
        }
    }
}

proptest! {
    #[test]
    fn event_records_match_serde(rec in event()) {
        let mut out = Vec::new();
        rec.write_json(&mut out);
        prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&rec).unwrap());
    }

    #[test]
    fn rule_event_records_match_serde(rec in rule_event()) {
        let mut out = Vec::new();
        rec.write_json(&mut out);
        prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&rec).unwrap());
    }

    #[test]
    fn strings_and_numbers_match_serde(s in text(), n in any::<u64>()) {
        let mut out = Vec::new();
        push_str(&mut out, &s);
        push_u64(&mut out, n);
        let expected = format!("{}{}", serde_json::to_string(&s).unwrap(), n);
        prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}

#[test]
fn edge_numbers_and_escapes() {
    for n in [0, 9, 10, u64::MAX] {
        let mut out = Vec::new();
        push_u64(&mut out, n);
        assert_eq!(out, n.to_string().into_bytes());
    }
    let mut out = Vec::new();
    push_str(&mut out, "a\"b\\c\nd\u{1}\u{7f}");
    assert_eq!(out, serde_json::to_vec("a\"b\\c\nd\u{1}\u{7f}").unwrap());
}
