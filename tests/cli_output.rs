//! The one-shot commands when their output cannot be written (a pipe
//! closed by `| head`, a full disk), `meshes token`'s credentials, and the
//! exit codes and output details of `validate` and `actions`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn meshes() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshes"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).stdin(Stdio::null());
    cmd
}

/// A pipe whose reader is gone before the command starts: every write
/// fails with EPIPE, as after `| head -1` has read its line.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// `/dev/full` (Linux): every write fails with ENOSPC.
#[cfg(target_os = "linux")]
fn full_disk() -> Stdio {
    std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap().into()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `args` with stdout to `stdout`, capturing stderr.
fn run(args: &[&str], stdout: Stdio) -> Output {
    meshes().args(args).stdout(stdout).stderr(Stdio::piped()).output().unwrap()
}

/// Commands that print on stdout, help and version (clap's) included.
const COMMANDS: [&[&str]; 6] = [
    &["schema"],
    &["openapi"],
    &["token", "--access-key", "ak", "--secret", "s"],
    &["--help"],
    &["serve", "--help"],
    &["--version"],
];

#[test]
fn a_closed_pipe_ends_printing_with_the_command_own_code() {
    for args in COMMANDS {
        let out = run(args, closed_pipe());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_an_io_error_with_a_message() {
    for args in COMMANDS {
        let out = run(args, full_disk());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            text(&out.stderr),
            "error: cannot write the output: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
}

/// `validate | head -1` on a config with thousands of errors still fails
/// the pipeline (exit 1), and says why on stderr.
#[test]
fn validate_with_errors_into_a_closed_pipe_still_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from(
        "version: 1\nworkspace: { id: 3f216741-15dd-4e46-b5ac-0077a2640e89, name: w, publishable_key: pk }\nrules:\n",
    );
    for i in 0..3000 {
        config.push_str(&format!(
            "  - {{ id: r{i}, event: e, connection: nowhere, metadata: {{ action: log }} }}\n"
        ));
    }
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, config).unwrap();
    let file = file.to_str().unwrap();
    for format in ["human", "github", "json"] {
        let out = run(&["validate", "--format", format, file], closed_pipe());
        assert_eq!(out.status.code(), Some(1), "{format}: {}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("panicked"), "{format}: {}", text(&out.stderr));
    }
    let out = run(&["validate", file], closed_pipe());
    assert!(text(&out.stderr).contains("invalid: 3000 error(s), 0 warning(s) in 1 file(s)"));
}

#[cfg(target_os = "linux")]
#[test]
fn validate_with_a_full_stderr_keeps_its_verdict() {
    let out = meshes().args(["validate", "meshes.yaml"]).stderr(full_disk()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let bad = "tests/fixtures/invalid/unknown-connection.yaml";
    let out = meshes().args(["validate", bad]).stderr(full_disk()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("error[unknown-connection]"));
}

/// The token as `meshes token` prints it, split into its three parts.
fn token(env_secret: &str, access_key: &str) -> Output {
    meshes()
        .args(["token", "--access-key", access_key])
        .env("MESHES_SECRET_KEY", env_secret)
        .output()
        .unwrap()
}

fn b64(part: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()
}

/// A secret from a Windows-edited env file ends in `\r`: the token is
/// signed with the secret the gateway holds (it trims), and the `kid` is
/// the trimmed key.
#[test]
fn token_trims_the_key_and_secret_as_the_gateway_does() {
    use hmac::Mac as _;
    let out = token("s3cret-value\r\n", " mk_1\r");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let jwt = text(&out.stdout);
    let (signed, signature) = jwt.trim_end().rsplit_once('.').unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-value").unwrap();
    mac.update(signed.as_bytes());
    mac.verify_slice(&b64(signature)).expect("signed with the trimmed secret");
    let header: serde_json::Value =
        serde_json::from_slice(&b64(signed.split('.').next().unwrap())).unwrap();
    assert_eq!(header["kid"], "mk_1");
}

#[test]
fn token_refuses_blank_credentials() {
    let out = token(" \r\n", "mk_1");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: the secret (--secret or MESHES_SECRET_KEY) is empty"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");
    let out = token("s3cret", "  ");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: the access key (--access-key or MESHES_ACCESS_KEY) is empty\n"
    );
}

/// `meshes actions` on the bundled `stdout` (a `log` connection, which has
/// nothing to list): the error names the connection once the config is loaded.
fn actions(dir: &Path, config: Option<&str>, env: Option<&str>) -> Output {
    let mut cmd = meshes();
    cmd.args(["actions", "stdout", "--data-dir"]).arg(dir.join("none"));
    cmd.args(config.map(|c| ["-c", c]).into_iter().flatten()).env_remove("MESHES_CONFIG");
    cmd.envs(env.map(|e| ("MESHES_CONFIG", e))).output().unwrap()
}

const LOADED: &str =
    "error: connection `stdout` (type `log`): this integration has no account data to list";

#[test]
fn a_comma_in_a_config_flag_is_part_of_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let comma = dir.path().join("my,conf.yaml");
    std::fs::copy("meshes.yaml", &comma).unwrap();
    let comma = comma.to_str().unwrap();
    let out = actions(dir.path(), Some(comma), None);
    assert!(text(&out.stderr).starts_with(LOADED), "{}", text(&out.stderr));
    // The variable is a list: a trailing comma is no extra path; the flag wins over it.
    let plain = dir.path().join("plain.yaml");
    std::fs::copy("meshes.yaml", &plain).unwrap();
    let out = actions(dir.path(), None, Some(&format!("{},", plain.display())));
    assert!(text(&out.stderr).starts_with(LOADED), "{}", text(&out.stderr));
    let out = actions(dir.path(), Some(comma), Some("missing.yaml"));
    assert!(text(&out.stderr).starts_with(LOADED), "{}", text(&out.stderr));
}

/// As in `validate`: a config path that does not exist is a usage error.
#[test]
fn actions_on_a_missing_config_exits_two_like_validate() {
    let dir = tempfile::tempdir().unwrap();
    let out = actions(dir.path(), Some("missing.yaml"), None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "error: cannot read missing.yaml: no such file or directory\n");
}

#[test]
fn a_file_given_twice_is_validated_once() {
    let out = meshes().args(["validate", "meshes.yaml", "./meshes.yaml", "."]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr).matches("ok: ").count(), 1, "{}", text(&out.stderr));
}

#[test]
fn a_ca_file_without_check_remote_is_said_to_be_ignored() {
    let out = meshes().args(["validate", "--ca-file", "ca.pem", "meshes.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).starts_with(
            "note: --ca-file ca.pem ignored: only --check-remote calls destinations\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// With `--deny-warnings` a warning fails the job: GitHub must show it as
/// the error it is, not as a warning beside a red check.
#[test]
fn denied_warnings_are_github_errors() {
    let file = "tests/fixtures/invalid/warnings.yaml";
    let out = meshes()
        .args(["validate", "--format", "github", "--deny-warnings", file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("::error file=")), "{stdout}");
    assert!(stdout.contains("title=meshes warning[literal-secret]::"), "{stdout}");
}
