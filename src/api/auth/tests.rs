//! Unit tests of `api::auth`: one per way a credential is refused.

use super::*;
use serde_json::json;

const NOW: u64 = 1_800_000_000;
const ISS_A: &str = "urn:meshes:m2m:mk_a";

fn ring() -> KeyRing {
    KeyRing::new(
        vec![("mesh_pub_a".into(), "ws-a".into()), ("mesh_pub_b".into(), "ws-b".into())],
        vec![
            MachineCredential {
                access_key: "mk_a".into(),
                secret: b"secret-a".to_vec(),
                workspace: "ws-a".into(),
            },
            MachineCredential {
                access_key: "mk_b".into(),
                secret: b"secret-b".to_vec(),
                workspace: "ws-b".into(),
            },
        ],
    )
    .unwrap()
}

fn with_header(name: &str, value: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_bytes(value).unwrap(),
    );
    h
}

fn bearer(token: &str) -> HeaderMap {
    with_header("authorization", format!("Bearer {token}").as_bytes())
}

/// The 401 message for `headers`; also checks it leaks neither token nor secret.
fn rejected(headers: &HeaderMap) -> String {
    match ring().authenticate(headers, NOW) {
        Err(ApiError::Unauthorized(m)) => {
            assert!(!m.contains("secret-"), "{m}");
            if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                let token = auth.trim_start_matches("Bearer ");
                assert!(token.len() < 8 || !m.contains(token), "message echoes the token: {m}");
            }
            m
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

fn err(token: &str) -> String {
    rejected(&bearer(token))
}

/// Signs any header and claims with HS256, as an attacker holding `secret` could.
fn forge(header: Value, claims: Value, secret: &[u8]) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", enc(&header), enc(&claims));
    let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    m.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
}

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "kid": "mk_a"})
}

fn claims(iss: &str, aud: &str, iat: u64, exp: u64) -> Value {
    json!({"iss": iss, "aud": aud, "iat": iat, "exp": exp})
}

#[test]
fn minted_token_verifies_and_names_its_workspace() {
    let p = ring().authenticate(&bearer(&mint_jwt("mk_b", b"secret-b", NOW, 60)), NOW).unwrap();
    assert_eq!(p, Principal::Machine { workspace: "ws-b".into(), access_key: "mk_b".into() });
    assert_eq!((p.workspace(), p.rate_key().as_str()), ("ws-b", "mk:mk_b"));
    assert!(p.require_machine().is_ok());
    // Scheme is case-insensitive; an `aud` array and extra claims (hosted `org`) are fine.
    let lower = format!("bearer {}", mint_jwt("mk_a", b"secret-a", NOW, 30));
    assert!(ring().authenticate(&with_header("authorization", lower.as_bytes()), NOW).is_ok());
    let c =
        json!({"iss": ISS_A, "aud": ["x", "meshes-api"], "org": "o", "iat": NOW, "exp": NOW + 30});
    assert!(ring().authenticate(&bearer(&forge(hs256(), c, b"secret-a")), NOW).is_ok());
}

#[test]
fn missing_credentials() {
    assert_eq!(
        rejected(&HeaderMap::new()),
        "missing credentials: send X-Meshes-Publishable-Key or Authorization: Bearer <jwt>"
    );
}

#[test]
fn malformed_authorization_header() {
    for value in
        [&b"Basic dXNlcjpwYXNz"[..], b"Bearer", b"", b"Bearer \xff\xfe", b"token-without-scheme"]
    {
        assert!(rejected(&with_header("authorization", value)).contains("malformed Authorization"));
    }
    assert!(err("a.b").contains("malformed JWT"));
    assert!(err("a.b.c.d").contains("malformed JWT"));
    assert!(err("").contains("malformed Authorization"));
    assert!(err("!!!.e30.sig").contains("malformed JWT header"));
    assert!(err(&"x".repeat(100_000)).contains("longer than 4096 bytes"));
}

#[test]
fn unknown_kid() {
    // The same answer as a wrong signature: it does not tell which keys exist.
    let unknown = err(&mint_jwt("mk_zzz", b"secret-a", NOW, 60));
    assert_eq!(unknown, err(&mint_jwt("mk_a", b"wrong", NOW, 60)));
    assert!(unknown.contains("not a configured access key"), "{unknown}");
    let no_kid =
        forge(json!({"alg": "HS256"}), claims(ISS_A, AUDIENCE, NOW, NOW + 30), b"secret-a");
    assert!(err(&no_kid).contains("no `kid`"));
}

#[test]
fn alg_none_built_by_hand_is_refused() {
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"mk_a"}"#);
    let c = URL_SAFE_NO_PAD.encode(claims(ISS_A, AUDIENCE, NOW, NOW + 30).to_string());
    assert_eq!(
        err(&format!("{h}.{c}.")),
        "unsupported JWT algorithm `none`: only HS256 is accepted"
    );
}

