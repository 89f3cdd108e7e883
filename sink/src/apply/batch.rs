//! Collapsing the row changes of a batch into one operation per key and table.
//!
//! A batch holds whole source transactions in source order. For a table with a key, the
//! target state after the batch depends only on the *last* change to each key: an insert or
//! an update leaves the after image (an upsert of the full row), a delete leaves nothing. An
//! update that changes the key is a delete of the old key followed by an upsert of the new.
//! So per key only the final operation is kept — insert-delete-insert, update chains and key
//! swaps all collapse correctly — and the batch becomes, per table, one set of deletes and one
//! set of upserts, applied deletes first. Rows of tables without a key cannot be collapsed;
//! they are kept in order and applied one by one (see `NoKeyPolicy`).
//!
//! Row images are converted to target values here, so a value the target cannot hold is
//! reported with its table, key and column before anything is written.

use std::collections::HashMap;
use std::sync::Arc;

use schemas::canonical;
use schemas::{ChangeOp, PgValue, TableMapping};

/// The final operation for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyOp {
    /// Insert the row, or overwrite the row with the same key.
    Upsert(Vec<PgValue>),
    /// Delete the row with these key values (in key order).
    Delete(Vec<PgValue>),
}

/// One change of a table without a key, kept in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Unkeyed {
    /// Insert, update or delete.
    pub op: ChangeOp,
    /// Converted before image.
    pub before: Option<Vec<PgValue>>,
    /// Converted after image.
    pub after: Option<Vec<PgValue>>,
}

/// The collapsed operations of one table.
#[derive(Debug, Clone)]
pub struct TableOps {
    /// The table's mapping.
    pub mapping: Arc<TableMapping>,
    /// Final operation per key (canonical key bytes → op).
    pub keyed: HashMap<Vec<u8>, KeyOp>,
    /// Changes of a table without a key, in order.
    pub unkeyed: Vec<Unkeyed>,
    /// Row changes folded in, by operation (for metrics).
    pub counts: [u64; 4],
}

impl TableOps {
    /// Empty operations for `mapping`.
    pub fn new(mapping: Arc<TableMapping>) -> Self {
        TableOps {
            mapping,
            keyed: HashMap::new(),
            unkeyed: Vec::new(),
            counts: [0; 4],
        }
    }

    /// Canonical bytes of the key of a converted row.
    pub fn key_of(&self, row: &[PgValue]) -> (Vec<u8>, Vec<PgValue>) {
        let mut bytes = Vec::with_capacity(16 * self.mapping.key.len());
        let mut values = Vec::with_capacity(self.mapping.key.len());
        for &k in &self.mapping.key {
            let v = row.get(k).cloned().unwrap_or(PgValue::Null);
            let enc = canonical::canonical_bytes(&v);
            bytes.extend_from_slice(&(enc.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&enc);
            values.push(v);
        }
        (bytes, values)
    }

    /// Folds one converted change in.
    pub fn push(
        &mut self,
        op: ChangeOp,
        before: Option<Vec<PgValue>>,
        after: Option<Vec<PgValue>>,
    ) {
        self.counts[op_index(op)] += 1;
        if self.mapping.key.is_empty() {
            self.unkeyed.push(Unkeyed { op, before, after });
            return;
        }
        match (op, before, after) {
            (ChangeOp::Insert | ChangeOp::Read, _, Some(after)) => {
                let (k, _) = self.key_of(&after);
                self.keyed.insert(k, KeyOp::Upsert(after));
            }
            (ChangeOp::Delete, Some(before), _) => {
                let (k, vals) = self.key_of(&before);
                self.keyed.insert(k, KeyOp::Delete(vals));
            }
            (ChangeOp::Update, Some(before), Some(after)) => {
                let (kb, vals) = self.key_of(&before);
                let (ka, _) = self.key_of(&after);
                if kb != ka {
                    self.keyed.insert(kb, KeyOp::Delete(vals));
                }
                self.keyed.insert(ka, KeyOp::Upsert(after));
            }
            // Images missing for the operation: nothing to apply (the reader never produces
            // these; the decoder requires full images).
            _ => {}
        }
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.unkeyed.is_empty()
    }

    /// Deletes (key values) and upserts (rows), consuming the collapsed map.
    pub fn split(&mut self) -> (Vec<Vec<PgValue>>, Vec<Vec<PgValue>>) {
        let mut deletes = Vec::new();
        let mut upserts = Vec::new();
        for (_, op) in self.keyed.drain() {
            match op {
                KeyOp::Delete(k) => deletes.push(k),
                KeyOp::Upsert(r) => upserts.push(r),
            }
        }
        (deletes, upserts)
    }
}

/// Index of an operation in [`TableOps::counts`].
pub fn op_index(op: ChangeOp) -> usize {
    match op {
        ChangeOp::Insert => 0,
        ChangeOp::Update => 1,
        ChangeOp::Delete => 2,
        ChangeOp::Read => 3,
    }
}

/// The operation of a [`TableOps::counts`] index.
pub const OPS: [ChangeOp; 4] = [
    ChangeOp::Insert,
    ChangeOp::Update,
    ChangeOp::Delete,
    ChangeOp::Read,
];

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::mapping::{MappingOptions, map_table};
    use schemas::table::IntWidth;
    use schemas::{Column, ColumnType, TableId, TableSchema};

