//! Diagnostics: what `validate` reports, where, and how it is printed.

use serde::Serialize;
use std::fmt;

mod escape;
pub use escape::shown;

/// One step into a config document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A location inside a document, printed as `rules[3].metadata.action`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The document root.
    pub fn root() -> Self {
        Self::default()
    }
    /// This path plus a key.
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.into()));
        p
    }
    /// This path plus an index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    /// The parent path (the root is its own parent).
    pub fn parent(&self) -> Self {
        let mut p = self.clone();
        p.0.pop();
        p
    }
    /// True where a value may be a credential though not typed as one: an
    /// HTTP header value, an `auth` field, a URL (a user or a token in its
    /// query). Messages name such a value's problem, never the value.
    pub fn may_hold_credential(&self) -> bool {
        let mut keys = self.0.iter().filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        });
        let last = self.0.last().and_then(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        });
        keys.any(|k| k == "headers" || k == "auth") || last.is_some_and(|k| k.ends_with("url"))
    }
    /// The JSON pointer of this path (`/rules/3/id`), the span index's key.
    pub fn pointer(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            out.push('/');
            match seg {
                Seg::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Seg::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config is rejected.
    Error,
    /// The config works but probably not as intended; `--deny-warnings` rejects it.
    Warning,
}

/// Declares [`Code`] with its printed names and the list of all codes.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Every diagnostic code `validate` can report. The kebab-case name is
        /// the stable identifier printed in `error[code]`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The printed name, e.g. `unknown-connection`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    /// The YAML is malformed (bad indent, unclosed quote, tab, …).
    YamlSyntax => "yaml-syntax",
    /// A file that cannot be read, or is not UTF-8.
    UnreadableFile => "unreadable-file",
    /// A config file with nothing but whitespace and comments.
    EmptyFile => "empty-file",
    /// A mapping key appears twice.
    DuplicateKey => "duplicate-key",
    /// A field the schema does not define.
    UnknownField => "unknown-field",
    /// A required field is absent.
    MissingField => "missing-field",
    /// A value of the wrong type.
    InvalidType => "invalid-type",
    /// A value outside the allowed set or range.
    InvalidValue => "invalid-value",
    /// An unknown connection `type`.
    UnknownConnectionType => "unknown-connection-type",
    /// A duration that does not parse.
    InvalidDuration => "invalid-duration",
    /// A rule, automation or step names a connection that does not exist.
    UnknownConnection => "unknown-connection",
    /// The connection's integration does not offer the action.
    UnknownAction => "unknown-action",
    /// The action needs metadata the rule does not give.
    MissingMetadata => "missing-metadata",
    /// Metadata the action does not use.
    UnusedMetadata => "unused-metadata",
    /// Two items share an id.
    DuplicateId => "duplicate-id",
    /// A CEL condition that does not compile or uses unknown variables.
    InvalidCel => "invalid-cel",
    /// A malformed `${…}` reference.
    InvalidEnvRef => "invalid-env-ref",
    /// A referenced environment variable is unset (`--check-env`).
    UnsetEnv => "unset-env",
    /// An automation names a sequence that does not exist.
    UnknownSequence => "unknown-sequence",
    /// Two workspaces share a publishable key.
    DuplicatePublishableKey => "duplicate-publishable-key",
    /// A connection's credentials are incomplete or contradictory.
    InvalidCredentials => "invalid-credentials",
    /// A credential written in the file instead of `${VAR}`.
    LiteralSecret => "literal-secret",
    /// A connection nothing uses.
    UnusedConnection => "unused-connection",
    /// A sequence no automation enrolls contacts in.
    UnusedSequence => "unused-sequence",
    /// Automations that trigger each other in a loop.
    AutomationLoop => "automation-loop",
    /// A `delivery.retention` under ten seconds: finished events vanish
    /// before anyone can look at them.
    ShortRetention => "short-retention",
    /// A field mapping without exactly one source, with a bad `from` path,
    /// bad `substring` arguments or transforms in an order that cannot work.
    InvalidMapping => "invalid-mapping",
    /// A boolean written as a YAML 1.1 word (`yes`, `no`, `on`, `off`, `y`,
    /// `n`): editors using the published schema (YAML 1.2) read it as text.
    Yaml11Boolean => "yaml11-boolean",
    /// A `metadata.id` (or property `value`) the connection's account does
    /// not have (`--check-remote`).
    RemoteMissing => "remote-missing",
    /// A connection whose account data could not be listed (`--check-remote`).
    RemoteUnavailable => "remote-unavailable",
}

impl Code {
    /// Codes only `--check-remote` reports: they need a live provider, so
    /// no static fixture can produce them.
    pub fn is_remote(self) -> bool {
        matches!(self, Code::RemoteMissing | Code::RemoteUnavailable)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a diagnostic points at a mapping key or at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// The key (`colour:` in an unknown-field error).
    Key,
    /// The value (`newsleter` in an unknown-connection error).
    Value,
}

/// A problem found before a file is placed: a path, not yet a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: Code,
    /// Where in the document.
    pub path: Path,
    /// Key or value.
    pub anchor: Anchor,
    /// What is wrong, the value found and what was expected.
    pub message: String,
    /// An exact 1-based line and column, when the path alone is ambiguous
    /// (the second of two identical keys).
    pub pinned: Option<(usize, usize)>,
}

impl Issue {
    /// An error at the value of `path`.
    pub fn error(code: Code, path: Path, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            path,
            anchor: Anchor::Value,
            message: message.into(),
            pinned: None,
        }
    }
    /// A warning at the value of `path`.
    pub fn warning(code: Code, path: Path, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(code, path, message) }
    }
    /// Points the issue at the key instead of the value.
    pub fn at_key(mut self) -> Self {
        self.anchor = Anchor::Key;
        self
    }
}

/// A placed diagnostic: `file:line:col: error[code]: path: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file, as given on the command line.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Error or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: Code,
    /// Path inside the document (`rules[0].connection`).
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}[{}]: {}: {}",
            shown(&self.file),
            self.line,
            self.column,
            self.code,
            shown(&self.path),
            shown(&self.message)
        )
    }
}

/// "expected one of: a, b, c" with a "did you mean" when one is close.
pub fn expected_one_of<'a>(found: &str, options: impl IntoIterator<Item = &'a str>) -> String {
    let options: Vec<&str> = options.into_iter().collect();
    if options.is_empty() {
        return "none are defined".to_string();
    }
    let mut text = format!("expected one of: {}", options.join(", "));
    if let Some(close) = closest(found, &options) {
        text.push_str(&format!(" (did you mean `{close}`?)"));
    }
    text
}

/// The option within a third of `found`'s length in edits (at least one).
pub fn closest<'a>(found: &str, options: &[&'a str]) -> Option<&'a str> {
    let limit = (found.chars().count() / 3).max(1);
    options
        .iter()
        .map(|o| (levenshtein(found, o), *o))
        .filter(|(d, _)| *d <= limit && *d > 0)
        .min()
        .map(|(_, o)| o)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_code() {
        let p = Path::root().key("rules").index(3).key("metadata").key("action");
        assert_eq!(p.to_string(), "rules[3].metadata.action");
        assert_eq!(
            Path::root().key("connections").key("my.hook").to_string(),
            "connections[\"my.hook\"]"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(closest("newsleter", &["crm", "newsletter"]), Some("newsletter"));
        assert_eq!(closest("zzz", &["crm", "newsletter"]), None);
        assert!(
            expected_one_of("conection", ["connection", "event"])
                .ends_with("(did you mean `connection`?)")
        );
    }
}
