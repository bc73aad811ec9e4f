//! Every config shipped in the repo is valid, and mutating one is caught at
//! the right line and column.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use meshes::config::{self, CheckOptions, Code, Report, Source};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check_text(name: &str, text: &str) -> Report {
    let source = Source { name: name.to_string(), text: text.to_string() };
    config::check_sources(&[source], CheckOptions::default())
}

fn lines(report: &Report) -> Vec<String> {
    report.diagnostics.iter().map(ToString::to_string).collect()
}

/// meshes.yaml and every config in examples/ (those with a top-level `workspace`).
fn shipped_configs() -> Vec<PathBuf> {
    let mut files = vec![root().join("meshes.yaml")];
    let loaded = config::read_paths(&[root().join("examples")]).unwrap();
    files.extend(loaded.sources.iter().map(|s| PathBuf::from(&s.name)));
    files
}

#[test]
fn every_shipped_config_is_valid_without_warnings() {
    for file in shipped_configs() {
        let text = std::fs::read_to_string(&file).unwrap();
        let report = check_text(&file.display().to_string(), &text);
        assert!(
            report.diagnostics.is_empty(),
            "{}:\n{}",
            file.display(),
            lines(&report).join("\n")
        );
        assert_eq!(report.configs.len(), 1);
        assert!(
            text.starts_with("# yaml-language-server: $schema="),
            "{} lacks the schema modeline",
            file.display()
        );
    }
}

/// What `validate` accepts, the gateway builds: every shipped config, its
/// variables set to well-formed values, becomes a runtime.
#[test]
fn every_shipped_config_builds_into_a_runtime() {
    let env = |var: &str| {
        let value = match var {
            v if v.ends_with("_URL") => "https://example.com/hook",
            v if v.contains("WEBHOOK_SECRET") => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "MAILCHIMP_API_KEY" => "key-us6",
            _ => "value",
        };
        Some(value.to_string())
    };
    let client = reqwest::Client::new();
    for file in shipped_configs() {
        let text = std::fs::read_to_string(&file).unwrap();
        let report = check_text(&file.display().to_string(), &text);
        assert_eq!(report.errors(), 0, "{}", lines(&report).join("\n"));
        let built =
            meshes::gateway::runtime::build(&report.configs, 1, "h".into(), 0, &env, &client, None);
        assert!(built.is_ok(), "{}: {:?}", file.display(), built.err());
    }
}

/// A machine secret read from a file or a Kubernetes secret often ends in a
/// newline no client signs with: it is dropped, as from provider credentials.
#[test]
fn a_machine_secret_with_a_trailing_newline_verifies_jwts_signed_without_it() {
    let text = "version: 1\nworkspace: { id: 3f216741-15dd-4e46-b5ac-0077a2640e89, name: w, publishable_key: pk_w }\n\
                machine_keys:\n  - access_key: mk_w\n    secret: ${MK_SECRET}\n";
    let report = check_text("w.yaml", text);
    assert_eq!(report.errors(), 0, "{}", lines(&report).join("\n"));
    let env = |_: &str| Some("s3cret-value\n".to_string());
    let client = reqwest::Client::new();
    let rt =
        meshes::gateway::runtime::build(&report.configs, 1, "h".into(), 0, &env, &client, None)
            .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let jwt = meshes::api::auth::mint_jwt("mk_w", b"s3cret-value", now.as_secs(), 60);
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {jwt}").parse().unwrap());
    assert!(rt.keys.authenticate(&headers, now.as_secs()).is_ok());
}

fn workspace_with_key(id: &str, pk: &str, access_key: &str) -> Source {
    let text = format!(
        "version: 1\nworkspace: {{ id: {id}, name: w, publishable_key: \"{pk}\" }}\n\
         machine_keys:\n  - {{ access_key: \"{access_key}\", secret: \"${{MK_SECRET}}\" }}\n"
    );
    Source { name: format!("{pk}.yaml"), text }
}

const WS_A: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";
const WS_B: &str = "9b2e0c4d-1a3f-4e5b-8c7d-6e5f4a3b2c1d";

