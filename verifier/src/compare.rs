//! The row comparison: a symmetric hash merge of two row streams keyed by primary key.
//!
//! **Algorithm.** Both sides are read concurrently (the source through the transform plan and
//! the type mapping, the target in PostgreSQL's binary format), each row reduced to a
//! [`KeyedRow`]: the canonical bytes of its key columns and the SHA-256 of the canonical bytes
//! of the whole row ([`schemas::canonical`]). [`Merge::push`] looks the key up among the rows
//! of the *other* side still waiting for a partner: found, the two digests are compared (equal:
//! both forgotten; different: a `differing` row with the columns whose canonical bytes differ);
//! not found, the row waits. At the end every waiting source row is `missing` in the target
//! and every waiting target row is `extra`.
//!
//! **Why this is exact.** Rows are matched by the *binary* equality of their key's canonical
//! bytes, never by either server's collation or ordering, so the result does not depend on
//! MySQL and PostgreSQL sorting strings differently (a key `'Key1'` on one side and `'key1'`
//! on the other are two different keys: one missing, one extra). Every row of both sides is
//! visited once, so nothing is sampled and no chunk checksum can hide a pair of compensating
//! differences. Both sides are read ordered by key, which makes the waiting set small (only
//! the rows on which the two servers' orders disagree, plus the real differences); ordering
//! is a memory optimisation, never a correctness assumption.
//!
//! **Bisection.** Chunk checksums computed inside the databases ([`crate::pushdown`]) avoid
//! moving the rows of equal chunks; a chunk whose checksums differ comes here, streamed
//! whole, so the "bisection" bottoms out after one level: the unit compared is the row, and
//! differing rows are named without further rounds. Tables the pushdown cannot handle come
//! here whole.

use std::collections::HashMap;

use schemas::PgValue;
use schemas::canonical::{canonical_bytes, encode};
use sha2::{Digest, Sha256};

/// Which side a row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source, converted through transforms and mapping.
    Source,
    /// The target table.
    Target,
}

/// One row reduced for comparison.
#[derive(Debug, Clone)]
pub struct KeyedRow {
    /// Canonical bytes of the key columns.
    pub key: Vec<u8>,
    /// SHA-256 of the canonical row encoding.
    pub digest: [u8; 32],
    /// The values (kept for the report while the row waits for its partner).
    pub values: Vec<PgValue>,
}

impl KeyedRow {
    /// Reduces `values` (in mapping column order) with the key at `key` positions.
    pub fn new(values: Vec<PgValue>, key: &[usize], buf: &mut Vec<u8>) -> KeyedRow {
        let mut k = Vec::with_capacity(16 * key.len());
        for &i in key {
            if let Some(v) = values.get(i) {
                encode(v, &mut k);
            }
        }
        buf.clear();
        buf.extend_from_slice(&(values.len() as u64).to_be_bytes());
        for v in &values {
            encode(v, buf);
        }
        KeyedRow {
            key: k,
            digest: Sha256::digest(&buf[..]).into(),
            values,
        }
    }
}

/// What kind of difference a row shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// In the source, not in the target.
    MissingInTarget,
    /// In the target, not in the source.
    ExtraInTarget,
    /// In both, with different values.
    Differing,
}

/// One differing row as found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The kind.
    pub kind: DiffKind,
    /// Canonical key bytes (identity across rounds).
    pub key: Vec<u8>,
    /// Key values.
    pub key_values: Vec<PgValue>,
    /// Source values, when kept.
    pub source: Option<Vec<PgValue>>,
    /// Target values, when kept.
    pub target: Option<Vec<PgValue>>,
}

/// The outcome of one comparison of one table.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Rows read from the source (after transform filters).
    pub source_rows: u64,
    /// Rows read from the target.
    pub target_rows: u64,
    /// Every difference (values kept for the first `detail_cap`).
    pub found: Vec<Found>,
}

/// The merge state of one table.
#[derive(Debug)]
pub struct Merge {
    key: Vec<usize>,
    waiting: HashMap<Vec<u8>, (Side, [u8; 32], Vec<PgValue>)>,
    detail_cap: usize,
    out: Outcome,
}

impl Merge {
    /// A merge for rows whose key columns are at `key`; values of the first `detail_cap`
    /// differences are kept for the report (beyond, only keys).
    pub fn new(key: Vec<usize>, detail_cap: usize) -> Merge {
        Merge {
            key,
            waiting: HashMap::new(),
            detail_cap,
            out: Outcome::default(),
        }
    }

