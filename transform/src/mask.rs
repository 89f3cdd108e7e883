//! `mask`: personal data replaced by a salted SHA-256, NULL or a constant.

use sha2::{Digest, Sha256};

use schemas::charset::Charset;
use schemas::table::{ColumnType, TableSchema};
use schemas::value::{Row, Value};

use crate::TransformError;
use crate::config::{MaskWith, TablePatterns, constant_for, text_form};
use crate::stage::{Compiled, resolve};

/// Length of a SHA-256 mask: 64 lowercase hex digits.
const SHA256_HEX_LEN: u32 = 64;

pub(crate) struct Mask {
    name: String,
    tables: TablePatterns,
    columns: Vec<String>,
    with: MaskWith,
    salt: Vec<u8>,
    value: String,
}

impl Mask {
    pub(crate) fn new(
        name: String,
        tables: TablePatterns,
        columns: Vec<String>,
        with: MaskWith,
        salt: Option<String>,
        value: Option<String>,
    ) -> Result<Mask, TransformError> {
        let err = |problem: &str| TransformError {
            stage: name.clone(),
            problem: problem.to_owned(),
        };
        let (salt, value) = match with {
            MaskWith::Sha256 => {
                let salt = salt.ok_or_else(|| {
                    err(
                        "with = \"sha256\" needs a salt (salt = \"${MY2PG_MASK_SALT}\"): \
                         without one, a hashed e-mail can be found by hashing guesses",
                    )
                })?;
                if salt.len() < 16 {
                    return Err(err("the salt must be at least 16 bytes long"));
                }
                if value.is_some() {
                    return Err(err("value is for with = \"constant\"; remove it"));
                }
                (salt.into_bytes(), String::new())
            }
            MaskWith::Null => {
                if salt.is_some() || value.is_some() {
                    return Err(err("with = \"null\" takes neither salt nor value"));
                }
                (Vec::new(), String::new())
            }
            MaskWith::Constant => {
                let value = value.ok_or_else(|| {
                    err("with = \"constant\" needs the value to write (value = \"redacted\")")
                })?;
                if salt.is_some() {
                    return Err(err("salt is for with = \"sha256\"; remove it"));
                }
                (Vec::new(), value)
            }
        };
        Ok(Mask {
            name,
            tables,
            columns,
            with,
            salt,
            value,
        })
    }

    fn err(&self, problem: String) -> TransformError {
        TransformError {
            stage: self.name.clone(),
            problem,
        }
    }
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The salt is a secret: never in logs.
        f.debug_struct("Mask")
            .field("tables", &self.tables)
            .field("columns", &self.columns)
            .field("with", &self.with)
            .finish_non_exhaustive()
    }
}

/// `hex(sha256(salt || bytes))`. The bytes are the value's text form (raw bytes for binary
/// values), so the same value masks the same way in every table and in every run.
pub fn sha256_mask(salt: &[u8], value: &Value) -> Option<String> {
    let mut h = Sha256::new();
    h.update(salt);
    match value {
        Value::Null => return None,
        Value::Bytes(b) => h.update(b),
        Value::InvalidText { bytes, .. } => h.update(bytes),
        Value::Geometry { srid, wkb } => {
            h.update(srid.to_be_bytes());
            h.update(wkb);
        }
        other => h.update(text_form(other).unwrap_or_default().as_bytes()),
    }
    Some(hex::encode(h.finalize()))
}

impl super::stage::Transform for Mask {
    fn describe(&self) -> String {
        let with = match self.with {
            MaskWith::Sha256 => "salted sha256".to_owned(),
            MaskWith::Null => "NULL".to_owned(),
            MaskWith::Constant => format!("{:?}", self.value),
        };
        format!(
            "mask columns {} of {} with {with}",
            self.columns.join(", "),
            self.tables
        )
    }

    fn compile(&self, schema: &TableSchema) -> Result<Compiled, TransformError> {
        if !self.tables.matches(&schema.id) {
            return Ok(Compiled::Pass);
        }
        let present: Vec<String> = self
            .columns
            .iter()
            .filter(|c| schema.column_index(c).is_some())
            .cloned()
            .collect();
        if present.is_empty() {
            return Ok(Compiled::Pass);
        }
        let idx = resolve(&self.name, schema, &present)?;
        let key = schema.identity_key().unwrap_or_default();
        let mut out = schema.clone();
        let mut constants = Vec::with_capacity(idx.len());
        for &i in &idx {
            let col = &mut out.columns[i];
            match self.with {
                MaskWith::Sha256 => {
                    col.ty = ColumnType::VarChar {
                        len: SHA256_HEX_LEN,
                    };
                    col.charset = Some(Charset::Ascii);
                    col.collation = Some("ascii_bin".into());
                    col.default = None;
                    col.auto_increment = false;
                    col.on_update_current_timestamp = false;
                }
                MaskWith::Null | MaskWith::Constant if key.contains(&i) => {
                    return Err(self.err(format!(
                        "column {}.{} identifies rows (it is in the key): masking it with \
                         NULL or a constant would merge rows; use with = \"sha256\"",
                        schema.id, col.name
                    )));
                }
                MaskWith::Null => col.nullable = true,
                MaskWith::Constant => {
                    let v = constant_for(&col.ty, &self.value).ok_or_else(|| {
                        self.err(format!(
                            "{:?} is not a value of column {}.{} ({:?}); constants fit text, \
                             integer, DECIMAL, ENUM and JSON columns — use with = \"null\" \
                             or \"sha256\" for others",
                            self.value, schema.id, col.name, col.ty
                        ))
                    })?;
                    constants.push((i, v));
                }
            }
        }
        // Unique keys over masked columns stay unique only under sha256.
        if self.with != MaskWith::Sha256 {
            out.unique_keys
                .retain(|ix| !ix.columns.iter().any(|p| idx.contains(&p.column)));
        }
        let with = self.with;
        let salt = self.salt.clone();
        Ok(Compiled::Rows {
            output: out,
            rows: Box::new(move |mut row: Row| {
                match with {
                    MaskWith::Sha256 => {
                        for &i in &idx {
                            if let Some(v) = row.0.get_mut(i)
                                && let Some(h) = sha256_mask(&salt, v)
                            {
                                *v = Value::Text(h);
                            }
                        }
                    }
                    MaskWith::Null => {
                        for &i in &idx {
                            if let Some(v) = row.0.get_mut(i) {
                                *v = Value::Null;
                            }
                        }
                    }
                    MaskWith::Constant => {
                        for (i, c) in &constants {
                            if let Some(v) = row.0.get_mut(*i)
                                && !v.is_null()
                            {
                                *v = c.clone();
                            }
                        }
                    }
                }
                Some(row)
            }),
        })
    }
}
