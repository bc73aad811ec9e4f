//! Reads several paths out of a payload's text in one pass, building only
//! the values found.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// One wanted path: the slot its answer goes to, and the steps left.
type Want<'p, 'k> = (usize, &'p [&'k str]);

/// Finds every wanted path in the value being read, skipping the rest.
/// Slots of paths not found stay as they are (`None`).
pub(super) struct Many<'o, 'p, 'k> {
    pub(super) out: &'o mut [Option<Value>],
    pub(super) want: Vec<Want<'p, 'k>>,
}

impl<'de> DeserializeSeed<'de> for Many<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // A path that ends here needs the whole value, so it is built once
        // and the deeper paths into it are read from the tree.
        if self.want.iter().any(|(_, rest)| rest.is_empty()) {
            let v = Value::deserialize(d)?;
            let (whole, deeper): (Vec<_>, Vec<_>) =
                self.want.into_iter().partition(|(_, rest)| rest.is_empty());
            for (slot, rest) in deeper {
                self.out[slot] = index(&v, rest);
            }
            if let Some(((last, _), others)) = whole.split_last() {
                for &(slot, _) in others {
                    self.out[slot] = Some(v.clone());
                }
                self.out[*last] = Some(v);
            }
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

/// `Value` indexing by a path, the rule [`Many`] follows on the text.
fn index(v: &Value, path: &[&str]) -> Option<Value> {
    path.iter()
        .try_fold(v, |v, key| match v {
            Value::Object(m) => m.get(*key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
        .cloned()
}

impl<'de> Visitor<'de> for Many<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    // Scalars have nothing inside to find.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let indexed: Vec<(Option<usize>, Want)> = self
            .want
            .iter()
            .map(|&(slot, rest)| (rest[0].parse::<usize>().ok(), (slot, &rest[1..])))
            .collect();
        let last = indexed.iter().filter_map(|(at, _)| *at).max();
        for i in 0.. {
            // Past the last index wanted, the rest is only skipped.
            let want: Vec<Want> = match last {
                Some(last) if i <= last => {
                    indexed.iter().filter(|(at, _)| *at == Some(i)).map(|(_, w)| *w).collect()
                }
                _ => Vec::new(),
            };
            let more = if want.is_empty() {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else {
                seq.next_element_seed(Many { out: &mut *self.out, want })?.is_some()
            };
            if !more {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let want: Vec<Want> = self
                .want
                .iter()
                .filter(|(_, rest)| rest[0] == key)
                .map(|&(slot, rest)| (slot, &rest[1..]))
                .collect();
            if want.is_empty() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            // As with `Value`, a repeated key's last value counts, even
            // where it lacks what the first one had.
            for &(slot, _) in &want {
                self.out[slot] = None;
            }
            map.next_value_seed(Many { out: &mut *self.out, want })?;
        }
        Ok(())
    }
}
