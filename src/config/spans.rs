//! Where each node of a YAML document is: JSON pointer → line and column.
//!
//! serde-saphyr gives us values; this index, built in one pass from the
//! events of the same parser serde-saphyr reads with (granit-parser), lets
//! every diagnostic (schema or semantic) point at the exact key or value in
//! the file. It also finds duplicate keys, which a value tree can no longer
//! show, and keeps the text of scalars that may not read as text, aliases
//! and merge keys (`<<`) included.

mod walk;

use super::diagnostic::{Anchor, Path};
use std::collections::HashMap;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
}

impl Pos {
    fn of(marker: &granit_parser::Marker) -> Self {
        Pos { line: marker.line(), column: marker.col() + 1 }
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
    /// Where it is (where an alias or a merge key puts it, for those).
    pub path: Path,
    /// The scalar as written (`0123`, `1_000`, `no`).
    pub text: String,
}

/// Where and why the index stopped before the end of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Where it stopped.
    pub at: Pos,
    /// Why, in the parser's words.
    pub reason: String,
}

/// Pointer → positions for one document.
#[derive(Debug, Default)]
pub struct SpanIndex {
    entries: HashMap<String, Entry>,
    /// Keys repeated within a mapping.
    pub duplicates: Vec<DuplicateKey>,
    /// Plain scalar values that may not have been read as text, in file order
    /// (those an alias or a merge key brings where they are used).
    pub written: Vec<Written>,
    /// Set when the index could not follow the whole document: positions
    /// and written text after that point are missing, so a document that
    /// parsed must not be used as if they were there.
    pub stopped: Option<Stopped>,
}

impl SpanIndex {
    /// Indexes the first document of `text`. A syntax error stops it (the
    /// YAML parser reports those) and is kept in [`SpanIndex::stopped`].
    pub fn build(text: &str) -> Self {
        walk::build(text)
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
mod tests;
