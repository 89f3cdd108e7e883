//! Column steps: ADD COLUMN with MySQL's fill of existing rows, and MODIFY/CHANGE with the
//! exactness of each type change (widening casts, BINARY padding, CHAR trimming, enum labels).

use schemas::mapping::{PgDefault, PgType, quote_ident};
use schemas::pgtext::literal;
use schemas::table::TableSchema;
use schemas::value::{Date, DateTime, Decimal, Time, Timestamp};
use schemas::{ColumnType, TableMapping, Value};

use super::{DdlKind, DdlStep, inexact, step};
use crate::ddl::create::{
    check_expression, column_definition, comment_on_column, create_enum_type, default_sql,
    identity_start,
};
use crate::ddl::objects;

/// The value MySQL writes into existing rows for `ADD COLUMN … NOT NULL` without a default.
fn implicit_default(ty: &ColumnType) -> Option<Value> {
    Some(match ty {
        ColumnType::Integer { unsigned: true, .. } => Value::UInt(0),
        ColumnType::Integer { .. } => Value::Int(0),
        ColumnType::Decimal { scale, .. } => Value::Decimal(
            Decimal::parse(&if *scale == 0 {
                "0".to_owned()
            } else {
                format!("0.{}", "0".repeat(usize::from(*scale)))
            })
            .ok()?,
        ),
        ColumnType::Float => Value::Float(0.0),
        ColumnType::Double => Value::Double(0.0),
        ColumnType::Bit { width } => Value::Bit {
            width: *width,
            bits: 0,
        },
        ColumnType::Date => Value::Date(Date {
            year: 0,
            month: 0,
            day: 0,
        }),
        ColumnType::DateTime { .. } => Value::DateTime(DateTime {
            date: Date {
                year: 0,
                month: 0,
                day: 0,
            },
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        }),
        ColumnType::Timestamp { .. } => Value::Timestamp(Timestamp::ZERO),
        ColumnType::Time { .. } => Value::Time(Time::from_micros(0)),
        ColumnType::Year => Value::Year(0),
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            Value::Text(String::new())
        }
        ColumnType::Binary { len } => Value::Bytes(vec![0; *len as usize]),
        ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => Value::Bytes(Vec::new()),
        ColumnType::Enum { labels } => Value::Enum(labels.first().cloned().unwrap_or_default()),
        ColumnType::Set { .. } => Value::Set(Vec::new()),
        ColumnType::Json | ColumnType::Geometry { .. } | ColumnType::Unsupported { .. } => {
            return None;
        }
    })
}

pub(super) fn add_column(am: &TableMapping, ai: usize, a: &TableSchema) -> DdlStep {
    let id = &am.source_id;
    let t = am.target.quoted();
    let ac = &am.columns[ai];
    let what = format!("add column {id}.{} {}", ac.source_name, ac.source_type);
    let mut statements = Vec::new();
    if let PgType::Enum { schema, name } = &ac.pg_type {
        statements.push(create_enum_type(schema, name, &ac.source_type));
    }
    if ac.identity_start.is_some() && !ac.pg_type.is_integer() {
        return inexact(
            step(DdlKind::AddColumn, id, what, statements),
            "an AUTO_INCREMENT column that is not an integer in PostgreSQL",
        );
    }
    let def = column_definition(am, ai, default_sql(am, ai).as_deref());
    let generated = a.columns.get(ai).and_then(|c| c.generated.as_ref());
    let mut s = match (&ac.default, ac.nullable) {
        _ if ac.identity_start.is_some() => {
            statements.push(format!("ALTER TABLE {t} ADD COLUMN {def}"));
            inexact(
                step(DdlKind::AddColumn, id, what, statements),
                "MySQL numbered the existing rows itself",
            )
        }
        (Some(PgDefault::Value { .. }), _) | (None, true) => {
            statements.push(format!("ALTER TABLE {t} ADD COLUMN {def}"));
            step(DdlKind::AddColumn, id, what, statements)
        }
        (Some(_), _) => {
            statements.push(format!("ALTER TABLE {t} ADD COLUMN {def}"));
            inexact(
                step(DdlKind::AddColumn, id, what, statements),
                "existing rows got the time of the ALTER on the source, which PostgreSQL cannot know",
            )
        }
        (None, false) => {
            // MySQL fills existing rows with the type's implicit default.
            let fill = implicit_default(&ac.source_type).ok_or_else(|| {
                format!("the implicit default MySQL wrote into existing rows of a NOT NULL {} column is unknown", ac.source_type)
            });
            let fill = fill.and_then(|v| {
                let shown = v.to_string();
                ac.convert(&v)
                    .map_err(|p| format!("existing rows got {shown}, which {p}"))
            });
            match fill {
                Ok(v) => {
                    let fill = literal(&v, &ac.pg_type);
                    statements.push(format!(
                        "ALTER TABLE {t} ADD COLUMN {}",
                        column_definition(am, ai, Some(&fill))
                    ));
                    statements.push(format!(
                        "ALTER TABLE {t} ALTER COLUMN {} DROP DEFAULT",
                        quote_ident(&ac.name)
                    ));
                    step(DdlKind::AddColumn, id, what, statements)
                }
                Err(why) => {
                    statements.push(format!("ALTER TABLE {t} ADD COLUMN {def}"));
                    inexact(step(DdlKind::AddColumn, id, what, statements), why)
                }
            }
        }
    };
    if generated.is_some() && s.inexact.is_none() {
        s = inexact(
            s,
            "a generated column: its values in existing rows are computed on the source and not in the binlog",
        );
    }
    if !ac.comment.is_empty() {
        s.statements
            .push(comment_on_column(am, &ac.name, &ac.comment));
    }
    s
}

