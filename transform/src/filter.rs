//! `filter`: a row predicate on column values.
//!
//! The predicate is parsed by `sqlparser` (MySQL dialect) and evaluated here, on the source
//! values, with SQL's three-valued logic: a row is kept only when the predicate is TRUE (a
//! comparison with NULL is UNKNOWN, so the row goes). The evaluator is ours because no crate
//! evaluates SQL expressions over MySQL values; it supports a deliberately small language:
//! `=`, `<>`/`!=`, `<`, `<=`, `>`, `>=`, `AND`, `OR`, `NOT`, `IS [NOT] NULL`, `[NOT] IN (…)`,
//! `[NOT] BETWEEN … AND …`, `[NOT] LIKE` with `%` and `_`, parentheses, and literals (numbers,
//! 'strings', TRUE, FALSE, NULL).
//!
//! Comparisons are exact: numbers compare by value (decimal text, no float rounding, except
//! against FLOAT/DOUBLE columns); strings compare byte-wise (not by the column's collation:
//! `'a' = 'A'` is false); temporal columns compare with ISO literals (`'2024-01-31'`,
//! `'2024-01-31 12:00:00'`).

use std::cmp::Ordering;

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value as SqlValue};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use schemas::table::TableSchema;
use schemas::value::{Row, Value};

use crate::TransformError;
use crate::config::{TablePatterns, text_form};
use crate::stage::{Compiled, Transform};

/// A literal in a predicate.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Null,
    Number(String),
    Str(String),
}

/// A predicate with column names (before it is bound to a table).
#[derive(Debug, Clone, PartialEq)]
enum Pred {
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    Cmp(String, BinaryOperator, Lit),
    IsNull(String, bool),
    In(String, Vec<Lit>, bool),
    Like(String, String, bool),
    Const(Option<bool>),
}

/// The same predicate bound to column indexes.
#[derive(Debug, Clone)]
enum Bound {
    And(Box<Bound>, Box<Bound>),
    Or(Box<Bound>, Box<Bound>),
    Not(Box<Bound>),
    Cmp(usize, BinaryOperator, Lit),
    IsNull(usize, bool),
    In(usize, Vec<Lit>, bool),
    Like(usize, Vec<char>, bool),
    Const(Option<bool>),
}

pub(crate) struct Filter {
    name: String,
    tables: TablePatterns,
    text: String,
    pred: Pred,
}

impl Filter {
    pub(crate) fn parse(
        name: String,
        tables: TablePatterns,
        text: &str,
    ) -> Result<Filter, TransformError> {
        let err = |problem: String| TransformError {
            stage: name.clone(),
            problem,
        };
        let expr = Parser::new(&MySqlDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| err(format!("cannot read where = {text:?}: {e}")))?;
        let pred = to_pred(&expr).map_err(|what| {
            err(format!(
                "where = {text:?}: {what} is not supported; a filter compares columns with \
                 literals using = <> < <= > >= IN BETWEEN LIKE IS NULL, joined by AND OR NOT"
            ))
        })?;
        Ok(Filter {
            name,
            tables,
            text: text.to_owned(),
            pred,
        })
    }
}

fn column(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Nested(inner) => column(inner),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<Lit> {
    match e {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => Some(Lit::Number(n.clone())),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                Some(Lit::Str(s.clone()))
            }
            SqlValue::Boolean(b) => Some(Lit::Number(if *b { "1" } else { "0" }.into())),
            SqlValue::Null => Some(Lit::Null),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Lit::Number(n) => Some(Lit::Number(format!("-{n}"))),
            _ => None,
        },
        Expr::Nested(inner) => literal(inner),
        _ => None,
    }
}

fn flip(op: &BinaryOperator) -> BinaryOperator {
    match op {
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        other => other.clone(),
    }
}

