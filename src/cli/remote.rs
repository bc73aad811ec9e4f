//! `meshes validate --check-remote`: every `metadata.id` that a rule, an
//! automation's `notify` or a sequence step names, checked against what the
//! connection's account really has (the same discovery as `meshes actions`).

use crate::adapters::discover::{ActionOption, DiscoverError};
use crate::adapters::token_store::TokenStore;
use crate::adapters::{ConnectionConfig, Lookup};
use crate::catalog;
use crate::config::automation::{AutomationAction, Step};
use crate::config::diagnostic::{Code, Issue, Path, closest};
use crate::config::model::Metadata;
use crate::config::spans::SpanIndex;
use crate::config::{self, ConfigFile, Diagnostic, Source};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Ids shown in a "does not exist" message; the rest are counted.
const SHOWN: usize = 5;

/// Where the CLI keeps the refresh tokens providers rotate: the gateway's
/// token store, or why there is none.
pub type Tokens = Result<Arc<TokenStore>, String>;

/// The token store of the gateway whose data directory is `dir`. Anything
/// else would keep a rotated token where the gateway never reads it.
pub fn gateway_tokens(dir: &std::path::Path) -> Tokens {
    let shown = dir.display();
    if !dir.is_dir() {
        return Err(format!("the data directory `{shown}` does not exist"));
    }
    if !dir.join("meshes.redb").is_file() {
        return Err(format!("`{shown}` is not a gateway's data directory (it has no meshes.redb)"));
    }
    same_user_as_gateway(dir)?;
    let store = TokenStore::open(dir);
    match store.check_writable() {
        Ok(()) => Ok(store),
        Err(e) => Err(format!("its token store in `{shown}` cannot be written ({e})")),
    }
}

/// Refuses another user than the one the gateway runs as (the owner of its
/// store): the token files written here are the owner's only (mode 0600),
/// so a `sudo meshes actions` would leave the gateway unable to read the
/// token it rotated, and it would send the revoked one.
fn same_user_as_gateway(dir: &std::path::Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let store = dir.join("meshes.redb");
        let owner = std::fs::metadata(&store).map_err(|e| e.to_string())?.uid();
        let me = rustix::process::geteuid().as_raw();
        if owner != me {
            return Err(format!(
                "`{}` belongs to user id {owner} (the gateway's) and this command runs as user id {me}: \
                 the gateway could not read the tokens written here; run it as the gateway's user",
                store.display()
            ));
        }
    }
    Ok(())
}

/// Why a connection with a refresh token is not refreshed without the
/// gateway's token store (`why` says what is missing), and what to do.
pub fn refresh_refused(why: &str) -> String {
    format!(
        "it uses an OAuth refresh token, and refreshing it here would rotate the refresh token the gateway holds \
         (the provider revokes the old one, and the gateway's deliveries would fail with auth_failed), \
         but {why}; pass the gateway's data directory with `--data-dir` (or MESHES_DATA_DIR) \
         so that the new token is kept where the gateway reads it"
    )
}

/// What the remote check found.
#[derive(Debug, Default)]
pub struct Remote {
    /// Missing ids and connections that could not be listed.
    pub diagnostics: Vec<Diagnostic>,
    /// Connections (or actions) that were not checked, and why.
    pub notes: Vec<String>,
}

/// A rule, `notify` or step that names a `metadata.id`.
struct Target<'a> {
    /// The rule, notify or step (its `metadata` is under it).
    at: Path,
    meta: &'a Metadata,
}

/// Checks every config: one discovery per referenced connection, run concurrently.
pub async fn check(
    sources: &[Source],
    configs: &[(String, ConfigFile)],
    lookup: Lookup<'_>,
    client: &reqwest::Client,
    tokens: &Tokens,
) -> Remote {
    let mut jobs = Vec::new();
    for (file, cfg) in configs {
        let text = sources.iter().find(|s| &s.name == file).map_or("", |s| s.text.as_str());
        let spans = std::sync::Arc::new(SpanIndex::build(text));
        for (name, mut targets) in targets(cfg) {
            let Some(conn) = cfg.connections.get(name) else { continue };
            targets.retain(|t| lists_for(conn.kind(), &t.meta.action));
            if targets.is_empty() {
                continue;
            }
            let spans = spans.clone();
            let at = Account { ws: &cfg.workspace.id, name, conn, lookup, client, tokens };
            jobs.push(async move {
                let (issues, notes) = connection(&at, &targets).await;
                let placed: Vec<Diagnostic> =
                    issues.into_iter().map(|i| config::place(file, &spans, i)).collect();
                (placed, notes)
            });
        }
    }
    let mut out = Remote::default();
    for (diagnostics, notes) in futures::future::join_all(jobs).await {
        out.diagnostics.extend(diagnostics);
        out.notes.extend(notes);
    }
    if let Ok(store) = tokens {
        store.settle().await;
    }
    out.diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    out
}

