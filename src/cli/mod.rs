//! The `meshes` command line. Exit codes: 0 success, 1 invalid config,
//! 2 usage or I/O error.

mod actions;
mod bench;
mod bench_tools;
mod openapi;
mod remote;
mod serve;
mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `--ca-file`, for the commands that call destinations over HTTPS.
#[derive(Debug, clap::Args)]
pub struct Trust {
    /// PEM file of extra certificate authorities for outbound HTTPS (a
    /// private CA of internal destinations), trusted besides the built-in
    /// Mozilla roots.
    #[arg(long, env = "MESHES_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

impl Trust {
    /// Trusts the file's authorities for every client built after this, and
    /// logs the environment's proxies (reqwest follows them silently).
    pub fn install(&self) -> Result<(), crate::adapters::trust::TrustError> {
        if let Some(proxies) = crate::adapters::proxy::in_force() {
            tracing::info!(%proxies, "outbound requests go through a proxy set by the environment");
        }
        let Some(path) = &self.ca_file else { return Ok(()) };
        let count = crate::adapters::trust::trust_ca_file(path)?;
        tracing::info!(path = %path.display(), certificates = count, "trusting extra certificate authorities");
        Ok(())
    }
}

/// meshes: a self-hosted, GitOps event gateway.
#[derive(Debug, Parser)]
#[command(name = "meshes", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check config files: YAML, schema, references, catalog, CEL and `${VAR}`s.
    Validate(validate::Args),
    /// Print the JSON Schema (draft 2020-12) of `meshes.yaml`.
    Schema,
    /// Print the OpenAPI 3.1 document of the HTTP API.
    Openapi,
    /// Run the gateway: accept events over HTTP and deliver them.
    Serve(serve::Args),
    /// Reproducible benchmarks (see BENCHMARKS.md); never part of `cargo test`.
    Bench(bench::Args),
    /// List a connection's live action data (lists, tags, templates, …) for rules.
    Actions(actions::Args),
    /// Print a machine JWT (60 s) for curl, signed like the Meshes SDKs do.
    Token {
        /// Access key (the JWT `kid`).
        #[arg(long, env = "MESHES_ACCESS_KEY")]
        access_key: String,
        /// The key's secret.
        #[arg(long, env = "MESHES_SECRET_KEY", hide_env_values = true)]
        secret: String,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Actions(args) => actions::run(&args),
        Command::Token { access_key, secret } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            println!("{}", crate::api::auth::mint_jwt(&access_key, secret.as_bytes(), now, 60));
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => Ok(openapi::run()),
        Command::Schema => {
            print!("{}", crate::config::schema::schema_text());
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}
