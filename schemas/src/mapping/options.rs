//! The `[mapping]` options: how each MySQL type becomes a PostgreSQL type, what happens to the
//! values PostgreSQL cannot hold, per-column overrides, and the streaming-DDL policy.
//!
//! Every option has a documented default, written as a named constant whose doc says why. The
//! defaults never change data silently: a value the target cannot hold exactly stops the
//! migration with a message naming the column, the key and the value, and the operator chooses
//! a policy for it (globally or for one column). `docs/type-mapping.md` is the reference table.
//!
//! Options resolve per column: [`MappingOptions::policy_for`] starts from the global values and
//! applies the `[mapping.columns."db.table.column"]` override, so every conversion of a column
//! (snapshot, stream, verify, the `check` scan) sees the same [`ColumnPolicy`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::table::{TableId, split_qualified};
use crate::value::{Date, DateTime};

/// TINYINT(1) becomes `boolean`: it is MySQL's spelling of BOOLEAN, and applications written for
/// MySQL treat it as one. A stored value other than 0 or 1 is an error under this default (it
/// would become `true` and lose the number); set `false` to keep such columns `smallint`.
pub const DEFAULT_TINYINT1_AS_BOOLEAN: bool = true;
/// ENUM becomes `text` with a CHECK listing the labels: the values stay readable strings, adding
/// a label later is a CHECK swap rather than `ALTER TYPE`, and no extra type objects appear.
pub const DEFAULT_ENUM_AS: EnumAs = EnumAs::Check;
/// SET becomes `text[]`: members stay separate values instead of a comma-joined string.
pub const DEFAULT_SET_AS: SetAs = SetAs::Array;
/// A zero or invalid date stops the migration: PostgreSQL has no such date, and any stand-in
/// (NULL, the epoch, -infinity) changes data, which the operator must choose knowingly.
pub const DEFAULT_ZERO_DATE: ZeroDate = ZeroDate::Error;
/// BIGINT UNSIGNED becomes `numeric(20,0)`: the only built-in type holding 0..=2^64-1 exactly.
pub const DEFAULT_UNSIGNED_BIGINT_AS: UnsignedBigintAs = UnsignedBigintAs::Numeric;
/// A NUL character in text stops the migration: PostgreSQL text cannot hold U+0000.
pub const DEFAULT_NUL_IN_TEXT: NulInText = NulInText::Error;
/// Text whose bytes are invalid in the column's character set stops the migration.
pub const DEFAULT_INVALID_TEXT: InvalidText = InvalidText::Error;
/// JSON becomes `jsonb`: indexable and compared by value, which is what MySQL's JSON does.
pub const DEFAULT_JSON_AS: JsonAs = JsonAs::Jsonb;
/// Spatial values become `bytea` holding WKB: it needs no extension on the target. With an SRID
/// other than 0 the bytes are PostGIS's extended WKB, so the SRID is kept, not dropped.
pub const DEFAULT_GEOMETRY_AS: GeometryAs = GeometryAs::Wkb;
/// CHAR(n)/VARCHAR(n) become `varchar(n)`: the length limit the application relies on is kept.
/// (Never `char(n)`: MySQL strips CHAR's trailing spaces on read, PostgreSQL's `char(n)` pads
/// them back, so values would differ.)
pub const DEFAULT_STRING_AS: StringAs = StringAs::Varchar;
/// Target identifiers are folded to lower case: unquoted names in the application's SQL fold
/// to lower case in PostgreSQL, so `SELECT * FROM Orders` keeps working.
pub const DEFAULT_IDENTIFIERS: IdentifierCase = IdentifierCase::Lower;
/// What replaces a NUL or an invalid byte sequence under the `replace` policies: U+FFFD, the
/// Unicode replacement character, so a replaced value is visibly not the original.
pub const REPLACEMENT_CHARACTER: char = '\u{FFFD}';

/// How ENUM columns are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnumAs {
    /// `text` with `CHECK (col IN (labels…, ''))` (`''` is MySQL's error value, which every
    /// ENUM column can hold).
    Check,
    /// A PostgreSQL enum type `<table>_<column>` (the error value `''` cannot be stored).
    PgEnum,
    /// Plain `text`.
    Text,
}

