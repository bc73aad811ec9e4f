//! Read-only views of what `meshes.yaml` configures: integrations,
//! connections (never secrets), rules and workspaces. Writes answer 405:
//! these resources are managed in git.

use super::error::ApiError;
use super::error::ApiPath;
use super::{AppState, machine};
use crate::adapters::ConnectionConfig;
use crate::adapters::discover::{self, DiscoverError};
use crate::catalog;
use crate::config::diagnostic::{Path as CfgPath, Seg};
use crate::config::env::{self, EnvFields};
use crate::gateway::runtime::WorkspaceRt;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::sync::Arc;

fn workspace(st: &AppState, headers: &HeaderMap) -> Result<Arc<WorkspaceRt>, ApiError> {
    let p = machine(st, headers)?;
    let rt = st.shared.runtime.load_full();
    rt.workspace(p.workspace())
        .cloned()
        .ok_or_else(|| ApiError::Forbidden("the key's workspace is no longer configured".into()))
}

/// `GET /integrations`: the catalog, with each integration's config fields.
pub async fn integrations(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    machine(&st, &headers)?;
    let records: Vec<Value> = catalog::INTEGRATIONS
        .iter()
        .map(|i| json!({ "type": i.kind, "name": i.name, "auth": i.auth, "fields": catalog::auth_fields(i.kind), "actions": i.actions }))
        .collect();
    Ok(Json(json!({ "count": records.len(), "records": records })))
}

/// A connection as JSON, every credential replaced: a `${VAR}` reference is
/// shown as written (it names a variable, not a value); anything else is redacted.
pub fn connection_json(name: &str, c: &ConnectionConfig) -> Value {
    let mut value = serde_json::to_value(c).unwrap_or(Value::Null);
    let mut fields = Vec::new();
    c.env_fields(&CfgPath::root(), &mut fields);
    for f in fields.iter().filter(|f| f.secret) {
        let shown = if env::Secret::new(f.template).is_literal() {
            "[redacted]".to_string()
        } else {
            f.template.to_string()
        };
        if let Some(slot) = pointer_mut(&mut value, &f.path) {
            *slot = Value::String(shown);
        }
    }
    redact_literal_headers(c, &mut value);
    json!({ "id": name, "name": name, "type": c.kind(), "settings": value })
}

/// A webhook's extra headers are where a credential goes when the receiver
/// wants one the `auth` block cannot express (`X-Api-Key`), yet they are
/// plain strings, so a literal value is not flagged as a secret by
/// `validate` (most are not: `X-Source: meshes`). A value is shown as
/// written only when all of it comes from the environment, after at most an
/// auth scheme (`${TOKEN}`, `Bearer ${TOKEN}`); any other text, or a
/// `${VAR:-default}`, may be a credential in git, so it is `[redacted]`.
fn redact_literal_headers(c: &ConnectionConfig, value: &mut Value) {
    let ConnectionConfig::Webhook(w) = c else { return };
    value["url"] = Value::String(shown_url(&w.url.0));
    let Some(shown) = value.get_mut("headers").and_then(Value::as_object_mut) else { return };
    for (name, template) in &w.headers {
        if !from_env(&template.0, |at, text| at == 0 && is_auth_scheme(text)) {
            shown.insert(name.clone(), Value::String("[redacted]".into()));
        }
    }
}

/// True when `template` is only `${VAR}` references without defaults, apart
/// from text that `allowed(position, text)` accepts.
fn from_env(template: &str, allowed: impl Fn(usize, &str) -> bool) -> bool {
    env::parse(template).is_ok_and(|parts| {
        parts.iter().enumerate().all(|(at, p)| match p {
            env::Part::Text(text) => allowed(at, text),
            env::Part::Var { default, .. } => default.is_none(),
        })
    })
}

