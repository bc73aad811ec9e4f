//! What each automation action does to the contact, its enrolments and
//! the outbox.

use super::compiled::{AutomationRt, kind_name};
use super::contact::{self, Changes};
use super::engine::{EventFact, Fired, Run, outcome};
use crate::adapters::template;
use crate::api::contacts::standard_field;
use crate::api::ingest::{EventInput, first_delay_ms, new_event};
use crate::config::automation::{AutomationAction, SetField, TriggerKind};
use crate::store::{
    ActionOutcome, ContactRecord, EnrollmentRecord, EnrollmentStatus, EventRecord, NewEvent,
    NewRuleEvent, StoreError, event_key,
};
use serde_json::{Map, Value, json};

/// Actions that send email: skipped for suppressed (unsubscribed, bounced) contacts.
pub const EMAIL_ACTIONS: [&str; 2] = ["send_email", "send_email_template"];

/// Whether a suppressed contact stops a delivery with this action.
pub fn suppressible(action: &str) -> bool {
    EMAIL_ACTIONS.contains(&action)
}

/// Why a delivery with `action` must not reach `c`, if it must not: checked
/// when an automation or sequence creates it and again at each attempt.
pub fn suppression(c: &ContactRecord, action: &str) -> Option<String> {
    (c.unsubscribed_at.is_some() && suppressible(action)).then(|| {
        format!("contact is suppressed ({})", c.suppression.as_deref().unwrap_or("unsubscribed"))
    })
}

impl Run<'_, '_> {
    pub(super) fn act(
        &mut self,
        a: &AutomationRt,
        index: usize,
        action: &AutomationAction,
        f: &Fired,
    ) -> Result<ActionOutcome, StoreError> {
        let depth = f.depth + 1;
        match action {
            AutomationAction::AddTag(tag) => Ok(self.tag(tag, true, depth)),
            AutomationAction::RemoveTag(tag) => Ok(self.tag(tag, false, depth)),
            AutomationAction::SetField(s) => Ok(self.set_field(s, depth)),
            AutomationAction::Enroll(seq) => self.enroll(seq, depth),
            AutomationAction::Unenroll(seq) => self.unenroll(seq, "unenroll action"),
            AutomationAction::Notify(n) => {
                let rule_id = a.delivery_id(index);
                let event = f.event.as_ref().map_or_else(
                    || format!("contact.{}", kind_name(f.firing.kind)),
                    |e| e.name.clone(),
                );
                let props = f.event.as_ref().map(|e| &e.properties);
                let created_by = format!("automation:{}", a.automation.id);
                self.deliver(
                    &event,
                    props,
                    &rule_id,
                    &n.connection,
                    &n.metadata.action,
                    &created_by,
                )
            }
            AutomationAction::Emit(e) => self.emit(a, &e.event, &e.payload, f),
        }
    }

    fn tag(&mut self, tag: &str, add: bool, depth: u32) -> ActionOutcome {
        let name = if add { "add_tag" } else { "remove_tag" };
        let Some(c) = &mut self.contact else { return skipped(name, tag, "no contact") };
        if let Some(why) = contact::tags_full(c, tag).filter(|_| add) {
            return skipped(name, tag, &why);
        }
        let mut changes = Changes::new();
        let changed = if add {
            let before = contact::json_len(c);
            let added = contact::add_tag(c, tag, &mut changes);
            // The record cap holds for automations too, not only for the API
            // request that set them off.
            if let Some(why) = contact::record_over(contact::json_len(c), Some(before)) {
                contact::remove_tag(c, tag, &mut Changes::new());
                return skipped(name, tag, &why);
            }
            added
        } else {
            contact::remove_tag(c, tag, &mut changes)
        };
        self.fire_changes(changes, depth);
        outcome(name, Some(tag), if changed { "done" } else { "no_change" })
    }

    fn set_field(&mut self, s: &SetField, depth: u32) -> ActionOutcome {
        let field = s.field.as_str();
        let Some(c) = &mut self.contact else { return skipped("set_field", field, "no contact") };
        if matches!(field, "email" | "external_id") {
            return failed("set_field", field, "identity fields are set through the contacts API");
        }
        let value = render(&s.value, &json!({"contact": contact::view(c)}));
        let mut changes = Changes::new();
        let refused = if contact::STANDARD_FIELDS.contains(&field) {
            standard_value(field, &value)
                .and_then(|v| contact::set_standard(c, field, &v, &mut changes))
                .err()
        } else {
            // A name that is not a standard field is a custom field, prefixed or not.
            let key = field.strip_prefix("custom_fields.").unwrap_or(field);
            if let Some(why) = contact::custom_refused(key, &value) {
                return failed("set_field", field, &why);
            }
            if let Some(why) = contact::custom_full(c, key, &value) {
                return skipped("set_field", field, &why);
            }
            set_custom_capped(c, key, value, &mut changes).err()
        };
        if let Some(why) = refused {
            return failed("set_field", field, &why);
        }
        let changed = !changes.is_empty();
        self.fire_changes(changes, depth);
        outcome("set_field", Some(field), if changed { "done" } else { "no_change" })
    }

