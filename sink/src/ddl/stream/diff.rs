//! The diff of one table's before and after mappings: keys, indexes, foreign keys, comments,
//! the trigger, and the matching of columns (statement renames first, then equal names, then
//! case-only differences), in the phase order PostgreSQL accepts.

use std::sync::Arc;

use schemas::mapping::quote_ident;
use schemas::table::{Index, TableSchema};
use schemas::{TableId, TableMapping};

use super::columns::{add_column, modify_column};
use super::{DdlKind, DdlStep, inexact, map_or_step, step};
use crate::ddl::create::{create_index, foreign_key, on_update_trigger};
use crate::ddl::parse::ParsedDdl;
use crate::ddl::{Naming, objects};

/// An index as (lower-case name, unique, kind, key parts as (target column, prefix,
/// descending)), for comparison.
type IndexShape = (String, bool, String, Vec<(String, Option<u32>, bool)>);

/// The shape of an index of `m`.
fn index_shape(m: &TableMapping, idx: &Index) -> IndexShape {
    (
        idx.name.to_lowercase(),
        idx.unique,
        idx.kind.to_ascii_uppercase(),
        idx.columns
            .iter()
            .map(|p| {
                (
                    m.columns
                        .get(p.column)
                        .map_or(String::new(), |c| c.name.clone()),
                    p.prefix_len,
                    p.descending,
                )
            })
            .collect(),
    )
}

