//! One MySQL value exactly as the source holds it.
//!
//! [`Value`] is what the binlog decoder and the snapshot reader produce, before any policy of
//! the type mapping is applied. It must be able to carry *every* value MySQL or MariaDB can
//! store, including the ones PostgreSQL cannot hold (zero dates, `TIME` beyond ±24 h, unsigned
//! 64-bit integers, text whose bytes are invalid in the column's character set), because the
//! decision what to do with those belongs to the mapping policy and must be visible to the
//! operator — never taken silently while decoding.
//!
//! Invariants:
//! - integers keep their signedness: signed columns give [`Value::Int`], unsigned ones
//!   [`Value::UInt`], so `18446744073709551615` never turns into `-1`;
//! - `DECIMAL` is carried as exact decimal text ([`Decimal`]), never through a float;
//! - temporal values keep zero parts (`0000-00-00`, `2015-00-21`) and microseconds;
//! - `TIMESTAMP` is a UTC instant (seconds and microseconds since the Unix epoch), `DATETIME` a
//!   wall-clock reading with no zone, exactly as MySQL defines the two.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A row: one value per column of the table, in the table's column order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at column index `i`, if any.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i)
    }

    /// Rough heap footprint in bytes, used to bound batches and fragments by size.
    pub fn approx_bytes(&self) -> usize {
        self.0.iter().map(Value::approx_bytes).sum::<usize>() + 24
    }
}

/// One source value. See the module documentation for the invariants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A signed integer column (TINYINT … BIGINT).
    Int(i64),
    /// An unsigned integer column (TINYINT UNSIGNED … BIGINT UNSIGNED).
    UInt(u64),
    /// FLOAT (single precision).
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// DECIMAL / NUMERIC, exact.
    Decimal(Decimal),
    /// BIT(width): the low `width` bits of `bits` are the value, most significant first.
    Bit {
        /// Declared width, 1..=64.
        width: u8,
        /// The bits, right-aligned.
        bits: u64,
    },
    /// DATE, possibly with zero parts.
    Date(Date),
    /// DATETIME(p), possibly with zero parts; no time zone.
    DateTime(DateTime),
    /// TIMESTAMP(p): a UTC instant. The MySQL zero timestamp is [`Timestamp::ZERO`].
    Timestamp(Timestamp),
    /// TIME(p): a signed duration of up to ±838:59:59.999999.
    Time(Time),
    /// YEAR: 0 (the zero year) or 1901..=2155.
    Year(u16),
    /// CHAR / VARCHAR / TEXT decoded from the column's character set to UTF-8.
    Text(String),
    /// Text whose bytes are not valid in the column's declared character set. The raw bytes
    /// are kept so that nothing is lost; the mapping policy decides (error by default).
    InvalidText {
        /// The bytes as stored.
        #[serde(with = "hex_bytes")]
        bytes: Vec<u8>,
        /// The character set the bytes claimed to be in.
        charset: String,
    },
    /// BINARY / VARBINARY / BLOB, and text columns in the `binary` character set.
    Bytes(#[serde(with = "hex_bytes")] Vec<u8>),
    /// ENUM, as its label (`""` for the error value 0).
    Enum(String),
    /// SET, as its member labels in definition order.
    Set(Vec<String>),
    /// JSON as text, with numbers exactly as written (no float round trip).
    Json(String),
    /// A spatial value: SRID and well-known binary.
    Geometry {
        /// Spatial reference id.
        srid: u32,
        /// OGC well-known binary.
        #[serde(with = "hex_bytes")]
        wkb: Vec<u8>,
    },
}

impl Value {
    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Rough heap footprint in bytes.
    pub fn approx_bytes(&self) -> usize {
        let heap = match self {
            Value::Text(s) | Value::Enum(s) | Value::Json(s) => s.len(),
            Value::Decimal(d) => d.0.len(),
            Value::Bytes(b)
            | Value::InvalidText { bytes: b, .. }
            | Value::Geometry { wkb: b, .. } => b.len(),
            Value::Set(v) => v.iter().map(|s| s.len() + 24).sum(),
            _ => 0,
        };
        heap + std::mem::size_of::<Value>()
    }
}

