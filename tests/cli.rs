//! The `meshes` binary: exit codes, output formats and flags.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

const FIXTURES: &str = "tests/fixtures/invalid";

fn meshes() -> Command {
    let mut cmd = Command::cargo_bin("meshes").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn valid_config_exits_zero_and_says_what_it_found() {
    meshes()
        .args(["validate", "meshes.yaml"])
        .assert()
        .code(0)
        .stdout("")
        .stderr(predicate::str::contains("ok: meshes.yaml: workspace `local`"));
}

#[test]
fn no_argument_means_meshes_yaml() {
    meshes().arg("validate").assert().code(0).stderr(predicate::str::contains("ok: meshes.yaml"));
}

#[test]
fn invalid_config_exits_one_with_located_errors() {
    meshes()
        .args(["validate", &format!("{FIXTURES}/unknown-connection.yaml")])
        .assert()
        .code(1)
        .stdout(predicate::str::starts_with(
            "tests/fixtures/invalid/unknown-connection.yaml:9:47: error[unknown-connection]: rules[0].connection: unknown connection `newsleter`",
        ))
        .stderr(predicate::str::contains("invalid: 1 error(s), 0 warning(s) in 1 file(s)"));
}

#[test]
fn missing_file_and_bad_usage_exit_two() {
    meshes()
        .args(["validate", "does/not/exist.yaml"])
        .assert()
        .code(2)
        .stderr("error: cannot read does/not/exist.yaml: no such file or directory\n");
    meshes().args(["validate", "--format", "xml", "meshes.yaml"]).assert().code(2);
    meshes().arg("frobnicate").assert().code(2);
}

#[test]
fn a_zero_rate_limit_is_refused_before_serving() {
    // It used to become one request a second per credential, silently.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", &data, "--no-watch"];
    let refused = || {
        predicate::str::contains("invalid value '0' for '--rate-limit <RATE_LIMIT>'")
            .and(predicate::str::contains("0 is not in 1.."))
    };
    let timeout = std::time::Duration::from_secs(30);
    let flag = meshes().args(serve).args(["--rate-limit", "0"]).timeout(timeout).assert();
    flag.code(2).stderr(refused());
    let env = meshes().args(serve).env("MESHES_RATE_LIMIT", "0").timeout(timeout).assert();
    env.code(2).stderr(refused());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no store was created");
}

#[test]
fn a_data_dir_that_is_a_file_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "afile", "not a directory");
    let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", &file, "--no-watch"];
    let timeout = std::time::Duration::from_secs(30);
    // An I/O error (exit 2), not an invalid config (1).
    let out = meshes().args(serve).timeout(timeout).assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains(&format!("cannot open the store at {file}: it is a file, not a directory")),
        "{stderr}"
    );
    // The one error, not a token-file warning before it.
    assert!(!stderr.contains("token"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
}

#[test]
fn warnings_pass_unless_denied() {
    let file = format!("{FIXTURES}/warnings.yaml");
    meshes()
        .args(["validate", &file])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("warning[literal-secret]"))
        .stderr(predicate::str::contains("valid with 4 warning(s)"));
    meshes().args(["validate", "--deny-warnings", &file]).assert().code(1);
}

#[test]
fn check_env_fails_on_unset_variables_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("tests/fixtures/invalid/unset-env.check-env.yaml").unwrap();
    let file = write(dir.path(), "env.yaml", &text);
    meshes().current_dir(dir.path()).args(["validate", &file]).assert().code(0);
    meshes()
        .args(["validate", "--check-env", &file])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("error[unset-env]"));
    meshes()
        .args(["validate", "--check-env", &file])
        .env("MESHES_FIXTURE_UNSET_TOKEN", "pat-na1-from-env")
        .assert()
        .code(0);
}

/// A value behind `${VAR}` is checked like a literal once `--check-env`
/// knows it, located at its field and never printed when it is a secret.
#[test]
fn check_env_checks_the_values_of_variables() {
    let dir = tempfile::tempdir().unwrap();
    let text = "version: 1\nworkspace: { id: 3f216741-15dd-4e46-b5ac-0077a2640e89, name: t, publishable_key: mesh_pub_t }\n\
                connections:\n  hook:\n    type: webhook\n    url: \"${HOOK_URL}\"\n    signing_secret: \"${HOOK_SECRET}\"\n\
                rules:\n  - { id: r, event: user.signup, connection: hook, metadata: { action: send_webhook } }\n";
    let file = write(dir.path(), "hook.yaml", text);
    let run = |url: &str, secret: &str, check_env: bool| {
        let mut cmd = meshes();
        cmd.arg("validate").args(check_env.then_some("--check-env")).arg(&file);
        cmd.env("HOOK_URL", url).env("HOOK_SECRET", secret).assert()
    };
    let good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    run("https://example.com/h", good, true).code(0).stdout("");
    run("https://example.com/h", "whsec_c2hvcnQtU0VDUkVU", false).code(0);
    let out = run("nope", "whsec_c2hvcnQtU0VDUkVU", true).code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        stdout.contains(":6:10: error[invalid-value]: connections.hook.url: not a URL"),
        "{stdout}"
    );
    assert!(stdout.contains(":7:21: error[invalid-value]: connections.hook.signing_secret: the key is shorter than 24 bytes"), "{stdout}");
    assert!(!stdout.contains("c2hvcnQt") && !stdout.contains("nope"), "{stdout}");
}