/// `Bearer `, `Token `: one word and a space.
fn is_auth_scheme(text: &str) -> bool {
    text.strip_suffix(' ').is_some_and(|word| {
        !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// A webhook URL as shown: its userinfo and its query values can be
/// credentials (`https://user:pass@…`, `?token=…`), so each of them that is
/// not wholly read from the environment is `[redacted]` (`${USER}:pw` too).
fn shown_url(template: &str) -> String {
    let literal = |s: &str| !s.is_empty() && !from_env(s, |_, _| false);
    let userinfo_literal = |s: &str| !from_env(s, |_, text| text == ":");
    let (base, query) = match template.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (template, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((user, host)) if userinfo_literal(user) => {
                    format!("{scheme}://[redacted]@{host}{path}")
                }
                _ => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, v)) if literal(v) => format!("{k}=[redacted]"),
                _ if !p.contains('=') && literal(p) => "[redacted]".to_string(),
                _ => p.to_string(),
            })
            .collect();
        out = format!("{out}?{}", params.join("&"));
    }
    out
}

fn pointer_mut<'a>(v: &'a mut Value, path: &CfgPath) -> Option<&'a mut Value> {
    path.0.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k.as_str()),
        Seg::Index(i) => v.get_mut(*i),
    })
}

/// `GET /connections`.
pub async fn connections(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&st, &headers)?;
    let records: Vec<Value> =
        ws.config.connections.iter().map(|(n, c)| connection_json(n, c)).collect();
    Ok(Json(json!({ "count": records.len(), "records": records })))
}

/// `GET /connections/{id}`.
pub async fn connection(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&st, &headers)?;
    let c = ws
        .config
        .connections
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no connection `{id}` in this workspace")))?;
    Ok(Json(json!({ "connection": connection_json(&id, c) })))
}

/// `GET /connections/{id}/actions`: the account's live lists, tags,
/// templates, … (every page), cached per connection for a few minutes.
pub async fn actions(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let rt = st.shared.runtime.load_full();
    let ws = rt
        .workspace(p.workspace())
        .ok_or_else(|| ApiError::Forbidden("the key's workspace is no longer configured".into()))?;
    let conn = ws
        .connections
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no connection `{id}` in this workspace")))?;
    let kind = conn.config.kind();
    let now = tokio::time::Instant::now();
    let budget = st.shared.budgets.get(&conn.conn_key, conn.lane.rate_limit.as_ref());
    let fetch = discover::paced(conn.adapter.discover(), budget);
    let found = conn.actions.get_or_fetch(now, discover::DEFAULT_TTL, fetch).await;
    let records = found.map_err(|e| match e {
        DiscoverError::Unsupported(m) => {
            ApiError::NotImplemented(format!("connection `{id}` (type `{kind}`): {m}"))
        }
        DiscoverError::Provider(m) => {
            ApiError::BadGateway(format!("connection `{id}` (type `{kind}`): {m}"))
        }
    })?;
    Ok(Json(json!({
        "connection": id, "type": kind, "count": records.len(), "records": *records,
    })))
}

fn rule_json(r: &crate::config::model::Rule) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("enabled".into(), Value::Bool(r.enabled));
    }
    v
}

/// `GET /rules`.
pub async fn rules(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&st, &headers)?;
    let records: Vec<Value> = ws.rules.all().iter().map(|r| rule_json(&r.rule)).collect();
    Ok(Json(json!({ "count": records.len(), "records": records })))
}

/// `GET /rules/{id}`.
pub async fn rule(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&st, &headers)?;
    let r = ws
        .rules
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no rule `{id}` in this workspace")))?;
    Ok(Json(json!({ "rule": rule_json(&r.rule) })))
}

/// `GET /workspaces/{id}`: only the caller's own.
pub async fn workspace_get(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&st, &headers)?;
    if ws.id != id {
        return Err(ApiError::NotFound(format!("no workspace `{id}` for this key")));
    }
    Ok(Json(json!({ "workspace": {
        "id": ws.id, "name": ws.name,
        "connections": ws.config.connections.len(), "rules": ws.config.rules.len(),
        "automations": ws.config.automations.len(), "sequences": ws.config.sequences.len(),
    } })))
}

