//! Scalars as written. serde-saphyr reads plain scalars the YAML 1.1 way
//! (`0123` as 123, `1e3` as 1000, `no` as false) into the value tree, while
//! the span index keeps their text. That text is what a metadata `id` or
//! `value` is sent as, and it tells when a boolean was read from a word
//! that editors using the published schema (YAML 1.2) read as text.

use super::diagnostic::{Code, Issue, Path, Seg, Severity};
use super::spans::SpanIndex;
use serde_json::Value;

/// The words serde-saphyr reads as booleans, in any case (YAML 1.1).
const BOOLEAN_WORDS: [&str; 8] = ["y", "yes", "true", "on", "n", "no", "false", "off"];

/// The boolean spellings of YAML 1.2 (the core schema), which every reader agrees on.
const CORE_BOOLEANS: [&str; 6] = ["true", "True", "TRUE", "false", "False", "FALSE"];

/// True for a plain scalar the parser reads as a boolean.
pub fn is_boolean_word(s: &str) -> bool {
    BOOLEAN_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// A metadata `id` or `value`: sent to providers as text, so kept as written.
fn is_metadata_scalar(path: &Path) -> bool {
    matches!(path.0.as_slice(), [.., Seg::Key(m), Seg::Key(f)]
        if m == "metadata" && (f == "id" || f == "value"))
}

/// Replaces each metadata `id` and `value` the parser read as a number or a
/// boolean by the text written: `0123`, `1_000`, `1.0`, `0x1F`, `no` and
/// numbers beyond 64 bits are sent as they read in the file, never as a
/// parsed value printed back.
pub fn keep_metadata_text(doc: &mut Value, spans: &SpanIndex) {
    for w in spans.written.iter().filter(|w| is_metadata_scalar(&w.path)) {
        if let Some(v) = doc.pointer_mut(&w.path.pointer())
            && (v.is_number() || v.is_boolean())
        {
            *v = Value::String(w.text.clone());
        }
    }
}

/// For each boolean read from a YAML 1.1 word (`yes`, `n`, `off`, `On`…):
/// where the schema refused it (a text field), says so in that error and
/// how to keep it as text; elsewhere, a warning that editors read it as
/// text, and the spelling every reader agrees on.
pub fn yaml11_booleans(doc: &Value, spans: &SpanIndex, issues: &mut Vec<Issue>) {
    for w in &spans.written {
        if !is_boolean_word(&w.text) || CORE_BOOLEANS.contains(&w.text.as_str()) {
            continue;
        }
        let Some(Value::Bool(read)) = doc.pointer(&w.path.pointer()) else { continue };
        let text = &w.text;
        let refused = issues.iter_mut().find(|i| i.path == w.path && i.severity == Severity::Error);
        if let Some(issue) = refused {
            issue.message.push_str(&format!(
                "; `{text}` was read as a YAML 1.1 boolean: quote it (`\"{text}\"`) to keep it as text"
            ));
            continue;
        }
        let message = format!(
            "`{text}` is read here as the boolean `{read}` (YAML 1.1), but as the text \"{text}\" by editors and YAML 1.2 parsers: write `{read}`"
        );
        issues.push(Issue::warning(Code::Yaml11Boolean, w.path.clone(), message));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Value, SpanIndex) {
        (super::super::yaml::parse(text).unwrap(), SpanIndex::build(text))
    }

    #[test]
    fn metadata_ids_and_values_keep_the_text_written() {
        let cases = [
            ("0123", "0123"),
            ("0x1F", "0x1F"),
            ("0o17", "0o17"),
            ("1_000", "1_000"),
            ("1e3", "1e3"),
            ("1.0", "1.0"),
            ("12345678901234567890", "12345678901234567890"),
            ("no", "no"),
            ("8", "8"),
            ("\"0123\"", "0123"),
        ];
        for (written, sent) in cases {
            let text = format!("rules:\n  - metadata: {{ id: {written}, value: {written} }}\n");
            let (mut doc, spans) = parsed(&text);
            keep_metadata_text(&mut doc, &spans);
            let meta = &doc["rules"][0]["metadata"];
            assert_eq!(meta["id"], Value::from(sent), "id: {written}");
            assert_eq!(meta["value"], Value::from(sent), "value: {written}");
        }
    }

    #[test]
    fn an_alias_keeps_the_anchored_text_and_other_numbers_stay_numbers() {
        let text =
            "x: &big 0123\nrules:\n  - metadata: { id: *big }\ndelivery: { concurrency: 010 }\n";
        let (mut doc, spans) = parsed(text);
        keep_metadata_text(&mut doc, &spans);
        assert_eq!(doc["rules"][0]["metadata"]["id"], Value::from("0123"));
        assert!(doc["delivery"]["concurrency"].is_number(), "only metadata is kept as text");
    }

    /// A Mailchimp audience id reused through an alias or a merge key is
    /// sent as written, like one written in place.
    #[test]
    fn a_metadata_mapping_through_an_alias_or_a_merge_key_keeps_the_text_written() {
        let text = "x-audience: &m { action: add_to_list, id: 0123 }\nrules:\n  - metadata: *m\n  - metadata: { <<: *m }\n  - metadata: { <<: *m, id: \"0456\" }\n";
        let (mut doc, spans) = parsed(text);
        keep_metadata_text(&mut doc, &spans);
        let ids: Vec<&Value> = (0..3).map(|i| &doc["rules"][i]["metadata"]["id"]).collect();
        assert_eq!(ids, [&Value::from("0123"), &Value::from("0123"), &Value::from("0456")]);
    }

    #[test]
    fn a_tab_after_a_key_does_not_lose_later_written_text() {
        let text = "name:\ttabbed\nrules:\n  - metadata: { action: add_to_list, id: 0123 }\n";
        let (mut doc, spans) = parsed(text);
        keep_metadata_text(&mut doc, &spans);
        assert_eq!(doc["rules"][0]["metadata"]["id"], Value::from("0123"));
    }

    #[test]
    fn yaml11_booleans_warn_where_taken_and_explain_where_refused() {
        let text = "a: no\nb: Off\nc: true\nd: \"yes\"\ne: y\n";
        let (doc, spans) = parsed(text);
        let e = Path::root().key("e");
        let mut issues = vec![Issue::error(Code::InvalidType, e.clone(), "expected a string")];
        yaml11_booleans(&doc, &spans, &mut issues);
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert!(issues[0].message.ends_with("quote it (`\"y\"`) to keep it as text"), "{issues:?}");
        let warned: Vec<(String, Code, Severity)> =
            issues[1..].iter().map(|i| (i.path.to_string(), i.code, i.severity)).collect();
        let w = (Code::Yaml11Boolean, Severity::Warning);
        assert_eq!(warned, [("a".to_string(), w.0, w.1), ("b".to_string(), w.0, w.1)]);
        assert!(issues[1].message.contains("the boolean `false`"), "{}", issues[1].message);
        assert!(issues[1].message.ends_with("write `false`"), "{}", issues[1].message);
    }
}
