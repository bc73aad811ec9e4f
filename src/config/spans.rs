//! Where each node of a YAML document is: JSON pointer → line and column.
//!
//! serde-saphyr gives us values; this index, built from saphyr's event
//! stream in one pass, lets every diagnostic (schema or semantic) point at
//! the exact key or value in the file. It also finds duplicate keys, which a
//! value tree can no longer show.

use super::diagnostic::{Anchor, Path};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::{HashMap, HashSet};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Self {
        Pos { line: span.start.line(), column: span.start.col() + 1 }
    }
}

/// Where a node's key (for mapping values) and value start.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Pos>,
    value: Pos,
}

/// A key that appears twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Path of the repeated key.
    pub path: Path,
    /// Where the repetition is.
    pub at: Pos,
    /// Where the first occurrence is.
    pub first: Pos,
}

/// A plain (unquoted) scalar that YAML may read as a number or a boolean,
/// with the text written: the value tree has only what was parsed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Where it is.
    pub path: Path,
    /// The scalar as written (`0123`, `1_000`, `no`).
    pub text: String,
}

/// Pointer → positions for one document.
#[derive(Debug, Default)]
pub struct SpanIndex {
    entries: HashMap<String, Entry>,
    /// Keys repeated within a mapping.
    pub duplicates: Vec<DuplicateKey>,
    /// Plain scalar values that may not have been read as text, in file order.
    pub written: Vec<Written>,
}

enum Frame {
    Map {
        path: Path,
        key: Option<(String, Pos)>,
        seen: HashMap<String, Pos>,
    },
    Seq {
        path: Path,
        next: usize,
    },
    /// A complex key (a mapping or sequence used as a key): skipped.
    Skip,
}

impl SpanIndex {
    /// Indexes `text`; stops quietly at a syntax error (the YAML parser reports those).
    pub fn build(text: &str) -> Self {
        let mut index = SpanIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut skipped_keys: HashSet<usize> = HashSet::new();
        // Anchored scalars that may not read as text, for their aliases.
        let mut anchored: HashMap<usize, String> = HashMap::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            match event {
                Event::Scalar(value, style, anchor, _) => {
                    let path = index.node(&mut stack, Some(&value), &span, None);
                    if style == ScalarStyle::Plain && may_not_be_text(&value) {
                        if anchor > 0 {
                            anchored.insert(anchor, value.to_string());
                        }
                        if let Some(path) = path {
                            index.written.push(Written { path, text: value.to_string() });
                        }
                    }
                }
                Event::Alias(anchor) => {
                    let path = index.node(&mut stack, None, &span, None);
                    if let (Some(path), Some(text)) = (path, anchored.get(&anchor)) {
                        index.written.push(Written { path, text: text.clone() });
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    if !stack.is_empty() && index.is_key_position(&stack) {
                        skipped_keys.insert(stack.len());
                        stack.push(Frame::Skip);
                        continue;
                    }
                    index.node(&mut stack, None, &span, Some(is_map));
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    if skipped_keys.remove(&stack.len())
                        && let Some(Frame::Map { key, .. }) = stack.last_mut()
                    {
                        *key = Some(("?".into(), Pos::of(&span)));
                    }
                }
                Event::DocumentEnd => break,
                _ => {}
            }
        }
        index
    }

    fn is_key_position(&self, stack: &[Frame]) -> bool {
        matches!(stack.last(), Some(Frame::Map { key: None, .. }) | Some(Frame::Skip))
    }