/// How a type change converts existing values: `Ok(USING expression or None)` when
/// PostgreSQL ends with MySQL's values, `Err(reason)` when not.
fn type_change(
    bc: &schemas::ColumnMapping,
    ac: &schemas::ColumnMapping,
) -> Result<Option<String>, String> {
    use PgType::*;
    let col = quote_ident(&ac.name);
    let digits = |t: &PgType| match t {
        SmallInt => 5,
        Integer => 10,
        BigInt => 19,
        _ => 0,
    };
    // BINARY(n) pads every value with 0x00 to n bytes; CHAR(n) strips trailing spaces.
    if let ColumnType::Binary { len } = ac.source_type
        && bc.source_type != ac.source_type
        && bc.pg_type == Bytea
    {
        return Ok(Some(format!(
            "CASE WHEN length({col}) < {len} THEN {col} || decode(repeat('00', {len} - length({col})), 'hex') ELSE {col} END"
        )));
    }
    let to_char = matches!(ac.source_type, ColumnType::Char { .. })
        && !matches!(bc.source_type, ColumnType::Char { .. });
    let exact = match (&bc.pg_type, &ac.pg_type) {
        (a, b) if a == b => true,
        (SmallInt, Integer | BigInt)
        | (Integer, BigInt)
        | (Real, Double)
        | (Date, Timestamp { .. }) => true,
        (SmallInt | Integer | BigInt, Numeric { precision, scale }) => {
            i32::from(*precision) - i32::from(*scale) >= digits(&bc.pg_type)
        }
        (
            Numeric {
                precision: p1,
                scale: s1,
            },
            Numeric {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && i32::from(*p2) - i32::from(*s2) >= i32::from(*p1) - i32::from(*s1),
        (VarChar { .. } | Text, VarChar { .. } | Text) => true,
        (Timestamp { precision: p }, Timestamp { precision: q })
        | (Timestamptz { precision: p }, Timestamptz { precision: q })
        | (Interval { precision: p }, Interval { precision: q }) => q >= p,
        (Enum { .. }, Text | VarChar { .. }) | (Text | VarChar { .. }, Enum { .. }) => {
            return Ok(Some(format!("{col}::{}", ac.pg_type)));
        }
        (Text | VarChar { .. }, Json | Jsonb) | (Json, Jsonb) => {
            return Ok(Some(format!("{col}::{}", ac.pg_type)));
        }
        (BitVarying { .. }, BitVarying { len }) => {
            return Ok(Some(format!(
                "lpad({col}::text, {len}, '0')::bit varying({len})"
            )));
        }
        (Boolean, BitVarying { len }) if matches!(bc.source_type, ColumnType::Bit { .. }) => {
            return Ok(Some(format!(
                "lpad({col}::int::text, {len}, '0')::bit varying({len})"
            )));
        }
        (Boolean, SmallInt | Integer | BigInt) => {
            return Ok(Some(format!("{col}::int::{}", ac.pg_type)));
        }
        _ => false,
    };
    if !exact {
        return Err(format!(
            "MySQL converted the existing values from {} to {} with its own casts",
            bc.source_type, ac.source_type
        ));
    }
    Ok(to_char.then(|| format!("rtrim({col}, ' ')")))
}

pub(super) fn modify_column(
    bm: &TableMapping,
    bi: usize,
    am: &TableMapping,
    ai: usize,
) -> Vec<DdlStep> {
    let id = &am.source_id;
    let t = am.target.quoted();
    let (bc, ac) = (&bm.columns[bi], &am.columns[ai]);
    let col = quote_ident(&ac.name);
    let what = format!(
        "modify column {id}.{} {} → {}",
        ac.source_name, bc.source_type, ac.source_type
    );
    let mut st = Vec::new();
    let mut why = None;
    let check_changed = bc.allowed != ac.allowed || bc.pg_type != ac.pg_type;
    if check_changed && bc.allowed.is_some() {
        st.push(format!(
            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
            quote_ident(&objects::check(bm, &bc.name))
        ));
    }
    if bc.pg_type != ac.pg_type || bc.source_type != ac.source_type {
        match (&bc.pg_type, &ac.pg_type) {
            (PgType::Enum { schema, name }, PgType::Enum { .. }) => {
                // Same type object: only appended labels keep every value's meaning.
                let (ColumnType::Enum { labels: old }, ColumnType::Enum { labels: new }) =
                    (&bc.source_type, &ac.source_type)
                else {
                    return vec![];
                };
                if new.starts_with(old) {
                    for l in &new[old.len()..] {
                        st.push(format!(
                            "ALTER TYPE {}.{} ADD VALUE {}",
                            quote_ident(schema),
                            quote_ident(name),
                            schemas::pgtext::quote_literal(l)
                        ));
                    }
                } else {
                    why = Some("ENUM labels were removed or reordered, which a PostgreSQL enum type cannot follow".to_owned());
                }
            }
            _ => {
                if let PgType::Enum { schema, name } = &ac.pg_type {
                    st.push(create_enum_type(schema, name, &ac.source_type));
                }
                let (using, reason) = match type_change(bc, ac) {
                    Ok(u) => (u, None),
                    Err(r) => (Some(format!("{col}::{}", ac.pg_type)), Some(r)),
                };
                if bc.pg_type != ac.pg_type || using.is_some() {
                    let mut s = format!("ALTER TABLE {t} ALTER COLUMN {col} TYPE {}", ac.pg_type);
                    if let Some(u) = using {
                        s.push_str(&format!(" USING {u}"));
                    }
                    st.push(s);
                }
                why = reason;
                if let PgType::Enum { schema, name } = &bc.pg_type {
                    st.push(format!(
                        "DROP TYPE IF EXISTS {}.{}",
                        quote_ident(schema),
                        quote_ident(name)
                    ));
                }
            }
        }
    }
    if bc.nullable != ac.nullable {
        st.push(format!(
            "ALTER TABLE {t} ALTER COLUMN {col} {} NOT NULL",
            if ac.nullable { "DROP" } else { "SET" }
        ));
    }
    let start = identity_start(ac).filter(|_| ac.pg_type.is_integer());
    match (bc.identity_start.is_some(), start) {
        (false, Some(start)) => st.push(format!(
            "ALTER TABLE {t} ALTER COLUMN {col} ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {start})"
        )),
        (true, None) if bc.pg_type.is_integer() => {
            st.push(format!("ALTER TABLE {t} ALTER COLUMN {col} DROP IDENTITY IF EXISTS"))
        }
        _ => {}
    }
    if bc.default != ac.default && ac.identity_start.is_none() {
        st.push(match &ac.default {
            Some(d) => format!(
                "ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {}",
                d.to_sql(&ac.pg_type)
            ),
            None => format!("ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT"),
        });
    }
    if check_changed && let Some(check) = check_expression(am, ai) {
        st.push(format!(
            "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({check})",
            quote_ident(&objects::check(am, &ac.name))
        ));
    }
    if bc.comment != ac.comment {
        st.push(comment_on_column(am, &ac.name, &ac.comment));
    }
    if st.is_empty() && why.is_none() {
        return Vec::new();
    }
    let s = step(DdlKind::ModifyColumn, id, what, st);
    vec![match why {
        Some(w) => inexact(s, w),
        None => s,
    }]
}
