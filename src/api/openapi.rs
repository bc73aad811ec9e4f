//! The OpenAPI 3.1 document of the HTTP API (`meshes openapi`,
//! `schema/openapi.json`). Body schemas are derived with schemars from the
//! types in `schemas`; the operations below list, per route, the
//! credentials it takes and every status it can answer.

mod contact_schemas;
mod contacts;
mod resources;
mod routes;
mod schemas;

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
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
    /// Answered as usual while the gateway starts; every other operation
    /// is a 503 then (see `src/gateway/starting.rs`).
    while_starting: bool,
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
            while_starting: false,
        }
    }
    fn while_starting(mut self) -> Op {
        self.while_starting = true;
        self
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
        409 => {
            "A conflict: an `Idempotency-Key` sent again with a different body within 24 h (ingest), or an `external_id` and an `email` that belong to two different contacts (contacts)"
        }
        411 => {
            "The request has neither `Content-Length` nor `Transfer-Encoding`, so it has no body, and the route needs one"
        }
        413 => {
            "The body is larger than the route's limit (8 MiB for bulk events, 1 MiB everywhere else)"
        }
        415 => {
            "The body is not `application/json`, or has a `Content-Encoding` other than `identity` (bodies are read uncompressed)"
        }
        425 => "An attempt is in flight or due within seconds; retry after it",
        429 => "Rate limit of the credential exceeded",
        501 => {
            "The connection's integration has no account data to list; on a route that reads a body, a `Transfer-Encoding` other than `chunked`"
        }
        502 => "The provider failed; `message` carries its answer (credentials never included)",
        503 => {
            "Unavailable for now, nothing was acknowledged: the gateway is starting (loading its config and opening its store; every route but `/healthz` and CORS preflights answers this), the store cannot take writes, or the request bodies held at once are at their cap"
        }
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
        405 => Some((
            "Allow",
            json!({ "description": "The methods the route supports, such as `GET,HEAD`", "schema": { "type": "string" } }),
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
    let starting: &[u16] = if op.while_starting { &[] } else { &[503] };
    for code in op.errors.iter().chain(starting) {
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
    g.out::<schemas::ErrorBody>();
    let mut ops = routes::ingest_ops(&mut g);
    ops.extend(routes::event_ops(&mut g));
    ops.extend(routes::resource_ops(&mut g));
    ops.extend(contacts::contact_ops(&mut g));
    ops.extend(routes::ops_routes(&mut g));
    let mut paths = Map::new();
    for op in ops {
        let (path, method) = (op.path, op.method);
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[method] = render(op);
    }
    let codes = [400, 401, 403, 404, 405, 408, 409, 411, 413, 415, 425, 429, 501, 502, 503];
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
