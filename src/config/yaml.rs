//! YAML parsing with serde-saphyr: the parser limits, syntax messages, and the
//! cheap top-level look that tells a meshes config from other YAML.

use super::diagnostic::{Code, Issue, Path};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

mod documents;
mod limits;

/// The most YAML nodes (mappings, sequences, scalars) one file may hold.
/// serde-saphyr's default (250,000) stops at about 20,000 rules; this admits
/// 100,000 rules of 40 nodes each. Alias bombs are bounded by
/// [`MAX_ALIAS_NODES`], not by this.
pub const MAX_NODES: usize = 4_000_000;

/// The most nodes aliases may copy in one file. An alias (`*name`)
/// expands to its anchor's nodes, and an anchor may hold aliases of other
/// anchors, so a few hundred bytes can expand to billions of nodes.
/// serde-saphyr's default (a million) let such a file take 250 MB of a
/// gateway reloading it before refusing it; each copied node costs about
/// 110 bytes, so this bounds it to some 30 MB, while 10,000 rules that
/// each merge a whole rule template (16 nodes) stay under it.
pub const MAX_ALIAS_NODES: usize = 250_000;

/// The most nodes anchors (`&name`) may hold, the aliases they hold
/// expanded: what a nested alias bomb grows first. They are kept as parser
/// events of about 250 bytes each (60 MB at most). A template held by an
/// anchor is a few dozen nodes, but an anchor may also sit over a whole
/// section nothing aliases (`rules: &all`, 11 nodes a rule), so this is
/// as large as the alias budget: about 22,000 rules under one anchor.
pub const MAX_ANCHORED_NODES: usize = 250_000;

/// The most scalar text one file may hold, alias copies counted each time:
/// a 100,000-rule config holds about 6 MiB.
pub const MAX_SCALAR_BYTES: usize = 16 * 1024 * 1024;

fn options(max_nodes: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = max_nodes;
    // Every node is one event, every collection one more (its end).
    budget.max_events = 2 * max_nodes;
    budget.max_recorded_anchor_events = MAX_ANCHORED_NODES;
    budget.max_recorded_anchor_bytes = MAX_SCALAR_BYTES;
    budget.max_total_scalar_bytes = MAX_SCALAR_BYTES;
    // The ratio heuristic (at most ten aliases per anchor) refused a block
    // reused by alias in a few hundred rules; the node budgets above bound
    // what aliases cost, whatever their ratio.
    budget.enforce_alias_anchor_ratio = false;
    let mut options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        budget: Some(budget),
    };
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_NODES;
    options
}

/// A syntax or size error with its 1-based position.
pub type ParseError = (Issue, usize, usize);

/// Parses YAML into a JSON value; a syntax error comes back with its position.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    parse_limited(text, MAX_NODES)
}

fn parse_limited(text: &str, max_nodes: usize) -> Result<Value, ParseError> {
    serde_saphyr::from_str_with_options::<Value>(text, options(max_nodes)).map_err(|e| {
        if is_multiple_documents(&e) { documents::error(text) } else { located(&e, max_nodes) }
    })
}

fn located(e: &serde_saphyr::Error, max_nodes: usize) -> ParseError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
    let message = limits::message(e, max_nodes).unwrap_or_else(|| syntax_message(&e.to_string()));
    (Issue::error(Code::YamlSyntax, Path::root(), message), line, column)
}

fn is_multiple_documents(e: &serde_saphyr::Error) -> bool {
    matches!(limits::innermost(e), serde_saphyr::Error::MultipleDocuments { .. })
}

/// serde-saphyr prints `error: line L column C: <message>` and a snippet;
/// the diagnostic already carries the position, so keep the message.
fn syntax_message(full: &str) -> String {
    let first = full.lines().next().unwrap_or(full);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let message = match first.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, m)| m),
        None => first,
    };
    format!("invalid YAML: {message}")
}

/// What a file in a config directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A meshes config.
    Config,
    /// Valid YAML that is something else (a workflow, a manifest).
    Other,
    /// Nothing but whitespace, comments and document markers.
    Empty,
    /// Not YAML at all.
    Broken(ParseError),
}

/// Top-level keys that only a meshes config has, beside `version`.
const SECTIONS: &[&str] =
    &["connections", "rules", "automations", "sequences", "machine_keys", "delivery", "contacts"];

