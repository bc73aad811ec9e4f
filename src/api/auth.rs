//! Who is calling: publishable keys (ingest only) and Meshes machine JWTs
//! (HS256, `kid` = access key, `iss = urn:meshes:m2m:<access key>`,
//! `aud = meshes-api`, lifetime ≤ 60 s), plus per-credential rate limits.
//!
//! JWTs are checked by hand rather than with a generic JWT library so that the
//! order is ours (alg, then `kid` lookup, then signature, then claims) and each
//! rejection can say precisely what is wrong. No message ever contains the
//! token or a secret.

use super::error::ApiError;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use std::num::NonZeroU32;
use subtle::ConstantTimeEq;

/// Longest JWT lifetime (`exp - iat`) accepted.
pub const MAX_LIFETIME_SECS: u64 = 60;
/// Clock skew tolerated on `exp` and `iat`.
pub const SKEW_SECS: u64 = 5;
/// JWT audience.
pub const AUDIENCE: &str = "meshes-api";
/// JWT issuer prefix; the access key follows.
pub const ISSUER_PREFIX: &str = "urn:meshes:m2m:";
/// Header carrying a publishable key.
pub const PUBLISHABLE_HEADER: &str = "x-meshes-publishable-key";
/// A Meshes token is a few hundred bytes; anything far longer is not one and
/// is refused before any decoding work.
const MAX_TOKEN_LEN: usize = 4096;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A publishable key: may only send events.
    Publishable {
        /// Its workspace.
        workspace: String,
    },
    /// A machine key (verified JWT).
    Machine {
        /// Its workspace.
        workspace: String,
        /// The access key (`kid`).
        access_key: String,
    },
}

impl Principal {
    /// The workspace the credential belongs to.
    pub fn workspace(&self) -> &str {
        match self {
            Principal::Publishable { workspace } | Principal::Machine { workspace, .. } => {
                workspace
            }
        }
    }

    /// 403 for publishable keys, which are public and may only send events.
    pub fn require_machine(&self) -> Result<(), ApiError> {
        match self {
            Principal::Machine { .. } => Ok(()),
            Principal::Publishable { .. } => Err(ApiError::Forbidden(
                "publishable keys can only send events; use a machine key JWT (Authorization: Bearer)"
                    .into(),
            )),
        }
    }

    /// The rate-limit bucket: one per credential (a workspace has one publishable key).
    pub fn rate_key(&self) -> String {
        match self {
            Principal::Publishable { workspace } => format!("pk:{workspace}"),
            Principal::Machine { access_key, .. } => format!("mk:{access_key}"),
        }
    }
}

/// A machine key's verification material. `Debug` never shows the secret.
#[derive(Clone)]
pub struct MachineCredential {
    /// The access key (`kid`).
    pub access_key: String,
    /// UTF-8 bytes of the configured secret.
    pub secret: Vec<u8>,
    /// Its workspace.
    pub workspace: String,
}

impl std::fmt::Debug for MachineCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineCredential")
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("workspace", &self.workspace)
            .finish()
    }
}

/// All credentials of the config in force; immutable, rebuilt on every reload.
#[derive(Default)]
pub struct KeyRing {
    publishable: Vec<(String, String)>,
    machine: Vec<MachineCredential>,
}

impl std::fmt::Debug for KeyRing {
    /// Publishable keys are public by design, but still credentials: not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let workspaces: Vec<&str> = self.publishable.iter().map(|(_, ws)| ws.as_str()).collect();
        f.debug_struct("KeyRing")
            .field("publishable_workspaces", &workspaces)
            .field("machine", &self.machine)
            .finish()
    }
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: Option<String>,
    kid: Option<String>,
}

/// Times stay untyped so a missing claim and a non-integer one get different messages.
#[derive(Deserialize)]
struct Claims {
    iss: Option<Value>,
    aud: Option<Value>,
    iat: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
}

fn unauthorized(msg: impl Into<String>) -> ApiError {
    ApiError::Unauthorized(msg.into())
}

mod ring;
pub use ring::KeyRingError;

impl KeyRing {
    /// Reads `X-Meshes-Publishable-Key` or `Authorization: Bearer <jwt>`.
    /// Never panics, whatever the header bytes.
    pub fn authenticate(&self, headers: &HeaderMap, now_secs: u64) -> Result<Principal, ApiError> {
        match (headers.get(PUBLISHABLE_HEADER), headers.get(header::AUTHORIZATION)) {
            (Some(_), Some(_)) => Err(ApiError::field(
                "Authorization",
                "send either X-Meshes-Publishable-Key or Authorization, not both",
            )),
            (Some(key), None) => self.publishable(key.as_bytes()),
            (None, Some(auth)) => self.verify_jwt(bearer_token(auth)?, now_secs),
            (None, None) => Err(unauthorized(
                "missing credentials: send X-Meshes-Publishable-Key or Authorization: Bearer <jwt>",
            )),
        }
    }

