//! The one pass over the parser's events that builds a [`SpanIndex`].
//!
//! Aliases and merge keys (`<<`) are followed for the written text only: an
//! anchored mapping or sequence keeps the text of its scalars (relative to
//! itself) when it ends, and an alias of it lays that text out again under
//! the alias's path. Positions under an alias stay at the alias.

use super::{DuplicateKey, Entry, Pos, SpanIndex, Stopped, Written, may_not_be_text};
use crate::config::diagnostic::{Path, Seg};
use granit_parser::{Event, Parser, ScalarStyle};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Most written-text entries that aliases and merge keys may copy. Any
/// document serde-saphyr accepted stays under half of it (every copy is a
/// node its alias-replay budget counted); it only stops a hostile file the
/// index is asked to follow on its own.
pub(super) const MAX_COPIES: usize = 2 * crate::config::yaml::MAX_ALIAS_NODES;

/// What an anchored (or merged) mapping or sequence holds, for its aliases.
#[derive(Debug, Default)]
struct Captured {
    /// A mapping's keys, explicit and merged (empty for a sequence).
    keys: Vec<String>,
    /// Its written scalars, by path relative to it.
    written: Vec<(Vec<Seg>, String)>,
}

enum Anchored {
    Scalar { text: String, plain: bool },
    Container(Rc<Captured>),
}

/// A mapping or sequence being read.
struct Container {
    path: Path,
    anchor: usize,
    /// Where its written scalars start in `SpanIndex::written`.
    start: usize,
    /// Its rank among the sources of a merge key, when it is one.
    merge_source: Option<usize>,
    at: Pos,
}

struct Key {
    name: String,
    pos: Pos,
    /// A plain `<<`: its value is merged, not a key of its own.
    merge: bool,
}

/// A merge source of a mapping: its rank, what it holds and where it is.
type Merge = (usize, Rc<Captured>, Pos);

enum Frame {
    Map {
        c: Container,
        key: Option<Key>,
        seen: HashMap<String, Pos>,
        merges: Vec<Merge>,
    },
    Seq {
        c: Container,
        next: usize,
        merge_list: bool,
    },
    /// A complex key (a mapping or sequence used as a key): skipped.
    Skip,
}

/// Where a node lands in the document.
enum Slot {
    /// Inside a complex key.
    Skipped,
    /// A mapping key.
    Key,
    /// A value (or the root), and its rank when it is a merge source.
    Value { path: Path, merge_source: Option<usize> },
}

#[derive(Default)]
struct Walker {
    index: SpanIndex,
    stack: Vec<Frame>,
    skipped_keys: HashSet<usize>,
    anchors: HashMap<usize, Anchored>,
    copies: usize,
}

pub(super) fn build(text: &str) -> SpanIndex {
    let mut w = Walker::default();
    // Comments are not nodes; not emitting them also lifts the parser's
    // comment buffer limit, so the index never refuses what serde-saphyr reads.
    let options = granit_parser::options! { emit_comments: false };
    for item in Parser::new_from_str_with_options(text, options) {
        match item {
            Ok((Event::DocumentEnd, _)) => break,
            Ok((event, span)) => w.event(event, Pos::of(&span.start)),
            Err(e) => w.stop(Pos::of(e.marker()), e.to_string()),
        }
        if w.index.stopped.is_some() {
            break;
        }
    }
    w.index
}

impl Walker {
    fn event(&mut self, event: Event<'_>, pos: Pos) {
        match event {
            Event::Scalar(value, style, anchor, _) => {
                self.scalar(&value, style == ScalarStyle::Plain, anchor, pos);
            }
            Event::Alias(id) => self.alias(id, pos),
            Event::MappingStart(_, anchor, _) => self.open(true, anchor, pos),
            Event::SequenceStart(_, anchor, _) => self.open(false, anchor, pos),
            Event::MappingEnd | Event::SequenceEnd => self.close(pos),
            _ => {}
        }
    }

    fn stop(&mut self, at: Pos, reason: String) {
        self.index.stopped.get_or_insert(Stopped { at, reason });
    }