#[test]
fn algs_other_than_hs256_are_refused() {
    for alg in ["HS384", "HS512", "RS256", "ES256", "hs256"] {
        let token = forge(
            json!({"alg": alg, "kid": "mk_a"}),
            claims(ISS_A, AUDIENCE, NOW, NOW + 30),
            b"secret-a",
        );
        assert!(err(&token).contains(&format!("unsupported JWT algorithm `{alg}`")), "{alg}");
    }
    let odd = forge(
        json!({"alg": "<script>", "kid": "mk_a"}),
        claims(ISS_A, AUDIENCE, NOW, NOW + 30),
        b"secret-a",
    );
    assert_eq!(err(&odd), "unsupported JWT algorithm: only HS256 is accepted");
    let none = forge(json!({"kid": "mk_a"}), claims(ISS_A, AUDIENCE, NOW, NOW + 30), b"secret-a");
    assert!(err(&none).contains("no `alg`"));
}

#[test]
fn bad_signature() {
    assert_eq!(err(&mint_jwt("mk_a", b"wrong", NOW, 60)), NOT_VERIFIED);
    let token = mint_jwt("mk_a", b"secret-a", NOW, 60);
    let (input, _) = token.rsplit_once('.').unwrap();
    assert!(err(&format!("{input}.@@@")).contains("malformed JWT signature"));
    // Claims edited after signing: the signature no longer matches.
    let tampered =
        format!("{}.{}", input.split('.').next().unwrap(), URL_SAFE_NO_PAD.encode(b"{}"));
    assert_eq!(err(&format!("{tampered}.{}", token.rsplit('.').next().unwrap())), NOT_VERIFIED);
}

#[test]
fn another_workspaces_secret_does_not_validate_this_kid() {
    assert_eq!(err(&mint_jwt("mk_a", b"secret-b", NOW, 60)), NOT_VERIFIED);
}

#[test]
fn wrong_iss() {
    let token = forge(hs256(), claims("urn:meshes:m2m:mk_b", AUDIENCE, NOW, NOW + 30), b"secret-a");
    assert!(err(&token).contains("`iss` must be urn:meshes:m2m:"));
}

#[test]
fn wrong_aud() {
    let token = forge(hs256(), claims(ISS_A, "other-api", NOW, NOW + 30), b"secret-a");
    assert_eq!(err(&token), "JWT `aud` must be meshes-api");
}

#[test]
fn expired_beyond_the_skew() {
    // exp = now - 4 is within the 5 s skew; exp = now - 5 is not.
    assert!(
        ring().authenticate(&bearer(&mint_jwt("mk_a", b"secret-a", NOW - 64, 60)), NOW).is_ok()
    );
    assert!(err(&mint_jwt("mk_a", b"secret-a", NOW - 65, 60)).contains("expired"));
}

#[test]
fn iat_in_the_future_beyond_the_skew() {
    assert!(ring().authenticate(&bearer(&mint_jwt("mk_a", b"secret-a", NOW + 5, 30)), NOW).is_ok());
    assert_eq!(err(&mint_jwt("mk_a", b"secret-a", NOW + 6, 30)), "JWT `iat` is in the future");
}

#[test]
fn lifetime_over_sixty_seconds() {
    assert!(ring().authenticate(&bearer(&mint_jwt("mk_a", b"secret-a", NOW, 60)), NOW).is_ok());
    assert!(
        err(&mint_jwt("mk_a", b"secret-a", NOW, 61)).contains("lifetime (`exp` - `iat`) is 61 s")
    );
    let backwards = forge(hs256(), claims(ISS_A, AUDIENCE, NOW, NOW - 1), b"secret-a");
    assert_eq!(err(&backwards), "JWT `exp` is before `iat`");
}

#[test]
fn missing_exp() {
    let token = forge(hs256(), json!({"iss": ISS_A, "aud": AUDIENCE, "iat": NOW}), b"secret-a");
    assert_eq!(err(&token), "JWT has no `exp` claim");
}

#[test]
fn missing_or_non_integer_iat() {
    let token =
        forge(hs256(), json!({"iss": ISS_A, "aud": AUDIENCE, "exp": NOW + 30}), b"secret-a");
    assert_eq!(err(&token), "JWT has no `iat` claim");
    let token = forge(
        hs256(),
        json!({"iss": ISS_A, "aud": AUDIENCE, "iat": "now", "exp": NOW + 30}),
        b"secret-a",
    );
    assert!(err(&token).contains("`iat` must be whole seconds"));
}

#[test]
fn extreme_times_do_not_overflow() {
    let token = forge(hs256(), claims(ISS_A, AUDIENCE, u64::MAX, u64::MAX), b"secret-a");
    assert!(err(&token).contains("future"));
    let near_end = forge(hs256(), claims(ISS_A, AUDIENCE, u64::MAX - 10, u64::MAX), b"secret-a");
    assert!(ring().authenticate(&bearer(&near_end), u64::MAX - 10).is_ok());
}