/// Diffs one table. `b` is the before-schema under the table's current name.
pub(super) fn diff_table(
    b: &TableSchema,
    a: &Arc<TableSchema>,
    naming: &Naming<'_>,
    parsed: &ParsedDdl,
    origin: &TableId,
) -> Vec<DdlStep> {
    let id = &a.id;
    let bm = match map_or_step(b, naming, DdlKind::ModifyColumn) {
        Ok(m) => m,
        Err(s) => return vec![*s],
    };
    let am = match map_or_step(a, naming, DdlKind::ModifyColumn) {
        Ok(m) => m,
        Err(s) => return vec![*s],
    };
    let t = am.target.quoted();
    // Match after-columns to before-columns: statement renames, then same name, then a
    // case-only difference (MySQL column names are case-insensitive).
    let renames: Vec<(&str, &str)> = parsed
        .column_renames
        .iter()
        .filter(|(tid, _, _)| tid == origin || tid == id)
        .map(|(_, o, n)| (o.as_str(), n.as_str()))
        .collect();
    let mut matched_before = vec![false; bm.columns.len()];
    let mut pairs: Vec<(Option<usize>, usize)> = Vec::new();
    for (ai, ac) in am.columns.iter().enumerate() {
        let by_rename = renames
            .iter()
            .rev()
            .find(|(_, n)| n.eq_ignore_ascii_case(&ac.source_name))
            .and_then(|(o, _)| {
                bm.columns
                    .iter()
                    .position(|c| c.source_name.eq_ignore_ascii_case(o))
            });
        let renamed_away = |name: &str| {
            renames
                .iter()
                .any(|(o, n)| o.eq_ignore_ascii_case(name) && !n.eq_ignore_ascii_case(name))
        };
        let by_name = || {
            bm.columns
                .iter()
                .position(|c| c.source_name == ac.source_name && !renamed_away(&c.source_name))
                .or_else(|| {
                    bm.columns.iter().position(|c| {
                        c.source_name.eq_ignore_ascii_case(&ac.source_name)
                            && !renamed_away(&c.source_name)
                    })
                })
        };
        let bi = by_rename.or_else(by_name).filter(|&bi| !matched_before[bi]);
        if let Some(bi) = bi {
            matched_before[bi] = true;
        }
        pairs.push((bi, ai));
    }
    let dropped: Vec<usize> = (0..bm.columns.len())
        .filter(|&i| !matched_before[i])
        .collect();
    let added: Vec<usize> = pairs
        .iter()
        .filter(|(b, _)| b.is_none())
        .map(|(_, a)| *a)
        .collect();
    let ambiguous = (!parsed.parsed && !dropped.is_empty() && !added.is_empty()).then(|| {
        "the statement could not be parsed, so a dropped and an added column cannot be told from a rename".to_owned()
    });

    let mut drop_keys = Vec::new();
    let mut drop_cols = Vec::new();
    let mut renames_out = Vec::new();
    let mut modifies = Vec::new();
    let mut adds = Vec::new();
    let mut add_keys = Vec::new();

    // Primary key, by target column names.
    let pk = |m: &TableMapping| -> Vec<String> {
        m.source
            .primary_key
            .iter()
            .filter_map(|&i| m.columns.get(i))
            .map(|c| c.name.clone())
            .collect()
    };
    let rename_target = |name: &str| -> String {
        pairs
            .iter()
            .find(|(bi, _)| {
                bi.and_then(|bi| bm.columns.get(bi))
                    .is_some_and(|c| c.name == name)
            })
            .and_then(|(_, ai)| am.columns.get(*ai))
            .map_or_else(|| name.to_owned(), |c| c.name.clone())
    };
    let (bpk, apk) = (
        pk(&bm).iter().map(|n| rename_target(n)).collect::<Vec<_>>(),
        pk(&am),
    );
    if bpk != apk {
        if !bpk.is_empty() {
            drop_keys.push(step(
                DdlKind::DropIndex,
                id,
                format!("drop primary key of {id}"),
                vec![format!(
                    "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
                    quote_ident(&objects::pkey(&bm))
                )],
            ));
        }
        if !apk.is_empty() {
            add_keys.push(step(
                DdlKind::AddIndex,
                id,
                format!("add primary key ({}) to {id}", apk.join(", ")),
                vec![format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} PRIMARY KEY ({})",
                    quote_ident(&objects::pkey(&am)),
                    apk.iter()
                        .map(|c| quote_ident(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                )],
            ));
        }
    }
    // Indexes, by name and shape (column renames applied to the before side).
    let shape_before = |idx: &Index| {
        let (n, u, k, cols) = index_shape(&bm, idx);
        (
            n,
            u,
            k,
            cols.into_iter()
                .map(|(c, p, d)| (rename_target(&c), p, d))
                .collect::<Vec<_>>(),
        )
    };
    let before_idx: Vec<&Index> = bm
        .source
        .unique_keys
        .iter()
        .chain(&bm.source.indexes)
        .collect();
    let after_idx: Vec<&Index> = am
        .source
        .unique_keys
        .iter()
        .chain(&am.source.indexes)
        .collect();
    for bi in &before_idx {
        let same = after_idx
            .iter()
            .any(|ai| index_shape(&am, ai) == shape_before(bi));
        if !same && create_index(&bm, bi).is_ok() {
            drop_keys.push(step(
                DdlKind::DropIndex,
                id,
                format!("drop index {} of {id}", bi.name),
                vec![format!(
                    "DROP INDEX IF EXISTS {}.{}",
                    quote_ident(&am.target.schema),
                    quote_ident(&objects::index(&bm, &bi.name))
                )],
            ));
        }
    }
    for ai in &after_idx {
        if before_idx
            .iter()
            .any(|bi| index_shape(&am, ai) == shape_before(bi))
        {
            continue;
        }
        let s = match create_index(&am, ai) {
            Ok((sql, _)) => vec![sql],
            Err(_) => Vec::new(),
        };
        add_keys.push(step(
            DdlKind::AddIndex,
            id,
            format!("add index {} to {id}", ai.name),
            s,
        ));
    }
    // Foreign keys, by name.
    for fk in &bm.source.foreign_keys {
        if !am
            .source
            .foreign_keys
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&fk.name))
        {
            drop_keys.push(step(
                DdlKind::Other,
                id,
                format!("drop foreign key {} of {id}", fk.name),
                vec![format!(
                    "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
                    quote_ident(&objects::foreign_key(&bm, &fk.name))
                )],
            ));
        }
    }
    for fk in &am.source.foreign_keys {
        if !bm
            .source
            .foreign_keys
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&fk.name))
        {
            add_keys.push(step(
                DdlKind::Other,
                id,
                format!("add foreign key {} to {id}", fk.name),
                foreign_key(&am, fk, naming).into_iter().collect(),
            ));
        }
    }
    if bm.source.comment != am.source.comment {
        add_keys.push(step(
            DdlKind::Other,
            id,
            format!("comment on table {id}"),
            vec![format!(
                "COMMENT ON TABLE {t} IS {}",
                if am.source.comment.is_empty() {
                    "NULL".into()
                } else {
                    schemas::pgtext::quote_literal(&am.source.comment)
                }
            )],
        ));
    }
    if on_update_trigger(&bm) != on_update_trigger(&am) {
        let mut st = vec![format!(
            "DROP TRIGGER IF EXISTS {} ON {t}",
            quote_ident(&objects::on_update_trigger(&am))
        )];
        st.extend(on_update_trigger(&am));
        add_keys.push(step(
            DdlKind::Other,
            id,
            format!("ON UPDATE CURRENT_TIMESTAMP trigger of {id}"),
            st,
        ));
    }

    for &bi in &dropped {
        let c = &bm.columns[bi];
        let s = step(
            DdlKind::DropColumn,
            id,
            format!("drop column {id}.{}", c.source_name),
            vec![format!(
                "ALTER TABLE {t} DROP COLUMN IF EXISTS {}",
                quote_ident(&c.name)
            )],
        );
        drop_cols.push(match &ambiguous {
            Some(why) => inexact(s, why.clone()),
            None => s,
        });
    }
    for (bi, ai) in &pairs {
        let ac = &am.columns[*ai];
        let Some(bi) = bi else {
            let s = add_column(&am, *ai, a);
            adds.push(match (&ambiguous, s.inexact.is_none()) {
                (Some(why), true) => inexact(s, why.clone()),
                _ => s,
            });
            continue;
        };
        let bc = &bm.columns[*bi];
        if bc.name != ac.name {
            renames_out.push(step(
                DdlKind::RenameColumn,
                id,
                format!(
                    "rename column {id}.{} to {}",
                    bc.source_name, ac.source_name
                ),
                vec![format!(
                    "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                    quote_ident(&bc.name),
                    quote_ident(&ac.name)
                )],
            ));
        } else if bc.source_name != ac.source_name {
            renames_out.push(step(
                DdlKind::RenameColumn,
                id,
                format!(
                    "rename column {id}.{} to {}",
                    bc.source_name, ac.source_name
                ),
                vec![],
            ));
        }
        modifies.extend(modify_column(&bm, *bi, &am, *ai));
    }
    [drop_keys, drop_cols, renames_out, modifies, adds, add_keys].concat()
}
