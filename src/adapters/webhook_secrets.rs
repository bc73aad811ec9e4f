//! What a webhook adapter redacts from the receiver's answers: everything
//! it sends that is or may be a credential. A receiver that echoes the
//! request (an echo service, a debug error page, an API gateway) would
//! otherwise get them stored in the attempt log and served by the API.
//!
//! The rule: auth values and signing secrets always; every value that comes
//! from the environment (`${VAR}`); literal header values and URL query
//! values of at least [`LITERAL_MIN`] bytes; the URL password. Shorter
//! literals stay: they would scrub ordinary words from bodies, and no
//! credential is that short.

use super::{SigningSecrets, WebhookAuth, WebhookConfig};
use crate::adapters::Lookup;
use crate::adapters::redact::{Secrets, percent_decoded};
use crate::config::env::{Part, parse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Shortest literal value (written in the file) taken for a credential.
const LITERAL_MIN: usize = 8;

/// The redaction list of a webhook whose values all resolved (`resolve`
/// succeeded with the same `lookup`).
pub(super) fn secrets(cfg: &WebhookConfig, url: &reqwest::Url, lookup: Lookup<'_>) -> Secrets {
    let mut out = Vec::new();
    url_secrets(&cfg.url.0, url, lookup, &mut out);
    for template in cfg.headers.values() {
        header_secrets(&template.0, lookup, &mut out);
    }
    if let Some(auth) = &cfg.auth {
        auth_secrets(auth, lookup, &mut out);
    }
    let signing = match &cfg.signing_secret {
        None => &[][..],
        Some(SigningSecrets::One(s)) => std::slice::from_ref(s),
        Some(SigningSecrets::Many(v)) => v.as_slice(),
    };
    for s in signing {
        let value = resolved(s.template(), lookup);
        let value = value.trim();
        out.extend([value.to_string(), value.trim_start_matches("whsec_").to_string()]);
    }
    Secrets::default().with(out)
}

/// The template's value (empty if it does not resolve: `resolve` reported it).
fn resolved(template: &str, lookup: Lookup<'_>) -> String {
    crate::config::env::resolve(template, lookup).unwrap_or_default()
}

/// The values its `${VAR}` references take, untrimmed and trimmed.
fn var_values(template: &str, lookup: Lookup<'_>) -> Vec<String> {
    let Ok(parts) = parse(template) else { return Vec::new() };
    let mut out = Vec::new();
    for part in parts {
        if let Part::Var { name, default } = part {
            let value = lookup(name).filter(|v| !v.is_empty());
            if let Some(v) = value.or_else(|| default.map(str::to_string)) {
                out.push(v.trim().to_string());
                out.push(v);
            }
        }
    }
    out
}

/// The URL password, long query values, every `${VAR}` value and, for a
/// variable holding several parts (a whole URL or path), each of its parts
/// that looks like a token, so an echo of the path alone is caught too.
fn url_secrets(template: &str, url: &reqwest::Url, lookup: Lookup<'_>, out: &mut Vec<String>) {
    for value in var_values(template, lookup) {
        let parts = value.split(['/', '?', '&', '=', '@', ':']);
        out.extend(parts.filter(|p| token_like(p)).map(str::to_string));
        out.push(value);
    }
    out.extend(userinfo(url));
    for pair in url.query().unwrap_or_default().split('&') {
        let value = pair.split_once('=').map_or(pair, |(_, v)| v);
        if value.len() >= LITERAL_MIN {
            push_encoded(value, out);
        }
    }
}

/// A URL's user name and password, as written and decoded, and the
/// `Authorization: Basic` value the HTTP client sends them as (it takes
/// them out of the URL and decodes them first).
pub(crate) fn userinfo(url: &reqwest::Url) -> Vec<String> {
    let (user, password) = (url.username(), url.password());
    if user.is_empty() && password.is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    push_encoded(user, &mut out);
    push_encoded(password.unwrap_or_default(), &mut out);
    let pair = format!("{}:{}", out[0], out[2]);
    out.push(STANDARD.encode(pair));
    out
}

/// A value as sent (percent-encoded) and as a receiver may show it (decoded).
fn push_encoded(raw: &str, out: &mut Vec<String>) {
    out.push(String::from_utf8_lossy(&percent_decoded(raw)).into_owned());
    out.push(raw.to_string());
}

/// At least [`LITERAL_MIN`] bytes with both letters and digits: a token,
/// not a path word (`services`) or a host and port (`127.0.0.1:8080`).
fn token_like(part: &str) -> bool {
    part.len() >= LITERAL_MIN
        && part.bytes().any(|b| b.is_ascii_digit())
        && part.bytes().any(|b| b.is_ascii_alphabetic())
}

/// A header from the environment: its value and its variables' values. A
/// literal one of [`LITERAL_MIN`] bytes or more: its value, and each long
/// word of it (`Token abc…` echoed as the token alone).
fn header_secrets(template: &str, lookup: Lookup<'_>, out: &mut Vec<String>) {
    let value = resolved(template, lookup);
    let vars = var_values(template, lookup);
    if vars.is_empty() {
        if value.len() >= LITERAL_MIN {
            let words = value.split_whitespace().filter(|w| w.len() >= LITERAL_MIN);
            out.extend(words.map(str::to_string));
            out.push(value);
        }
        return;
    }
    out.extend(vars);
    out.push(value);
}

/// The auth credential, literal or not, and the forms it is sent in.
fn auth_secrets(auth: &WebhookAuth, lookup: Lookup<'_>, out: &mut Vec<String>) {
    match auth {
        WebhookAuth::Bearer { token } => {
            out.extend(var_values(token.template(), lookup));
            out.push(resolved(token.template(), lookup));
        }
        WebhookAuth::Basic { username, password } => {
            let user = resolved(&username.0, lookup);
            let pass = resolved(password.template(), lookup);
            out.extend(var_values(password.template(), lookup));
            out.push(STANDARD.encode(format!("{user}:{pass}")));
            out.push(pass);
        }
        WebhookAuth::Header { value, .. } => {
            out.extend(var_values(value.template(), lookup));
            out.push(resolved(value.template(), lookup));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn list(yaml: &str, env: &[(&str, &str)]) -> Secrets {
        let cfg: WebhookConfig = serde_saphyr::from_str(yaml).unwrap();
        let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_string());
        let url = reqwest::Url::parse(&resolved(&cfg.url.0, &lookup)).unwrap();
        secrets(&cfg, &url, &lookup)
    }

    #[test]
    fn url_userinfo_is_listed_as_sent_in_basic_auth() {
        let yaml = "url: http://sk_live_user%2B1:pa55word-Secret9@h.example/hook\n";
        let s = list(yaml, &[]);
        let basic = STANDARD.encode("sk_live_user+1:pa55word-Secret9");
        let echo = format!("authorization: Basic {basic}; user sk_live_user+1 sk_live_user%2B1");
        assert_eq!(s.redact(&echo), "authorization: Basic [redacted]; user [redacted] [redacted]");
        let only_user = list("url: http://sk_live_ONLYUSER_XYZ789@h.example/hook\n", &[]);
        let basic = STANDARD.encode("sk_live_ONLYUSER_XYZ789:");
        assert_eq!(only_user.redact(&format!("Basic {basic}")), "Basic [redacted]");
    }

    #[test]
    fn credentials_and_environment_values_are_listed_short_literals_are_not() {
        let yaml = "url: https://ops:pa%24sword1@h.example/hooks/${HOOK}?token=${Q}&format=json&key=literal-key-123\n\
                    auth: { type: basic, username: ops, password: '${PW}' }\n\
                    headers: { X-Key: '${KEY}', Accept: application/json, X-Env: prod, X-Lit: 'Token lit3ral-t0ken' }\n\
                    signing_secret: whsec_c2lnbmluZy1rZXktZm9yLXRoZS10ZXN0cy0xMjM0\n";
        let env = [
            ("HOOK", "path-secret-1"),
            ("Q", "query-secret"),
            ("PW", "basic-pass"),
            ("KEY", "header-key"),
        ];
        let s = list(yaml, &env);
        let text = format!(
            "{} {} {} {} {} {} {} {} {}",
            "path-secret-1 query-secret basic-pass header-key",
            STANDARD.encode("ops:basic-pass"),
            "pa%24sword1 pa$sword1 literal-key-123 lit3ral-t0ken",
            "whsec_c2lnbmluZy1rZXktZm9yLXRoZS10ZXN0cy0xMjM0",
            "c2lnbmluZy1rZXktZm9yLXRoZS10ZXN0cy0xMjM0",
            "json",
            "prod",
            "hooks",
            "application/json",
        );
        assert_eq!(
            s.redact(&text),
            format!("{} json prod hooks [redacted]", ["[redacted]"; 11].join(" "))
        );
    }

    #[test]
    fn a_variable_holding_a_whole_url_redacts_its_token_parts() {
        let yaml = "url: ${HOOK_URL}\n";
        let env = [("HOOK_URL", "https://hooks.example.com/services/T0AB12CD/XyZ123abc9")];
        let s = list(yaml, &env);
        assert_eq!(
            s.redact("POST /services/T0AB12CD/XyZ123abc9 to hooks.example.com"),
            "POST /services/[redacted]/[redacted] to hooks.example.com"
        );
    }
}
