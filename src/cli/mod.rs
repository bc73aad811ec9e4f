//! The `meshes` command line. Exit codes: 0 success, 1 invalid config,
//! 2 usage or I/O error.

mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
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