/// An exact decimal number as text: an optional `-`, digits, and an optional `.` followed by
/// the fraction digits. No exponent, no `+`, no leading zeros before a non-zero integer digit.
/// Trailing fraction zeros are kept: they are the column's scale.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Decimal(String);

/// A decimal text that is not of the form [`Decimal`] accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid decimal text {0:?}: expected [-]digits[.digits]")]
pub struct DecimalParseError(pub String);

impl Decimal {
    /// Parses decimal text, normalising leading zeros of the integer part and `-0` forms that
    /// MySQL never produces but that hand-written input might.
    pub fn parse(text: &str) -> Result<Self, DecimalParseError> {
        let (negative, int, frac) =
            Self::parts(text).ok_or_else(|| DecimalParseError(text.to_owned()))?;
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let is_zero = int == "0" && frac.is_none_or(|f| f.bytes().all(|b| b == b'0'));
        let mut out = String::with_capacity(text.len() + 1);
        if negative && !is_zero {
            out.push('-');
        }
        out.push_str(int);
        if let Some(f) = frac {
            out.push('.');
            out.push_str(f);
        }
        Ok(Decimal(out))
    }

    /// [`Self::parse`] of text already owned: kept as it is when it is already in normal form
    /// (as MySQL sends it), so the initial copy does not copy every DECIMAL once more.
    pub fn parse_owned(text: String) -> Result<Self, DecimalParseError> {
        let Some((negative, int, frac)) = Self::parts(&text) else {
            return Err(DecimalParseError(text));
        };
        let zero =
            int.bytes().all(|b| b == b'0') && frac.is_none_or(|f| f.bytes().all(|b| b == b'0'));
        // Normal: integer digits present, no leading zero before another digit, no `-0`.
        let leading_zero = int.len() > 1 && int.starts_with('0');
        let normal = !(int.is_empty() || leading_zero || (negative && zero));
        if normal {
            Ok(Decimal(text))
        } else {
            Self::parse(&text)
        }
    }

    /// The sign, integer digits and fraction digits of valid decimal text.
    fn parts(text: &str) -> Option<(bool, &str, Option<&str>)> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = match rest.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (rest, None),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let valid = !(int.is_empty() && frac.is_none_or(str::is_empty))
            && digits(int)
            && frac.is_none_or(|f| !f.is_empty() && digits(f));
        valid.then_some((negative, int, frac))
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the value is negative.
    pub fn is_negative(&self) -> bool {
        self.0.starts_with('-')
    }

    /// Digits after the decimal point.
    pub fn scale(&self) -> usize {
        self.0.split_once('.').map_or(0, |(_, f)| f.len())
    }

    /// The same number with trailing fraction zeros (and a bare point) removed, e.g. `1.50` →
    /// `1.5`, `2.000` → `2`. Two decimals denote the same number exactly when their normalised
    /// forms are equal.
    pub fn normalized(&self) -> String {
        match self.0.split_once('.') {
            None => self.0.clone(),
            Some((i, f)) => {
                let f = f.trim_end_matches('0');
                if f.is_empty() {
                    if i == "-0" {
                        "0".to_owned()
                    } else {
                        i.to_owned()
                    }
                } else {
                    format!("{i}.{f}")
                }
            }
        }
    }
}

impl TryFrom<String> for Decimal {
    type Error = DecimalParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Decimal::parse_owned(s)
    }
}