/// Serving drops surrounding whitespace from keys, so `validate` compares
/// them that way too: `mk_alpha ` and `mk_alpha` are one key.
#[test]
fn keys_that_differ_only_by_surrounding_whitespace_collide_across_files() {
    let sources = [
        workspace_with_key(WS_A, "pk_a", "mk_alpha"),
        workspace_with_key(WS_B, "pk_a\\n", "mk_alpha "),
    ];
    let report = config::check_sources(&sources, CheckOptions::default());
    let codes: Vec<(String, Code)> =
        report.diagnostics.iter().map(|d| (d.path.clone(), d.code)).collect();
    assert_eq!(
        codes,
        [
            ("workspace.publishable_key".to_string(), Code::DuplicatePublishableKey),
            ("machine_keys[0].access_key".to_string(), Code::DuplicateId)
        ],
        "{}",
        lines(&report).join("\n")
    );
}

/// A collision validate cannot see (the key comes from the environment)
/// fails the runtime build, so serve does not start and a reload is
/// refused, instead of one workspace's token standing for another's key.
#[test]
fn the_runtime_refuses_access_keys_that_collide_once_resolved_and_trimmed() {
    let sources =
        [workspace_with_key(WS_A, "pk_a", "mk_alpha"), workspace_with_key(WS_B, "pk_b", "${AKB}")];
    let report = config::check_sources(&sources, CheckOptions::default());
    assert_eq!(report.errors(), 0, "{}", lines(&report).join("\n"));
    let env = |var: &str| Some(if var == "AKB" { "mk_alpha\n" } else { "secret" }.to_string());
    let client = reqwest::Client::new();
    let built =
        meshes::gateway::runtime::build(&report.configs, 1, "h".into(), 0, &env, &client, None);
    let Err(errors) = built else { panic!("a collision fails the build") };
    assert_eq!(
        errors,
        [format!(
            "workspaces {WS_A} and {WS_B} have machine keys with the same access key; expected each access key once"
        )]
    );
}

#[test]
fn examples_validate_together() {
    let loaded = config::read_paths(&[root().join("examples")]).unwrap();
    assert!(
        loaded.sources.len() >= 15,
        "expected one example per integration, found {}",
        loaded.sources.len()
    );
    let report = loaded.check(CheckOptions::default());
    assert!(report.diagnostics.is_empty(), "{}", lines(&report).join("\n"));
    let skipped: Vec<&str> = loaded.skipped.iter().map(|s| s.rsplit('/').next().unwrap()).collect();
    assert_eq!(skipped, ["github-actions-validate.yml", "kubernetes-sidecar.yaml"]);
}

/// serde-saphyr's default node budget (250,000) rejected about 20,000 rules.
#[test]
fn a_30000_rule_config_parses_and_classifies() {
    let text = meshes::bench::configs::many_rules(30_000);
    let value = config::yaml::parse(&text).map_err(|(issue, l, c)| format!("{l}:{c}: {issue:?}"));
    assert_eq!(value.unwrap()["rules"].as_array().map(Vec::len), Some(30_000));
    assert_eq!(config::yaml::classify(&text), config::yaml::Kind::Config);
}