    /// Rows currently waiting for a partner (memory use).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Takes one row of `side`.
    pub fn push(&mut self, side: Side, row: KeyedRow) {
        use std::collections::hash_map::Entry;
        match side {
            Side::Source => self.out.source_rows += 1,
            Side::Target => self.out.target_rows += 1,
        }
        match self.waiting.entry(row.key) {
            Entry::Occupied(e) if e.get().0 != side => {
                let (key, (_, digest, values)) = e.remove_entry();
                if digest != row.digest {
                    let (s, t) = match side {
                        Side::Source => (row.values, values),
                        Side::Target => (values, row.values),
                    };
                    self.record(DiffKind::Differing, key, Some(s), Some(t));
                }
            }
            Entry::Occupied(e) => {
                // The same key twice on one side (a target whose key constraint was dropped, or
                // a transform that maps two keys to one): the first keeps waiting, the second is
                // a difference of its own.
                let key = e.key().clone();
                self.unmatched(
                    side,
                    KeyedRow {
                        key,
                        digest: row.digest,
                        values: row.values,
                    },
                );
            }
            Entry::Vacant(e) => {
                e.insert((side, row.digest, row.values));
            }
        }
    }

    fn unmatched(&mut self, side: Side, row: KeyedRow) {
        match side {
            Side::Source => self.record(DiffKind::MissingInTarget, row.key, Some(row.values), None),
            Side::Target => self.record(DiffKind::ExtraInTarget, row.key, None, Some(row.values)),
        }
    }

    fn record(
        &mut self,
        kind: DiffKind,
        key: Vec<u8>,
        source: Option<Vec<PgValue>>,
        target: Option<Vec<PgValue>>,
    ) {
        let any = source.as_ref().or(target.as_ref());
        let key_values = self
            .key
            .iter()
            .map(|&i| any.and_then(|v| v.get(i)).cloned().unwrap_or(PgValue::Null))
            .collect();
        let keep = self.out.found.len() < self.detail_cap;
        self.out.found.push(Found {
            kind,
            key,
            key_values,
            source: source.filter(|_| keep),
            target: target.filter(|_| keep),
        });
    }

    /// Ends the merge: every row still waiting has no partner.
    pub fn finish(mut self) -> Outcome {
        let mut rest: Vec<(Side, KeyedRow)> = self
            .waiting
            .drain()
            .map(|(key, (side, digest, values))| {
                (
                    side,
                    KeyedRow {
                        key,
                        digest,
                        values,
                    },
                )
            })
            .collect();
        // Report order independent of hashing: by side, then key bytes.
        rest.sort_by(|a, b| {
            (a.0 == Side::Target)
                .cmp(&(b.0 == Side::Target))
                .then_with(|| a.1.key.cmp(&b.1.key))
        });
        for (side, row) in rest {
            self.unmatched(side, row);
        }
        self.out
    }
}

/// Indexes of the columns whose canonical encodings differ.
pub fn differing_columns(source: &[PgValue], target: &[PgValue]) -> Vec<usize> {
    (0..source.len().max(target.len()))
        .filter(|&i| {
            let a = source.get(i).map(canonical_bytes);
            let b = target.get(i).map(canonical_bytes);
            a != b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i32, v: &str) -> KeyedRow {
        KeyedRow::new(
            vec![PgValue::Int4(id), PgValue::Text(v.into())],
            &[0],
            &mut Vec::new(),
        )
    }

    #[test]
    fn finds_each_kind_once_whatever_the_order() {
        let mut m = Merge::new(vec![0], 10);
        m.push(Side::Target, row(2, "b"));
        m.push(Side::Source, row(1, "a"));
        m.push(Side::Source, row(2, "b"));
        m.push(Side::Source, row(3, "c"));
        m.push(Side::Target, row(3, "C"));
        m.push(Side::Target, row(4, "d"));
        let out = m.finish();
        assert_eq!(out.source_rows, 3);
        assert_eq!(out.target_rows, 3);
        let kinds: Vec<DiffKind> = out.found.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![
                DiffKind::Differing,
                DiffKind::MissingInTarget,
                DiffKind::ExtraInTarget
            ]
        );
        let d = &out.found[0];
        assert_eq!(
            differing_columns(d.source.as_ref().unwrap(), d.target.as_ref().unwrap()),
            vec![1]
        );
    }

    #[test]
    fn duplicate_target_key_is_extra() {
        let mut m = Merge::new(vec![0], 10);
        m.push(Side::Source, row(1, "a"));
        m.push(Side::Target, row(1, "a"));
        m.push(Side::Target, row(1, "a"));
        let out = m.finish();
        assert_eq!(out.found.len(), 1);
        assert_eq!(out.found[0].kind, DiffKind::ExtraInTarget);
    }

    #[test]
    fn keys_match_by_bytes_not_collation() {
        let k = |s: &str| KeyedRow::new(vec![PgValue::Text(s.into())], &[0], &mut Vec::new());
        let mut m = Merge::new(vec![0], 10);
        m.push(Side::Source, k("Key1"));
        m.push(Side::Target, k("key1"));
        let out = m.finish();
        assert_eq!(out.found.len(), 2);
    }
}
