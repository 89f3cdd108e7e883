//! MySQL character sets and their exact decoding to UTF-8.
//!
//! PostgreSQL databases created by my2pg are UTF-8, so every text value is decoded from the
//! column's character set. Decoding never drops a row: bytes that are not valid in the declared
//! set produce [`Value::InvalidText`] carrying the raw bytes, and the mapping's `invalid_text`
//! policy decides later (error by default).
//!
//! MySQL's `latin1` is Windows code page 1252, not ISO-8859-1 (byte 0x80 is `€`), and its five
//! bytes that cp1252 leaves undefined map to the C1 controls U+0081, U+008D, U+008F, U+0090 and
//! U+009D. `encoding_rs`'s `windows-1252` (the WHATWG index) does exactly that, so `latin1`
//! always decodes. The multi-byte Asian sets and the other code pages go through `encoding_rs`
//! too; only the UTF-16/UTF-32 families are decoded by hand, because `encoding_rs` deliberately
//! has no UTF-32 and MySQL's `ucs2` is big-endian UTF-16 restricted to the BMP.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::Value;

/// A MySQL character set, by its MySQL name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Charset {
    /// `utf8mb4`: UTF-8.
    Utf8mb4,
    /// `utf8mb3` (also `utf8` before MySQL 8.0.30): UTF-8 limited to the BMP.
    Utf8mb3,
    /// `latin1`: really Windows-1252.
    Latin1,
    /// `ascii`: 7-bit.
    Ascii,
    /// `binary`: bytes, not text.
    Binary,
    /// `ucs2`: UTF-16BE, BMP only.
    Ucs2,
    /// `utf16`: UTF-16BE.
    Utf16,
    /// `utf16le`: UTF-16LE.
    Utf16le,
    /// `utf32`: UTF-32BE.
    Utf32,
    /// Any other set, decoded through `encoding_rs` when it knows the set.
    Other(String),
}

impl Charset {
    /// Parses a MySQL character set name (case-insensitive).
    pub fn from_name(name: &str) -> Charset {
        match name.to_ascii_lowercase().as_str() {
            "utf8mb4" => Charset::Utf8mb4,
            "utf8mb3" | "utf8" => Charset::Utf8mb3,
            "latin1" => Charset::Latin1,
            "ascii" => Charset::Ascii,
            "binary" => Charset::Binary,
            "ucs2" => Charset::Ucs2,
            "utf16" => Charset::Utf16,
            "utf16le" => Charset::Utf16le,
            "utf32" => Charset::Utf32,
            other => Charset::Other(other.to_owned()),
        }
    }

    /// The character set of a collation name such as `utf8mb4_unicode_ci` or `latin1_bin`.
    pub fn from_collation_name(collation: &str) -> Charset {
        let lower = collation.to_ascii_lowercase();
        if lower == "binary" {
            return Charset::Binary;
        }
        // Collation names are `<charset>_<rest>`; charset names contain no `_` except
        // `utf8mb3`/`utf8mb4` (no underscore either) — so the first segment is the set.
        let set = lower.split('_').next().unwrap_or(&lower);
        Charset::from_name(set)
    }

    /// The MySQL name.
    pub fn name(&self) -> &str {
        match self {
            Charset::Utf8mb4 => "utf8mb4",
            Charset::Utf8mb3 => "utf8mb3",
            Charset::Latin1 => "latin1",
            Charset::Ascii => "ascii",
            Charset::Binary => "binary",
            Charset::Ucs2 => "ucs2",
            Charset::Utf16 => "utf16",
            Charset::Utf16le => "utf16le",
            Charset::Utf32 => "utf32",
            Charset::Other(s) => s,
        }
    }

    /// Whether values in this set are bytes rather than text.
    pub fn is_binary(&self) -> bool {
        matches!(self, Charset::Binary)
    }

    /// Whether my2pg can decode this set. Checked when a table is first seen, so that an
    /// unsupported set stops the migration before any row is copied.
    pub fn is_supported(&self) -> bool {
        match self {
            Charset::Other(name) => other_encoding(name).is_some(),
            _ => true,
        }
    }

