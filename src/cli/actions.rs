//! `meshes actions CONNECTION`: the connection's live action data (lists,
//! tags, templates, …) as the gateway would list it, for writing rules.

use crate::adapters::discover::{ActionOption, DiscoverError};
use crate::gateway::reload;
use anyhow::{Context, bail};
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `meshes actions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The connection's name (its key under `connections:`).
    connection: String,
    /// Config files or directories (repeat, or comma-separate in MESHES_CONFIG).
    #[arg(
        long = "config",
        short = 'c',
        value_name = "PATH",
        env = "MESHES_CONFIG",
        value_delimiter = ',',
        default_value = "meshes.yaml"
    )]
    config: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned columns for people.
    Table,
    /// `{connection, type, count, records}`, as the API answers.
    Json,
}

/// Loads the config (secrets from the environment), asks the provider, prints.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(actions(args))
}

async fn actions(args: &Args) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("meshes/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let rt = match reload::load(&args.config, 1, &client, None, None) {
        Ok(Some(rt)) => rt,
        Ok(None) => bail!("no config"),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let name = &args.connection;
    let conn = rt
        .connections()
        .find(|c| &c.name == name)
        .with_context(|| format!("no connection `{name}` in the config"))?;
    let kind = conn.config.kind();
    let options = match conn.adapter.discover().await {
        Ok(options) => options,
        Err(DiscoverError::Unsupported(m) | DiscoverError::Provider(m)) => {
            eprintln!("error: connection `{name}` (type `{kind}`): {m}");
            return Ok(ExitCode::from(2));
        }
    };
    match args.format {
        Format::Json => {
            let body = serde_json::json!({
                "connection": name, "type": kind, "count": options.len(), "records": options,
            });
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        Format::Table => print!("{}", table(&options)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `KIND  ID  NAME` columns, padded to the widest value.
fn table(options: &[ActionOption]) -> String {
    let head = ActionOption::new("KIND", "ID", "NAME");
    let rows: Vec<&ActionOption> = std::iter::once(&head).chain(options).collect();
    let kw = rows.iter().map(|o| o.kind.chars().count()).max().unwrap_or(0);
    let iw = rows.iter().map(|o| o.id.chars().count()).max().unwrap_or(0);
    rows.iter()
        .map(|o| format!("{:kw$}  {:iw$}  {}", o.kind, o.id, o.name).trim_end().to_string() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows =
            [ActionOption::new("list", "a1", "News"), ActionOption::new("template", "t", "W")];
        assert_eq!(table(&rows), "KIND      ID  NAME\nlist      a1  News\ntemplate  t   W\n");
    }
}