/// A meshes config is a document whose top level is a mapping with a
/// `workspace` key, or a `version` key and a meshes section. A bare
/// `version:` is not enough: docker-compose files have one too. A file of
/// several documents, one of them a config, is a config that
/// [`parse`] refuses with the line of the `---` to remove.
pub fn classify(text: &str) -> Kind {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if is_blank(text) {
        return Kind::Empty;
    }
    let docs = match serde_saphyr::from_multiple_with_options::<Top>(text, options(MAX_NODES)) {
        Ok(docs) => docs,
        Err(e) => return Kind::Broken(located(&e, MAX_NODES)),
    };
    // A file holding a meshes config among other documents is a config
    // (its check says to split it), never skipped as other YAML.
    if docs.iter().any(is_config) { Kind::Config } else { Kind::Other }
}

fn is_config(doc: &Top) -> bool {
    let Top(Some(keys)) = doc else { return false };
    let has = |k: &str| keys.iter().any(|key| key == k);
    has("workspace") || (has("version") && SECTIONS.iter().any(|s| has(s)))
}

/// Nothing but whitespace, comments and document markers (a BOM aside).
pub fn is_blank(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // YAML breaks lines at CR too: a CR-only file is many lines, not one comment.
    text.split(['\n', '\r']).map(str::trim).all(|l| {
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..." || l.starts_with("--- #")
    })
}

/// A document's top-level string keys (`None` when it is not a mapping);
/// values are skipped without being built.
struct Top(Option<Vec<String>>);

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