#[test]
fn github_format_prints_escaped_annotations() {
    meshes()
        .args(["validate", "--format", "github", &format!("{FIXTURES}/unknown-action.yaml")])
        .assert()
        .code(1)
        .stdout(predicate::str::starts_with(
            "::error file=tests/fixtures/invalid/unknown-action.yaml,line=9,col=72,title=meshes error[unknown-action]::rules[0].metadata.action: connection `crm` (hubspot) has no action `add_tag`",
        ));
    meshes()
        .args(["validate", "--format", "github", &format!("{FIXTURES}/warnings.yaml")])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("::warning file=")
                .and(predicate::str::contains("::error").not()),
        );
}

#[test]
fn json_format_is_machine_readable() {
    let out = meshes()
        .args(["validate", "--format", "json", &format!("{FIXTURES}/missing-metadata.yaml")])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"], 4);
    let first = &json["diagnostics"][0];
    assert_eq!(first["code"], "missing-metadata");
    assert_eq!(first["severity"], "error");
    assert_eq!((first["line"].as_u64(), first["column"].as_u64()), (Some(11), Some(62)));
    assert_eq!(first["path"], "rules[0].metadata");
}

#[test]
fn directories_validate_every_config_and_skip_other_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("meshes.yaml", dir.path().join("a.yaml")).unwrap();
    write(dir.path(), "workflow.yml", "on: push\njobs: {}\n");
    meshes().args(["validate", dir.path().to_str().unwrap()]).assert().code(0).stderr(
        predicate::str::contains("note: skipped").and(predicate::str::contains("workflow.yml")),
    );
    let empty = tempfile::tempdir().unwrap();
    meshes()
        .args(["validate", empty.path().to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no meshes config found"));
}

#[test]
fn a_compose_file_beside_a_config_is_skipped_but_an_emptied_config_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("meshes.yaml", dir.path().join("meshes.yaml")).unwrap();
    write(dir.path(), "docker-compose.yml", "version: \"3.8\"\nservices:\n  app: { image: x }\n");
    let path = dir.path().to_str().unwrap();
    meshes().args(["validate", path]).assert().code(0).stderr(
        predicate::str::contains("note: skipped").and(predicate::str::contains("docker-compose")),
    );
    let b = write(dir.path(), "b.yaml", "# emptied\n\n");
    meshes()
        .args(["validate", path])
        .assert()
        .code(1)
        .stdout(format!("{b}:1:1: error[empty-file]: (root): the file is empty (nothing but whitespace and comments): a config cut short or half written; write the config, or delete the file to remove its workspace\n"))
        .stderr(predicate::str::contains("invalid: 1 error(s), 0 warning(s) in 2 file(s)"));
}

/// A directory with a config that has an error and a file that is not UTF-8.
fn unreadable_beside_invalid() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    std::fs::copy(format!("{FIXTURES}/unknown-connection.yaml"), &a).unwrap();
    let c = dir.path().join("c.yaml");
    std::fs::write(&c, b"version: 1\nworkspace: caf\xe9\n").unwrap();
    (dir, a.display().to_string(), c.display().to_string())
}

#[test]
fn an_unreadable_file_is_a_located_error_beside_the_others() {
    let (dir, a, c) = unreadable_beside_invalid();
    meshes()
        .args(["validate", dir.path().to_str().unwrap()])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains(format!(
                "{c}:2:15: error[unreadable-file]: (root): the file is not UTF-8 (byte 0xe9 here)"
            ))
            .and(predicate::str::contains(format!("{a}:9:47: error[unknown-connection]"))),
        )
        .stderr(predicate::str::contains("invalid: 2 error(s)"));
    meshes().args(["validate", "--format", "github", &c]).assert().code(1).stdout(
        predicate::str::starts_with(format!(
            "::error file={c},line=2,col=15,title=meshes error[unreadable-file]::"
        )),
    );
}