    /// Compares against every key in constant time (there are few), so
    /// timing reveals neither which key matched nor how much of one did.
    fn publishable(&self, given: &[u8]) -> Result<Principal, ApiError> {
        if given.is_empty() {
            return Err(unauthorized("empty X-Meshes-Publishable-Key"));
        }
        let mut found: Option<&str> = None;
        for (key, workspace) in &self.publishable {
            let hit = bool::from(key.as_bytes().ct_eq(given));
            if hit && found.is_none() {
                found = Some(workspace);
            }
        }
        let workspace = found.ok_or_else(|| unauthorized("unknown publishable key"))?;
        Ok(Principal::Publishable { workspace: workspace.to_string() })
    }

    /// The machine credential whose access key is `kid`, compared with every
    /// key in constant time like the publishable keys: the access key is not
    /// a secret, but which keys exist, and how close a guess came, need not be
    /// told by timing either.
    fn machine_key(&self, kid: &str) -> Option<&MachineCredential> {
        let mut found = None;
        for m in &self.machine {
            let hit = bool::from(m.access_key.as_bytes().ct_eq(kid.as_bytes()));
            if hit && found.is_none() {
                found = Some(m);
            }
        }
        found
    }

    /// Alg first, then the key by `kid`, then the signature with *that* key's
    /// secret (so one workspace's secret never validates another's token), and
    /// only then the claims.
    fn verify_jwt(&self, token: &str, now: u64) -> Result<Principal, ApiError> {
        let (signing_input, signature) = token
            .rsplit_once('.')
            .ok_or_else(|| unauthorized("malformed JWT: expected header.claims.signature"))?;
        let (header_b64, claims_b64) = signing_input
            .split_once('.')
            .filter(|(_, c)| !c.contains('.'))
            .ok_or_else(|| unauthorized("malformed JWT: expected header.claims.signature"))?;
        let header: JwtHeader = decode_part(header_b64)
            .ok_or_else(|| unauthorized("malformed JWT header: expected base64url JSON"))?;
        check_alg(header.alg.as_deref())?;
        let kid = header.kid.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
            unauthorized("JWT header has no `kid` (the access key), or it is empty")
        })?;
        // An unknown `kid` fails like a wrong signature, after the same HMAC
        // work (against a secret nobody has): neither the answer nor its
        // timing tells which access keys exist.
        let cred = self.machine_key(&kid);
        let secret = cred.map_or(UNKNOWN_KEY_SECRET, |c| c.secret.as_slice());
        let checked = verify_signature(signing_input, signature, secret);
        let cred = cred.ok_or_else(|| unauthorized(NOT_VERIFIED))?;
        checked?;
        let claims: Claims = decode_part(claims_b64)
            .ok_or_else(|| unauthorized("malformed JWT claims: expected base64url JSON"))?;
        check_identity(&claims, &kid)?;
        check_times(&claims, now)?;
        Ok(Principal::Machine { workspace: cred.workspace.clone(), access_key: kid })
    }
}

/// The one answer to an unknown access key and to a wrong signature.
const NOT_VERIFIED: &str = "invalid JWT signature: the `kid` is not a configured access key, or \
     the token was not signed with that key's secret";

/// What a token naming an unknown access key is checked against, so that it
/// costs the same HMAC as a known one. Never matches: no token is signed with it
/// (a 64-byte key is hashed like any secret of that length).
const UNKNOWN_KEY_SECRET: &[u8] = &[0x5a; 64];

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(value: &HeaderValue) -> Result<&str, ApiError> {
    let malformed = || unauthorized("malformed Authorization header: expected `Bearer <jwt>`");
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN {
        return Err(unauthorized(format!("bearer token is longer than {MAX_TOKEN_LEN} bytes")));
    }
    Ok(token)
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// HS256 only: `none`, other HMAC sizes and asymmetric algs are all refused.
fn check_alg(alg: Option<&str>) -> Result<(), ApiError> {
    match alg {
        Some("HS256") => Ok(()),
        None => Err(unauthorized("JWT header has no `alg`; only HS256 is accepted")),
        // Echo the alg only when it looks like one, never arbitrary text.
        Some(a) if a.len() <= 16 && a.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Err(unauthorized(format!("unsupported JWT algorithm `{a}`: only HS256 is accepted")))
        }
        Some(_) => Err(unauthorized("unsupported JWT algorithm: only HS256 is accepted")),
    }
}

