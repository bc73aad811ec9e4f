//! The config checks of a webhook: signing secrets, header names and
//! credentials, each error exactly as `validate` and the build report it.

use super::super::{EnvString, Secret, SigningSecrets, WebhookAuth, WebhookConfig};
use super::check;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn config(url: &str) -> WebhookConfig {
    serde_saphyr::from_str(&format!("url: '{url}'\n")).unwrap_or_else(|e| panic!("{e}"))
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Every error of `cfg`, as the build shows it.
fn errors(cfg: &WebhookConfig) -> Vec<String> {
    check(cfg, &no_env).iter().map(ToString::to_string).collect()
}

fn with_headers(names: &[&str]) -> WebhookConfig {
    let mut cfg = config("https://example.com/h");
    cfg.headers = names.iter().map(|n| (n.to_string(), EnvString("v".into()))).collect();
    cfg
}

fn secrets(n: usize) -> Option<SigningSecrets> {
    Some(SigningSecrets::Many(vec![Secret::new(SECRET); n]))
}

#[test]
fn a_rotation_list_holds_one_to_ten_secrets() {
    let mut cfg = config("https://example.com/h");
    cfg.signing_secret = secrets(0);
    assert_eq!(
        errors(&cfg),
        [
            "connection field `signing_secret`: expected at least one secret, found an empty list; remove the key to send unsigned requests"
        ]
    );
    cfg.signing_secret = secrets(11);
    assert_eq!(
        errors(&cfg),
        [
            "connection field `signing_secret`: expected at most 10 secrets, found 11: every secret adds a signature to each request; keep the current one and the one being rotated in"
        ]
    );
    cfg.signing_secret = secrets(10);
    assert_eq!(errors(&cfg), Vec::<String>::new());
}

#[test]
fn an_empty_secret_says_it_is_empty() {
    let mut cfg = config("https://example.com/h");
    cfg.signing_secret = Some(SigningSecrets::One(Secret::new("")));
    assert_eq!(
        errors(&cfg),
        [
            "connection field `signing_secret`: the value is empty: expected a Standard Webhooks secret (`whsec_` followed by base64), or remove the key to send unsigned requests"
        ]
    );
}

#[test]
fn underscores_read_as_dashes_when_names_are_compared() {
    assert_eq!(
        errors(&with_headers(&["Webhook_Signature"])),
        [
            "connection field `headers.Webhook_Signature`: `Webhook_Signature` is set by meshes on every request (receivers read `_` as `-`, so it arrives as `webhook-signature`): it describes or signs the body; expected a header other than content-type, webhook-id, webhook-timestamp, webhook-signature"
        ]
    );
    let e = errors(&with_headers(&["Content_Type"]));
    assert!(e.len() == 1 && e[0].contains("arrives as `content-type`"), "{e:?}");
    // `X_A` sorts before `x-a` (the map is ordered): the second is refused.
    assert_eq!(
        errors(&with_headers(&["X_A", "x-a"])),
        [
            "connection field `headers.x-a`: the header `x-a` is configured twice (as `x_a`; names are case-insensitive and receivers read `_` as `-`): expected it once"
        ]
    );
    let mut cfg = with_headers(&["X-Api-Key"]);
    cfg.auth = Some(WebhookAuth::Header { name: "X_Api_Key".into(), value: Secret::new("k") });
    let e = errors(&cfg);
    assert!(
        e.len() == 1
            && e[0].starts_with(
                "connection field `auth.name`: the header `X_Api_Key` is configured twice"
            ),
        "{e:?}"
    );
    assert_eq!(errors(&with_headers(&["X_Tenant", "X-Request-Source"])), Vec::<String>::new());
    // Beside the user agent meshes sends, a second one would arrive.
    assert_eq!(
        errors(&with_headers(&["User_Agent"])),
        [
            "connection field `headers.User_Agent`: `User_Agent` would be sent beside the `user-agent` header meshes sends (receivers read `_` as `-`, so it arrives as `user-agent`): expected it written `user-agent` (it then replaces meshes' own)"
        ]
    );
    assert_eq!(errors(&with_headers(&["User-Agent"])), Vec::<String>::new());
}

#[test]
fn framing_and_hop_by_hop_headers_are_the_gateways() {
    let framing = [
        "Content-Encoding",
        "Content-Length",
        "Transfer-Encoding",
        "Trailer",
        "TE",
        "Upgrade",
        "Keep_Alive",
        "Expect",
        "Connection",
        "Host",
        "Proxy-Authorization",
        "Proxy-Connection",
    ];
    for name in framing {
        let e = errors(&with_headers(&[name]));
        assert_eq!(e.len(), 1, "{name}: {e:?}");
        assert!(
            e[0].starts_with(&format!(
                "connection field `headers.{name}`: `{name}` is a framing or hop-by-hop header"
            )),
            "{e:?}"
        );
    }
    assert_eq!(
        errors(&with_headers(&["Content-Encoding"])),
        [
            "connection field `headers.Content-Encoding`: `Content-Encoding` is a framing or hop-by-hop header: how the body is encoded and carried is the gateway's (a receiver trusting it would misread the signed body); expected an end-to-end header, not content-length, content-encoding, transfer-encoding, trailer, te, upgrade, keep-alive, expect, connection, host or `proxy-*`"
        ]
    );
}

#[test]
fn url_credentials_and_an_authorization_header_are_credentials_twice() {
    let url = "https://ops:pa55-SECRET@example.com/h";
    let mut cfg = config(url);
    cfg.auth = Some(WebhookAuth::Bearer { token: Secret::new("tok") });
    assert_eq!(
        errors(&cfg),
        [
            "connection field `url`: the URL holds credentials (`user:password@`), which are sent as the `Authorization` header, and `auth` sets that header too: credentials configured twice; expected them in one place (remove them from `url`, or remove `auth`)"
        ]
    );
    let mut cfg = config(url);
    cfg.auth = Some(WebhookAuth::Header { name: "authorization".into(), value: Secret::new("t") });
    assert_eq!(errors(&cfg).len(), 1);
    let mut cfg = config("https://ops@example.com/h");
    cfg.headers.insert("Authorization".into(), EnvString("Token t".into()));
    let e = errors(&cfg);
    assert!(e.len() == 1 && e[0].contains("and `headers.Authorization` sets that header"), "{e:?}");
    assert!(!e[0].contains("ops"), "{e:?}");
    // Another credential header goes out beside the URL's: nothing dropped.
    let mut cfg = config(url);
    cfg.auth = Some(WebhookAuth::Header { name: "X-Api-Key".into(), value: Secret::new("k") });
    assert_eq!(errors(&cfg), Vec::<String>::new());
    assert_eq!(errors(&config(url)), Vec::<String>::new());
}