#[test]
fn json_reports_unreadable_files() {
    let (dir, a, c) = unreadable_beside_invalid();
    let out = meshes()
        .args(["validate", "--format", "json", dir.path().to_str().unwrap()])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["errors"], 2);
    // Counted by the human summary ("in 2 file(s)"), so listed here too.
    assert_eq!(json["files"], serde_json::json!([a, c]));
    let d = &json["diagnostics"];
    assert_eq!(
        (d[0]["file"].as_str(), d[0]["code"].as_str()),
        (Some(c.as_str()), Some("unreadable-file"))
    );
    assert_eq!(
        (d[1]["file"].as_str(), d[1]["code"].as_str()),
        (Some(a.as_str()), Some("unknown-connection"))
    );
}

#[test]
fn timings_report_each_phase() {
    meshes()
        .args(["validate", "--timings", "meshes.yaml"])
        .assert()
        .code(0)
        .stderr(predicate::str::is_match(r"timings: parse [0-9.]+ ms, schema [0-9.]+ ms, semantic [0-9.]+ ms, total [0-9.]+ ms \(2 rule\(s\)\)").unwrap());
}

#[test]
fn secrets_never_appear_in_output() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("meshes.yaml").unwrap().replace(
        "connection: stdout\n    metadata: { action: log }\n  - id: paid-log",
        "connection: nowhere\n    metadata: { action: log }\n  - id: paid-log",
    );
    let file = write(dir.path(), "m.yaml", &text);
    for format in ["human", "github", "json"] {
        let out = meshes()
            .args(["validate", "--check-env", "--format", format, &file])
            .env("MESHES_SECRET_KEY", "super-secret-value-123")
            .assert()
            .code(1)
            .get_output()
            .clone();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("unknown connection `nowhere`"), "{all}");
        assert!(!all.contains("super-secret-value-123"), "secret leaked in {format}: {all}");
    }
}

/// Validates `files` (written to a fresh directory) in every format and
/// returns all output, asserting none of `secrets` appears in it.
fn assert_hidden(files: &[(&str, &str)], env: &[(&str, &str)], secrets: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = files.iter().map(|(n, t)| write(dir.path(), n, t)).collect();
    let mut all = String::new();
    for format in ["human", "github", "json"] {
        let out = meshes()
            .args(["validate", "--format", format])
            .args(&paths)
            .envs(env.iter().copied())
            .assert()
            .code(1)
            .get_output()
            .clone();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in secrets {
            assert!(!text.contains(secret), "`{secret}` leaked in {format}: {text}");
        }
        all.push_str(&text);
    }
    all
}

const HEAD: &str =
    "version: 1\nworkspace:\n  id: 3f216741-15dd-4e46-b5ac-0077a2640e89\n  name: w\n";

#[test]
fn secrets_written_as_numbers_are_described_not_echoed() {
    let text = format!(
        "{HEAD}  publishable_key: pk\nmachine_keys:\n  - {{ access_key: ak, secret: 987654321987654 }}\nconnections:\n  hooks: {{ type: webhook, url: https://example.com, signing_secret: 424242424242 }}\n"
    );
    let all = assert_hidden(&[("m.yaml", &text)], &[], &["987654321987654", "424242424242"]);
    assert!(all.contains("a number (hidden: this field holds a secret)"), "{all}");
}

#[test]
fn a_token_pasted_inside_braces_is_not_printed() {
    let text = format!(
        "{HEAD}  publishable_key: pk\nmachine_keys:\n  - {{ access_key: ak, secret: \"${{sk_live-SECRETVALUE42}}\" }}\n"
    );
    let all = assert_hidden(&[("m.yaml", &text)], &[], &["SECRETVALUE42", "sk_live"]);
    assert!(all.contains("invalid variable name"), "{all}");
}

#[test]
fn duplicate_keys_are_named_by_place_not_by_resolved_value() {
    let one = format!(
        "{HEAD}  publishable_key: ${{PK}}\nmachine_keys:\n  - {{ access_key: \"${{AK1}}\", secret: s }}\n  - {{ access_key: \"${{AK2}}\", secret: s }}\n"
    );
    let two = one.replace("0077a2640e89", "0077a2640e8a").replace("${AK2}", "other");
    let env = [
        ("PK", "pk-resolved-value-77"),
        ("AK1", "ak-resolved-value-88"),
        ("AK2", "ak-resolved-value-88"),
    ];
    let all = assert_hidden(
        &[("a.yaml", &one), ("b.yaml", &two)],
        &env,
        &["pk-resolved-value-77", "ak-resolved-value-88"],
    );
    // Within one file (AK1 and AK2 resolve alike) and across files (PK, AK1).
    assert!(all.contains("a.yaml:8:19: error[duplicate-id]"), "{all}");
    assert!(all.contains("b.yaml:5:20: error[duplicate-publishable-key]"), "{all}");
    assert!(all.contains("b.yaml:7:19: error[duplicate-id]"), "{all}");
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let committed = std::fs::read_to_string("schema/meshes.schema.json").unwrap();
    meshes().arg("schema").assert().code(0).stdout(committed);
}
