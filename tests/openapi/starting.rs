//! The answers of a gateway still loading its config and opening its
//! store: documented, and readable by a browser's script (CORS).

use super::{conforms, document, headers_documented};
use meshes::gateway::{GatewayOptions, start};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use support::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::support;

const ORIGIN: &str = "https://app.example";

/// Every documented operation, held in the starting phase, answers what
/// the document says for it: 200 `starting` on `/healthz`, the serving
/// preflight answers, and 503 with `Retry-After` everywhere else; the
/// ingest routes with their CORS headers, so a browser sees the 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_gateway_answers_as_documented_with_cors() {
    let gw = TestGateway::prepare(&webhook_config(&[("hook", "http://127.0.0.1:9")], "[0s]"));
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let open = meshes::store::db::file_opener();
    let mut opts =
        GatewayOptions::new(vec![config_path(gw.dir.path())], gw.dir.path().join("data"));
    opts.store_opener = Some(Arc::new(move |path: &Path| {
        // Until the probe is done; its end (or panic) drops the sender.
        let _ = held.lock().unwrap().recv();
        open(path)
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // `start` blocks in the opener on the test's own thread; the probe and
    // the accept loop run on the runtime's workers.
    let probe = tokio::spawn(probe_every_operation(base.clone(), release));
    let gateway = start(opts, listener, CancellationToken::new()).await.unwrap();
    let starting_preflight = probe.await.unwrap();
    // Preflights are answered the same way once serving.
    let serving_preflight = preflight(&reqwest::Client::new(), &base, "/api/v1/events").await;
    assert_eq!(starting_preflight, serving_preflight);
    gateway.stop().await;
}

/// Sends each documented operation once, checks its answer, and returns
/// the preflight answer of `/api/v1/events`.
async fn probe_every_operation(base: String, _release: std::sync::mpsc::Sender<()>) -> String {
    let doc = document();
    let http = reqwest::Client::new();
    let mut probed = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template.replace("{id}", WS).replace("{rule_id}", "r").replace("{name}", "t");
        for method in item.as_object().unwrap().keys() {
            probed += 1;
            if method == "options" {
                let answer = preflight(&http, &base, &path).await;
                assert!(answer.starts_with("200\n"), "{path}: {answer}");
                continue;
            }
            let (status, headers, body) = send(&http, method, &format!("{base}{path}")).await;
            conforms(&doc, method, template, status, &body);
            headers_documented(&doc, (method, template, status), &headers);
            if template == "/healthz" {
                assert_eq!((status, &body["status"]), (200, &"starting".into()));
                continue;
            }
            assert_eq!(status, 503, "{method} {path}: {body}");
            assert_eq!(headers.get("retry-after").unwrap(), "1", "{method} {path}");
            if method == "post" && ["/api/v1/events", "/api/v1/events/bulk"].contains(&&**template)
            {
                cors_readable(&headers, &format!("{method} {path}"));
            }
        }
    }
    assert_eq!(probed, 47, "every documented operation");
    preflight(&http, &base, "/api/v1/events").await
}

/// A browser's POST with a publishable key (whatever `method` is): the
/// status, headers and JSON body (or null) of the answer.
async fn send(http: &reqwest::Client, method: &str, url: &str) -> (u16, HeaderMap, Value) {
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let resp = http
        .request(m, url)
        .header("origin", ORIGIN)
        .header("x-meshes-publishable-key", PK)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

/// A browser's script may read the answer and its `Retry-After`.
fn cors_readable(headers: &HeaderMap, at: &str) {
    assert_eq!(headers.get("access-control-allow-origin").unwrap(), "*", "{at}");
    let exposed = headers.get("access-control-expose-headers").unwrap().to_str().unwrap();
    assert!(exposed.contains("retry-after"), "{at}: {exposed}");
}

/// A browser's preflight for a POST with a publishable key: the status and
/// the CORS headers, one per line.
async fn preflight(http: &reqwest::Client, base: &str, path: &str) -> String {
    let resp = http
        .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-meshes-publishable-key")
        .send()
        .await
        .unwrap();
    let mut lines = vec![resp.status().as_u16().to_string()];
    for (name, value) in resp.headers() {
        if name.as_str().starts_with("access-control-") || name == "vary" {
            lines.push(format!("{name}: {}", value.to_str().unwrap()));
        }
    }
    lines.join("\n")
}