#[test]
fn kubernetes_configmap_embeds_a_valid_config() {
    let manifest =
        std::fs::read_to_string(root().join("examples/kubernetes-sidecar.yaml")).unwrap();
    let start = manifest.find("meshes.yaml: |").expect("ConfigMap key meshes.yaml");
    let body: Vec<&str> = manifest[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .collect();
    let text: String = body.iter().map(|l| l.get(4..).unwrap_or("")).collect::<Vec<_>>().join("\n");
    let report = check_text("configmap/meshes.yaml", &text);
    assert!(report.errors() == 0, "{}", lines(&report).join("\n"));
}

#[test]
fn webhook_example_keeps_its_contract() {
    let text = std::fs::read_to_string(root().join("examples/webhook.yaml")).unwrap();
    let report = check_text("webhook.yaml", &text);
    let (_, cfg) = &report.configs[0];
    assert_eq!(cfg.workspace.publishable_key.0, "${MESHES_PUBLISHABLE_KEY}");
    assert_eq!(cfg.machine_keys.len(), 1);
    assert_eq!(cfg.machine_keys[0].access_key.0, "${MESHES_ACCESS_KEY}");
    assert_eq!(cfg.machine_keys[0].secret.template(), "${MESHES_SECRET_KEY}");
    let rule = cfg.rules.iter().find(|r| r.id == "signup-webhook").unwrap();
    assert_eq!(rule.event, "user.signup");
    let Some(meshes::adapters::ConnectionConfig::Webhook(hook)) =
        cfg.connections.get(&rule.connection)
    else {
        panic!("signup-webhook must route to a webhook connection");
    };
    assert_eq!(hook.url.0, "${WEBHOOK_URL}");
    let secret = serde_json::to_value(&hook.signing_secret).unwrap();
    assert_eq!(secret, "${WEBHOOK_SECRET}");
}

/// The first line index and column (1-based) where `needle` occurs after `from_line`.
fn find(text: &str, needle: &str, from_line: usize) -> Option<(usize, usize)> {
    text.lines().enumerate().skip(from_line).find_map(|(i, l)| l.find(needle).map(|c| (i, c + 1)))
}

fn replace_line(text: &str, index: usize, new: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines[index] = new;
    lines.join("\n") + "\n"
}

fn assert_reported(report: &Report, code: Code, line: usize, column: Option<usize>, file: &Path) {
    let hit = report
        .diagnostics
        .iter()
        .any(|d| d.code == code && d.line == line && column.is_none_or(|c| c == d.column));
    assert!(
        hit,
        "{}: expected {code} at {line}:{column:?}, got:\n{}",
        file.display(),
        lines(report).join("\n")
    );
}

#[test]
fn mutations_are_reported_at_the_mutated_node() {
    for file in shipped_configs() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.display().to_string();
        let rules_at = find(&text, "\nrules:", 0)
            .map_or(0, |_| text.lines().position(|l| l == "rules:").unwrap());

        // A rule pointing at a connection that does not exist.
        let (i, col) = find(&text, "connection: ", rules_at).unwrap();
        let line = text.lines().nth(i).unwrap();
        let at = col + "connection: ".len();
        let mutated = replace_line(
            &text,
            i,
            &format!("{}no-such-connection{}", &line[..at - 1], rest_after_word(&line[at - 1..])),
        );
        assert_reported(
            &check_text(&name, &mutated),
            Code::UnknownConnection,
            i + 1,
            Some(at),
            &file,
        );

        // An unknown field in the workspace.
        let ws = text.lines().position(|l| l == "workspace:").unwrap();
        let mutated = replace_line(&text, ws, "workspace:\n  colour: blue");
        assert_reported(&check_text(&name, &mutated), Code::UnknownField, ws + 2, Some(3), &file);

        // An action the connection's integration does not offer.
        let (i, col) = find(&text, "action: ", rules_at).unwrap();
        let line = text.lines().nth(i).unwrap();
        let at = col + "action: ".len();
        let mutated = replace_line(
            &text,
            i,
            &format!("{}launch_rocket{}", &line[..at - 1], rest_after_word(&line[at - 1..])),
        );
        assert_reported(&check_text(&name, &mutated), Code::UnknownAction, i + 1, Some(at), &file);

        // A broken indent.
        let (i, _) = find(&text, "  name: ", ws).unwrap();
        let line = text.lines().nth(i).unwrap();
        let mutated = replace_line(&text, i, &line[1..]);
        assert_reported(&check_text(&name, &mutated), Code::YamlSyntax, i + 1, None, &file);
    }
}

/// What follows the word at the start of `s` (`", id: 1 }"` after `add_tag, id: 1 }`).
fn rest_after_word(s: &str) -> &str {
    let end = s.find(|c: char| c == ',' || c == '}' || c.is_whitespace()).unwrap_or(s.len());
    &s[end..]
}

/// JSON Schema counts `8.0` and `1e3` as integers, so decoding must too: the
/// schema accepted them, and a refusal then came back unlocated at 1:1.
#[test]
fn whole_floats_decode_where_integers_are_due() {
    let text = "version: 1.0
workspace: { id: 3f216741-15dd-4e46-b5ac-0077a2640e89, name: w, publishable_key: pk }
delivery:
  concurrency: 8.0
  circuit_breaker: { failure_threshold: 1e3 }
  retry: { max_deferrals: 3.0, jitter: 1.0 }
";
    let report = check_text("floats.yaml", text);
    assert!(report.diagnostics.is_empty(), "{:?}", lines(&report));
    let config = &report.configs[0].1;
    assert_eq!(config.version, 1);
    assert_eq!(config.delivery.concurrency, 8);
    assert_eq!(config.delivery.circuit_breaker.failure_threshold, 1000);
    assert_eq!(config.delivery.retry.max_deferrals, 3);
    assert!((config.delivery.retry.jitter - 1.0).abs() < f64::EPSILON);
}