    /// Decodes `bytes` stored in this set: text when valid, [`Value::InvalidText`] when not,
    /// [`Value::Bytes`] for the `binary` set.
    pub fn decode(&self, bytes: &[u8]) -> Value {
        let text = match self {
            Charset::Binary => return Value::Bytes(bytes.to_vec()),
            Charset::Utf8mb4 | Charset::Utf8mb3 => {
                std::str::from_utf8(bytes).ok().map(str::to_owned)
            }
            Charset::Ascii => bytes.is_ascii().then(|| {
                // ASCII bytes are valid UTF-8 as they are.
                String::from_utf8_lossy(bytes).into_owned()
            }),
            Charset::Latin1 => {
                let (s, _, malformed) = encoding_rs::WINDOWS_1252.decode(bytes);
                (!malformed).then(|| s.into_owned())
            }
            Charset::Ucs2 => {
                decode_utf16(bytes, true).filter(|s| s.chars().all(|c| (c as u32) < 0x10000))
            }
            Charset::Utf16 => decode_utf16(bytes, true),
            Charset::Utf16le => decode_utf16(bytes, false),
            Charset::Utf32 => decode_utf32(bytes),
            Charset::Other(name) => other_encoding(name).and_then(|enc| {
                enc.decode_without_bom_handling_and_without_replacement(bytes)
                    .map(|s| s.into_owned())
            }),
        };
        match text {
            Some(text) => Value::Text(text),
            None => Value::InvalidText {
                bytes: bytes.to_vec(),
                charset: self.name().to_owned(),
            },
        }
    }
}

impl Charset {
    /// Decodes `bytes`, replacing each invalid sequence with U+FFFD (the `invalid_text =
    /// "replace"` policy). Valid text decodes exactly as [`Charset::decode`] does; the
    /// `binary` set and sets my2pg cannot decode fall back to UTF-8.
    pub fn decode_lossy(&self, bytes: &[u8]) -> String {
        if let Value::Text(s) = self.decode(bytes) {
            return s;
        }
        let utf16 = |big_endian: bool, bmp_only: bool| -> String {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| match c {
                    [a, b] if big_endian => u16::from_be_bytes([*a, *b]),
                    [a, b] => u16::from_le_bytes([*a, *b]),
                    // A dangling byte is an invalid unit: a lone surrogate decodes to U+FFFD.
                    _ => 0xD800,
                })
                .collect();
            char::decode_utf16(units)
                .map(|r| match r {
                    Ok(c) if bmp_only && (c as u32) >= 0x10000 => char::REPLACEMENT_CHARACTER,
                    Ok(c) => c,
                    Err(_) => char::REPLACEMENT_CHARACTER,
                })
                .collect()
        };
        match self {
            Charset::Latin1 => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
            Charset::Ascii => bytes
                .iter()
                .map(|&b| {
                    if b.is_ascii() {
                        char::from(b)
                    } else {
                        char::REPLACEMENT_CHARACTER
                    }
                })
                .collect(),
            Charset::Ucs2 => utf16(true, true),
            Charset::Utf16 => utf16(true, false),
            Charset::Utf16le => utf16(false, false),
            Charset::Utf32 => bytes
                .chunks(4)
                .map(|c| match c {
                    [a, b, c, d] => char::from_u32(u32::from_be_bytes([*a, *b, *c, *d]))
                        .unwrap_or(char::REPLACEMENT_CHARACTER),
                    _ => char::REPLACEMENT_CHARACTER,
                })
                .collect(),
            Charset::Other(name) => match other_encoding(name) {
                Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
                None => String::from_utf8_lossy(bytes).into_owned(),
            },
            Charset::Utf8mb4 | Charset::Utf8mb3 | Charset::Binary => {
                String::from_utf8_lossy(bytes).into_owned()
            }
        }
    }
}

