//! `meshes token`: a machine JWT for curl, signed as the Meshes SDKs sign.

use super::output;
use anyhow::bail;
use std::process::ExitCode;

/// Arguments of `meshes token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Access key (the JWT `kid`).
    #[arg(long, env = "MESHES_ACCESS_KEY")]
    access_key: String,
    /// The key's secret.
    #[arg(long, env = "MESHES_SECRET_KEY", hide_env_values = true)]
    secret: String,
}

/// Prints a token valid for 60 s.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (access_key, secret) = credentials(args)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = crate::api::auth::mint_jwt(access_key, secret.as_bytes(), now, 60);
    Ok(output::print(&format!("{token}\n")))
}

/// The key and secret as `serve` reads them: without the surrounding
/// whitespace a value from a file often carries (a `\r` from an env file
/// edited on Windows would sign with a secret the gateway does not have, a
/// 401 with no hint). Blank ones are refused: the gateway disables such a
/// key, so any token signed with it is refused too.
fn credentials(args: &Args) -> anyhow::Result<(&str, &str)> {
    let access_key = crate::config::model::key_text(&args.access_key);
    let secret = args.secret.trim();
    if access_key.is_empty() {
        bail!("the access key (--access-key or MESHES_ACCESS_KEY) is empty");
    }
    if secret.is_empty() {
        bail!(
            "the secret (--secret or MESHES_SECRET_KEY) is empty: the gateway disables a machine key whose secret is empty, so no token signed with it is accepted"
        );
    }
    Ok((access_key, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(access_key: &str, secret: &str) -> Args {
        Args { access_key: access_key.into(), secret: secret.into() }
    }

    #[test]
    fn credentials_are_trimmed_as_the_gateway_trims_them() {
        let a = args(" mk_1\r\n", "s3cret\r\n");
        assert_eq!(credentials(&a).unwrap(), ("mk_1", "s3cret"));
    }

    #[test]
    fn blank_credentials_are_refused() {
        let why = credentials(&args("mk_1", " \r\n")).unwrap_err().to_string();
        assert!(why.starts_with("the secret (--secret or MESHES_SECRET_KEY) is empty"), "{why}");
        let why = credentials(&args("\t", "s3cret")).unwrap_err().to_string();
        assert_eq!(why, "the access key (--access-key or MESHES_ACCESS_KEY) is empty");
    }
}