/// How SET columns are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetAs {
    /// `text[]`, members in definition order, with a CHECK that every element is a member.
    Array,
    /// `text`, members joined with commas as MySQL prints them.
    Text,
}

/// What a zero or invalid date (`0000-00-00`, `2015-00-21`, `0000-01-21`, `2021-02-30`)
/// becomes. Dates in year 0 count: PostgreSQL has no year 0 (its year before 1 AD is 1 BC), and
/// MySQL's year 0 is not the proleptic year of PostgreSQL's calendar (MySQL counts it as 365 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ZeroDate {
    /// Stop with an error naming the column, key and value.
    Error,
    /// NULL. The column loses NOT NULL on the target; in a primary key this is still an error.
    Null,
    /// `-infinity`.
    NegInfinity,
    /// A fixed date (and time, for DATETIME/TIMESTAMP; TIMESTAMP reads it as UTC).
    Fixed(DateTime),
}

impl TryFrom<String> for ZeroDate {
    type Error = String;
    fn try_from(s: String) -> Result<ZeroDate, String> {
        match s.as_str() {
            "error" => Ok(ZeroDate::Error),
            "null" => Ok(ZeroDate::Null),
            "-infinity" => Ok(ZeroDate::NegInfinity),
            other => parse_fixed_datetime(other)
                .map(ZeroDate::Fixed)
                .ok_or_else(|| {
                    format!(
                        "zero_date {other:?} is not one of \"error\", \"null\", \"-infinity\" or a \
                     date like \"1970-01-01\" / \"1970-01-01 00:00:00\""
                    )
                }),
        }
    }
}

impl From<ZeroDate> for String {
    fn from(z: ZeroDate) -> String {
        z.to_string()
    }
}

impl fmt::Display for ZeroDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZeroDate::Error => f.write_str("error"),
            ZeroDate::Null => f.write_str("null"),
            ZeroDate::NegInfinity => f.write_str("-infinity"),
            ZeroDate::Fixed(dt) => write!(f, "{dt}"),
        }
    }
}

/// Parses `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` into a real calendar reading (no zero parts).
fn parse_fixed_datetime(s: &str) -> Option<DateTime> {
    let (date, time) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let year: u16 = d.next()?.parse().ok()?;
    let month: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    if d.next().is_some() {
        return None;
    }
    let date = Date { year, month, day };
    if !is_real_date(&date) {
        return None;
    }
    let (mut hour, mut minute, mut second, mut micros) = (0u8, 0u8, 0u8, 0u32);
    if let Some(t) = time {
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let mut p = hms.split(':');
        hour = p.next()?.parse().ok()?;
        minute = p.next()?.parse().ok()?;
        second = p.next()?.parse().ok()?;
        if p.next().is_some() || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            micros = format!("{f:0<6}").parse().ok()?;
        }
    }
    Some(DateTime {
        date,
        hour,
        minute,
        second,
        micros,
    })
}

/// Whether PostgreSQL has this day: year 1..=9999, month 1..=12, day within the month
/// (proleptic Gregorian leap years).
pub fn is_real_date(d: &Date) -> bool {
    if d.year == 0 || !(1..=12).contains(&d.month) || d.day == 0 {
        return false;
    }
    let y = u32::from(d.year);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match d.month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d.day <= days
}

/// How BIGINT UNSIGNED is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsignedBigintAs {
    /// `numeric(20,0)`: every value fits.
    Numeric,
    /// `bigint`: values above 9223372036854775807 are an error.
    Bigint,
}

/// What a NUL character (U+0000) in text becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NulInText {
    /// Stop with an error.
    Error,
    /// Remove it.
    Strip,
    /// Replace it with U+FFFD.
    Replace,
}

/// What text with bytes invalid in its character set becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidText {
    /// Stop with an error.
    Error,
    /// Replace each invalid sequence with U+FFFD.
    Replace,
}