    fn scalar(&mut self, value: &str, plain: bool, anchor: usize, pos: Pos) {
        if anchor > 0 {
            self.anchors.insert(anchor, Anchored::Scalar { text: value.to_string(), plain });
        }
        let slot = self.slot(Some(value), plain && value == "<<", pos);
        if let (Slot::Value { path, .. }, true) = (slot, plain && may_not_be_text(value)) {
            self.index.written.push(Written { path, text: value.to_string() });
        }
    }

    fn alias(&mut self, id: usize, pos: Pos) {
        let key = match self.anchors.get(&id) {
            Some(Anchored::Scalar { text, .. }) => Some(text.clone()),
            _ => None,
        };
        let Slot::Value { path, merge_source } = self.slot(key.as_deref(), false, pos) else {
            return;
        };
        match self.anchors.get(&id) {
            Some(Anchored::Scalar { text, plain: true }) if may_not_be_text(text) => {
                let text = text.clone();
                self.index.written.push(Written { path, text });
            }
            Some(Anchored::Container(held)) => {
                let held = Rc::clone(held);
                match merge_source {
                    Some(rank) => self.add_merge((rank, held, pos)),
                    None => self.lay_out(&path, held.written.iter(), pos),
                }
            }
            _ => {}
        }
    }

    fn open(&mut self, is_map: bool, anchor: usize, pos: Pos) {
        let in_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. } | Frame::Skip));
        if in_key {
            self.skipped_keys.insert(self.stack.len());
            self.stack.push(Frame::Skip);
            return;
        }
        let Slot::Value { path, merge_source } = self.slot(None, false, pos) else {
            self.stack.push(Frame::Skip);
            return;
        };
        let start = self.index.written.len();
        // `<<: [*a, *b]`: the sequence lists the sources, it is not one.
        let merge_list = !is_map && merge_source.is_some();
        let merge_source = merge_source.filter(|_| is_map);
        let c = Container { path, anchor, start, merge_source, at: pos };
        self.stack.push(if is_map {
            Frame::Map { c, key: None, seen: HashMap::new(), merges: Vec::new() }
        } else {
            Frame::Seq { c, next: 0, merge_list }
        });
    }

    fn close(&mut self, pos: Pos) {
        match self.stack.pop() {
            Some(Frame::Map { c, seen, merges, .. }) => {
                let merged = self.merge(&c.path, &seen, merges);
                if c.anchor > 0 || c.merge_source.is_some() {
                    let keys = seen.into_keys().chain(merged).collect();
                    self.capture(c, keys);
                }
            }
            Some(Frame::Seq { c, .. }) => self.capture(c, Vec::new()),
            Some(Frame::Skip) => {
                if self.skipped_keys.remove(&self.stack.len())
                    && let Some(Frame::Map { key, .. }) = self.stack.last_mut()
                {
                    *key = Some(Key { name: "?".into(), pos, merge: false });
                }
            }
            None => {}
        }
    }

    /// Places the start of a node: a key is remembered (and checked for a
    /// repetition), a value gets its entry.
    fn slot(&mut self, scalar: Option<&str>, merge_key: bool, pos: Pos) -> Slot {
        let (path, key_pos, merge_source) = match self.stack.last_mut() {
            None => (Path::root(), None, None),
            Some(Frame::Skip) => return Slot::Skipped,
            Some(Frame::Seq { c, next, merge_list }) => {
                *next += 1;
                (c.path.index(*next - 1), None, merge_list.then_some(*next - 1))
            }
            Some(Frame::Map { c, key, seen, .. }) => match key.take() {
                None => {
                    let name = scalar.unwrap_or("*alias").to_string();
                    if !merge_key {
                        match seen.get(&name) {
                            Some(first) => self.index.duplicates.push(DuplicateKey {
                                path: c.path.key(name.clone()),
                                at: pos,
                                first: *first,
                            }),
                            None => {
                                seen.insert(name.clone(), pos);
                            }
                        }
                    }
                    *key = Some(Key { name, pos, merge: merge_key });
                    return Slot::Key;
                }
                Some(k) => (c.path.key(k.name), Some(k.pos), k.merge.then_some(0)),
            },
        };
        // The last of repeated keys is the one read (and reported as repeated).
        self.index.entries.insert(path.pointer(), Entry { key: key_pos, value: pos });
        Slot::Value { path, merge_source }
    }

    /// Counts `n` copies of written text against the budget; false (and
    /// the index stopped at `pos`) past it.
    fn charge(&mut self, n: usize, pos: Pos) -> bool {
        self.copies = self.copies.saturating_add(n);
        if self.copies > MAX_COPIES {
            let reason = format!("aliases copy more than {MAX_COPIES} scalars");
            self.stop(pos, reason);
        }
        self.index.stopped.is_none()
    }

    /// Appends written text held elsewhere under `at`, within the copy budget.
    fn lay_out<'a, I>(&mut self, at: &Path, held: I, pos: Pos)
    where
        I: ExactSizeIterator<Item = &'a (Vec<Seg>, String)>,
    {
        if !self.charge(held.len(), pos) {
            return;
        }
        for (rel, text) in held {
            let mut path = at.clone();
            path.0.extend(rel.iter().cloned());
            self.index.written.push(Written { path, text: text.clone() });
        }
    }

    /// Gives a merge source to the mapping it merges into (the nearest one:
    /// the source is its `<<` value, or an item of that value).
    fn add_merge(&mut self, merge: Merge) {
        let merges = self.stack.iter_mut().rev().find_map(|f| match f {
            Frame::Map { merges, .. } => Some(merges),
            _ => None,
        });
        if let Some(merges) = merges {
            merges.push(merge);
        }
    }

    /// Lays out the merged keys a mapping at `at` does not set itself, each
    /// from the first source that has it (YAML's merge order), and returns
    /// those keys.
    fn merge(
        &mut self,
        at: &Path,
        seen: &HashMap<String, Pos>,
        mut merges: Vec<Merge>,
    ) -> Vec<String> {
        let mut keys = Vec::new();
        merges.sort_by_key(|(rank, _, _)| *rank);
        let mut from: HashMap<&str, usize> = HashMap::new();
        for (n, (_, held, _)) in merges.iter().enumerate() {
            for k in held.keys.iter().filter(|k| !seen.contains_key(*k)) {
                from.entry(k.as_str()).or_insert(n);
            }
        }
        for (n, (_, held, pos)) in merges.iter().enumerate() {
            let mine = |k: &str| from.get(k) == Some(&n);
            for k in held.keys.iter().filter(|k| mine(k.as_str())) {
                let entry = Entry { key: Some(*pos), value: *pos };
                self.index.entries.entry(at.key(k.clone()).pointer()).or_insert(entry);
                keys.push(k.clone());
            }
            let taken = held
                .written
                .iter()
                .filter(|(rel, _)| matches!(rel.first(), Some(Seg::Key(k)) if mine(k)));
            self.lay_out(at, taken.collect::<Vec<_>>().into_iter(), *pos);
        }
        keys
    }

    /// Keeps what an anchored container, or a merge source, holds. A merge
    /// source's own text leaves the index: it is only there once merged.
    fn capture(&mut self, c: Container, keys: Vec<String>) {
        if c.anchor == 0 && c.merge_source.is_none() {
            return;
        }
        let depth = c.path.0.len();
        let n = self.index.written.len().saturating_sub(c.start);
        if !self.charge(n, c.at) {
            return;
        }
        let tail = self.index.written.get(c.start..).unwrap_or_default();
        let written = tail
            .iter()
            .map(|w| (w.path.0.get(depth..).unwrap_or_default().to_vec(), w.text.clone()))
            .collect();
        let held = Rc::new(Captured { keys, written });
        if let Some(rank) = c.merge_source {
            self.index.written.truncate(c.start);
            self.add_merge((rank, Rc::clone(&held), c.at));
        }
        if c.anchor > 0 {
            self.anchors.insert(c.anchor, Anchored::Container(held));
        }
    }
}