fn to_pred(e: &Expr) -> Result<Pred, String> {
    let short = |e: &Expr| {
        let s = e.to_string();
        if s.len() > 60 {
            format!("{}…", s.chars().take(60).collect::<String>())
        } else {
            s
        }
    };
    match e {
        Expr::Nested(inner) => to_pred(inner),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Ok(Pred::And(
                Box::new(to_pred(left)?),
                Box::new(to_pred(right)?),
            )),
            BinaryOperator::Or => Ok(Pred::Or(
                Box::new(to_pred(left)?),
                Box::new(to_pred(right)?),
            )),
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq => {
                if let (Some(c), Some(l)) = (column(left), literal(right)) {
                    Ok(Pred::Cmp(c, op.clone(), l))
                } else if let (Some(l), Some(c)) = (literal(left), column(right)) {
                    Ok(Pred::Cmp(c, flip(op), l))
                } else {
                    Err(format!("the comparison {}", short(e)))
                }
            }
            _ => Err(format!("the operator {op}")),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Ok(Pred::Not(Box::new(to_pred(expr)?))),
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
            let c = column(inner).ok_or_else(|| format!("{} IS NULL", short(inner)))?;
            Ok(Pred::IsNull(c, matches!(e, Expr::IsNotNull(_))))
        }
        Expr::In {
            expr,
            target: sqlparser::ast::InTarget::List(list),
            negated,
            global: false,
        } => {
            let c = column(expr).ok_or_else(|| format!("{} IN (…)", short(expr)))?;
            let lits = list
                .iter()
                .map(|l| literal(l).ok_or_else(|| format!("the list item {}", short(l))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Pred::In(c, lits, *negated))
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let c = column(expr).ok_or_else(|| format!("{} BETWEEN", short(expr)))?;
            let (Some(lo), Some(hi)) = (literal(low), literal(high)) else {
                return Err(format!("the bounds of {}", short(e)));
            };
            let range = Pred::And(
                Box::new(Pred::Cmp(c.clone(), BinaryOperator::GtEq, lo)),
                Box::new(Pred::Cmp(c, BinaryOperator::LtEq, hi)),
            );
            Ok(if *negated {
                Pred::Not(Box::new(range))
            } else {
                range
            })
        }
        Expr::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        } => {
            let c = column(expr).ok_or_else(|| format!("{} LIKE", short(expr)))?;
            let Some(Lit::Str(p)) = literal(pattern) else {
                return Err(format!("the pattern of {}", short(e)));
            };
            Ok(Pred::Like(c, p, *negated))
        }
        Expr::Value(_) => match literal(e) {
            Some(Lit::Null) => Ok(Pred::Const(None)),
            Some(Lit::Number(n)) => Ok(Pred::Const(Some(n != "0"))),
            _ => Err(format!("the constant {}", short(e))),
        },
        other => Err(format!("the expression {}", short(other))),
    }
}

fn bind(p: &Pred, schema: &TableSchema) -> Result<Bound, String> {
    let col = |name: &str| {
        schema
            .column_index(name)
            .ok_or_else(|| format!("table {} has no column {name:?}", schema.id))
    };
    Ok(match p {
        Pred::And(a, b) => Bound::And(Box::new(bind(a, schema)?), Box::new(bind(b, schema)?)),
        Pred::Or(a, b) => Bound::Or(Box::new(bind(a, schema)?), Box::new(bind(b, schema)?)),
        Pred::Not(a) => Bound::Not(Box::new(bind(a, schema)?)),
        Pred::Cmp(c, op, l) => Bound::Cmp(col(c)?, op.clone(), l.clone()),
        Pred::IsNull(c, not) => Bound::IsNull(col(c)?, *not),
        Pred::In(c, l, neg) => Bound::In(col(c)?, l.clone(), *neg),
        Pred::Like(c, pat, neg) => Bound::Like(col(c)?, pat.chars().collect(), *neg),
        Pred::Const(v) => Bound::Const(*v),
    })
}

/// Three-valued evaluation: `None` is UNKNOWN.
fn eval(b: &Bound, row: &Row) -> Option<bool> {
    match b {
        Bound::And(x, y) => match (eval(x, row), eval(y, row)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Bound::Or(x, y) => match (eval(x, row), eval(y, row)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Bound::Not(x) => eval(x, row).map(|v| !v),
        Bound::Const(v) => *v,
        Bound::IsNull(i, not) => Some(row.get(*i).is_none_or(Value::is_null) != *not),
        Bound::Cmp(i, op, lit) => {
            let ord = compare(row.get(*i)?, lit)?;
            Some(match op {
                BinaryOperator::Eq => ord == Ordering::Equal,
                BinaryOperator::NotEq => ord != Ordering::Equal,
                BinaryOperator::Lt => ord == Ordering::Less,
                BinaryOperator::LtEq => ord != Ordering::Greater,
                BinaryOperator::Gt => ord == Ordering::Greater,
                BinaryOperator::GtEq => ord != Ordering::Less,
                _ => return None,
            })
        }
        Bound::In(i, list, negated) => {
            let v = row.get(*i)?;
            let mut unknown = false;
            for l in list {
                match compare(v, l) {
                    Some(Ordering::Equal) => return Some(!negated),
                    None => unknown = true,
                    Some(_) => {}
                }
            }
            if unknown { None } else { Some(*negated) }
        }
        Bound::Like(i, pat, negated) => {
            let v = row.get(*i)?;
            if v.is_null() {
                return None;
            }
            let text: Vec<char> = text_form(v)?.chars().collect();
            Some(like(&text, pat) != *negated)
        }
    }
}

/// SQL LIKE: `%` any run, `_` one character, no escape character.
fn like(text: &[char], pat: &[char]) -> bool {
    // Iterative matcher with backtracking to the last `%` (linear in practice).
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && (pat[p] == '_' || pat[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pat.len() && pat[p] == '%' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|c| *c == '%')
}

/// An exact decimal in parts: sign, integer digits without leading zeros, fraction digits
/// without trailing zeros.
fn decimal_parts(s: &str) -> Option<(bool, String, String)> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0').to_owned();
    let frac = frac.trim_end_matches('0').to_owned();
    let zero = int.is_empty() && frac.is_empty();
    Some((neg && !zero, int, frac))
}

fn compare_decimal(a: &str, b: &str) -> Option<Ordering> {
    let (an, ai, af) = decimal_parts(a)?;
    let (bn, bi, bf) = decimal_parts(b)?;
    let mag = ai
        .len()
        .cmp(&bi.len())
        .then_with(|| ai.cmp(&bi))
        .then_with(|| af.cmp(&bf));
    Some(match (an, bn) {
        (false, false) => mag,
        (true, true) => mag.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    })
}

fn normalize_temporal(s: &str) -> String {
    let mut s = s.trim().to_owned();
    if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        s.push_str(" 00:00:00");
    }
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(t);
    }
    s
}