/// How JSON columns are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonAs {
    /// `jsonb` (cannot hold the escape `\u0000`: such a value is an error).
    Jsonb,
    /// `json`: the text exactly as stored.
    Json,
    /// `text`.
    Text,
}

/// How spatial columns are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeometryAs {
    /// `bytea` holding WKB (PostGIS extended WKB when the SRID is not 0).
    Wkb,
    /// PostGIS `geometry` (the extension must be installed on the target).
    Postgis,
}

/// How CHAR(n) and VARCHAR(n) are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StringAs {
    /// `varchar(n)`, the same limit in characters.
    Varchar,
    /// `text`.
    Text,
}

/// How source names become PostgreSQL identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierCase {
    /// Lower case (Unicode lower-casing).
    Lower,
    /// Exactly as the source spells them (quoted).
    Preserve,
}

/// The policies that apply to one column, after overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ColumnPolicy {
    /// See [`DEFAULT_TINYINT1_AS_BOOLEAN`].
    pub tinyint1_as_boolean: bool,
    /// See [`DEFAULT_ENUM_AS`].
    pub enum_as: EnumAs,
    /// See [`DEFAULT_SET_AS`].
    pub set_as: SetAs,
    /// See [`DEFAULT_ZERO_DATE`].
    pub zero_date: ZeroDate,
    /// See [`DEFAULT_UNSIGNED_BIGINT_AS`].
    pub unsigned_bigint_as: UnsignedBigintAs,
    /// See [`DEFAULT_NUL_IN_TEXT`].
    pub nul_in_text: NulInText,
    /// See [`DEFAULT_INVALID_TEXT`].
    pub invalid_text: InvalidText,
    /// See [`DEFAULT_JSON_AS`].
    pub json_as: JsonAs,
    /// See [`DEFAULT_GEOMETRY_AS`].
    pub geometry_as: GeometryAs,
    /// See [`DEFAULT_STRING_AS`].
    pub string_as: StringAs,
}

/// `[mapping.columns."db.table.column"]`: any policy for one column, and its target name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnOverride {
    /// Target column name (instead of the folded source name).
    pub name: Option<String>,
    /// Overrides `tinyint1_as_boolean`.
    pub tinyint1_as_boolean: Option<bool>,
    /// Overrides `enum_as`.
    pub enum_as: Option<EnumAs>,
    /// Overrides `set_as`.
    pub set_as: Option<SetAs>,
    /// Overrides `zero_date`.
    pub zero_date: Option<ZeroDate>,
    /// Overrides `unsigned_bigint_as`.
    pub unsigned_bigint_as: Option<UnsignedBigintAs>,
    /// Overrides `nul_in_text`.
    pub nul_in_text: Option<NulInText>,
    /// Overrides `invalid_text`.
    pub invalid_text: Option<InvalidText>,
    /// Overrides `json_as`.
    pub json_as: Option<JsonAs>,
    /// Overrides `geometry_as`.
    pub geometry_as: Option<GeometryAs>,
    /// Overrides `string_as`.
    pub string_as: Option<StringAs>,
}

/// `[mapping.tables."db.table"]`: the target name of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableOverride {
    /// Target table name (instead of the folded source name).
    pub name: Option<String>,
}

/// What to do with one kind of DDL seen while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DdlAction {
    /// Apply when the translation is exact; otherwise stop with a message saying why.
    Auto,
    /// Apply, also when inexact (PostgreSQL's casts decide values the source converted).
    Apply,
    /// Leave the target as it is (the change is recorded in `my2pg.schema_history`).
    Ignore,
    /// Stop the pipeline before the change, with a message.
    Stop,
}

/// Streaming DDL is applied "where exact, else stop": the target follows the source while no
/// value can change silently, and stops with a message otherwise.
pub const DEFAULT_DDL_ACTION: DdlAction = DdlAction::Auto;