/// Everything with a `metadata.id`, by connection name.
fn targets(cfg: &ConfigFile) -> BTreeMap<&str, Vec<Target<'_>>> {
    let mut out: BTreeMap<&str, Vec<Target<'_>>> = BTreeMap::new();
    for (i, rule) in cfg.rules.iter().enumerate() {
        let at = Path::root().key("rules").index(i);
        push(&mut out, &rule.connection, at, &rule.metadata);
    }
    for (i, a) in cfg.automations.iter().enumerate() {
        for (j, action) in a.actions.iter().enumerate() {
            if let AutomationAction::Notify(n) = action {
                let at = Path::root().key("automations").index(i).key("actions").index(j);
                push(&mut out, &n.connection, at.key("notify"), &n.metadata);
            }
        }
    }
    for (name, seq) in &cfg.sequences {
        for (j, step) in seq.steps.iter().enumerate() {
            if let Step::Deliver(n) = step {
                let at = Path::root().key("sequences").key(name.clone()).key("steps").index(j);
                push(&mut out, &n.connection, at, &n.metadata);
            }
        }
    }
    out
}

/// Whether the action's `metadata.id` is chosen from account data.
fn lists_for(kind: &str, action: &str) -> bool {
    let action = catalog::integration(kind).and_then(|i| i.action(action));
    action.is_some_and(|a| a.data_source.is_some())
}

fn push<'a>(
    out: &mut BTreeMap<&'a str, Vec<Target<'a>>>,
    connection: &'a str,
    at: Path,
    meta: &'a Metadata,
) {
    if meta.id.is_some() {
        out.entry(connection).or_default().push(Target { at, meta });
    }
}

/// A connection to list, and what building it needs.
struct Account<'a> {
    ws: &'a str,
    name: &'a str,
    conn: &'a ConnectionConfig,
    lookup: Lookup<'a>,
    client: &'a reqwest::Client,
    tokens: &'a Tokens,
}

