//! The `meshes serve` process: its log on a stderr that breaks or is not a
//! terminal, `MESHES_LOG` checked at start, and a signal during the start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{PK, PROXY_VARS, Receiver, eventually, listening_addr, webhook_config};

/// `meshes serve` on 127.0.0.1:0 with `config` and `dir/data`, the log at
/// `log`, stderr piped.
fn serve(dir: &Path, config: &Path, log: &str) -> Command {
    serve_on("127.0.0.1:0", dir, config, log)
}

fn serve_on(listen: &str, dir: &Path, config: &Path, log: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshes"));
    cmd.args(["serve", "--listen", listen, "--no-watch", "--config"]).arg(config);
    cmd.arg("--data-dir").arg(dir.join("data")).env("MESHES_LOG", log).env_remove("NO_COLOR");
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// A config with one webhook connection to `url`, written in `dir`.
fn config(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("meshes.yaml");
    std::fs::write(&path, webhook_config(&[("hook", url)], "[1s]")).unwrap();
    path
}

/// Stderr lines until the address the server reports, and that address.
fn until_serving(stderr: &mut BufReader<ChildStderr>) -> (Vec<String>, String) {
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(addr) = listening_addr(&line) {
            return (lines, addr);
        }
        lines.push(line);
    }
    panic!("meshes did not start:\n{}", lines.join("\n"));
}

/// A running `meshes serve`, killed if the test fails before it exits.
struct Running(Option<Child>);

impl Running {
    fn spawn(cmd: &mut Command) -> Running {
        Running(Some(cmd.spawn().unwrap()))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    fn sigterm(&self) {
        let pid = self.0.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    /// The exit code, waited for on a thread (at most 30 s).
    fn exit_code(&mut self) -> Option<i32> {
        let mut child = self.0.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let code = child.wait().unwrap().code();
            let _ = tx.send(code);
        });
        rx.recv_timeout(Duration::from_secs(30)).expect("meshes did not exit")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A log collector that goes away (the reader of the pipe closes) must not
/// stop the gateway: it answers, accepts and delivers events, and stops
/// cleanly on SIGTERM (it used to abort on the first log line after).
#[tokio::test]
async fn serve_outlives_a_closed_stderr() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &rx.url);
    let mut server = Running::spawn(&mut serve(dir.path(), &cfg, "debug"));
    let mut stderr = BufReader::new(server.child().stderr.take().unwrap());
    let (_, addr) = until_serving(&mut stderr);
    drop(stderr);
    let http = reqwest::Client::new();
    let health = http.get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let event = serde_json::json!({"event": "user.hook", "payload": {"email": "a@example.com"}});
    let accepted = http
        .post(format!("http://{addr}/api/v1/events"))
        .header("x-meshes-publishable-key", PK)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    rx.wait_for(1).await;
    let health = http.get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    server.sigterm();
    assert_eq!(server.exit_code(), Some(0));
}

/// Escape codes are for a terminal: a log file or a collector's pipe gets
/// plain text.
#[test]
fn the_log_to_a_pipe_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "http://127.0.0.1:9/hook");
    let mut server = Running::spawn(&mut serve(dir.path(), &cfg, "info"));
    let mut stderr = BufReader::new(server.child().stderr.take().unwrap());
    let (lines, _) = until_serving(&mut stderr);
    let serving = lines.iter().find(|l| l.contains("meshes is serving")).expect("logged");
    assert!(serving.contains(" INFO meshes::gateway::start: meshes is serving"), "{serving}");
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "{lines:#?}");
    server.sigterm();
    assert_eq!(server.exit_code(), Some(0));
}

/// A misspelt level used to be taken as a target name, and every line,
/// errors included, disappeared; a bad level fell back to `info`.
#[test]
fn a_bad_meshes_log_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "http://127.0.0.1:9/hook");
    for (spec, why) in [
        ("warnig", "`warnig` is not a log level"),
        ("meshes=loud", "`meshes=loud` is not a valid directive"),
    ] {
        let run = assert_cmd::Command::from_std(serve(dir.path(), &cfg, spec))
            .timeout(Duration::from_secs(30))
            .output();
        let out = run.unwrap();
        assert_eq!(out.status.code(), Some(2), "{spec}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!("error: MESHES_LOG={spec:?}: {why}");
        assert!(stderr.starts_with(&expected), "{stderr}");
        assert!(stderr.contains("(error|warn|info|debug|trace|off), `target=level`"), "{stderr}");
        assert!(!dir.path().join("data").exists(), "nothing started");
    }
}

/// A SIGTERM while the start is in progress (here: the config is a FIFO
/// nobody writes yet, as a long store repair would hold it) is logged,
/// lets the start finish and closes the store as after serving: exit 0,
/// not death by signal.
#[cfg(target_os = "linux")]
#[test]
fn a_signal_during_the_start_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("meshes.yaml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut server = Running::spawn(&mut serve(dir.path(), &fifo, "info"));
    let stderr = BufReader::new(server.child().stderr.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| loop {
        let line = lines.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            panic!("no `{what}` in the log:\n{}", seen.join("\n"));
        });
        seen.push(line.clone());
        if line.contains(what) {
            return seen.clone();
        }
    };
    wait_for("starting: loading the config and opening the store");
    server.sigterm();
    wait_for("shutting down before serving");
    // The start opens the FIFO when it gets there: the writer waits for it
    // on a thread of its own, so a gateway that never reads fails the
    // waits below instead of hanging the test.
    let text = webhook_config(&[("hook", "http://127.0.0.1:9/hook")], "[1s]");
    std::thread::spawn(move || std::fs::write(&fifo, text));
    let log = wait_for("stopped before serving");
    assert_eq!(server.exit_code(), Some(0), "{log:#?}");
    assert!(dir.path().join("data").join("meshes.redb").is_file());
    assert!(log.iter().all(|l| !l.contains("panicked")), "{log:#?}");
    assert!(log.iter().all(|l| !l.contains("meshes is serving")), "{log:#?}");
}

/// The port is the one thing the test cannot choose in advance with
/// stderr on `/dev/full`: a free one is taken from the OS first.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn serve_with_stderr_on_a_full_disk_serves() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "http://127.0.0.1:9/hook");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Running::spawn(serve_on(&listen, dir.path(), &cfg, "debug").stderr(full));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    eventually("/healthz answers 200", Duration::from_secs(20), || async {
        let status = http.get(&url).send().await.ok()?.status();
        (status == 200).then_some(())
    })
    .await;
    server.sigterm();
    assert_eq!(server.exit_code(), Some(0));
}
