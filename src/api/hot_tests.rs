//! The fast path answers every ingest request exactly as the router does:
//! same status, same headers (CORS included), same error bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use tower::ServiceExt;

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";
const PK: &str = "mesh_pub_hot";

/// Path, body and request headers.
type Case = (&'static str, &'static str, Vec<(&'static str, &'static str)>);

fn state(dir: &std::path::Path) -> AppState {
    let text = format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: {PK} }}\n\
         connections:\n  out:\n    type: log\n\
         rules:\n  - {{ id: r1, event: a, connection: out, metadata: {{ action: log }} }}\n"
    );
    crate::api::test_state(dir, text, Default::default())
}

/// POST `path` with `body` and the given extra headers.
fn post(path: &str, body: &'static str, headers: &[(&str, &str)]) -> Request {
    let mut b = Request::builder().method("POST").uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body)).unwrap()
}

/// Status, headers and body, with the fresh ids and times blanked.
async fn answer<S>(svc: S, req: Request) -> (StatusCode, HeaderMap, String)
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let resp = svc.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut text = String::from_utf8(bytes.to_vec()).unwrap();
    if parts.status == StatusCode::CREATED {
        text = String::new();
    }
    (parts.status, parts.headers, text)
}

#[tokio::test]
async fn fast_path_answers_like_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let json = ("content-type", "application/json");
    let key = ("x-meshes-publishable-key", PK);
    let origin = ("origin", "https://app.example");
    let one = r#"{"event":"a","payload":{"n":1}}"#;
    let huge: &'static str = Box::leak(" ".repeat(9 << 20).into_boxed_str());
    let cases: Vec<Case> = vec![
        ("/api/v1/events", one, vec![json, key]),
        ("/api/v1/events", one, vec![json, key, origin]),
        ("/api/v1/events", one, vec![json]),
        ("/api/v1/events", one, vec![key]),
        ("/api/v1/events", "{", vec![json, key, origin]),
        ("/api/v1/events", r#"{"event":7}"#, vec![json, key]),
        ("/api/v1/events", one, vec![("content-type", "text/plain"), key]),
        ("/api/v1/events", huge, vec![json, key]),
        ("/api/v1/events/bulk", huge, vec![json, key]),
        ("/api/v1/events/bulk", r#"[{"event":"a"},{"event":"a"}]"#, vec![json, key]),
        ("/api/v1/events/bulk", r#"{"event":"a"}"#, vec![json, key, origin]),
    ];
    for (path, body, headers) in cases {
        let via_router = answer(router(st.clone()), post(path, body, &headers)).await;
        let via_app = answer(app(st.clone()), post(path, body, &headers)).await;
        assert_eq!(via_app, via_router, "POST {path} {body} {headers:?}");
        assert_eq!(via_app.1["access-control-allow-origin"], "*", "{path} {headers:?}");
        assert_eq!(via_app.1["content-type"], "application/json", "{path} {headers:?}");
    }
    // A replayed idempotency key: created once, then replayed both ways.
    let again = || post("/api/v1/events", one, &[json, key, ("idempotency-key", "k1")]);
    let created = answer(router(st.clone()), again()).await;
    assert_eq!(created.0, StatusCode::CREATED);
    let via_router = answer(router(st.clone()), again()).await;
    let via_app = answer(app(st), again()).await;
    assert_eq!(via_app, via_router);
    assert_eq!(via_app.1["idempotent-replayed"], "true");
}

#[tokio::test]
async fn other_methods_and_paths_still_reach_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let preflight = || {
        Request::builder()
            .method("OPTIONS")
            .uri("/api/v1/events")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap()
    };
    let via_router = answer(router(st.clone()), preflight()).await;
    let via_app = answer(app(st.clone()), preflight()).await;
    assert_eq!(via_app, via_router);
    assert!(via_app.1.contains_key("access-control-allow-methods"));
    let trailing = || post("/api/v1/events/", "{}", &[]);
    let (status, _, _) = answer(app(st.clone()), trailing()).await;
    assert_eq!(status, answer(router(st), trailing()).await.0);
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A browser's script reads `Retry-After` on a 429 and `Idempotent-Replayed`
/// on a replay only if the answer exposes them: both ways, both routes.
#[tokio::test]
async fn retry_after_and_replays_are_exposed_to_browsers() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = state(dir.path());
    let json = ("content-type", "application/json");
    let key = ("x-meshes-publishable-key", PK);
    let origin = ("origin", "https://app.example");
    let exposed = |h: &HeaderMap| h["access-control-expose-headers"].to_str().unwrap().to_string();
    let one = r#"{"event":"a","payload":{"n":1}}"#;
    for (path, body) in [
        ("/api/v1/events", one),
        ("/api/v1/events/bulk", "[{\"event\":\"a\",\"payload\":{\"n\":1}}]"),
    ] {
        let again = || post(path, body, &[json, key, origin, ("idempotency-key", "k1")]);
        assert_eq!(answer(app(st.clone()), again()).await.0, StatusCode::CREATED);
        for (status, headers, _) in
            [answer(router(st.clone()), again()).await, answer(app(st.clone()), again()).await]
        {
            assert_eq!(status, StatusCode::CREATED);
            assert_eq!(headers["idempotent-replayed"], "true");
            assert_eq!(exposed(&headers), "retry-after,idempotent-replayed");
        }
    }
    st.limits = std::sync::Arc::new(crate::api::auth::RateLimits::new(1, 1));
    let again = || post("/api/v1/events", one, &[json, key, origin]);
    assert_eq!(answer(app(st.clone()), again()).await.0, StatusCode::CREATED);
    for (status, headers, _) in
        [answer(router(st.clone()), again()).await, answer(app(st.clone()), again()).await]
    {
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(headers.contains_key("retry-after"));
        assert_eq!(exposed(&headers), "retry-after,idempotent-replayed");
    }
}