    pub(super) fn enroll(&mut self, seq: &str, depth: u32) -> Result<ActionOutcome, StoreError> {
        let Some(id) = self.contact_key() else { return Ok(skipped("enroll", seq, "no contact")) };
        if self.ws.automations.sequence(seq).is_none() {
            return Ok(failed("enroll", seq, "no such sequence in the config"));
        }
        let old = self.t.enrollment(id, seq)?;
        if old.as_ref().is_some_and(super::sequences::running) {
            let mut o = outcome("enroll", Some(seq), "no_change");
            o.detail = Some("already enrolled".into());
            return Ok(o);
        }
        let e = EnrollmentRecord {
            sequence: seq.to_string(),
            status: EnrollmentStatus::Active,
            step: 0,
            due: Some(self.now),
            enrolled_at: self.now,
            updated_at: self.now,
            reason: None,
        };
        self.t.put_enrollment(id, &e, old.and_then(|o| o.due))?;
        self.effects.enrolled += 1;
        self.fire(Fired::new(TriggerKind::SequenceEnrolled, Some(seq.to_string()), depth));
        Ok(outcome("enroll", Some(seq), "done"))
    }

    pub(super) fn unenroll(&mut self, seq: &str, why: &str) -> Result<ActionOutcome, StoreError> {
        let Some(id) = self.contact_key() else {
            return Ok(skipped("unenroll", seq, "no contact"));
        };
        let Some(old) = self.t.enrollment(id, seq)? else {
            return Ok(outcome("unenroll", Some(seq), "no_change"));
        };
        if old.status != EnrollmentStatus::Active {
            return Ok(outcome("unenroll", Some(seq), "no_change"));
        }
        let e = EnrollmentRecord {
            status: EnrollmentStatus::Unenrolled,
            due: None,
            updated_at: self.now,
            reason: Some(why.into()),
            ..old.clone()
        };
        self.t.put_enrollment(id, &e, old.due)?;
        Ok(outcome("unenroll", Some(seq), "done"))
    }

    /// Creates an event carrying the contact (and the trigger's event
    /// properties) with one delivery through `connection`.
    pub(super) fn deliver(
        &mut self,
        event: &str,
        properties: Option<&Value>,
        rule_id: &str,
        connection: &str,
        action: &str,
        created_by: &str,
    ) -> Result<ActionOutcome, StoreError> {
        let Some(c) = &self.contact else { return Ok(skipped("notify", connection, "no contact")) };
        if let Some(why) = suppression(c, action) {
            return Ok(skipped("notify", connection, &why));
        }
        let Some(conn) = self.ws.connections.get(connection) else {
            return Ok(failed("notify", connection, "no such connection in the config"));
        };
        let mut payload = contact::payload(c);
        if let Some(p) = properties {
            payload.insert("properties".into(), p.clone());
        }
        let rule = NewRuleEvent {
            rule_id: rule_id.to_string(),
            connection: conn.name.clone(),
            action: action.to_string(),
            conn_key: conn.conn_key.clone(),
            delivery_id: uuid::Uuid::now_v7().to_string(),
            due: self.now.saturating_add(first_delay_ms(&conn.retry)),
        };
        let new = self.contact_event(&c.id, event, &payload, rule, created_by);
        let stored = self.t.insert_event(new, self.now)?;
        self.effects.deliveries += 1;
        let mut o = outcome("notify", Some(connection), "done");
        o.event_id = Some(stored.event.id);
        Ok(o)
    }

    /// An event about contact `id` with one delivery.
    fn contact_event(
        &self,
        id: &str,
        event: &str,
        payload: &Map<String, Value>,
        rule: NewRuleEvent,
        created_by: &str,
    ) -> NewEvent {
        let record = EventRecord {
            id: uuid::Uuid::now_v7().to_string(),
            workspace: self.ws.id.clone(),
            event: event.to_string(),
            resource: "contact".into(),
            resource_id: Some(id.to_string()),
            created_by: created_by.to_string(),
            created_at: self.now,
        };
        NewEvent {
            record,
            payload: serde_json::to_vec(payload).unwrap_or_default(),
            idempotency_key: None,
            rules: vec![rule],
            inbox: false,
        }
    }