    fn mapping() -> Arc<TableMapping> {
        let mut id = Column::new(
            "id",
            ColumnType::Integer {
                width: IntWidth::Int,
                unsigned: false,
                display_width: None,
            },
        );
        id.nullable = false;
        let schema = TableSchema {
            id: TableId::new("d", "t"),
            columns: vec![id, Column::new("v", ColumnType::VarChar { len: 10 })],
            primary_key: vec![0],
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            comment: String::new(),
            auto_increment: None,
        };
        Arc::new(map_table(Arc::new(schema), "d", &MappingOptions::default()).unwrap())
    }

    fn row(id: i32, v: &str) -> Vec<PgValue> {
        vec![PgValue::Int4(id), PgValue::Text(v.into())]
    }

    fn finals(ops: &mut TableOps) -> (Vec<i32>, Vec<(i32, String)>) {
        let (d, u) = ops.split();
        let mut d: Vec<i32> = d
            .iter()
            .map(|k| match k[0] {
                PgValue::Int4(i) => i,
                _ => -1,
            })
            .collect();
        let mut u: Vec<(i32, String)> = u
            .iter()
            .map(|r| match (&r[0], &r[1]) {
                (PgValue::Int4(i), PgValue::Text(s)) => (*i, s.clone()),
                _ => (-1, String::new()),
            })
            .collect();
        d.sort();
        u.sort();
        (d, u)
    }

    #[test]
    fn insert_delete_insert_and_update_chains_collapse_to_the_last_state() {
        let mut ops = TableOps::new(mapping());
        ops.push(ChangeOp::Insert, None, Some(row(1, "a")));
        ops.push(ChangeOp::Delete, Some(row(1, "a")), None);
        ops.push(ChangeOp::Insert, None, Some(row(1, "b")));
        ops.push(ChangeOp::Insert, None, Some(row(2, "x")));
        ops.push(ChangeOp::Update, Some(row(2, "x")), Some(row(2, "y")));
        ops.push(ChangeOp::Update, Some(row(2, "y")), Some(row(2, "z")));
        ops.push(ChangeOp::Delete, Some(row(3, "q")), None);
        assert_eq!(
            finals(&mut ops),
            (vec![3], vec![(1, "b".into()), (2, "z".into())])
        );
    }

    #[test]
    fn key_change_is_delete_plus_upsert_and_swaps_work() {
        let mut ops = TableOps::new(mapping());
        ops.push(ChangeOp::Update, Some(row(1, "a")), Some(row(5, "a")));
        assert_eq!(finals(&mut ops), (vec![1], vec![(5, "a".into())]));
        // 1 -> 9, 2 -> 1, 9 -> 2: a swap through a temporary key.
        let mut ops = TableOps::new(mapping());
        ops.push(ChangeOp::Update, Some(row(1, "one")), Some(row(9, "one")));
        ops.push(ChangeOp::Update, Some(row(2, "two")), Some(row(1, "two")));
        ops.push(ChangeOp::Update, Some(row(9, "one")), Some(row(2, "one")));
        assert_eq!(
            finals(&mut ops),
            (vec![9], vec![(1, "two".into()), (2, "one".into())])
        );
    }
}