/// `[mapping.ddl]`: the action for each kind of DDL seen while streaming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdlPolicy {
    /// `ALTER TABLE … ADD COLUMN`.
    pub add_column: DdlAction,
    /// `ALTER TABLE … DROP COLUMN`.
    pub drop_column: DdlAction,
    /// `ALTER TABLE … RENAME COLUMN` and the rename half of `CHANGE COLUMN`.
    pub rename_column: DdlAction,
    /// `ALTER TABLE … MODIFY COLUMN` and the type half of `CHANGE COLUMN` (type, nullability,
    /// default, comment).
    pub modify_column: DdlAction,
    /// `ALTER TABLE … ADD INDEX/KEY/UNIQUE/PRIMARY KEY`, `CREATE INDEX`.
    pub add_index: DdlAction,
    /// `ALTER TABLE … DROP INDEX/PRIMARY KEY`, `DROP INDEX`.
    pub drop_index: DdlAction,
    /// `CREATE TABLE`.
    pub create_table: DdlAction,
    /// `DROP TABLE`.
    pub drop_table: DdlAction,
    /// `RENAME TABLE`, `ALTER TABLE … RENAME TO`.
    pub rename_table: DdlAction,
    /// `TRUNCATE TABLE`.
    pub truncate_table: DdlAction,
    /// Anything else that changes the target's schema (foreign keys, table comments).
    pub other: DdlAction,
}

impl Default for DdlPolicy {
    fn default() -> Self {
        let a = DEFAULT_DDL_ACTION;
        DdlPolicy {
            add_column: a,
            drop_column: a,
            rename_column: a,
            modify_column: a,
            add_index: a,
            drop_index: a,
            create_table: a,
            drop_table: a,
            rename_table: a,
            truncate_table: a,
            other: a,
        }
    }
}

/// `[mapping]`: every option of the type mapping. See `docs/type-mapping.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingOptions {
    /// TINYINT(1) → `boolean` (true) or `smallint` (false).
    pub tinyint1_as_boolean: bool,
    /// ENUM → `check` | `pg_enum` | `text`.
    pub enum_as: EnumAs,
    /// SET → `array` (`text[]`) | `text`.
    pub set_as: SetAs,
    /// Zero dates → `error` | `null` | `-infinity` | a fixed date.
    pub zero_date: ZeroDate,
    /// BIGINT UNSIGNED → `numeric` (`numeric(20,0)`) | `bigint` (range error above 2^63-1).
    pub unsigned_bigint_as: UnsignedBigintAs,
    /// NUL in text → `error` | `strip` | `replace`.
    pub nul_in_text: NulInText,
    /// Invalid bytes in text → `error` | `replace`.
    pub invalid_text: InvalidText,
    /// JSON → `jsonb` | `json` | `text`.
    pub json_as: JsonAs,
    /// Spatial types → `wkb` (`bytea`) | `postgis` (`geometry`).
    pub geometry_as: GeometryAs,
    /// CHAR/VARCHAR → `varchar` (`varchar(n)`) | `text`.
    pub string_as: StringAs,
    /// Identifiers → `lower` | `preserve`.
    pub identifiers: IdentifierCase,
    /// Per-table target names, keyed by `db.table`.
    pub tables: BTreeMap<String, TableOverride>,
    /// Per-column overrides, keyed by `db.table.column`.
    pub columns: BTreeMap<String, ColumnOverride>,
    /// Streaming DDL policy.
    pub ddl: DdlPolicy,
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            tinyint1_as_boolean: DEFAULT_TINYINT1_AS_BOOLEAN,
            enum_as: DEFAULT_ENUM_AS,
            set_as: DEFAULT_SET_AS,
            zero_date: DEFAULT_ZERO_DATE,
            unsigned_bigint_as: DEFAULT_UNSIGNED_BIGINT_AS,
            nul_in_text: DEFAULT_NUL_IN_TEXT,
            invalid_text: DEFAULT_INVALID_TEXT,
            json_as: DEFAULT_JSON_AS,
            geometry_as: DEFAULT_GEOMETRY_AS,
            string_as: DEFAULT_STRING_AS,
            identifiers: DEFAULT_IDENTIFIERS,
            tables: BTreeMap::new(),
            columns: BTreeMap::new(),
            ddl: DdlPolicy::default(),
        }
    }
}

