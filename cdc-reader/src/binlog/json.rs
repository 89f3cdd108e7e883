//! MySQL binary JSON (the JSON column type of MySQL 5.7+) → JSON text with every number
//! exact.
//!
//! Parsing uses `mysql_common`'s jsonb reader; the text is written here because the library's
//! `serde_json` conversion turns DECIMAL numbers into strings and infinities into 0, which would
//! change the document. Integers and decimals are printed exactly; doubles with the shortest
//! representation that reads back to the same bits; MySQL temporal scalars as the strings MySQL
//! itself prints for them. MariaDB's JSON is text and never reaches this module.

use std::fmt::Write as _;

use mysql_common::binlog::jsonb;
use mysql_common::binlog::jsonb::{JsonContainer, JsonDom, JsonNumber, JsonScalar};
use mysql_common::io::ParseBuf;

use super::event::{DecodeError, DecodeResult};

/// Converts one binary JSON value to text. An empty value is JSON `null`, as MySQL reads it.
pub fn jsonb_to_text(bytes: &[u8]) -> DecodeResult<String> {
    let value: jsonb::Value<'_> = ParseBuf(bytes)
        .parse(())
        .map_err(|e| DecodeError(format!("binary JSON: {e}")))?;
    // mysql_common's conversion panics on some corrupt values (an opaque DECIMAL whose scale
    // exceeds its precision underflows in its size computation; found by the robustness
    // proptest). A corrupt value is an error here, not a crash: the panic is caught, and
    // nothing outlives it but the borrowed input (`AssertUnwindSafe` is sound: the closure
    // only reads `value`, which is dropped right after).
    let dom = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| value.parse()))
        .map_err(|_| DecodeError::new("binary JSON: a corrupt value"))?
        .map_err(|e| DecodeError(format!("binary JSON: {e}")))?;
    let mut out = String::with_capacity(bytes.len() + 16);
    write_dom(&dom, &mut out, 0)?;
    Ok(out)
}

/// Nesting limit: MySQL refuses documents deeper than 100 levels; a deeper one is corrupt.
const MAX_DEPTH: usize = 100;

fn write_dom(dom: &JsonDom, out: &mut String, depth: usize) -> DecodeResult<()> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::new(
            "binary JSON nested deeper than 100 levels",
        ));
    }
    match dom {
        JsonDom::Container(JsonContainer::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_dom(item, out, depth + 1)?;
            }
            out.push(']');
        }
        JsonDom::Container(JsonContainer::Object(map)) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(k, out);
                out.push_str(": ");
                write_dom(v, out, depth + 1)?;
            }
            out.push('}');
        }
        JsonDom::Scalar(s) => match s {
            JsonScalar::Null => out.push_str("null"),
            JsonScalar::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonScalar::String(s) => write_string(s, out),
            JsonScalar::Number(JsonNumber::Int(i)) => {
                let _ = write!(out, "{i}");
            }
            JsonScalar::Number(JsonNumber::Uint(u)) => {
                let _ = write!(out, "{u}");
            }
            JsonScalar::Number(JsonNumber::Decimal(d)) => {
                let _ = write!(out, "{d}");
            }
            JsonScalar::Number(JsonNumber::Double(f)) => {
                if !f.is_finite() {
                    return Err(DecodeError(format!(
                        "binary JSON holds a non-finite double {f}"
                    )));
                }
                // Rust prints the shortest digits that read back to the same double.
                let _ = write!(out, "{f:?}");
            }
            JsonScalar::DateTime(t) => write_string(&format!("{t:.6}"), out),
            JsonScalar::Opaque(o) => write_string(&o.to_string(), out),
        },
    }
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_empty() {
        assert_eq!(jsonb_to_text(&[]).unwrap(), "null");
        // type 0x04 literal, 0x01 = true
        assert_eq!(jsonb_to_text(&[0x04, 0x01]).unwrap(), "true");
        // int64 (0x09) 2^63-1
        let mut b = vec![0x09];
        b.extend_from_slice(&i64::MAX.to_le_bytes());
        assert_eq!(jsonb_to_text(&b).unwrap(), "9223372036854775807");
        // uint64 (0x0a) max
        let mut b = vec![0x0a];
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(jsonb_to_text(&b).unwrap(), "18446744073709551615");
        // double (0x0b) 0.1
        let mut b = vec![0x0b];
        b.extend_from_slice(&0.1f64.to_le_bytes());
        assert_eq!(jsonb_to_text(&b).unwrap(), "0.1");
        assert!(jsonb_to_text(&[0x77]).is_err());
    }
}
