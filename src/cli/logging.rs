//! `serve`'s log: the `MESHES_LOG` filter, checked before anything starts,
//! and a stderr sink that cannot take the gateway down with it.

use std::io::{self, IsTerminal as _};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// The variable that holds the filter.
const VAR: &str = "MESHES_LOG";

/// The filter when `MESHES_LOG` is unset or empty.
const DEFAULT: &str = "info";

/// Targets whose `trace` events are capped at `debug` unless the filter
/// names them: the config watcher's own events, logged to a file inside
/// the watched directory, are changes it reports, and logs again, forever.
const WATCHER_TARGETS: [&str; 2] = ["notify", "notify_debouncer_full"];

/// The levels a bare word may be, as the messages list them.
const LEVELS: &str = "error|warn|info|debug|trace|off";

/// A `MESHES_LOG` that would log something else than what was meant.
#[derive(Debug, thiserror::Error)]
#[error(
    "{VAR}={spec:?}: {why}; give a level ({LEVELS}), `target=level` directives (e.g. `meshes=debug`), or both, comma-separated (e.g. `warn,meshes=debug`)"
)]
pub struct FilterError {
    spec: String,
    why: String,
}

/// The directives to log with: the user's (or [`DEFAULT`]), checked, with
/// the watcher's targets capped. A bare word is taken as a target by
/// tracing, so `warnig` would log nothing at all (errors included): only
/// levels are accepted bare.
pub fn directives(spec: Option<&str>) -> Result<String, FilterError> {
    let spec = spec.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT);
    let fail = |why: String| FilterError { spec: spec.to_string(), why };
    let mut everything = LevelFilter::OFF;
    let mut named = Vec::new();
    // Checked and passed on trimmed: `warn, meshes=debug` is two directives
    // to a person, and tracing's parser refuses the space.
    let kept: Vec<&str> = spec.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    for &directive in &kept {
        if let Err(e) = directive.parse::<tracing_subscriber::filter::Directive>() {
            return Err(fail(format!("`{directive}` is not a valid directive ({e})")));
        }
        match directive.find(['=', '[']) {
            Some(0) => {}
            Some(at) => named.push(&directive[..at]),
            None => match directive.parse::<LevelFilter>() {
                Ok(level) => everything = everything.max(level),
                Err(_) => return Err(fail(format!("`{directive}` is not a log level"))),
            },
        }
    }
    let mut out = kept.join(",");
    if everything == LevelFilter::TRACE {
        let capped = WATCHER_TARGETS.iter().filter(|t| !named.iter().any(|n| t.starts_with(n)));
        capped.for_each(|target| out.push_str(&format!(",{target}=debug")));
    }
    Ok(out)
}

/// The filter from `MESHES_LOG` ([`directives`]).
pub fn filter() -> Result<EnvFilter, FilterError> {
    let spec = std::env::var(VAR).ok();
    let directives = directives(spec.as_deref())?;
    EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| FilterError { spec: spec.unwrap_or_default(), why: e.to_string() })
}

/// Colour only for a person at a terminal: escape codes in a log file or a
/// collector's pipe are noise. `NO_COLOR` (set and not empty) turns it off.
pub fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Whether to colour the text log on this process's stderr.
pub fn colour_here() -> bool {
    colour(io::stderr().is_terminal(), std::env::var_os("NO_COLOR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_means_info() {
        assert_eq!(directives(None).unwrap(), "info");
        assert_eq!(directives(Some(" ")).unwrap(), "info");
    }

    #[test]
    fn levels_and_target_directives_pass_as_written() {
        for spec in ["warn", "DEBUG", "off", "meshes=debug", "warn,meshes::gateway=trace", "4"] {
            assert_eq!(directives(Some(spec)).unwrap(), spec);
        }
    }

    /// Spaces around the commas are a person's, not part of a directive:
    /// the filter built from them is the one without.
    #[test]
    fn spaces_around_directives_are_dropped() {
        assert_eq!(directives(Some("warn, meshes=debug")).unwrap(), "warn,meshes=debug");
        assert_eq!(
            directives(Some(" info,meshes=debug ,hyper=warn")).unwrap(),
            "info,meshes=debug,hyper=warn"
        );
        let built = directives(Some("warn , meshes=debug")).unwrap();
        assert!(EnvFilter::builder().parse(&built).is_ok(), "{built}");
    }

    #[test]
    fn a_misspelt_level_is_refused_not_taken_as_a_target() {
        for typo in ["warnig", "debg", "information", "info,meshes"] {
            let why = directives(Some(typo)).unwrap_err().to_string();
            let word = typo.rsplit(',').next().unwrap();
            assert!(why.starts_with(&format!("MESHES_LOG={typo:?}: `{word}` is not a log level; give a level (error|warn|info|debug|trace|off), `target=level` directives")), "{why}");
        }
    }

    #[test]
    fn a_directive_that_does_not_parse_is_refused() {
        let why = directives(Some("meshes=loud")).unwrap_err().to_string();
        assert!(
            why.starts_with("MESHES_LOG=\"meshes=loud\": `meshes=loud` is not a valid directive ("),
            "{why}"
        );
        assert!(why.contains("(error|warn|info|debug|trace|off)"), "{why}");
    }

    #[test]
    fn trace_caps_the_watcher_at_debug() {
        assert_eq!(
            directives(Some("trace")).unwrap(),
            "trace,notify=debug,notify_debouncer_full=debug"
        );
        assert_eq!(
            directives(Some("meshes=info,5")).unwrap(),
            "meshes=info,5,notify=debug,notify_debouncer_full=debug"
        );
        assert!(filter_with("trace").to_string().contains("notify=debug"));
    }

    #[test]
    fn the_watcher_named_by_the_user_is_not_capped() {
        assert_eq!(directives(Some("trace,notify=trace")).unwrap(), "trace,notify=trace");
        assert_eq!(
            directives(Some("trace,notify_debouncer_full=trace")).unwrap(),
            "trace,notify_debouncer_full=trace,notify=debug"
        );
        // Below trace there is nothing to cap (and `notify=debug` would raise a `warn`).
        assert_eq!(directives(Some("debug")).unwrap(), "debug");
        assert_eq!(directives(Some("warn,meshes=trace")).unwrap(), "warn,meshes=trace");
    }

    fn filter_with(spec: &str) -> EnvFilter {
        EnvFilter::builder().parse(directives(Some(spec)).unwrap()).unwrap()
    }

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
