//! The outbound proxy the environment sets (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NO_PROXY`), named where a failure could be the proxy's.
//!
//! reqwest follows those variables silently, so without this a proxy that
//! is down reads as "connection refused" from a destination that is up. The
//! rules are hyper-util's matcher, the one reqwest itself uses, read once
//! as reqwest reads them when a client is built. A proxy URL may carry a
//! password: only its scheme, host and port are ever printed.

use hyper_util::client::proxy::matcher::Matcher;
use std::sync::LazyLock;

static ENV: LazyLock<Matcher> = LazyLock::new(Matcher::from_env);

/// The proxy a request to `url` goes through, as `scheme://host:port`.
pub fn for_url(url: &reqwest::Url) -> Option<String> {
    through(&ENV, url)
}

/// [`for_url`] with the rules given (tests build their own).
fn through(matcher: &Matcher, url: &reqwest::Url) -> Option<String> {
    let uri: hyper::Uri = url.as_str().parse().ok()?;
    let proxy = matcher.intercept(&uri)?;
    Some(shown(proxy.uri()))
}

/// `scheme://host:port` of a proxy URI: never its user or password.
fn shown(uri: &hyper::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("?");
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// What a failed request's message adds when it went through a proxy.
pub(super) fn note(url: Option<&reqwest::Url>) -> Option<String> {
    let proxy = for_url(url?)?;
    Some(format!(
        " (sent through the proxy {proxy}, from the environment's HTTPS_PROXY, HTTP_PROXY or \
         ALL_PROXY; NO_PROXY exempts hosts)"
    ))
}

/// The proxies in force for `https` and `http` destinations, for the log
/// line at start: `None` when neither scheme is proxied.
pub fn in_force() -> Option<String> {
    let probe = |scheme: &str| {
        let url = reqwest::Url::parse(&format!("{scheme}://meshes.invalid/")).ok()?;
        for_url(&url).map(|p| format!("{scheme} via {p}"))
    };
    let both: Vec<String> = ["https", "http"].into_iter().filter_map(probe).collect();
    (!both.is_empty()).then(|| both.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn a_proxy_is_named_without_its_credentials() {
        let m = Matcher::builder().https("http://ops:hunter2@proxy.internal:3128").build();
        let shown = through(&m, &url("https://api.example.com/v1?key=abc")).unwrap();
        assert_eq!(shown, "http://proxy.internal:3128");
    }

    #[test]
    fn each_scheme_uses_its_own_variable_and_no_proxy_exempts() {
        let m = Matcher::builder()
            .http("http://plain-proxy:8080")
            .no("hooks.internal, .corp.example")
            .build();
        assert_eq!(
            through(&m, &url("http://a.example/")).as_deref(),
            Some("http://plain-proxy:8080")
        );
        assert_eq!(through(&m, &url("https://a.example/")), None, "no HTTPS proxy was set");
        assert_eq!(through(&m, &url("http://hooks.internal/x")), None);
        assert_eq!(through(&m, &url("http://api.corp.example/x")), None);
    }

    #[test]
    fn all_proxy_covers_both_schemes() {
        let m = Matcher::builder().all("socks5://user:pw@127.0.0.1:1080").build();
        assert_eq!(
            through(&m, &url("https://x.example/")).as_deref(),
            Some("socks5://127.0.0.1:1080")
        );
        assert_eq!(
            through(&m, &url("http://x.example/")).as_deref(),
            Some("socks5://127.0.0.1:1080")
        );
    }
}