    /// Handles the start of a node; `container` is `Some(is_map)` for
    /// collections. Returns the path of a scalar value (not of a key).
    fn node(
        &mut self,
        stack: &mut Vec<Frame>,
        scalar: Option<&str>,
        span: &Span,
        container: Option<bool>,
    ) -> Option<Path> {
        let pos = Pos::of(span);
        let (path, key_pos) = match stack.last_mut() {
            None => (Path::root(), None),
            Some(Frame::Skip) => return None,
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                (path.index(*next - 1), None)
            }
            Some(Frame::Map { path, key, seen }) => match key.take() {
                None => {
                    let name = scalar.unwrap_or("*alias").to_string();
                    if let Some(first) = seen.get(&name) {
                        self.duplicates.push(DuplicateKey {
                            path: path.key(&name),
                            at: pos,
                            first: *first,
                        });
                    } else {
                        seen.insert(name.clone(), pos);
                    }
                    *key = Some((name, pos));
                    return None;
                }
                Some((name, kpos)) => (path.key(name), Some(kpos)),
            },
        };
        self.entries.entry(path.pointer()).or_insert(Entry { key: key_pos, value: pos });
        match container {
            Some(true) => stack.push(Frame::Map { path, key: None, seen: HashMap::new() }),
            Some(false) => stack.push(Frame::Seq { path, next: 0 }),
            None => return Some(path),
        }
        None
    }

    /// Makes every lookup answer `line:column` (for files that did not parse).
    pub fn pin_root(&mut self, line: usize, column: usize) {
        self.entries.insert(String::new(), Entry { key: None, value: Pos { line, column } });
    }

    /// The position for `path`: its key or its value, falling back to the
    /// nearest ancestor that exists in the file (e.g. for a missing field).
    pub fn locate(&self, path: &Path, anchor: Anchor) -> Pos {
        let mut p = path.clone();
        loop {
            if let Some(e) = self.entries.get(&p.pointer()) {
                return match anchor {
                    Anchor::Key if p == *path => e.key.unwrap_or(e.value),
                    _ if p != *path => e.key.unwrap_or(e.value),
                    _ => e.value,
                };
            }
            if p.0.is_empty() {
                return Pos { line: 1, column: 1 };
            }
            p = p.parent();
        }
    }
}

/// True when a plain scalar may be read as something other than text: a
/// number (it starts with a digit, a sign or a dot) or a YAML 1.1 boolean.
/// Only these are kept, so the index stays small on large files.
fn may_not_be_text(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
        || super::written::is_boolean_word(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nrules:\n  - id: a\n    event: x\n  - id: b\n    metadata: {action: log, id: 8}\nconnections:\n  crm: {type: log}\n  crm: {type: log}\n";

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn locates_keys_values_and_flow_nodes() {
        let idx = SpanIndex::build(DOC);
        let rule1 = Path::root().key("rules").index(1);
        assert_eq!(idx.locate(&rule1.key("id"), Anchor::Value), at(5, 9));
        assert_eq!(idx.locate(&rule1.key("id"), Anchor::Key), at(5, 5));
        assert_eq!(idx.locate(&rule1.key("metadata").key("id"), Anchor::Value), at(6, 33));
        assert_eq!(idx.locate(&Path::root().key("rules").index(0), Anchor::Value), at(3, 5));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor_key() {
        let idx = SpanIndex::build(DOC);
        let missing = Path::root().key("rules").index(0).key("connection");
        assert_eq!(idx.locate(&missing, Anchor::Value), at(3, 5));
    }

    #[test]
    fn finds_duplicate_keys() {
        let idx = SpanIndex::build(DOC);
        assert_eq!(idx.duplicates.len(), 1);
        assert_eq!(idx.duplicates[0].at, at(9, 3));
        assert_eq!(idx.duplicates[0].first, at(8, 3));
        assert_eq!(idx.duplicates[0].path.to_string(), "connections.crm");
    }

    #[test]
    fn keeps_plain_scalars_that_may_not_be_text_as_written() {
        let doc = "a: 0123\nb: '0x1F'\nc: &n no\nd: *n\ne: text\nf: [1_000, \"2\"]\n0: key\n";
        let idx = SpanIndex::build(doc);
        let written: Vec<(String, &str)> =
            idx.written.iter().map(|w| (w.path.to_string(), w.text.as_str())).collect();
        let expected = [("a", "0123"), ("c", "no"), ("d", "no"), ("f[0]", "1_000")];
        let expected: Vec<(String, &str)> =
            expected.iter().map(|(p, t)| (p.to_string(), *t)).collect();
        assert_eq!(written, expected);
    }
}
