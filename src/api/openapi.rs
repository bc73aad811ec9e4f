//! The OpenAPI 3.1 document of the HTTP API (`meshes openapi`,
//! `schema/openapi.json`). Body schemas are derived with schemars from the
//! types in [`schemas`]; the operations below list, per route, the
//! credentials it takes and every status it can answer.

mod schemas;

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemas as s;
use serde_json::{Map, Value, json};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Publishable key or machine JWT (the ingest routes).
    Ingest,
    /// Machine JWT only.
    Machine,
    /// No credentials (ops routes, and the 405 answers of git-managed resources).
    Open,
}

/// One operation, before rendering.
struct Op {
    method: &'static str,
    path: &'static str,
    id: String,
    summary: &'static str,
    auth: Auth,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(u16, Value)>,
    errors: &'static [u16],
}

impl Op {
    fn new(method: &'static str, path: &'static str, id: &str, summary: &'static str) -> Op {
        Op {
            method,
            path,
            id: id.to_string(),
            summary,
            auth: Auth::Machine,
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            errors: &[],
        }
    }
    fn auth(mut self, auth: Auth) -> Op {
        self.auth = auth;
        self
    }
    fn param(mut self, p: Value) -> Op {
        self.params.push(p);
        self
    }
    fn body(mut self, schema: Value) -> Op {
        self.body = Some(
            json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
        );
        self
    }
    fn ok(mut self, status: u16, description: &str, schema: Value) -> Op {
        self.responses.push((status, json!({ "description": description, "content": { "application/json": { "schema": schema } } })));
        self
    }
    fn raw(mut self, status: u16, response: Value) -> Op {
        self.responses.push((status, response));
        self
    }
    /// Links from the `status` response to the operations (by id) its
    /// fields feed, with their parameter expressions.
    fn links(mut self, status: u16, to: &[(&str, Value)]) -> Op {
        let links: Map<String, Value> = to
            .iter()
            .map(|(id, params)| {
                ((*id).to_string(), json!({ "operationId": id, "parameters": params }))
            })
            .collect();
        if let Some((_, r)) = self.responses.iter_mut().find(|(s, _)| *s == status) {
            r["links"] = Value::Object(links);
        }
        self
    }
    fn errors(mut self, codes: &'static [u16]) -> Op {
        self.errors = codes;
        self
    }
}

/// Schemas of request bodies (what is read) and of responses (what is
/// written) come from two generators, as serde contracts differ.
struct Gen {
    input: SchemaGenerator,
    output: SchemaGenerator,
}

impl Gen {
    fn new() -> Gen {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        });
        Gen {
            input: settings.clone().for_deserialize().into_generator(),
            output: settings.for_serialize().into_generator(),
        }
    }
    fn input<T: JsonSchema>(&mut self) -> Value {
        self.input.subschema_for::<T>().to_value()
    }
    fn out<T: JsonSchema>(&mut self) -> Value {
        self.output.subschema_for::<T>().to_value()
    }
    fn definitions(mut self) -> Map<String, Value> {
        let mut all = self.output.take_definitions(true);
        all.extend(self.input.take_definitions(true));
        all
    }
}

/// Statuses any authenticated route can answer: 400 (both credential
/// headers sent), 401, 403, 429.
const AUTHED: &[u16] = &[400, 401, 403, 429];
const INGEST: &[u16] = &[400, 401, 403, 408, 413, 415, 429, 503];
const BY_ID: &[u16] = &[400, 401, 403, 404, 429, 503];
const RETRY: &[u16] = &[400, 401, 403, 404, 425, 429, 503];
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
        "description": "Replays of the same key within the dedup window return the first result (with `Idempotent-Replayed: true`) instead of a new event. Bulk items use `<key>#<index>`.",
        "schema": { "type": "string", "minLength": 1, "maxLength": 255 } })
}

fn preflight(path: &'static str, id: &'static str) -> Op {
    Op::new("options", path, id, "CORS preflight (browsers sending events with a publishable key)")
        .auth(Auth::Open)
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

fn ingest_ops(g: &mut Gen) -> Vec<Op> {
    let created = json!({ "description": "Accepted and stored; deliveries are queued",
        "headers": { "Idempotent-Replayed": { "description": "`true` when this answers a replayed `Idempotency-Key`", "schema": { "type": "string", "const": "true" } } },
        "content": { "application/json": { "schema": g.out::<s::EventCreated>() } } });
    let bulk_400 = json!({ "anyOf": [g.out::<s::BulkResult>(), g.out::<s::ErrorBody>()] });
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
            .ok(201, "Every event accepted", g.out::<s::BulkResult>())
            .ok(207, "Some accepted, some refused (see each record)", g.out::<s::BulkResult>())
            .ok(
                400,
                "The body is invalid (an error) or every event was refused (a bulk result)",
                bulk_400,
            )
            .errors(&[401, 403, 408, 413, 415, 429, 503]),
        preflight("/api/v1/events/bulk", "preflightEventsBulk"),
    ]
}