#[test]
fn publishable_keys_authenticate_by_value() {
    let p = ring().authenticate(&with_header(PUBLISHABLE_HEADER, b"mesh_pub_b"), NOW).unwrap();
    assert_eq!(p, Principal::Publishable { workspace: "ws-b".into() });
    assert_eq!(p.rate_key(), "pk:ws-b");
    assert_eq!(
        rejected(&with_header(PUBLISHABLE_HEADER, b"mesh_pub_c")),
        "unknown publishable key"
    );
    assert_eq!(rejected(&with_header(PUBLISHABLE_HEADER, b"mesh_pub_")), "unknown publishable key");
    assert_eq!(rejected(&with_header(PUBLISHABLE_HEADER, b"")), "empty X-Meshes-Publishable-Key");
    assert_eq!(rejected(&with_header(PUBLISHABLE_HEADER, b"\xff\x80")), "unknown publishable key");
}

#[test]
fn publishable_principal_cannot_use_machine_routes() {
    let p = ring().authenticate(&with_header(PUBLISHABLE_HEADER, b"mesh_pub_a"), NOW).unwrap();
    match p.require_machine() {
        Err(ApiError::Forbidden(m)) => {
            assert!(m.contains("publishable keys can only send events; use a machine key JWT"))
        }
        other => panic!("expected 403, got {other:?}"),
    }
}

#[test]
fn both_credentials_is_a_400() {
    let mut both = bearer(&mint_jwt("mk_a", b"secret-a", NOW, 60));
    both.insert(PUBLISHABLE_HEADER, HeaderValue::from_static("mesh_pub_a"));
    match ring().authenticate(&both, NOW) {
        Err(ApiError::BadRequest { message, .. }) => {
            assert!(message.contains("not both"), "{message}")
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

#[test]
fn debug_never_shows_secrets_or_keys() {
    let shown = format!("{:?}", ring());
    assert!(!shown.contains("secret-a") && !shown.contains("mesh_pub_a"), "{shown}");
    assert!(shown.contains("mk_a") && shown.contains("<redacted>"), "{shown}");
}

#[test]
fn rate_limit_answers_429_with_retry_after_once_the_burst_is_spent() {
    let limits = RateLimits::new(1, 2);
    assert!(limits.check("k".into()).is_ok());
    assert!(limits.check("k".into()).is_ok());
    match limits.check("k".into()) {
        Err(ApiError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
        other => panic!("expected 429, got {other:?}"),
    }
    assert!(limits.check("other".into()).is_ok(), "buckets are per credential");
    let zero = RateLimits::new(0, 0);
    assert!(zero.check("z".into()).is_ok());
    assert!(matches!(zero.check("z".into()), Err(ApiError::RateLimited { .. })));
}

fn cred(access_key: &str, workspace: &str) -> MachineCredential {
    let secret = b"secret-x".to_vec();
    MachineCredential { access_key: access_key.into(), secret, workspace: workspace.into() }
}

fn pk(key: &str, workspace: &str) -> (String, String) {
    (key.into(), workspace.into())
}

/// Serving drops surrounding whitespace, so `mk_alpha\n` is `mk_alpha`:
/// keeping the first of the two would let ws-a's token stand for ws-b's
/// key, or leave ws-b's key dead.
#[test]
fn a_ring_refuses_keys_that_collide_once_trimmed() {
    let machine = vec![cred("mk_alpha", "ws-a"), cred("mk_alpha\n", "ws-b")];
    let err = KeyRing::new(vec![], machine).unwrap_err();
    let expected = KeyRingError::DuplicateAccessKey { first: "ws-a".into(), second: "ws-b".into() };
    assert_eq!(err, expected);
    assert!(!err.to_string().contains("mk_alpha"), "{err}");
    let publishable = vec![pk("pk_a", "ws-a"), pk(" pk_a\t", "ws-b")];
    let err = KeyRing::new(publishable, vec![]).unwrap_err();
    let expected =
        KeyRingError::DuplicatePublishable { first: "ws-a".into(), second: "ws-b".into() };
    assert_eq!(err, expected);
}

#[test]
fn a_ring_refuses_blank_keys() {
    let err = KeyRing::new(vec![pk(" \n", "ws-a")], vec![]).unwrap_err();
    assert_eq!(err, KeyRingError::BlankPublishable { workspace: "ws-a".into() });
    let err = KeyRing::new(vec![], vec![cred("", "ws-b")]).unwrap_err();
    assert_eq!(err, KeyRingError::BlankAccessKey { workspace: "ws-b".into() });
}

#[test]
fn keys_serve_without_their_surrounding_whitespace() {
    let ring = KeyRing::new(vec![pk("pk_a\n", "ws-a")], vec![cred(" mk_x\n", "ws-a")]).unwrap();
    let p = ring.authenticate(&with_header(PUBLISHABLE_HEADER, b"pk_a"), NOW).unwrap();
    assert_eq!(p, Principal::Publishable { workspace: "ws-a".into() });
    let token = mint_jwt("mk_x", b"secret-x", NOW, 30);
    assert!(ring.authenticate(&bearer(&token), NOW).is_ok());
}

#[test]
fn an_empty_kid_is_refused_as_such() {
    for kid in ["", " "] {
        let header = json!({"alg": "HS256", "kid": kid});
        let claims = claims(ISSUER_PREFIX, AUDIENCE, NOW, NOW + 30);
        let message = err(&forge(header, claims, b"secret-a"));
        assert!(message.contains("no `kid` (the access key), or it is empty"), "{message}");
    }
}