fn verify_signature(
    signing_input: &str,
    signature_b64: &str,
    secret: &[u8],
) -> Result<(), ApiError> {
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| unauthorized("malformed JWT signature: expected base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| ApiError::Internal("HMAC rejected a machine key secret".into()))?;
    mac.update(signing_input.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature).map_err(|_| unauthorized(NOT_VERIFIED))
}

fn check_identity(c: &Claims, kid: &str) -> Result<(), ApiError> {
    let iss_ok = c.iss.as_ref().and_then(Value::as_str).and_then(|s| s.strip_prefix(ISSUER_PREFIX))
        == Some(kid);
    if !iss_ok {
        return Err(unauthorized(format!(
            "JWT `iss` must be {ISSUER_PREFIX}<access key in `kid`>"
        )));
    }
    // RFC 7519 allows `aud` to be a string or an array of strings.
    let aud_ok = match &c.aud {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(a)) => a.iter().any(|v| v == AUDIENCE),
        _ => false,
    };
    if !aud_ok {
        return Err(unauthorized(format!("JWT `aud` must be {AUDIENCE}")));
    }
    Ok(())
}

fn check_times(c: &Claims, now: u64) -> Result<(), ApiError> {
    let iat = seconds(c.iat.as_ref(), "iat")?;
    let exp = seconds(c.exp.as_ref(), "exp")?;
    // Expired when `exp <= now`, with our clock allowed to run SKEW_SECS ahead.
    if exp.saturating_add(SKEW_SECS) <= now {
        return Err(unauthorized("JWT has expired (`exp` is in the past)"));
    }
    if iat > now.saturating_add(SKEW_SECS) {
        return Err(unauthorized("JWT `iat` is in the future"));
    }
    if exp < iat {
        return Err(unauthorized("JWT `exp` is before `iat`"));
    }
    // `nbf` is optional, but when present it is honoured (RFC 7519 §4.1.5).
    if c.nbf.is_some() && seconds(c.nbf.as_ref(), "nbf")? > now.saturating_add(SKEW_SECS) {
        return Err(unauthorized("JWT is not valid yet (`nbf` is in the future)"));
    }
    let lifetime = exp - iat;
    if lifetime > MAX_LIFETIME_SECS {
        return Err(unauthorized(format!(
            "JWT lifetime (`exp` - `iat`) is {lifetime} s; at most {MAX_LIFETIME_SECS} s is accepted"
        )));
    }
    Ok(())
}

/// A time claim: present, and whole seconds since the epoch.
fn seconds(v: Option<&Value>, name: &str) -> Result<u64, ApiError> {
    let v = v.ok_or_else(|| unauthorized(format!("JWT has no `{name}` claim")))?;
    v.as_u64().ok_or_else(|| {
        unauthorized(format!("JWT `{name}` must be whole seconds since the Unix epoch"))
    })
}

/// Mints a token exactly as the Meshes SDKs do (for tests and `meshes token`).
/// The hosted product's `org` claim is omitted: a self-hosted gateway has no
/// organisations, and verification ignores claims it does not need.
pub fn mint_jwt(access_key: &str, secret: &[u8], now_secs: u64, lifetime_secs: u64) -> String {
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": access_key});
    let claims = serde_json::json!({
        "iss": format!("{ISSUER_PREFIX}{access_key}"),
        "aud": AUDIENCE,
        "iat": now_secs,
        "exp": now_secs.saturating_add(lifetime_secs),
    });
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let signing_input = format!("{}.{}", enc(&header), enc(&claims));
    // HMAC takes keys of any length, so this never falls back to an empty signature.
    let sig = Hmac::<Sha256>::new_from_slice(secret).map(|mut m| {
        m.update(signing_input.as_bytes());
        m.finalize().into_bytes().to_vec()
    });
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.unwrap_or_default()))
}

/// Per-credential request budgets (a governor keyed limiter).
#[derive(Debug)]
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl RateLimits {
    /// `per_second` sustained, `burst` at once, per credential (zeros count as one).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        RateLimits {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// 429 with `Retry-After` (whole seconds, at least 1) when `key`'s budget is spent.
    /// (Owned, because the limiter's map is keyed by `String`: a `&str`
    /// would cost a copy per request.)
    pub fn check(&self, key: String) -> Result<(), ApiError> {
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            // Round up: coming back a fraction early only earns another 429.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::RateLimited { retry_after_secs: secs.max(1) }
        })
    }
}

#[cfg(test)]
mod tests;
