//! The operations of the document: per route, its credentials, parameters,
//! bodies and every status it can answer. `tests/openapi.rs` checks this
//! list against the router.

use super::schemas as s;
use super::{Auth, Gen, Op};
use serde_json::{Value, json};

/// Statuses any authenticated route can answer: 400 (both credential
/// headers sent), 401, 403, 429.
const AUTHED: &[u16] = &[400, 401, 403, 429];
const INGEST: &[u16] = &[400, 401, 403, 408, 409, 411, 413, 415, 429, 501, 503];
const BY_ID: &[u16] = &[400, 401, 403, 404, 429, 503];
const RETRY: &[u16] = &[400, 401, 403, 404, 409, 425, 429, 503];
const RESOURCE: &[u16] = &[400, 401, 403, 404, 429];
const LIST: &[u16] = &[400, 401, 403, 429, 503];
const MANAGED: &[u16] = &[405];

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn event_id() -> Value {
    path_param(
        "id",
        "Event id (a UUID); ids that are not UUIDs or belong to another workspace answer 404",
    )
}

fn rule_id() -> Value {
    path_param("rule_id", "Rule id")
}

fn idempotency_key() -> Value {
    json!({ "name": "Idempotency-Key", "in": "header", "required": false,
        "description": "A repeat of the same request with the same key within 24 h returns the first result (with `Idempotent-Replayed: true`) instead of a new event. Keys are per credential (the publishable key, each machine key): another credential's key is never replayed. A key sent again with a different body (compared byte for byte) is refused with 409. A bulk request's key covers the whole request and never meets a single event's key.",
        "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY } })
}

/// What the server takes as an `Idempotency-Key`: visible ASCII, with
/// spaces and tabs inside (HTTP trims them at the ends).
const IDEMPOTENCY_KEY: &str = r"^[\x21-\x7E]([\t\x20-\x7E]*[\x21-\x7E])?$";

/// `Idempotent-Replayed`, on the answers a repeated key replays.
fn replayed() -> Value {
    json!({ "Idempotent-Replayed": { "description": "`true` when this answers a replayed `Idempotency-Key`", "schema": { "type": "string", "const": "true" } } })
}

fn preflight(path: &'static str, id: &'static str) -> Op {
    Op::new("options", path, id, "CORS preflight (browsers sending events with a publishable key)")
        .auth(Auth::Open)
        .while_starting()
        .raw(200, json!({ "description": "CORS preflight answer" }))
        .raw(204, json!({ "description": "No CORS request headers were sent" }))
}

fn created_links() -> Vec<(&'static str, Value)> {
    let id = json!({ "id": "$response.body#/event/id" });
    vec![
        ("getEvent", id.clone()),
        ("getEventPayload", id.clone()),
        ("cancelEvent", id),
        ("getWorkspace", json!({ "id": "$response.body#/event/workspace" })),
    ]
}

fn rule_event_links() -> Vec<(&'static str, Value)> {
    let ids = json!({ "id": "$response.body#/event/id", "rule_id": "$response.body#/event/rule_events/0/rule_id" });
    vec![("retryRuleEvent", ids.clone()), ("cancelRuleEvent", ids.clone()), ("listAttempts", ids)]
}

pub(super) fn ingest_ops(g: &mut Gen) -> Vec<Op> {
    let created = json!({ "description": "Accepted and stored; deliveries are queued",
        "headers": replayed(),
        "content": { "application/json": { "schema": g.out::<s::EventCreated>() } } });
    let bulk = g.out::<s::BulkResult>();
    let bulk_ok = |description: &str| {
        json!({ "description": description, "headers": replayed(),
        "content": { "application/json": { "schema": bulk } } })
    };
    let bulk_400 = json!({ "anyOf": [g.out::<s::BulkRefused>(), g.out::<s::ErrorBody>()] });
    vec![
        Op::new("post", "/api/v1/events", "createEvent", "Send one event")
            .auth(Auth::Ingest)
            .param(idempotency_key())
            .body(g.input::<s::NewEventBody>())
            .raw(201, created)
            .links(201, &created_links())
            .errors(INGEST),
        preflight("/api/v1/events", "preflightEvents"),
        Op::new("post", "/api/v1/events/bulk", "createEvents", "Send 1 to 100 events at once")
            .auth(Auth::Ingest)
            .param(idempotency_key())
            .body(g.input::<s::BulkBody>())
            .raw(201, bulk_ok("Every event accepted"))
            .raw(207, bulk_ok("Some accepted, some refused (see each record)"))
            .ok(
                400,
                "The body is invalid, or every event was refused (the error, with the bulk result beside it)",
                bulk_400,
            )
            .errors(&[401, 403, 408, 409, 411, 413, 415, 429, 501, 503]),
        preflight("/api/v1/events/bulk", "preflightEventsBulk"),
    ]
}

pub(super) fn event_ops(g: &mut Gen) -> Vec<Op> {
    let statuses = json!({ "type": "string", "enum": ["pending", "processing", "retrying", "completed", "failed", "canceled"] });
    vec![
        Op::new("get", "/api/v1/events", "listEvents", "List events, newest first")
            .param(query(
                "limit",
                "Page size, 1 to 200 (default 50)",
                json!({ "type": "integer", "minimum": 1, "maximum": 200 }),
            ))
            .param(query(
                "cursor",
                "`next_cursor` of the previous page (an event id)",
                json!({ "type": "string", "format": "uuid" }),
            ))
            .param(query("event", "Only this event type", json!({ "type": "string" })))
            .param(query("status", "Only events with this status", statuses))
            .param(query("resource", "Only this resource", json!({ "type": "string" })))
            .param(query("resource_id", "Only this resource id", json!({ "type": "string" })))
            .ok(200, "A page of events", g.out::<s::EventPage>())
            .errors(LIST),
        Op::new("get", "/api/v1/events/{id}", "getEvent", "An event with its deliveries")
            .param(event_id())
            .ok(200, "The event", g.out::<s::EventFound>())
            .links(200, &rule_event_links())
            .errors(BY_ID),
        Op::new("get", "/api/v1/events/{id}/payload", "getEventPayload", "The payload of an event")
            .param(event_id())
            .ok(200, "The payload", g.out::<s::PayloadBody>())
            .errors(BY_ID),
        Op::new(
            "post",
            "/api/v1/events/{id}/cancel",
            "cancelEvent",
            "Cancel every unfinished delivery of an event",
        )
        .param(event_id())
        .ok(200, "Canceled", g.out::<s::Canceled>())
        .errors(BY_ID),
        Op::new(
            "post",
            "/api/v1/events/{id}/rules/{rule_id}/retry",
            "retryRuleEvent",
            "Deliver again now (also after a final failure)",
        )
        .param(event_id())
        .param(rule_id())
        .ok(202, "Scheduled", g.out::<s::RetryScheduled>())
        .errors(RETRY),
        Op::new(
            "post",
            "/api/v1/events/{id}/rules/{rule_id}/cancel",
            "cancelRuleEvent",
            "Cancel one rule's delivery",
        )
        .param(event_id())
        .param(rule_id())
        .ok(200, "Canceled", g.out::<s::Canceled>())
        .errors(BY_ID),
        Op::new(
            "get",
            "/api/v1/events/{id}/rules/{rule_id}/attempts",
            "listAttempts",
            "Every attempt of one rule's delivery",
        )
        .param(event_id())
        .param(rule_id())
        .ok(200, "The attempts, oldest first", g.out::<s::List<s::Attempt>>())
        .errors(BY_ID),
    ]
}

/// GET plus the writes that answer 405 (the resource lives in `meshes.yaml`).
fn managed(path: &'static str, id: &'static str, get: Op) -> Vec<Op> {
    let params = get.params.clone();
    let mut ops = vec![get];
    for (method, verb) in
        [("post", "create"), ("put", "replace"), ("patch", "update"), ("delete", "delete")]
    {
        let mut op =
            Op::new(method, path, &format!("{verb}{id}"), "Not supported: managed in meshes.yaml")
                .auth(Auth::Open)
                .errors(MANAGED);
        op.params.clone_from(&params);
        ops.push(op);
    }
    ops
}

pub(super) fn resource_ops(g: &mut Gen) -> Vec<Op> {
    let mut ops = vec![
        Op::new("get", "/api/v1/integrations", "listIntegrations", "The integration catalog")
            .ok(
                200,
                "Every integration, with its settings and actions",
                g.out::<s::List<s::Integration>>(),
            )
            .errors(AUTHED),
    ];
    let list =
        Op::new("get", "/api/v1/connections", "listConnections", "Connections of the workspace")
            .ok(200, "The connections, credentials redacted", g.out::<s::List<s::Connection>>())
            .errors(AUTHED);
    ops.extend(managed("/api/v1/connections", "Connections", list));
    let one = Op::new("get", "/api/v1/connections/{id}", "getConnection", "One connection")
        .param(path_param("id", "Connection name"))
        .ok(200, "The connection, credentials redacted", g.out::<s::ConnectionFound>())
        .errors(RESOURCE);
    ops.extend(managed("/api/v1/connections/{id}", "Connection", one));
    ops.push(
        Op::new(
            "get",
            "/api/v1/connections/{id}/actions",
            "listConnectionActions",
            "Live action data: the account's lists, tags, templates, … (all pages, cached 5 min)",
        )
        .param(path_param("id", "Connection name"))
        .ok(200, "The options for rules' `metadata.id`", g.out::<s::ActionsFound>())
        .errors(&[400, 401, 403, 404, 429, 501, 502]),
    );
    let list = Op::new("get", "/api/v1/rules", "listRules", "Rules of the workspace")
        .ok(200, "The rules", g.out::<s::List<crate::config::model::Rule>>())
        .errors(AUTHED);
    ops.extend(managed("/api/v1/rules", "Rules", list));
    let one = Op::new("get", "/api/v1/rules/{id}", "getRule", "One rule")
        .param(path_param("id", "Rule id"))
        .ok(200, "The rule", g.out::<s::RuleFound>())
        .errors(RESOURCE);
    ops.extend(managed("/api/v1/rules/{id}", "Rule", one));
    ops.push(
        Op::new("get", "/api/v1/workspaces/{id}", "getWorkspace", "The caller's workspace")
            .param(path_param("id", "Workspace id (only the key's own)"))
            .ok(200, "The workspace", g.out::<s::WorkspaceFound>())
            .errors(RESOURCE),
    );
    ops
}

pub(super) fn ops_routes(g: &mut Gen) -> Vec<Op> {
    let ready = g.out::<s::Ready>();
    // While the gateway starts, the ErrorBody of every other route.
    let not_ready = json!({ "description": "The store does not answer, or the gateway is starting (then with `Retry-After`)",
        "headers": { "Retry-After": { "description": "Seconds to wait before retrying (while starting)", "schema": { "type": "integer", "minimum": 1 } } },
        "content": { "application/json": { "schema": { "anyOf": [ready.clone(), g.out::<s::ErrorBody>()] } } } });
    let metrics = json!({ "description": "Prometheus text exposition", "content": { "text/plain": { "schema": { "type": "string" } } } });
    vec![
        Op::new("get", "/healthz", "healthz", "Liveness").auth(Auth::Open).while_starting().ok(
            200,
            "The process answers (`starting` until the config is loaded and the store open)",
            g.out::<s::Health>(),
        ),
        Op::new("get", "/readyz", "readyz", "Readiness: config in force, store answering")
            .auth(Auth::Open)
            .ok(200, "Ready", ready)
            .raw(503, not_ready),
        Op::new("get", "/metrics", "metrics", "Prometheus metrics")
            .auth(Auth::Open)
            .raw(200, metrics),
    ]
}
