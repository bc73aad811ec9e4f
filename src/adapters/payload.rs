//! An event payload as an attempt holds it: compact JSON text.
//!
//! A parsed `serde_json::Value` costs up to ~37x the JSON's size (a 1 MiB
//! array of zeros became ~37 MB), and an attempt holds its payload for as
//! long as the receiver takes to answer: a few slow receivers and large
//! payloads were enough to multiply the gateway's memory. So the payload
//! stays text, and an adapter reads only what it needs while it builds its
//! request: one path ([`Payload::lookup`]), a few top-level fields
//! ([`Payload::fields`]) or the whole text, embedded as is ([`Payload::raw`],
//! [`Payload::bytes`]). Reads skip what they do not need without building it.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

/// The payload of one delivery, as compact JSON text (see the module docs
/// for why it is never held as a `Value`). Cloning shares the text.
#[derive(Clone)]
pub struct Payload(Arc<RawValue>);

impl Payload {
    /// The stored bytes in the form adapters have always been given: the
    /// text a `Value` parse and compact serialization would produce
    /// (whitespace dropped, escapes and numbers normalized), so webhook
    /// bodies and signatures stay what they were. Written in one pass
    /// without a tree; a repeated key (its last value kept at its first
    /// place) takes the `Value` route. Bytes that do not parse become
    /// `null`, as they always have (the payload was checked at ingest, so
    /// only a damaged store gets here).
    pub fn from_stored(bytes: &[u8]) -> Payload {
        let text = compact(bytes).or_else(|| via_value(bytes));
        let raw = text.and_then(|t| RawValue::from_string(t).ok());
        Payload(Arc::from(raw.unwrap_or_else(|| RawValue::NULL.to_owned())))
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The text as a JSON value to embed in a larger body verbatim.
    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// The text as a request body, sharing it rather than copying it.
    pub fn bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from_owner(Shared(self.0.clone()))
    }

    /// The value at `path` (object keys, array indexes as numbers), like
    /// `Value` indexing: `None` when a step is missing or not a container.
    /// Only the value found is built.
    pub fn lookup(&self, path: &[&str]) -> Option<Value> {
        self.lookup_all(&[path]).pop().flatten()
    }

    /// [`Payload::lookup`] for several paths in one pass over the text (a
    /// template with twenty placeholders reads a large payload once, not
    /// twenty times). The answers are in the order of `paths`.
    pub fn lookup_all(&self, paths: &[&[&str]]) -> Vec<Option<Value>> {
        let mut out = vec![None; paths.len()];
        if paths.is_empty() {
            return out;
        }
        let want = paths.iter().copied().enumerate().collect();
        let mut de = serde_json::Deserializer::from_str(self.as_str());
        let read = paths::Many { out: &mut out, want }.deserialize(&mut de);
        match read.and_then(|()| de.end()) {
            Ok(()) => out,
            Err(_) => vec![None; paths.len()],
        }
    }

    /// The top-level fields named in `keys` that the payload has (none when
    /// it is not an object). Only those values are built.
    pub fn fields(&self, keys: &[&str]) -> Map<String, Value> {
        let mut de = serde_json::Deserializer::from_str(self.as_str());
        let picked = Pick { keys }.deserialize(&mut de);
        picked.and_then(|map| de.end().map(|()| map)).unwrap_or_default()
    }
}

impl From<&Value> for Payload {
    fn from(v: &Value) -> Payload {
        Payload::from_stored(v.to_string().as_bytes())
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Payload {
        Payload::from(&v)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Payload {
    // The size only: payloads are customer data, and may be large.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.as_str().len())
    }
}

/// Lets a request body share the payload's text.
struct Shared(Arc<RawValue>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}

/// `bytes` rewritten compact in one pass, `None` when they do not parse or
/// an object repeats a key.
fn compact(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Compact { out: &mut out }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    String::from_utf8(out).ok()
}

/// The `Value` route, for the rare payload [`compact`] leaves to it.
fn via_value(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(bytes).ok().map(|v| v.to_string())
}

/// Writes the value it reads, compact, as `Value`'s serializer would.
struct Compact<'o> {
    out: &'o mut Vec<u8>,
}

impl Compact<'_> {
    fn write<T: serde::Serialize + ?Sized, E: de::Error>(self, v: &T) -> Result<(), E> {
        serde_json::to_writer(self.out, v).map_err(E::custom)
    }
}

impl<'de> DeserializeSeed<'de> for Compact<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Compact<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.write(&v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.write(&v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.write(&v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // A `Value` holds a non-finite number as `null`, which is what this writes.
        self.write(&v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.write(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.write(&())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            if seq.next_element_seed(Compact { out: &mut *self.out })?.is_none() {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Hashes, not keys: a collision only sends the payload the `Value` way.
        let hasher = std::hash::RandomState::new();
        let mut seen = HashSet::new();
        self.out.push(b'{');
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(hasher.hash_one(&key)) {
                return Err(de::Error::custom("a repeated key"));
            }
            if seen.len() > 1 {
                self.out.push(b',');
            }
            Compact { out: &mut *self.out }.write(key.as_str())?;
            self.out.push(b':');
            map.next_value_seed(Compact { out: &mut *self.out })?;
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// Collects the named top-level fields of an object, skipping the rest.
struct Pick<'k> {
    keys: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Map::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.keys.contains(&key.as_str()) {
                out.insert(key, map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

#[path = "payload_paths.rs"]
mod paths;

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
