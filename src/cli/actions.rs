//! `meshes actions CONNECTION`: the connection's live action data (lists,
//! tags, templates, …) as the gateway would list it, for writing rules.

use super::output::{self, say};
use crate::adapters::discover::{ActionOption, DiscoverError};
use crate::gateway::reload;
use crate::gateway::runtime::{ConnectionRt, Runtime, WorkspaceRt};
use anyhow::bail;
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `meshes actions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The connection's name (its key under `connections:`).
    connection: String,
    /// Config files or directories (repeat the flag, or comma-separate them
    /// in MESHES_CONFIG; the flag wins) [default: meshes.yaml].
    #[arg(long = "config", short = 'c', value_name = "PATH")]
    config: Vec<PathBuf>,
    /// The workspace (id or name) whose connection to list, when several
    /// workspaces have a connection of that name.
    #[arg(long, value_name = "ID_OR_NAME")]
    workspace: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The gateway's data directory, whose OAuth token store keeps the
    /// refresh tokens providers rotate. Needed for connections with a
    /// refresh token (refreshing without it would revoke the gateway's).
    #[arg(long, env = "MESHES_DATA_DIR", default_value = "./.meshes")]
    data_dir: PathBuf,
    #[command(flatten)]
    trust: super::Trust,
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
    let config = super::config_paths(&args.config)?;
    args.trust.install()?;
    let client = crate::adapters::http::client_builder().build()?;
    let tokens = super::remote::gateway_tokens(&super::data_dir(&args.data_dir));
    let rt = match reload::load(&config, 1, &client, None, tokens.as_ref().ok()) {
        Ok(Some(rt)) => rt,
        Ok(None) => bail!("no config"),
        Err(errors) => {
            for e in errors {
                say!("{e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let name = &args.connection;
    let conn = find(&rt, name, args.workspace.as_deref())?;
    let kind = conn.config.kind();
    if let Err(why) = &tokens
        && conn.config.spends_refresh_token()
    {
        say!("error: connection `{name}` (type `{kind}`): {}", super::remote::refresh_refused(why));
        return Ok(ExitCode::from(2));
    }
    let listed = conn.adapter.discover().await;
    if let Ok(store) = &tokens {
        // A refresh the listing gave up on still keeps its rotated token.
        store.settle().await;
    }
    let options = match listed {
        Ok(options) => options,
        Err(DiscoverError::Unsupported(m) | DiscoverError::Provider(m)) => {
            say!("error: connection `{name}` (type `{kind}`): {m}");
            return Ok(ExitCode::from(2));
        }
    };
    let text = match args.format {
        Format::Json => {
            let body = serde_json::json!({
                "connection": name, "type": kind, "count": options.len(), "records": options,
            });
            serde_json::to_string_pretty(&body)? + "\n"
        }
        Format::Table => table(&options),
    };
    Ok(output::print(&text))
}

/// The connection `name`, in the one workspace that has it (or the one
/// `workspace` names, by id or name); an ambiguous name is an error rather
/// than whichever workspace a hash map yields first.
fn find<'a>(
    rt: &'a Runtime,
    name: &str,
    workspace: Option<&str>,
) -> anyhow::Result<&'a ConnectionRt> {
    let mut all: Vec<&WorkspaceRt> = rt.workspaces.values().map(AsRef::as_ref).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let chosen: Vec<&WorkspaceRt> = match workspace {
        None => all.clone(),
        Some(w) => all.iter().copied().filter(|ws| ws.id == w || ws.name == w).collect(),
    };
    if let (Some(w), true) = (workspace, chosen.is_empty()) {
        bail!("no workspace `{w}` in the config; workspaces: {}", list(&all));
    }
    let found: Vec<(&WorkspaceRt, &ConnectionRt)> = chosen
        .into_iter()
        .filter_map(|ws| Some((ws, ws.connections.get(name)?.as_ref())))
        .collect();
    match found.as_slice() {
        [] if workspace.is_some() => bail!("no connection `{name}` in the chosen workspace"),
        [] => bail!("no connection `{name}` in the config"),
        [(_, conn)] => Ok(conn),
        many => {
            let spaces: Vec<&WorkspaceRt> = many.iter().map(|(ws, _)| *ws).collect();
            bail!(
                "connection `{name}` exists in {} workspaces: {}; choose one with `--workspace <id or name>`",
                spaces.len(),
                list(&spaces)
            )
        }
    }
}

/// `id (name)`, comma-separated.
fn list(spaces: &[&WorkspaceRt]) -> String {
    spaces.iter().map(|ws| format!("`{}` ({})", ws.id, ws.name)).collect::<Vec<_>>().join(", ")
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
