use super::*;

const DOC: &str = "version: 1\nrules:\n  - id: a\n    event: x\n  - id: b\n    metadata: {action: log, id: 8}\nconnections:\n  crm: {type: log}\n  crm: {type: log}\n";

fn at(line: usize, column: usize) -> Pos {
    Pos { line, column }
}

fn written(idx: &SpanIndex) -> Vec<(String, &str)> {
    idx.written.iter().map(|w| (w.path.to_string(), w.text.as_str())).collect()
}

fn pairs(expected: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    expected.iter().map(|(p, t)| (p.to_string(), *t)).collect()
}

#[test]
fn locates_keys_values_and_flow_nodes() {
    let idx = SpanIndex::build(DOC);
    let rule1 = Path::root().key("rules").index(1);
    assert_eq!(idx.locate(&rule1.key("id"), Anchor::Value), at(5, 9));
    assert_eq!(idx.locate(&rule1.key("id"), Anchor::Key), at(5, 5));
    assert_eq!(idx.locate(&rule1.key("metadata").key("id"), Anchor::Value), at(6, 33));
    assert_eq!(idx.locate(&Path::root().key("rules").index(0), Anchor::Value), at(3, 5));
    assert_eq!(idx.stopped, None);
}

#[test]
fn missing_paths_fall_back_to_the_nearest_ancestor_key() {
    let idx = SpanIndex::build(DOC);
    let missing = Path::root().key("rules").index(0).key("connection");
    assert_eq!(idx.locate(&missing, Anchor::Value), at(3, 5));
}

#[test]
fn finds_duplicate_keys_and_locates_the_last_which_is_the_one_read() {
    let idx = SpanIndex::build(DOC);
    assert_eq!(idx.duplicates.len(), 1);
    assert_eq!(idx.duplicates[0].at, at(9, 3));
    assert_eq!(idx.duplicates[0].first, at(8, 3));
    assert_eq!(idx.duplicates[0].path.to_string(), "connections.crm");
    let crm = Path::root().key("connections").key("crm");
    assert_eq!(idx.locate(&crm.key("type"), Anchor::Value), at(9, 15));
}

#[test]
fn aliased_keys_and_repeated_merge_keys_are_not_duplicates() {
    let doc = "k: &k a\nl: &l b\nm:\n  *k : 1\n  *l : 2\nn: {<<: {x: 1}, <<: {y: 2}}\no: {*k : 1, a: 2}\n";
    let idx = SpanIndex::build(doc);
    let found: Vec<String> = idx.duplicates.iter().map(|d| d.path.to_string()).collect();
    assert_eq!(found, ["o.a"], "an alias key is its anchor's text");
}

#[test]
fn keeps_plain_scalars_that_may_not_be_text_as_written() {
    let doc = "a: 0123\nb: '0x1F'\nc: &n no\nd: *n\ne: text\nf: [1_000, \"2\"]\n0: key\n";
    let idx = SpanIndex::build(doc);
    let expected = pairs(&[("a", "0123"), ("c", "no"), ("d", "no"), ("f[0]", "1_000")]);
    assert_eq!(written(&idx), expected);
}

/// `key:<TAB>value` is valid YAML that serde-saphyr reads; the index must
/// follow it to the end, not stop there and lose what comes after.
#[test]
fn a_tab_after_a_key_keeps_every_later_position_and_written_text() {
    let doc = "name:\ttabbed\nrules:\n  - id: r\n    metadata: { id: 0123 }\n";
    let idx = SpanIndex::build(doc);
    assert_eq!(idx.stopped, None);
    let id = Path::root().key("rules").index(0).key("metadata").key("id");
    assert_eq!(idx.locate(&id, Anchor::Value), at(4, 21));
    assert_eq!(idx.locate(&Path::root().key("name"), Anchor::Value), at(1, 7));
    assert_eq!(written(&idx), pairs(&[("rules[0].metadata.id", "0123")]));
}

#[test]
fn an_alias_of_a_mapping_or_sequence_carries_its_written_text() {
    let doc =
        "a: &m {id: 0123, action: add, n: [&s 07, 1e3]}\nb: *m\nc: [*m]\nd: &q [0x1F]\ne: *q\n";
    let idx = SpanIndex::build(doc);
    let expected = pairs(&[
        ("a.id", "0123"),
        ("a.n[0]", "07"),
        ("a.n[1]", "1e3"),
        ("b.id", "0123"),
        ("b.n[0]", "07"),
        ("b.n[1]", "1e3"),
        ("c[0].id", "0123"),
        ("c[0].n[0]", "07"),
        ("c[0].n[1]", "1e3"),
        ("d[0]", "0x1F"),
        ("e[0]", "0x1F"),
    ]);
    assert_eq!(written(&idx), expected);
    let under_alias = Path::root().key("b").key("id");
    assert_eq!(idx.locate(&under_alias, Anchor::Value), at(2, 1), "at the aliasing key");
}

#[test]
fn merge_keys_carry_the_keys_the_mapping_does_not_set_in_merge_order() {
    let doc = "a: &m {id: 0123, value: 01}\nb: &n {id: 0456, other: 02}\nc: {<<: *m, value: \"x\"}\nd: {value: 5, <<: [*n, *m]}\ne: {<<: {id: 09}}\n";
    let idx = SpanIndex::build(doc);
    let mut found = written(&idx);
    found.sort();
    let mut expected = pairs(&[
        ("a.id", "0123"),
        ("a.value", "01"),
        ("b.id", "0456"),
        ("b.other", "02"),
        ("c.id", "0123"),
        ("d.value", "5"),
        ("d.id", "0456"),
        ("d.other", "02"),
        ("e.id", "09"),
    ]);
    expected.sort();
    assert_eq!(found, expected);
    assert!(idx.duplicates.is_empty(), "{:?}", idx.duplicates);
    let merged = Path::root().key("c").key("id");
    assert_eq!(idx.locate(&merged, Anchor::Value), at(3, 9), "at the merged alias");
}

#[test]
fn a_syntax_error_stops_the_index_where_it_is() {
    let idx = SpanIndex::build("a: 1\nb: [unclosed\n");
    let stopped = idx.stopped.expect("a syntax error is kept");
    assert!(stopped.at.line >= 2, "{stopped:?}");
    assert!(!stopped.reason.is_empty());
}

#[test]
fn aliases_copying_more_than_the_budget_stop_the_index() {
    let mut doc = String::from("a0: &a0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n");
    for i in 1..8 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 10].join(", ");
        doc.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    let idx = SpanIndex::build(&doc);
    let stopped = idx.stopped.expect("a bomb is not followed to the end");
    assert!(stopped.reason.contains("aliases copy more than"), "{stopped:?}");
    // Stopped at the budget, give or take the copy under way.
    assert!(idx.written.len() <= super::walk::MAX_COPIES + 1_000, "{}", idx.written.len());
}