impl From<Decimal> for String {
    fn from(d: Decimal) -> String {
        d.0
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A calendar date as MySQL stores it. Any part may be zero (`0000-00-00`, `2015-00-21`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Date {
    /// 0..=9999.
    pub year: u16,
    /// 0..=12.
    pub month: u8,
    /// 0..=31.
    pub day: u8,
}

impl Date {
    /// Whether this is the all-zero date `0000-00-00`.
    pub fn is_zero(&self) -> bool {
        self.year == 0 && self.month == 0 && self.day == 0
    }

    /// Whether the month or the day is zero (includes the zero date). PostgreSQL has no such
    /// date; the mapping's `zero_date` policy decides.
    pub fn has_zero_part(&self) -> bool {
        self.month == 0 || self.day == 0
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A DATETIME reading: date and wall-clock time with microseconds, no time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DateTime {
    /// The date part (may have zero parts).
    pub date: Date,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
    /// 0..=999999.
    pub micros: u32,
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}:{:02}",
            self.date, self.hour, self.minute, self.second
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

/// A TIMESTAMP: an instant in UTC. MySQL's zero timestamp `0000-00-00 00:00:00` is stored as
/// second 0 and is represented by [`Timestamp::ZERO`]; the real instant 1970-01-01 00:00:00 UTC
/// cannot be stored in a MySQL TIMESTAMP column (its range starts one second later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since 1970-01-01 00:00:00 UTC.
    pub secs: i64,
    /// 0..=999999.
    pub micros: u32,
}

impl Timestamp {
    /// The MySQL zero timestamp.
    pub const ZERO: Timestamp = Timestamp { secs: 0, micros: 0 };

    /// The instant of a UTC calendar reading (proleptic Gregorian). A reading with zero parts
    /// gives [`Timestamp::ZERO`], which is how MySQL stores its zero timestamp.
    pub fn from_utc(dt: &DateTime) -> Timestamp {
        if dt.date.has_zero_part() {
            return Timestamp::ZERO;
        }
        let days = days_from_civil(
            i64::from(dt.date.year),
            u32::from(dt.date.month),
            u32::from(dt.date.day),
        );
        let secs = days * 86_400
            + i64::from(dt.hour) * 3600
            + i64::from(dt.minute) * 60
            + i64::from(dt.second);
        Timestamp {
            secs,
            micros: dt.micros,
        }
    }

    /// The UTC calendar reading of this instant.
    pub fn to_utc(&self) -> DateTime {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        DateTime {
            date: Date {
                year: y as u16,
                month: m as u8,
                day: d as u8,
            },
            hour: (rem / 3600) as u8,
            minute: ((rem / 60) % 60) as u8,
            second: (rem % 60) as u8,
            micros: self.micros,
        }
    }

    /// Whether this is the zero timestamp.
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`,
/// exact for every year).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (inverse of
/// [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A TIME value: a signed duration. MySQL's range is -838:59:59.000000 to 838:59:59.000000
/// (MariaDB allows the microseconds up to .999999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Time {
    /// Whether the duration is negative. `-00:00:00` is normalised to not negative.
    pub negative: bool,
    /// 0..=838.
    pub hours: u16,
    /// 0..=59.
    pub minutes: u8,
    /// 0..=59.
    pub seconds: u8,
    /// 0..=999999.
    pub micros: u32,
}

impl Time {
    /// The signed duration in microseconds.
    pub fn total_micros(&self) -> i64 {
        let abs = ((i64::from(self.hours) * 60 + i64::from(self.minutes)) * 60
            + i64::from(self.seconds))
            * 1_000_000
            + i64::from(self.micros);
        if self.negative { -abs } else { abs }
    }

    /// Builds a TIME from a signed number of microseconds.
    pub fn from_micros(total: i64) -> Time {
        let negative = total < 0;
        let abs = total.unsigned_abs();
        let micros = (abs % 1_000_000) as u32;
        let secs = abs / 1_000_000;
        Time {
            negative: negative && abs != 0,
            hours: u16::try_from(secs / 3600).unwrap_or(u16::MAX),
            minutes: ((secs / 60) % 60) as u8,
            seconds: (secs % 60) as u8,
            micros,
        }
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        write!(
            f,
            "{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

impl fmt::Display for Value {
    /// A short human rendering used in error messages and the verify report. Bytes are shown as
    /// hex, text is quoted and cut to 200 characters so that a message stays one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
            const MAX: usize = 200;
            let mut out: String = s.chars().take(MAX).collect();
            if s.chars().nth(MAX).is_some() {
                out.push('…');
            }
            write!(f, "{out:?}")
        }
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(v) => write!(f, "{v}"),
            Value::UInt(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Bit { width, bits } => write!(f, "b'{:0w$b}'", bits, w = usize::from(*width)),
            Value::Date(d) => write!(f, "{d}"),
            Value::DateTime(d) => write!(f, "{d}"),
            Value::Timestamp(t) => write!(f, "@{}.{:06}", t.secs, t.micros),
            Value::Time(t) => write!(f, "{t}"),
            Value::Year(y) => write!(f, "{y:04}"),
            Value::Text(s) | Value::Enum(s) | Value::Json(s) => quoted(f, s),
            Value::InvalidText { bytes, charset } => {
                write!(f, "x'{}' (invalid {charset})", hex::encode(bytes))
            }
            Value::Bytes(b) => write!(f, "x'{}'", hex::encode(b)),
            Value::Set(v) => quoted(f, &v.join(",")),
            Value::Geometry { srid, wkb } => write!(f, "srid {srid} x'{}'", hex::encode(wkb)),
        }
    }
}

/// Serde helper: bytes as a lowercase hex string (readable in JSON, exact).
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises bytes as hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Parses hex into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parse_normalises_only_what_is_not_scale() {
        assert_eq!(Decimal::parse("001.50").unwrap().as_str(), "1.50");
        assert_eq!(Decimal::parse("-0.00").unwrap().as_str(), "0.00");
        assert_eq!(Decimal::parse("-12").unwrap().as_str(), "-12");
        assert_eq!(Decimal::parse(".5").unwrap().as_str(), "0.5");
        assert!(Decimal::parse("1e5").is_err());
        assert!(Decimal::parse("").is_err());
        assert!(Decimal::parse("-").is_err());
        assert!(Decimal::parse("1.").is_err());
        assert!(Decimal::parse("+1").is_err());
    }

    #[test]
    fn decimal_parse_owned_is_parse() {
        let cases = [
            "0", "0.00", "-0", "-0.00", "-.0", ".5", "-.5", "001.50", "1.50", "-12", "10",
            "100.001", "-100.001", "00", "000.0", "1e5", "", "-", "1.", "+1", ".", "-.", "1.2.3",
            " 1", "١",
        ];
        for c in cases {
            assert_eq!(
                Decimal::parse_owned(c.to_owned()),
                Decimal::parse(c),
                "{c:?}"
            );
        }
        proptest::proptest!(|(c in "-?[0-9]{0,4}(\\.[0-9]{0,3})?")| {
            proptest::prop_assert_eq!(Decimal::parse_owned(c.clone()), Decimal::parse(&c));
        });
    }

    #[test]
    fn decimal_normalized_strips_trailing_zeros() {
        assert_eq!(Decimal::parse("1.50").unwrap().normalized(), "1.5");
        assert_eq!(Decimal::parse("2.000").unwrap().normalized(), "2");
        assert_eq!(Decimal::parse("-3.10").unwrap().normalized(), "-3.1");
        assert_eq!(Decimal::parse("0.000").unwrap().normalized(), "0");
    }

    #[test]
    fn civil_days_round_trip_and_known_points() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
        for z in [-800_000i64, -719_162, -1, 0, 1, 10_957, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        let ts = Timestamp {
            secs: 2_147_483_647,
            micros: 5,
        };
        assert_eq!(ts.to_utc().to_string(), "2038-01-19 03:14:07.000005");
        assert_eq!(Timestamp::from_utc(&ts.to_utc()), ts);
    }

    #[test]
    fn time_micros_round_trip_keeps_sign_and_range() {
        for t in [
            Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
            },
            Time {
                negative: false,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 999_999,
            },
            Time {
                negative: true,
                hours: 0,
                minutes: 0,
                seconds: 0,
                micros: 1,
            },
            Time {
                negative: false,
                hours: 0,
                minutes: 0,
                seconds: 0,
                micros: 0,
            },
        ] {
            assert_eq!(Time::from_micros(t.total_micros()), t);
        }
        assert!(!Time::from_micros(0).negative);
    }
}
