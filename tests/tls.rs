//! Outbound transport settings of the real binary. HTTPS to a destination
//! whose certificate comes from a private CA (`tests/fixtures/tls`): it
//! delivers with `--ca-file`, refuses without (the attempt's error names the
//! flag), and will not start on a `--ca-file` it cannot use. A proxy from
//! `HTTP_PROXY`: requests go through it, and an attempt that fails names it,
//! never its password.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio_rustls::rustls::{self, pki_types};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

/// An HTTPS receiver on loopback with the private CA's certificate; every
/// request body it gets.
struct TlsReceiver {
    url: String,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

async fn tls_receiver() -> TlsReceiver {
    use pki_types::pem::PemObject;
    let certs = pki_types::CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = pki_types::PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let seen = bodies.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            // A handshake the client refuses just ends this connection.
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            seen.lock().unwrap().push(body);
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let conn = hyper::server::conn::http1::Builder::new();
                let _ = conn.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    TlsReceiver { url, bodies }
}

/// The real binary on a config whose one webhook is `url`.
fn serve(dir: &Path, url: &str, extra: &[&str]) -> Server {
    serve_env(dir, url, extra, &[])
}

/// [`serve`] with environment variables.
fn serve_env(dir: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(config_path(dir), webhook_config(&[("hook", url)], "[0s, 1h]")).unwrap();
    Server::spawn_with(dir, &config_path(dir), extra, env, false)
}

/// Posts one `user.hook` event; its id.
async fn post(http: &reqwest::Client, base: &str) -> String {
    let resp = http
        .post(format!("{base}/api/v1/events"))
        .header("x-meshes-publishable-key", PK)
        .json(&json!({"event": "user.hook", "payload": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["event"]["id"].as_str().unwrap().to_string()
}

/// The event's one delivery once it has had an attempt.
async fn attempted(http: &reqwest::Client, base: &str, id: &str) -> Value {
    eventually("the delivery's first attempt", Duration::from_secs(20), || async {
        let body: Value = http
            .get(format!("{base}/api/v1/events/{id}"))
            .bearer_auth(meshes::api::auth::mint_jwt(AK, SECRET.as_bytes(), now_secs(), 60))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let delivery = body["event"]["rule_events"][0].clone();
        (delivery["attempts"].as_u64() > Some(0)).then_some(delivery)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_destination_is_delivered_to_with_its_ca_file_only() {
    let rx = tls_receiver().await;
    let http = reqwest::Client::new();
    let ca = fixture("ca.pem");

    let trusting = tempfile::tempdir().unwrap();
    let mut server = serve(trusting.path(), &rx.url, &["--ca-file", ca.to_str().unwrap()]);
    let id = post(&http, &server.base).await;
    let delivery = attempted(&http, &server.base, &id).await;
    assert_eq!(delivery["status"], "completed", "{delivery}");
    let bodies = rx.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert!(String::from_utf8_lossy(&bodies[0]).contains(&id), "the receiver got the event");
    let lines = server.lines.lock().unwrap().join("\n");
    assert!(lines.contains("trusting extra certificate authorities"), "{lines}");
    server.kill();

    let default = tempfile::tempdir().unwrap();
    let mut server = serve(default.path(), &rx.url, &[]);
    let id = post(&http, &server.base).await;
    let delivery = attempted(&http, &server.base, &id).await;
    assert_eq!(delivery["status"], "retrying", "an untrusted certificate is retried: {delivery}");
    let error = delivery["last_error"].as_str().unwrap();
    assert!(error.contains("UnknownIssuer") && error.contains("--ca-file"), "{error}");
    assert_eq!(rx.bodies.lock().unwrap().len(), 1, "nothing reached the receiver without trust");
    server.kill();
}

/// `serve --ca-file PATH` that cannot be used: exit 2 (an I/O or usage
/// error, as in `actions` and `validate --check-remote`) before serving, and
/// the message names the file and what it should hold.
fn refused(path: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    std::fs::write(
        config_path(dir.path()),
        webhook_config(&[("hook", "http://127.0.0.1:9/")], "[0s]"),
    )
    .unwrap();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("meshes"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-watch", "--ca-file"])
        .arg(path)
        .arg("--config")
        .arg(config_path(dir.path()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains(&format!("--ca-file {}", path.display())), "{stderr}");
    assert!(!dir.path().join("data").exists(), "it stopped before opening the store");
    stderr
}

#[test]
fn a_ca_file_that_cannot_be_used_stops_serve_at_start() {
    let missing = refused(&fixture("no-such.pem"));
    assert!(missing.contains("cannot read it"), "{missing}");
    let key = refused(&fixture("server.key"));
    assert!(key.contains("holds no certificate") && key.contains("BEGIN CERTIFICATE"), "{key}");
    let dir = tempfile::tempdir().unwrap();
    let garbled = dir.path().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let bad = refused(&garbled);
    assert!(bad.contains("not valid PEM") || bad.contains("cannot be used"), "{bad}");
}

/// A forward proxy on loopback that answers every request itself: the
/// target and `Proxy-Authorization` of each request it got.
async fn forward_proxy() -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let auth = req.headers().get("proxy-authorization");
                    let auth = auth.and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    log.lock().unwrap().push((req.uri().to_string(), auth));
                    async { Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new()))) }
                });
                let conn = hyper::server::conn::http1::Builder::new();
                let _ = conn.serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    (port, seen)
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_from_the_environment_is_used_and_named_without_its_password() {
    let http = reqwest::Client::new();
    // Nothing listens at the destination: only the proxy can answer.
    let dest = format!("http://127.0.0.1:{}/hook", closed_port());
    let (port, seen) = forward_proxy().await;
    let proxy = format!("http://ops:hunter2@127.0.0.1:{port}");

    let dir = tempfile::tempdir().unwrap();
    let mut server = serve_env(dir.path(), &dest, &[], &[("HTTP_PROXY", proxy.as_str())]);
    let id = post(&http, &server.base).await;
    let delivery = attempted(&http, &server.base, &id).await;
    assert_eq!(delivery["status"], "completed", "delivered through the proxy: {delivery}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, dest, "the proxy got the destination in absolute form");
    assert_eq!(got[0].1, "Basic b3BzOmh1bnRlcjI=", "the proxy's own credentials (ops:hunter2)");
    let lines = server.lines.lock().unwrap().join("\n");
    assert!(lines.contains(&format!("http via http://127.0.0.1:{port}")), "{lines}");
    assert!(!lines.contains("hunter2"), "{lines}");
    server.kill();

    let down = format!("http://ops:hunter2@127.0.0.1:{}", closed_port());
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve_env(dir.path(), &dest, &[], &[("http_proxy", down.as_str())]);
    let id = post(&http, &server.base).await;
    let delivery = attempted(&http, &server.base, &id).await;
    assert_eq!(delivery["status"], "retrying", "{delivery}");
    let error = delivery["last_error"].as_str().unwrap();
    let named = format!("sent through the proxy {}", down.replace("ops:hunter2@", ""));
    assert!(error.contains(&named) && !error.contains("hunter2"), "{error}");
    let lines = server.lines.lock().unwrap().join("\n");
    assert!(!lines.contains("hunter2"), "{lines}");
    server.kill();
}