/// Orders a column value against a literal; `None` when either is NULL or they cannot be
/// compared (text against a number, say): UNKNOWN, so the row is not kept.
fn compare(v: &Value, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (Value::Null, _) | (_, Lit::Null) => None,
        (Value::Float(f), Lit::Number(n)) => f64::from(*f).partial_cmp(&n.parse::<f64>().ok()?),
        (Value::Double(f), Lit::Number(n)) => f.partial_cmp(&n.parse::<f64>().ok()?),
        (
            Value::Int(_) | Value::UInt(_) | Value::Decimal(_) | Value::Year(_) | Value::Bit { .. },
            Lit::Number(n),
        ) => compare_decimal(&text_form(v)?, n),
        (Value::Date(_) | Value::DateTime(_), Lit::Str(s)) => {
            Some(normalize_temporal(&text_form(v)?).cmp(&normalize_temporal(s)))
        }
        (Value::Timestamp(t), Lit::Str(s)) => {
            Some(normalize_temporal(&t.to_utc().to_string()).cmp(&normalize_temporal(s)))
        }
        (Value::Time(_), Lit::Str(s)) => Some(text_form(v)?.as_str().cmp(s.as_str())),
        (Value::Text(_) | Value::Enum(_) | Value::Set(_) | Value::Json(_), Lit::Str(s)) => {
            Some(text_form(v)?.as_bytes().cmp(s.as_bytes()))
        }
        (Value::Bytes(b), Lit::Str(s)) => Some(b.as_slice().cmp(s.as_bytes())),
        (Value::Text(t), Lit::Number(n)) => compare_decimal(t, n),
        _ => None,
    }
}

impl Transform for Filter {
    fn describe(&self) -> String {
        format!("filter rows of {} where {}", self.tables, self.text)
    }

    fn compile(&self, schema: &TableSchema) -> Result<Compiled, TransformError> {
        if !self.tables.matches(&schema.id) {
            return Ok(Compiled::Pass);
        }
        let bound = bind(&self.pred, schema).map_err(|problem| TransformError {
            stage: self.name.clone(),
            problem,
        })?;
        Ok(Compiled::Rows {
            output: schema.clone(),
            rows: Box::new(move |row: Row| (eval(&bound, &row) == Some(true)).then_some(row)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_sql_semantics() {
        let l = |t: &str, p: &str| {
            like(
                &t.chars().collect::<Vec<_>>(),
                &p.chars().collect::<Vec<_>>(),
            )
        };
        assert!(l("alice@test.com", "%@test.com"));
        assert!(!l("alice@test.co", "%@test.com"));
        assert!(l("abc", "a_c"));
        assert!(!l("abbc", "a_c"));
        assert!(l("", "%"));
        assert!(l("ab", "a%%b"));
        assert!(!l("ab", "abc"));
    }

    #[test]
    fn decimals_compare_by_value() {
        assert_eq!(compare_decimal("1.50", "1.5"), Some(Ordering::Equal));
        assert_eq!(compare_decimal("-0.0", "0"), Some(Ordering::Equal));
        assert_eq!(compare_decimal("10", "9.99"), Some(Ordering::Greater));
        assert_eq!(compare_decimal("-10", "-9"), Some(Ordering::Less));
        assert_eq!(
            compare_decimal("18446744073709551615", "18446744073709551614"),
            Some(Ordering::Greater)
        );
        assert_eq!(compare_decimal("1e3", "1"), None);
    }

    #[test]
    fn temporal_literals_are_normalized() {
        assert_eq!(normalize_temporal("2024-01-05"), "2024-01-05 00:00:00");
        assert_eq!(
            normalize_temporal("2024-01-05 10:00:00.500000"),
            "2024-01-05 10:00:00.5"
        );
        assert_eq!(
            normalize_temporal("2024-01-05 10:00:00.000000"),
            "2024-01-05 10:00:00"
        );
    }
}