fn event_ops(g: &mut Gen) -> Vec<Op> {
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
                "`next_cursor` of the previous page",
                json!({ "type": "string" }),
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

fn resource_ops(g: &mut Gen) -> Vec<Op> {
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

fn ops_routes(g: &mut Gen) -> Vec<Op> {
    let ready = g.out::<s::Ready>();
    let metrics = json!({ "description": "Prometheus text exposition", "content": { "text/plain": { "schema": { "type": "string" } } } });
    vec![
        Op::new("get", "/healthz", "healthz", "Liveness").auth(Auth::Open).ok(
            200,
            "The process answers",
            g.out::<s::Health>(),
        ),
        Op::new("get", "/readyz", "readyz", "Readiness: config in force, store answering")
            .auth(Auth::Open)
            .ok(200, "Ready", ready.clone())
            .ok(503, "The store does not answer", ready),
        Op::new("get", "/metrics", "metrics", "Prometheus metrics")
            .auth(Auth::Open)
            .raw(200, metrics),
    ]
}

fn error_response(code: u16) -> Value {
    let description = match code {
        400 => {
            "Invalid input: `message` and `error.data` name each field at fault and what was expected"
        }
        401 => "Missing or invalid credentials",
        403 => {
            "Valid credentials that may not use this route (a publishable key outside ingest), or whose workspace is no longer configured"
        }
        404 => "No such resource in the caller's workspace",
        405 => "Not supported: connections and rules are managed in meshes.yaml",
        408 => "The body was not complete within the body read timeout (30 s by default)",
        409 => "Conflict",
        413 => "The body is larger than the route's limit (1 MiB for one event, 8 MiB for bulk)",
        415 => "The body is not `application/json`",
        425 => "An attempt is in flight or due within seconds; retry after it",
        429 => "Rate limit of the credential exceeded",
        503 => "The store cannot take writes; nothing was acknowledged",
        _ => "Error",
    };
    let mut r = json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } });
    let retry = json!({ "description": "Seconds to wait before retrying", "schema": { "type": "integer", "minimum": 1 } });
    let header = match code {
        425 | 429 | 503 => Some(("Retry-After", retry)),
        401 => Some((
            "WWW-Authenticate",
            json!({ "description": "`Bearer`", "schema": { "type": "string" } }),
        )),
        _ => None,
    };
    if let Some((name, h)) = header {
        r["headers"] = json!({ name: h });
    }
    r
}

fn render(op: Op) -> Value {
    let mut responses = Map::new();
    for (status, r) in op.responses {
        responses.insert(status.to_string(), r);
    }
    for code in op.errors {
        responses
            .entry(code.to_string())
            .or_insert_with(|| json!({ "$ref": format!("#/components/responses/Error{code}") }));
    }
    let security = match op.auth {
        Auth::Ingest => json!([{ "publishableKey": [] }, { "machineJwt": [] }]),
        Auth::Machine => json!([{ "machineJwt": [] }]),
        Auth::Open => json!([]),
    };
    let mut out = json!({ "operationId": op.id, "summary": op.summary, "security": security, "responses": responses });
    if !op.params.is_empty() {
        out["parameters"] = Value::Array(op.params);
    }
    if let Some(body) = op.body {
        out["requestBody"] = body;
    }
    out
}

/// The document as JSON.
pub fn document() -> Value {
    let mut g = Gen::new();
    g.out::<s::ErrorBody>();
    let mut ops = ingest_ops(&mut g);
    ops.extend(event_ops(&mut g));
    ops.extend(resource_ops(&mut g));
    ops.extend(ops_routes(&mut g));
    let mut paths = Map::new();
    for op in ops {
        let (path, method) = (op.path, op.method);
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[method] = render(op);
    }
    let codes = [400, 401, 403, 404, 405, 408, 413, 415, 425, 429, 503];
    let responses: Map<String, Value> =
        codes.iter().map(|c| (format!("Error{c}"), error_response(*c))).collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "meshes",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted, GitOps event gateway. `/api/v1` is wire-compatible with the hosted Meshes API. Every error has the body `{message, error: {name, message, data: [{param, msg}]}}`.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "http://127.0.0.1:8700", "description": "`meshes serve` default" }],
        "paths": paths,
        "components": {
            "schemas": g.definitions(),
            "responses": responses,
            "securitySchemes": {
                "publishableKey": { "type": "apiKey", "in": "header", "name": "X-Meshes-Publishable-Key",
                    "description": "The workspace's publishable key: may only send events (ingest routes)." },
                "machineJwt": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "HS256 JWT signed with a machine key's secret: header `kid` = access key; claims `iss = urn:meshes:m2m:<access key>`, `aud = meshes-api`, `iat`, `exp` (lifetime at most 60 s). `meshes token` prints one." },
            },
        },
    })
}

/// What `meshes openapi` prints and `schema/openapi.json` holds.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}
