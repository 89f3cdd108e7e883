//! Names of the PostgreSQL objects derived from a table: its primary key, indexes, CHECKs,
//! enum types, sequences, foreign keys, and the `ON UPDATE CURRENT_TIMESTAMP` trigger.
//!
//! Every derived name starts with the target table name, because MySQL scopes index names to a
//! table and PostgreSQL scopes them to the schema. Names are built by
//! [`schemas::mapping::derived_name`]: cut to 63 bytes with a hash suffix when longer, so they
//! are stable (the same table always gives the same names, which is how streaming DDL finds an
//! index to drop) and never silently truncated by the server.

use schemas::TableMapping;
use schemas::mapping::derived_name;

/// The primary key constraint: `<table>_pkey`.
pub fn pkey(m: &TableMapping) -> String {
    derived_name(&[&m.target.name, "pkey"])
}

/// A unique key or index: `<table>_<index>`.
pub fn index(m: &TableMapping, source_index: &str) -> String {
    derived_name(&[&m.target.name, &source_index.to_lowercase()])
}

/// An ENUM/SET CHECK: `<table>_<column>_check`.
pub fn check(m: &TableMapping, column: &str) -> String {
    derived_name(&[&m.target.name, column, "check"])
}

/// The sequence of an AUTO_INCREMENT column that is not an integer: `<table>_<column>_seq`.
pub fn sequence(m: &TableMapping, column: &str) -> String {
    derived_name(&[&m.target.name, column, "seq"])
}

/// A foreign key: `<table>_<constraint>`.
pub fn foreign_key(m: &TableMapping, source_name: &str) -> String {
    derived_name(&[&m.target.name, &source_name.to_lowercase()])
}

/// The function behind the `ON UPDATE CURRENT_TIMESTAMP` trigger.
pub fn on_update_function(m: &TableMapping) -> String {
    derived_name(&[&m.target.name, "on_update"])
}

/// The `ON UPDATE CURRENT_TIMESTAMP` trigger.
pub fn on_update_trigger(m: &TableMapping) -> String {
    derived_name(&[&m.target.name, "on_update"])
}