    fn emit(
        &mut self,
        a: &AutomationRt,
        event: &str,
        payload: &std::collections::BTreeMap<String, Value>,
        f: &Fired,
    ) -> Result<ActionOutcome, StoreError> {
        let contact_view = self.contact.as_ref().map_or(Value::Null, contact::view);
        let props = f.event.as_ref().map_or(Value::Null, |e| e.properties.clone());
        let ctx = json!({"contact": contact_view, "event": {"properties": props}});
        let mut body: Map<String, Value> =
            payload.iter().map(|(k, v)| (k.clone(), render(v, &ctx))).collect();
        if body.is_empty() {
            body = self.contact.as_ref().map(contact::payload).unwrap_or_default();
        }
        if body.is_empty() {
            return Ok(skipped("emit", event, "no payload and no contact"));
        }
        let raw = serde_json::value::to_raw_value(&body)
            .map_err(|e| StoreError::Invalid(format!("emit payload: {e}")))?;
        let input = EventInput {
            event: event.to_string(),
            resource: "contact".into(),
            resource_id: self.contact.as_ref().map(|c| c.id.clone()),
            payload: &raw,
        };
        let created_by = format!("automation:{}", a.automation.id);
        let (mut new, condition_errors) = new_event(self.ws, input, &created_by, self.now, None);
        new.inbox = false;
        let deliveries = new.rules.len();
        let stored = self.t.insert_event(new, self.now)?;
        // Without a key it is a new event, never a replay.
        condition_errors.iter().for_each(crate::gateway::rules::ConditionError::report);
        self.effects.deliveries += deliveries;
        // Emitted events start `event` automations directly, one level deeper.
        let mut next = Fired::new(TriggerKind::Event, Some(event.to_string()), f.depth + 1);
        next.event = Some(EventFact {
            name: event.to_string(),
            properties: Value::Object(body),
            id: Some(stored.event.id.clone()),
        });
        self.fire(next);
        let mut o = outcome("emit", Some(event), "done");
        o.detail = Some(format!("{deliveries} rule(s) matched"));
        o.event_id = Some(stored.event.id);
        Ok(o)
    }

    pub(super) fn contact_key(&self) -> Option<u128> {
        self.contact.as_ref().and_then(|c| event_key(&c.id))
    }
}

/// A rendered value for a standard field, checked as the contacts API
/// checks it: blank clears the field, a number or boolean is its text. The
/// refusal says the value's length, never the value (it is contact data,
/// and lands in the activity log).
fn standard_value(field: &str, value: &Value) -> Result<Value, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        // Null clears; a list or map is refused by `set_standard`.
        other => return Ok(other.clone()),
    };
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    match standard_field(field, &Value::String(text.clone())) {
        Ok(v) => Ok(Value::String(v)),
        Err(msg) => {
            let expected = msg.split("; found").next().unwrap_or_default();
            let n = text.chars().count();
            Err(format!("the rendered value ({n} characters) was refused: {expected}"))
        }
    }
}

/// Sets a custom field within the record cap; a refused value leaves the
/// contact as it was.
fn set_custom_capped(
    c: &mut ContactRecord,
    key: &str,
    value: Value,
    changes: &mut Changes,
) -> Result<(), String> {
    let (old, before) = (c.custom_fields.get(key).cloned(), contact::json_len(c));
    let mut tried = Changes::new();
    contact::set_custom(c, key, value, &mut tried);
    if let Some(why) = contact::record_over(contact::json_len(c), Some(before)) {
        match old {
            Some(v) => c.custom_fields.insert(key.to_string(), v),
            None => c.custom_fields.remove(key),
        };
        return Err(why);
    }
    changes.append(&mut tried);
    Ok(())
}

/// Expands `{{contact.x}}` templates in strings (recursively in arrays and objects).
fn render(v: &Value, ctx: &Value) -> Value {
    match v {
        Value::String(s) if s.contains("{{") => Value::String(template::render(s, ctx)),
        Value::Array(items) => Value::Array(items.iter().map(|i| render(i, ctx)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), render(v, ctx))).collect())
        }
        other => other.clone(),
    }
}

fn skipped(action: &str, target: &str, why: &str) -> ActionOutcome {
    let mut o = outcome(action, Some(target), "skipped");
    o.detail = Some(why.into());
    o
}

fn failed(action: &str, target: &str, why: &str) -> ActionOutcome {
    let mut o = outcome(action, Some(target), "failed");
    o.detail = Some(why.into());
    o
}