/// A `[mapping]` option that cannot be used: the key path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct OptionsError {
    /// Dotted key path, e.g. `mapping.columns."shop.orders"`.
    pub key: String,
    /// What is wrong, and how to write it.
    pub problem: String,
}

impl MappingOptions {
    /// Checks the override keys (`db.table`, `db.table.column`) and names.
    pub fn validate(&self) -> Result<(), OptionsError> {
        for (key, o) in &self.tables {
            let path = format!("mapping.tables.\"{key}\"");
            match split_qualified(key) {
                Some(parts) if parts.len() == 2 => {}
                _ => {
                    return Err(OptionsError {
                        key: path,
                        problem: format!(
                            "{key:?} is not db.table (quote names holding dots with backquotes)"
                        ),
                    });
                }
            }
            check_name(&path, o.name.as_deref())?;
        }
        for (key, o) in &self.columns {
            let path = format!("mapping.columns.\"{key}\"");
            match split_qualified(key) {
                Some(parts) if parts.len() == 3 => {}
                _ => {
                    return Err(OptionsError {
                        key: path,
                        problem: format!(
                            "{key:?} is not db.table.column (quote names holding dots with backquotes)"
                        ),
                    });
                }
            }
            check_name(&path, o.name.as_deref())?;
        }
        Ok(())
    }

    /// The global policies, without overrides.
    pub fn global_policy(&self) -> ColumnPolicy {
        ColumnPolicy {
            tinyint1_as_boolean: self.tinyint1_as_boolean,
            enum_as: self.enum_as,
            set_as: self.set_as,
            zero_date: self.zero_date,
            unsigned_bigint_as: self.unsigned_bigint_as,
            nul_in_text: self.nul_in_text,
            invalid_text: self.invalid_text,
            json_as: self.json_as,
            geometry_as: self.geometry_as,
            string_as: self.string_as,
        }
    }

    /// The override for `table.column`, if the configuration has one.
    pub fn column_override(&self, table: &TableId, column: &str) -> Option<&ColumnOverride> {
        self.columns.iter().find_map(|(k, o)| {
            let parts = split_qualified(k)?;
            (parts.len() == 3
                && parts[0] == table.database
                && parts[1] == table.table
                && parts[2] == column)
                .then_some(o)
        })
    }

    /// The override for a table, if the configuration has one.
    pub fn table_override(&self, table: &TableId) -> Option<&TableOverride> {
        self.tables.iter().find_map(|(k, o)| {
            let parts = split_qualified(k)?;
            (parts.len() == 2 && parts[0] == table.database && parts[1] == table.table).then_some(o)
        })
    }

    /// The policies of one column: the global values with the column's override applied.
    pub fn policy_for(&self, table: &TableId, column: &str) -> ColumnPolicy {
        let mut p = self.global_policy();
        if let Some(o) = self.column_override(table, column) {
            p.tinyint1_as_boolean = o.tinyint1_as_boolean.unwrap_or(p.tinyint1_as_boolean);
            p.enum_as = o.enum_as.unwrap_or(p.enum_as);
            p.set_as = o.set_as.unwrap_or(p.set_as);
            p.zero_date = o.zero_date.unwrap_or(p.zero_date);
            p.unsigned_bigint_as = o.unsigned_bigint_as.unwrap_or(p.unsigned_bigint_as);
            p.nul_in_text = o.nul_in_text.unwrap_or(p.nul_in_text);
            p.invalid_text = o.invalid_text.unwrap_or(p.invalid_text);
            p.json_as = o.json_as.unwrap_or(p.json_as);
            p.geometry_as = o.geometry_as.unwrap_or(p.geometry_as);
            p.string_as = o.string_as.unwrap_or(p.string_as);
        }
        p
    }

    /// A source identifier as a target identifier under the `identifiers` option.
    pub fn fold(&self, name: &str) -> String {
        match self.identifiers {
            IdentifierCase::Lower => name.to_lowercase(),
            IdentifierCase::Preserve => name.to_owned(),
        }
    }

    /// The target name of a table: its override, or the folded source name.
    pub fn table_name(&self, table: &TableId) -> String {
        self.table_override(table)
            .and_then(|o| o.name.clone())
            .unwrap_or_else(|| self.fold(&table.table))
    }