/// Builds one connection, lists its account once and checks its targets.
async fn connection(a: &Account<'_>, targets: &[Target<'_>]) -> (Vec<Issue>, Vec<String>) {
    let (name, conn) = (a.name, a.conn);
    let kind = conn.kind();
    let at = Path::root().key("connections").key(name);
    let unavailable = |why: String| {
        let message =
            format!("connection `{name}` ({kind}): cannot list the account's data: {why}");
        (vec![Issue::error(Code::RemoteUnavailable, at.clone(), message).at_key()], vec![])
    };
    let slot = match a.tokens {
        Ok(store) => Some(store.slot(format!("{}/{name}", a.ws))),
        Err(why) if conn.spends_refresh_token() => {
            let note =
                format!("connection `{name}` ({kind}) not checked: {}", refresh_refused(why));
            return (vec![], vec![note]);
        }
        Err(_) => None,
    };
    let adapter = match conn.build_with(a.lookup, a.client, slot) {
        Ok(adapter) => adapter,
        Err(e) => return unavailable(e.to_string()),
    };
    let options = match adapter.discover().await {
        Ok(options) => options,
        Err(DiscoverError::Provider(why)) => return unavailable(why),
        Err(DiscoverError::Unsupported(why)) => {
            return (vec![], vec![format!("connection `{name}` ({kind}) not checked: {why}")]);
        }
    };
    let (mut issues, mut notes) = (Vec::new(), Vec::new());
    for t in targets {
        match check_target(name, kind, t, &options) {
            Checked::Fine => {}
            Checked::Issue(issue) => issues.push(issue),
            Checked::Unlisted(what) => {
                let note = format!(
                    "{}: connection `{name}` ({kind}) does not list {what}; not checked",
                    t.at
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
    }
    (issues, notes)
}

enum Checked {
    Fine,
    Issue(Issue),
    /// Discovery does not cover this action's data (e.g. Salesforce fields).
    Unlisted(&'static str),
}

/// Checks one target's `metadata.id` (and a property's `value`).
fn check_target(name: &str, kind: &str, t: &Target<'_>, options: &[ActionOption]) -> Checked {
    let (Some(id), Some(action)) =
        (&t.meta.id, catalog::integration(kind).and_then(|i| i.action(&t.meta.action)))
    else {
        return Checked::Fine;
    };
    let Some(source) = action.data_source else { return Checked::Fine };
    if (kind, source) == ("salesforce", "properties") {
        return Checked::Unlisted("field names");
    }
    let want = singular(source);
    let id = id.to_text();
    let of_kind: Vec<&ActionOption> = options.iter().filter(|o| o.kind == want).collect();
    let meta_at = t.at.key("metadata");
    let Some(found) = of_kind.iter().find(|o| names(o, source, &id)) else {
        let ids: Vec<&str> = of_kind.iter().map(|o| o.id.as_str()).collect();
        let message = format!(
            "{want} `{id}` does not exist in the account of connection `{name}` ({kind}); {}",
            existing(source, &id, &ids, |i| of_kind[i].name.as_str())
        );
        return Checked::Issue(Issue::error(Code::RemoteMissing, meta_at.key("id"), message));
    };
    match (&t.meta.value, property_options(found)) {
        (Some(value), Some(allowed)) if !allowed.is_empty() => {
            let value = value.to_text();
            if allowed.contains(&value) {
                return Checked::Fine;
            }
            let shown: Vec<&str> = allowed.iter().map(String::as_str).collect();
            let message = format!(
                "property `{id}` has no option `{value}` in the account of connection `{name}` ({kind}); {}",
                existing("options", &value, &shown, |_| "")
            );
            Checked::Issue(Issue::error(Code::RemoteMissing, meta_at.key("value"), message))
        }
        _ => Checked::Fine,
    }
}

/// `lists` → `list`, `properties` → `property`: the discovered option kind.
fn singular(source: &str) -> String {
    match source.strip_suffix("ies") {
        Some(stem) => format!("{stem}y"),
        None => source.strip_suffix('s').unwrap_or(source).to_string(),
    }
}

/// Whether `id` names option `o`: its id, a Resend template's alias, or a
/// Slack channel's name (`general` or `#general`, which Slack also accepts).
fn names(o: &ActionOption, source: &str, id: &str) -> bool {
    o.id == id
        || (source == "templates" && o.extra.get("alias").and_then(|a| a.as_str()) == Some(id))
        || (source == "channels" && !o.name.is_empty() && o.name == id.trim_start_matches('#'))
}

/// A property's allowed values (HubSpot enumerations), `None` for others.
fn property_options(o: &ActionOption) -> Option<Vec<String>> {
    let list = o.extra.get("options")?.as_array()?;
    Some(list.iter().filter_map(|v| v.get("value")?.as_str().map(str::to_string)).collect())
}

/// "it has: `a1` (Newsletter), `b2` (Customers), … and 3 more (did you mean `a1`?)".
fn existing<'n>(what: &str, found: &str, ids: &[&str], name: impl Fn(usize) -> &'n str) -> String {
    if ids.is_empty() {
        return format!("it has no {what}");
    }
    let shown: Vec<String> = ids
        .iter()
        .take(SHOWN)
        .enumerate()
        .map(|(i, id)| match name(i) {
            "" => format!("`{id}`"),
            n => format!("`{id}` ({n})"),
        })
        .collect();
    let mut text = format!("it has: {}", shown.join(", "));
    if ids.len() > SHOWN {
        text.push_str(&format!(", … and {} more", ids.len() - SHOWN));
    }
    if let Some(close) = closest(found, ids) {
        text.push_str(&format!(" (did you mean `{close}`?)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_data_dir_of_another_user_is_refused() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("meshes.redb");
        std::fs::write(&store, b"").unwrap();
        assert!(gateway_tokens(dir.path()).is_ok(), "the same user");
        // Giving the file away needs root; as another user the gateway's
        // files are someone else's already, the case below.
        let other = if rustix::process::geteuid().is_root() { 65_534 } else { 0 };
        if std::os::unix::fs::chown(&store, Some(other), None).is_ok() {
            assert_eq!(std::fs::metadata(&store).unwrap().uid(), other);
            let why = gateway_tokens(dir.path()).err().unwrap();
            assert!(why.contains(&format!("belongs to user id {other}")), "{why}");
        }
    }

    #[test]
    fn singular_kinds_match_discovery() {
        let kinds: Vec<String> =
            ["lists", "properties", "campaigns", "webinars"].iter().map(|s| singular(s)).collect();
        assert_eq!(kinds, ["list", "property", "campaign", "webinar"]);
    }

    #[test]
    fn existing_shows_a_few_ids_and_counts_the_rest() {
        let ids = ["a1", "a2", "a3", "a4", "a5", "a6", "a7"];
        assert_eq!(
            existing("lists", "a9", &ids, |i| if i == 0 { "News" } else { "" }),
            "it has: `a1` (News), `a2`, `a3`, `a4`, `a5`, … and 2 more (did you mean `a1`?)"
        );
        assert_eq!(existing("lists", "x", &[], |_| ""), "it has no lists");
    }
}