fn decode_utf16(bytes: &[u8], big_endian: bool) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|c| {
        let pair = [c[0], c[1]];
        if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

fn decode_utf32(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    bytes
        .chunks_exact(4)
        .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

/// `encoding_rs` encodings for the MySQL sets it covers exactly.
fn other_encoding(name: &str) -> Option<&'static encoding_rs::Encoding> {
    use encoding_rs as e;
    Some(match name {
        "big5" => e::BIG5,
        "cp1250" => e::WINDOWS_1250,
        "cp1251" => e::WINDOWS_1251,
        "cp1256" => e::WINDOWS_1256,
        "cp1257" => e::WINDOWS_1257,
        "cp866" => e::IBM866,
        "euckr" => e::EUC_KR,
        "gb2312" | "gbk" => e::GBK,
        "gb18030" => e::GB18030,
        "greek" => e::ISO_8859_7,
        "hebrew" => e::ISO_8859_8,
        "koi8r" => e::KOI8_R,
        "koi8u" => e::KOI8_U,
        "latin2" => e::ISO_8859_2,
        "latin5" => e::WINDOWS_1254,
        "latin7" => e::ISO_8859_13,
        "macroman" => e::MACINTOSH,
        "sjis" | "cp932" => e::SHIFT_JIS,
        "ujis" | "eucjpms" => e::EUC_JP,
        "tis620" => e::WINDOWS_874,
        _ => return None,
    })
}

impl From<Charset> for String {
    fn from(c: Charset) -> String {
        c.name().to_owned()
    }
}

impl From<String> for Charset {
    fn from(s: String) -> Charset {
        Charset::from_name(&s)
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The character set of a collation id as sent in binlog table-map metadata, for the ids that
/// are the same on every MySQL and MariaDB version. The reader prefers the live server's
/// `information_schema.COLLATIONS` (which knows every id, including MariaDB's UCA 14 ids above
/// 2047); this table serves offline decoding (`my2pg inspect-binlog`).
pub fn charset_of_collation_id(id: u16) -> Option<Charset> {
    Some(match id {
        63 => Charset::Binary,
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
        11 | 65 => Charset::Ascii,
        33 | 83 | 192..=215 | 223 | 576..=580 | 1057 | 1069 => Charset::Utf8mb3,
        45 | 46 | 224..=247 | 255..=323 => Charset::Utf8mb4,
        35 | 90 | 128..=151 | 159 => Charset::Ucs2,
        54 | 55 | 101..=124 | 327 => Charset::Utf16,
        56 | 62 => Charset::Utf16le,
        60 | 61 | 160..=183 => Charset::Utf32,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_cp1252() {
        assert_eq!(Charset::Latin1.decode(&[0x80]), Value::Text("€".into()));
        assert_eq!(Charset::Latin1.decode(&[0xE9]), Value::Text("é".into()));
        assert_eq!(
            Charset::Latin1.decode(&[0x81]),
            Value::Text("\u{81}".into())
        );
    }

    #[test]
    fn invalid_utf8_keeps_bytes() {
        assert_eq!(
            Charset::Utf8mb4.decode(&[0x61, 0xFF]),
            Value::InvalidText {
                bytes: vec![0x61, 0xFF],
                charset: "utf8mb4".into()
            }
        );
    }

    #[test]
    fn ascii_rejects_high_bytes_and_binary_is_bytes() {
        assert!(matches!(
            Charset::Ascii.decode(&[0xC3]),
            Value::InvalidText { .. }
        ));
        assert_eq!(Charset::Binary.decode(b"ab"), Value::Bytes(b"ab".to_vec()));
    }

    #[test]
    fn utf16_and_utf32_families() {
        assert_eq!(Charset::Ucs2.decode(&[0x00, 0x41]), Value::Text("A".into()));
        assert_eq!(
            Charset::Utf16le.decode(&[0x41, 0x00]),
            Value::Text("A".into())
        );
        assert_eq!(
            Charset::Utf16.decode(&[0xD8, 0x3D, 0xDE, 0x00]),
            Value::Text("😀".into())
        );
        assert_eq!(
            Charset::Utf32.decode(&[0, 1, 0xF6, 0x00]),
            Value::Text("😀".into())
        );
        assert!(matches!(
            Charset::Utf32.decode(&[0, 0x11, 0, 0]),
            Value::InvalidText { .. }
        ));
    }

    #[test]
    fn lossy_decoding_replaces_only_invalid_sequences() {
        assert_eq!(
            Charset::Utf8mb4.decode_lossy(&[0x61, 0xFF, 0x62]),
            "a\u{FFFD}b"
        );
        assert_eq!(Charset::Ascii.decode_lossy(&[0x61, 0xC3]), "a\u{FFFD}");
        assert_eq!(
            Charset::Utf16.decode_lossy(&[0xD8, 0x3D, 0x00, 0x41]),
            "\u{FFFD}A"
        );
        assert_eq!(Charset::Latin1.decode_lossy(&[0x80]), "€");
    }

    #[test]
    fn collation_names_give_their_set() {
        assert_eq!(
            Charset::from_collation_name("utf8mb4_unicode_ci"),
            Charset::Utf8mb4
        );
        assert_eq!(
            Charset::from_collation_name("latin1_swedish_ci"),
            Charset::Latin1
        );
        assert_eq!(Charset::from_collation_name("binary"), Charset::Binary);
        assert_eq!(
            Charset::from_collation_name("utf8mb3_general_ci"),
            Charset::Utf8mb3
        );
    }
}