/// Any write to a config-owned resource.
pub async fn managed_in_git() -> impl IntoResponse {
    // RFC 9110: a 405 names the methods the resource does take.
    let allow = [(axum::http::header::ALLOW, "GET,HEAD")];
    (allow, ApiError::MethodNotAllowed(
        "connections and rules are managed in meshes.yaml: change the file (the gateway reloads it) instead of calling the API".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_answer_405_naming_the_methods_allowed() {
        let resp = managed_in_git().await.into_response();
        assert_eq!(resp.status(), axum::http::StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[axum::http::header::ALLOW], "GET,HEAD");
    }

    #[test]
    fn connection_json_never_shows_literal_secrets() {
        let yaml = r#"{"type": "webhook", "url": "https://example.com/h", "signing_secret": ["${NEW}", "whsec_bGl0ZXJhbA=="], "auth": {"type": "bearer", "token": "tok_literal_123"}}"#;
        let c: ConnectionConfig = serde_json::from_str(yaml).unwrap();
        let text = connection_json("hooks", &c).to_string();
        assert!(!text.contains("whsec_bGl0ZXJhbA=="), "{text}");
        assert!(!text.contains("tok_literal_123"), "{text}");
        assert!(text.contains("${NEW}"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn a_credential_default_in_the_file_is_redacted() {
        let yaml = r#"{"type": "mailchimp", "data_center": "us6", "api_key": "${MC_KEY:-key_in_git-us6}"}"#;
        let c: ConnectionConfig = serde_json::from_str(yaml).unwrap();
        let text = connection_json("mc", &c).to_string();
        assert!(!text.contains("key_in_git"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn webhook_url_credentials_written_in_the_file_are_redacted() {
        let cases = [
            ("https://example.com/h", "https://example.com/h"),
            ("https://u:pw_lit@example.com/h?x=1", "https://[redacted]@example.com/h?x=[redacted]"),
            (
                "https://example.com/h?token=tok_lit&t=${TOK}",
                "https://example.com/h?token=[redacted]&t=${TOK}",
            ),
            ("https://${USER}@example.com/h?sig", "https://${USER}@example.com/h?[redacted]"),
            ("${HOOK_URL}", "${HOOK_URL}"),
            ("https://${U}:${P}@example.com/h", "https://${U}:${P}@example.com/h"),
            // Partly from the environment, partly written in the file.
            ("https://${HOME}:hunter2@example.com/h", "https://[redacted]@example.com/h"),
            ("https://${U}:${P:-pw_default}@example.com/h", "https://[redacted]@example.com/h"),
            ("https://example.com/h?sig=${X}literal", "https://example.com/h?sig=[redacted]"),
            ("https://example.com/h?sig=${X:-dflt}", "https://example.com/h?sig=[redacted]"),
        ];
        for (url, want) in cases {
            let c: ConnectionConfig =
                serde_json::from_value(json!({"type": "webhook", "url": url})).unwrap();
            assert_eq!(connection_json("h", &c)["settings"]["url"], want, "{url}");
        }
    }

    #[test]
    fn webhook_headers_show_only_what_reads_the_environment() {
        let headers = json!({"X-Api-Key": "key_literal_456", "Authorization": "Bearer ${HOOK_TOKEN}",
            "X-Token": "${T}", "X-Mixed": "k_${T}", "X-Default": "${T:-dflt}", "X-Two": "a b ${T}"});
        let c: ConnectionConfig = serde_json::from_value(
            json!({"type": "webhook", "url": "https://example.com/h", "headers": headers}),
        )
        .unwrap();
        let shown = connection_json("hooks", &c);
        assert_eq!(
            shown["settings"]["headers"],
            json!({ "X-Api-Key": "[redacted]", "Authorization": "Bearer ${HOOK_TOKEN}",
                "X-Token": "${T}", "X-Mixed": "[redacted]", "X-Default": "[redacted]",
                "X-Two": "[redacted]" })
        );
    }
}