    /// The target name of a column: its override, or the folded source name.
    pub fn column_name(&self, table: &TableId, column: &str) -> String {
        self.column_override(table, column)
            .and_then(|o| o.name.clone())
            .unwrap_or_else(|| self.fold(column))
    }
}

fn check_name(path: &str, name: Option<&str>) -> Result<(), OptionsError> {
    if let Some(n) = name
        && (n.is_empty() || n.len() > super::PG_MAX_IDENTIFIER_BYTES || n.contains('\0'))
    {
        return Err(OptionsError {
            key: format!("{path}.name"),
            problem: format!(
                "{n:?} is not a PostgreSQL identifier (1 to {} bytes, no NUL)",
                super::PG_MAX_IDENTIFIER_BYTES
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_date_parses_keywords_and_fixed_values() {
        assert_eq!(ZeroDate::try_from("null".to_owned()), Ok(ZeroDate::Null));
        assert_eq!(
            ZeroDate::try_from("-infinity".to_owned()),
            Ok(ZeroDate::NegInfinity)
        );
        let ZeroDate::Fixed(dt) = ZeroDate::try_from("1970-01-01".to_owned()).unwrap() else {
            panic!("not fixed")
        };
        assert_eq!(dt.to_string(), "1970-01-01 00:00:00");
        let ZeroDate::Fixed(dt) = ZeroDate::try_from("2000-02-29 12:30:00.5".to_owned()).unwrap()
        else {
            panic!("not fixed")
        };
        assert_eq!(dt.to_string(), "2000-02-29 12:30:00.500000");
        assert!(ZeroDate::try_from("0000-00-00".to_owned()).is_err());
        assert!(ZeroDate::try_from("2001-02-29".to_owned()).is_err());
        assert!(ZeroDate::try_from("epoch".to_owned()).is_err());
    }

    #[test]
    fn options_deserialize_with_defaults_and_reject_unknown_keys() {
        let o: MappingOptions = serde_json::from_str(
            r#"{"zero_date": "null", "columns": {"shop.t.c": {"zero_date": "-infinity", "name": "cc"}}}"#,
        )
        .unwrap();
        assert_eq!(o.zero_date, ZeroDate::Null);
        assert_eq!(o.enum_as, DEFAULT_ENUM_AS);
        let t = TableId::new("shop", "t");
        assert_eq!(o.policy_for(&t, "c").zero_date, ZeroDate::NegInfinity);
        assert_eq!(o.policy_for(&t, "d").zero_date, ZeroDate::Null);
        assert_eq!(o.column_name(&t, "c"), "cc");
        assert_eq!(o.column_name(&t, "Dd"), "dd");
        assert!(serde_json::from_str::<MappingOptions>(r#"{"zero_dates": "null"}"#).is_err());
        assert!(
            serde_json::from_str::<MappingOptions>(r#"{"columns": {"a.b.c": {"bogus": 1}}}"#)
                .is_err()
        );
    }

    #[test]
    fn validate_names_the_bad_key() {
        let mut o = MappingOptions::default();
        o.columns
            .insert("shop.orders".into(), ColumnOverride::default());
        let e = o.validate().unwrap_err();
        assert_eq!(e.key, "mapping.columns.\"shop.orders\"");
        let mut o = MappingOptions::default();
        o.tables.insert(
            "shop.t".into(),
            TableOverride {
                name: Some("x".repeat(64)),
            },
        );
        assert_eq!(
            o.validate().unwrap_err().key,
            "mapping.tables.\"shop.t\".name"
        );
    }

    #[test]
    fn real_dates() {
        let d = |year, month, day| Date { year, month, day };
        assert!(is_real_date(&d(2000, 2, 29)));
        assert!(!is_real_date(&d(1900, 2, 29)));
        assert!(!is_real_date(&d(0, 1, 21)));
        assert!(!is_real_date(&d(2015, 0, 21)));
        assert!(!is_real_date(&d(2021, 4, 31)));
    }
}
