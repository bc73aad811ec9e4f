//! A file checked end to end: what the YAML layer (parser, span index)
//! makes of it, as `validate` and the gateway see it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::model::Scalar;
use super::*;

const HEAD: &str = "version: 1
workspace:
  id: 135a1121-a89c-4630-aee4-f43acdefc16e
  name: ex
  publishable_key: mesh_pub_example_x
connections:
  news:
    type: mailchimp
    api_key: ${MAILCHIMP_API_KEY}
";

fn check(text: &str) -> Report {
    let source = Source { name: "c.yaml".into(), text: text.to_string() };
    check_sources(&[source], CheckOptions::default())
}

fn shown(report: &Report) -> Vec<String> {
    report.diagnostics.iter().map(ToString::to_string).collect()
}

fn rule(id: &str, metadata: &str) -> String {
    format!("  - id: {id}\n    event: e\n    connection: news\n    metadata: {metadata}\n")
}

fn ids(report: &Report) -> Vec<Option<Scalar>> {
    let (_, config) = &report.configs[0];
    config.rules.iter().map(|r| r.metadata.id.clone()).collect()
}

fn text(s: &str) -> Option<Scalar> {
    Some(Scalar::String(s.into()))
}

/// `name:<TAB>value` used to stop the span index: every later diagnostic
/// went to 1:1 and a later `id: 0123` was sent as `123`.
#[test]
fn a_tab_after_a_key_keeps_later_positions_and_ids_as_written() {
    let head = HEAD.replace("  name: ex", "  name:\tex");
    let good = format!("{head}rules:\n{}", rule("r", "{ action: add_to_list, id: 0123 }"));
    let report = check(&good);
    assert!(report.diagnostics.is_empty(), "{:?}", shown(&report));
    assert_eq!(ids(&report), [text("0123")]);
    let bad = format!(
        "{head}rules:\n{}  - id: r2\n    event: e\n    connection: nope\n",
        rule("r", "{ action: add_to_list, id: 1 }")
    );
    let report = check(&bad);
    assert_eq!(
        shown(&report),
        ["c.yaml:15:5: error[missing-field]: rules[1]: missing required field `metadata`"]
    );
}

#[test]
fn metadata_through_an_alias_or_a_merge_key_keeps_its_id_as_written() {
    let rules = [
        rule("a", "&m { action: add_to_list, id: 0123 }"),
        rule("b", "*m"),
        rule("c", "{ <<: *m }"),
        rule("d", "{ <<: *m, id: 0456 }"),
    ];
    let report = check(&format!("{HEAD}rules:\n{}", rules.concat()));
    assert!(report.diagnostics.is_empty(), "{:?}", shown(&report));
    assert_eq!(ids(&report), [text("0123"), text("0123"), text("0123"), text("0456")]);
}

/// A large config reusing a rule by merge key in every rule loads: the
/// alias budgets stop bombs, not this.
#[test]
fn ten_thousand_rules_merging_one_template_load_with_their_ids_as_written() {
    let mut yaml = format!(
        "{HEAD}rules:\n  - &r {{ id: r0, event: e, connection: news, metadata: {{ action: add_to_list, id: 0123 }} }}\n"
    );
    for i in 1..10_000 {
        yaml.push_str(&format!("  - {{ <<: *r, id: r{i} }}\n"));
    }
    let report = check(&yaml);
    assert!(report.diagnostics.is_empty(), "{:?}", shown(&report));
    let ids = ids(&report);
    assert_eq!(ids.len(), 10_000);
    assert!(ids.iter().all(|id| *id == text("0123")), "{:?}", &ids[..3]);
}

#[test]
fn a_duplicate_key_is_an_error_at_the_second_and_values_are_located_there() {
    let text = format!(
        "{HEAD}  news:\n    type: log\nrules:\n{}version: 2\n",
        rule("r", "{ action: add_to_list, id: x }")
    );
    let report = check(&text);
    let found: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| matches!(d.code, Code::DuplicateKey | Code::InvalidValue))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "c.yaml:10:3: error[duplicate-key]: connections.news: `news` is defined twice in this mapping (first at line 7): the second would silently replace the first; remove or rename one",
            "c.yaml:17:1: error[duplicate-key]: version: `version` is defined twice in this mapping (first at line 1): the second would silently replace the first; remove or rename one",
            "c.yaml:17:10: error[invalid-value]: version: expected at most 1, found the number `2`",
        ]
    );
    assert!(report.configs.is_empty());
}

#[test]
fn an_index_that_stops_early_is_an_error_where_it_stopped() {
    let mut spans = SpanIndex::default();
    let at = spans::Pos { line: 3, column: 7 };
    spans.stopped = Some(spans::Stopped { at, reason: "a reason".into() });
    let issues = index_issues(&spans);
    assert_eq!(issues.len(), 1);
    assert_eq!((issues[0].code, issues[0].pinned), (Code::YamlSyntax, Some((3, 7))));
    assert!(issues[0].message.contains("could not follow the YAML from here (a reason)"));
}

/// A key written to rewrite the terminal line (`\e[2K\r`) or hide what
/// follows (`\e[8m`) is shown escaped, in every output.
#[test]
fn control_characters_of_a_key_are_escaped_in_diagnostics() {
    let text = format!("{HEAD}\"\\e[2K\\rok: all good\\e[8m\": 1\nrules: []\n");
    let report = check(&text);
    let unknown: Vec<&Diagnostic> =
        report.diagnostics.iter().filter(|d| d.code == Code::UnknownField).collect();
    assert_eq!(unknown.len(), 1, "{:?}", shown(&report));
    let d = unknown[0];
    assert!(d.message.starts_with("unknown field `\\u{1b}[2K\\rok: all good\\u{1b}[8m`"), "{d}");
    assert_eq!(d.path, "[\"\\u{1b}[2K\\rok: all good\\u{1b}[8m\"]");
    assert_eq!((d.line, d.column), (10, 1));
}

/// A header value written as a number is still possibly a credential.
#[test]
fn a_header_value_of_the_wrong_type_is_not_quoted() {
    let text = format!(
        "{HEAD}  hook: {{ type: webhook, url: \"${{U}}\", headers: {{ X-Api-Key: 4111111111 }} }}\nrules: []\n"
    );
    let report = check(&text);
    let lines = shown(&report);
    let hit = lines.iter().find(|l| l.contains("headers.X-Api-Key")).expect("reported");
    assert!(
        hit.ends_with(
            "expected a string, found a number (hidden: this field may hold a credential)"
        ),
        "{hit}"
    );
    assert!(lines.iter().all(|l| !l.contains("4111111111")), "{lines:?}");
}