macro_rules! not_a_mapping {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $t) -> Result<Top, E> { Ok(Top(None)) })*
    };
}

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<Value>()? {
            map.next_value::<IgnoredAny>()?;
            if let Value::String(k) = key {
                keys.push(k);
            }
        }
        Ok(Top(Some(keys)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top(None))
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(TopVisitor)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top(None))
    }

    not_a_mapping!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128,
        visit_u128: u128, visit_f64: f64, visit_str: &str, visit_bytes: &[u8]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINIMAL: &str = "version: 1\nworkspace: { id: a, name: A, publishable_key: pk }\n";

    #[test]
    fn meshes_configs_are_recognised() {
        assert_eq!(classify(MINIMAL), Kind::Config);
        assert_eq!(classify(&format!("\u{feff}{MINIMAL}")), Kind::Config, "a BOM");
        assert_eq!(classify("\"version\": 1\n'workspace': {}\n"), Kind::Config, "quoted keys");
        assert_eq!(classify("{version: 1, workspace: {}}"), Kind::Config, "flow style");
        assert_eq!(classify("# a comment\nversion: 1\nrules: []\n"), Kind::Config);
        assert_eq!(classify("connections: {}\nworkspace: x\n"), Kind::Config, "no version");
    }

    #[test]
    fn other_yaml_is_not_a_config() {
        let compose = "version: \"3.8\"\nservices:\n  meshes: { image: meshes }\n";
        assert_eq!(classify(compose), Kind::Other, "docker-compose has a version too");
        assert_eq!(classify("name: ci\non: push\njobs: {}\n"), Kind::Other);
        assert_eq!(classify("- workspace\n- rules\n"), Kind::Other, "a sequence");
        assert_eq!(classify("just text\n"), Kind::Other, "a scalar");
        assert_eq!(classify("kind: A\n---\nname: x\n"), Kind::Other, "several documents");
        assert_eq!(classify("version: 1\n"), Kind::Other, "a version alone");
    }

    #[test]
    fn blank_files_are_empty_and_broken_files_are_located() {
        for text in ["", "  \n\n", "# only\n  # comments\n", "---\n...\n", "\u{feff}"] {
            assert_eq!(classify(text), Kind::Empty, "{text:?}");
        }
        let Kind::Broken((issue, line, _)) = classify("version: 1\nworkspace: [unclosed\n") else {
            panic!("a syntax error classifies as broken")
        };
        assert_eq!(issue.code, Code::YamlSyntax);
        assert!(line >= 2, "{line}");
        // CR-only line endings: a leading comment does not swallow the file.
        let cr = "# the gateway\rversion: 1\rworkspace: { id: x }\r";
        assert_eq!(classify(cr), Kind::Config, "{cr:?}");
        assert_eq!(classify("# one\r# two\r"), Kind::Empty);
    }

    #[test]
    fn a_breached_node_budget_is_a_size_error() {
        let big: String = (0..60).map(|i| format!("- [{i}]\n")).collect();
        assert!(parse_limited(&big, 121).is_ok(), "60 sequences of one scalar and the root");
        let (issue, _, _) = parse_limited(&big, 100).unwrap_err();
        assert!(issue.message.contains("too large: more than 100 YAML nodes"), "{}", issue.message);
    }

    #[test]
    fn several_documents_are_one_error_at_the_marker_of_the_second() {
        let one = "the file holds 2 YAML documents; a meshes config file is one document: remove the `---` at line 2 (move any other document to a file of its own)";
        for text in ["a: 1\n---\nb: 2\n", "a: 1\n---\n", "a: 1\n--- # c\n# c\n"] {
            let (issue, line, column) = parse(text).unwrap_err();
            assert_eq!((issue.message.as_str(), line, column), (one, 2, 1), "{text:?}");
        }
        let (issue, line, _) = parse("---\na: 1\n---\nb: 2\n---\nc: 3\n").unwrap_err();
        assert!(issue.message.starts_with("the file holds 3 YAML documents"), "{}", issue.message);
        assert!(issue.message.contains("remove the `---` at line 3"), "{}", issue.message);
        assert_eq!(line, 3);
        let (issue, line, _) = parse("a: 1\n...\nb: 2\n").unwrap_err();
        assert!(
            issue.message.contains("a document ends with `...` before line 3"),
            "{}",
            issue.message
        );
        assert_eq!(line, 3);
        for text in ["---\na: 1\n", "a: 1\n...\n", "# c\n---\na: 1\n"] {
            assert!(parse(text).is_ok(), "{text:?} is one document");
        }
    }

    /// In a directory, a file holding a config among other documents is a
    /// config (whose check refuses it), never skipped as other YAML.
    #[test]
    fn a_config_among_other_documents_is_a_config() {
        assert_eq!(classify(&format!("{MINIMAL}---\nkind: A\n")), Kind::Config);
        assert_eq!(classify(&format!("kind: A\n---\n{MINIMAL}")), Kind::Config);
        assert_eq!(classify(&format!("{MINIMAL}---\n")), Kind::Config, "a bare `---` at the end");
    }

    fn nested_aliases(items: &str) -> String {
        let mut text = format!("a: &a [{items}]\n");
        let names: Vec<char> = ('a'..='i').collect();
        for pair in names.windows(2) {
            let list = vec![format!("*{}", pair[0]); 9].join(", ");
            text.push_str(&format!("{}: &{} [{list}]\n", pair[1], pair[1]));
        }
        text
    }

    #[test]
    fn alias_bombs_are_refused_in_words() {
        let laughs = nested_aliases(&["lol"; 9].join(", "));
        assert!(laughs.len() < 700, "{}", laughs.len());
        let wide =
            format!("a: &a [{}]\nb: [{}]\n", vec!["0"; 20_000].join(","), vec!["*a"; 99].join(","));
        let big = format!("a: &a {}\nb: [{}]\n", "x".repeat(1 << 20), vec!["*a"; 20].join(","));
        let expected = [
            (
                laughs,
                "anchored blocks (`&name`) hold more than 250000 nodes, aliases inside them counted expanded, the limit of one config file: an anchor holding aliases of other anchors multiplies them (an alias expansion bomb)",
            ),
            (wide, "aliases expand to more than 250000 nodes, the limit of one config file"),
            (
                big,
                "the file holds more than 16 MiB of text in its values (aliases counted each time they are used)",
            ),
        ];
        for (text, message) in expected {
            let (issue, _, _) = parse(&text).unwrap_err();
            assert!(issue.message.starts_with(message), "{}", issue.message);
        }
    }

    /// An anchor over a whole section that nothing aliases (6,000 rules,
    /// 66,000 nodes) is an ordinary file, not a bomb.
    #[test]
    fn a_large_block_under_an_anchor_nothing_aliases_is_fine() {
        let rule =
            |i| format!("{{ id: r{i}, event: e, connection: c, metadata: {{ action: a }} }}");
        let rules: Vec<String> = (0..6_000).map(rule).collect();
        let value = parse(&format!("rules: &all [{}]\n", rules.join(", "))).unwrap();
        assert_eq!(value["rules"].as_array().map(Vec::len), Some(6_000));
    }

    /// A block reused by alias many times is not taken for a bomb (the
    /// alias-to-anchor ratio heuristic refused more than ten per anchor).
    #[test]
    fn an_anchor_used_by_many_aliases_is_fine() {
        let uses = vec!["*d"; 500].join(", ");
        let value = parse(&format!("d: &d {{ timeout: 5s }}\nuses: [{uses}]\n")).unwrap();
        assert_eq!(value["uses"].as_array().map(Vec::len), Some(500));
    }
}
