//! PostgreSQL's binary wire format for [`PgValue`]: encoding for binary COPY and binary
//! parameters, COPY BINARY framing, and decoding target values back into [`PgValue`].
//!
//! **Why hand-written.** The formats are small and fixed (each type's `*send`/`*recv`
//! functions in PostgreSQL's `src/backend/utils/adt/`), while the crates that implement them
//! get the hard cases wrong for us: `rust_decimal` (behind `postgres-types`' numeric support)
//! holds 28 digits, so MySQL's `DECIMAL(65,30)` cannot pass through it, and the chrono/time
//! adapters cannot express PostgreSQL's `-infinity`, dates before year 1, or a TIME of
//! 838 hours. Writing the bytes from [`PgValue`], whose variants *are* PostgreSQL's binary
//! fields, means nothing is converted on the way: a value is encoded exactly and decodes to an
//! equal [`PgValue`] (the round trip is a property test below and runs against a real server
//! in `tests/type_mapping.rs`).
//!
//! Formats (all integers big-endian):
//! - `numeric`: `ndigits i16, weight i16, sign u16, dscale u16`, then `ndigits` base-10000
//!   digits; `weight` is the power of 10000 of the first digit, `dscale` the number of decimal
//!   digits after the point (which keeps `1.50` distinct from `1.5`, as PostgreSQL does).
//!   Leading and trailing zero base-10000 digits are omitted, as `numeric_send` does.
//! - `date`: `i32` days since 2000-01-01; `timestamp[tz]`: `i64` µs since 2000-01-01 00:00
//!   (UTC for `timestamptz`); the extreme values are `∓infinity`.
//! - `interval`: `i64` µs, `i32` days, `i32` months.
//! - `bit varying`: `i32` bit length, then the bits most significant first, zero-padded.
//! - `jsonb`: version byte `1`, then the JSON text; `json`, `text`, enums: the UTF-8 text.
//! - arrays: `ndim i32, has_nulls i32, element oid i32`, per dimension `length i32,
//!   lower bound i32`, then each element as `length i32` + bytes.
//! - COPY BINARY: the 11-byte signature, `flags i32 = 0`, `extension length i32 = 0`; each
//!   tuple `field count i16` and per field `length i32` (-1 for NULL) + bytes; trailer `-1 i16`.

use crate::mapping::PgType;
use crate::pgvalue::{Numeric, PgValue};
use crate::value::Decimal;

/// The signature that opens a COPY BINARY stream.
pub const COPY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
const TEXT_OID: u32 = 25;
const JSONB_VERSION: u8 = 1;

/// A value that cannot be encoded, or bytes that do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// A value too large for the wire format (a field over 1 GiB, an array over i32 items).
    #[error("{what} is too large for the PostgreSQL wire format")]
    TooLarge {
        /// What.
        what: String,
    },
    /// Bytes that are not a valid binary value of the type.
    #[error("cannot decode a binary {ty} value: {reason}")]
    Decode {
        /// The type being decoded.
        ty: String,
        /// What is wrong.
        reason: String,
    },
}

fn len_i32(n: usize, what: &str) -> Result<i32, BinaryError> {
    i32::try_from(n).map_err(|_| BinaryError::TooLarge {
        what: what.to_owned(),
    })
}

/// Appends the binary payload of `v` (nothing for NULL; use [`encode_field`] for framing).
pub fn encode_value(v: &PgValue, out: &mut Vec<u8>) -> Result<(), BinaryError> {
    match v {
        PgValue::Null => {}
        PgValue::Bool(b) => out.push(u8::from(*b)),
        PgValue::Int2(i) => out.extend_from_slice(&i.to_be_bytes()),
        PgValue::Int4(i) => out.extend_from_slice(&i.to_be_bytes()),
        PgValue::Int8(i) => out.extend_from_slice(&i.to_be_bytes()),
        PgValue::Float4(f) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
        PgValue::Float8(f) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
        PgValue::Numeric(n) => encode_numeric(n, out)?,
        PgValue::Text(s) | PgValue::Json(s) | PgValue::Enum(s) => {
            out.extend_from_slice(s.as_bytes())
        }
        PgValue::Jsonb(s) => {
            out.push(JSONB_VERSION);
            out.extend_from_slice(s.as_bytes());
        }
        PgValue::Bytea(b) | PgValue::Geometry(b) => out.extend_from_slice(b),
        PgValue::Date(d) => out.extend_from_slice(&d.to_be_bytes()),
        PgValue::Timestamp(us) | PgValue::Timestamptz(us) => {
            out.extend_from_slice(&us.to_be_bytes())
        }
        PgValue::Interval {
            months,
            days,
            micros,
        } => {
            out.extend_from_slice(&micros.to_be_bytes());
            out.extend_from_slice(&days.to_be_bytes());
            out.extend_from_slice(&months.to_be_bytes());
        }
        PgValue::BitVarying { len, bytes } => {
            out.extend_from_slice(&len_i32(*len as usize, "a bit string")?.to_be_bytes());
            let n = len.div_ceil(8) as usize;
            let mut b = bytes.clone();
            b.resize(n, 0);
            // Bits past `len` in the last byte must be zero (bit_recv rejects them otherwise).
            if len % 8 != 0
                && let Some(last) = b.last_mut()
            {
                *last &= 0xFFu8 << (8 - len % 8);
            }
            out.extend_from_slice(&b);
        }
        PgValue::TextArray(items) => {
            let n = len_i32(items.len(), "a text array")?;
            let ndim: i32 = if items.is_empty() { 0 } else { 1 };
            out.extend_from_slice(&ndim.to_be_bytes());
            out.extend_from_slice(&0i32.to_be_bytes());
            out.extend_from_slice(&TEXT_OID.to_be_bytes());
            if ndim == 1 {
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
            }
            for s in items {
                out.extend_from_slice(&len_i32(s.len(), "an array element")?.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        PgValue::Uuid(u) => out.extend_from_slice(u),
    }
    Ok(())
}

/// Appends `v` as a length-prefixed field (`-1` for NULL), the form COPY BINARY uses.
pub fn encode_field(v: &PgValue, out: &mut Vec<u8>) -> Result<(), BinaryError> {
    if v.is_null() {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    encode_field_with(out, |out| encode_value(v, out))
}

/// Appends a non-NULL field whose value `write` appends, prefixed with its length.
pub fn encode_field_with(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), BinaryError>,
) -> Result<(), BinaryError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out)?;
    let len = len_i32(out.len() - at - 4, "a field")?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends the COPY BINARY header.
pub fn copy_header(out: &mut Vec<u8>) {
    out.extend_from_slice(COPY_SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// Appends one COPY BINARY tuple.
pub fn copy_row(values: &[PgValue], out: &mut Vec<u8>) -> Result<(), BinaryError> {
    let n = i16::try_from(values.len()).map_err(|_| BinaryError::TooLarge {
        what: "a row of more than 32767 columns".into(),
    })?;
    out.extend_from_slice(&n.to_be_bytes());
    for v in values {
        encode_field(v, out)?;
    }
    Ok(())
}

/// Appends the COPY BINARY trailer.
pub fn copy_trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

fn encode_numeric(n: &Numeric, out: &mut Vec<u8>) -> Result<(), BinaryError> {
    let special = |sign: u16, out: &mut Vec<u8>| {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
    };
    let d = match n {
        Numeric::NaN => {
            special(NUMERIC_NAN, out);
            return Ok(());
        }
        Numeric::Infinity => {
            special(NUMERIC_PINF, out);
            return Ok(());
        }
        Numeric::NegInfinity => {
            special(NUMERIC_NINF, out);
            return Ok(());
        }
        Numeric::Value(d) => d,
    };
    encode_decimal(d, out)
}

/// The binary `numeric` of exact decimal text: base-10000 digit groups, written straight into
/// `out` (the copy's hot path: no allocation).
pub fn encode_decimal(d: &Decimal, out: &mut Vec<u8>) -> Result<(), BinaryError> {
    encode_decimal_text(d.as_str(), out)
}

/// The binary `numeric` of an integer: the same bytes as [`encode_decimal`] of its decimal
/// text, computed by division (BIGINT UNSIGNED → numeric(20,0) on the copy's hot path: no
/// text at all).
pub fn encode_integer_numeric(negative: bool, abs: u64, out: &mut Vec<u8>) {
    // u64::MAX has 20 decimal digits: five base-10000 groups, least significant first.
    let mut groups = [0u16; 5];
    let mut n = 0;
    let mut rest = abs;
    while rest > 0 {
        groups[n] = (rest % 10_000) as u16;
        rest /= 10_000;
        n += 1;
    }
    // Zero groups at the low end are left out (dscale 0: they are not fraction digits).
    let low = groups[..n].iter().take_while(|&&g| g == 0).count();
    let ndigits = (n - low) as i16;
    let weight = if n == 0 { 0 } else { n as i16 - 1 };
    let sign = if negative && n > 0 {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for g in groups[low..n].iter().rev() {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

/// [`encode_decimal`] of text in [`Decimal`]'s form (`[-]digits[.digits]`).
fn encode_decimal_text(text: &str, out: &mut Vec<u8>) -> Result<(), BinaryError> {
    let (negative, abs) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = abs.split_once('.').unwrap_or((abs, ""));
    let (int, frac) = (int.trim_start_matches('0').as_bytes(), frac.as_bytes());
    let too_large = || BinaryError::TooLarge {
        what: format!("numeric {text}"),
    };
    let not_decimal = || BinaryError::Decode {
        ty: "numeric".into(),
        reason: format!("{text:?} is not decimal text"),
    };
    // The digits as one stream in groups of four: the integer part as if left-padded with
    // zeros to whole groups, the fraction right-padded. Each group is computed once, on the
    // stack: MySQL's widest DECIMAL(65,30) needs 25 groups; longer (hand-written) text goes to
    // the heap.
    let int_groups = int.len().div_ceil(4);
    let groups = int_groups + frac.len().div_ceil(4);
    let mut stack = [0i16; 32];
    let mut heap = Vec::new();
    let all: &mut [i16] = match stack.get_mut(..groups) {
        Some(s) => s,
        None => {
            heap.resize(groups, 0);
            &mut heap
        }
    };
    let mut g = 0;
    let mut acc = 0i16;
    // Digits already in the current group: the integer part's padding counts.
    let mut filled = (4 - int.len() % 4) % 4;
    for &b in int.iter().chain(frac) {
        if !b.is_ascii_digit() {
            return Err(not_decimal());
        }
        acc = acc * 10 + i16::from(b - b'0');
        filled += 1;
        if filled == 4 {
            all[g] = acc;
            g += 1;
            acc = 0;
            filled = 0;
        }
    }
    if filled > 0 {
        // The fraction's last group, right-padded.
        for _ in filled..4 {
            acc *= 10;
        }
        all[g] = acc;
    }
    // Zero groups at either end are left out; the weight counts from the first one kept.
    let first = all.iter().position(|&v| v != 0);
    let last = all.iter().rposition(|&v| v != 0);
    let dscale = u16::try_from(frac.len()).map_err(|_| too_large())?;
    let (ndigits, weight, sign, kept) = match (first, last) {
        (Some(f), Some(l)) => {
            let weight = i64::try_from(int_groups).map_err(|_| too_large())?
                - 1
                - i64::try_from(f).map_err(|_| too_large())?;
            (
                i16::try_from(l - f + 1).map_err(|_| too_large())?,
                i16::try_from(weight).map_err(|_| too_large())?,
                if negative { NUMERIC_NEG } else { NUMERIC_POS },
                f..l + 1,
            )
        }
        _ => (0, 0, NUMERIC_POS, 0..0),
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for v in all.get(kept).unwrap_or_default() {
        out.extend_from_slice(&v.to_be_bytes());
    }
    Ok(())
}

/// A cursor over a binary value.
struct Reader<'a> {
    b: &'a [u8],
    ty: &'a str,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: impl Into<String>) -> BinaryError {
        BinaryError::Decode {
            ty: self.ty.to_owned(),
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BinaryError> {
        if self.b.len() < n {
            return Err(self.err(format!("needs {n} more bytes, has {}", self.b.len())));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BinaryError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn i16(&mut self) -> Result<i16, BinaryError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, BinaryError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, BinaryError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, BinaryError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn done(&self) -> Result<(), BinaryError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.b.len())))
        }
    }

    fn utf8(&self, bytes: &[u8]) -> Result<String, BinaryError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| self.err(e.to_string()))
    }
}

/// Decodes a binary value of type `ty` (`None` is NULL).
pub fn decode_value(ty: &PgType, bytes: Option<&[u8]>) -> Result<PgValue, BinaryError> {
    let Some(bytes) = bytes else {
        return Ok(PgValue::Null);
    };
    let name = ty.to_string();
    let mut r = Reader {
        b: bytes,
        ty: &name,
    };
    let v = match ty {
        PgType::Boolean => match r.take(1)?[0] {
            0 => PgValue::Bool(false),
            1 => PgValue::Bool(true),
            b => return Err(r.err(format!("byte {b}"))),
        },
        PgType::SmallInt => PgValue::Int2(r.i16()?),
        PgType::Integer => PgValue::Int4(r.i32()?),
        PgType::BigInt => PgValue::Int8(r.i64()?),
        PgType::Real => PgValue::Float4(f32::from_bits(u32::from_be_bytes(r.array()?))),
        PgType::Double => PgValue::Float8(f64::from_bits(u64::from_be_bytes(r.array()?))),
        PgType::Numeric { .. } => PgValue::Numeric(decode_numeric(&mut r)?),
        PgType::VarChar { .. } | PgType::Text => {
            let s = r.utf8(r.b)?;
            r.b = &[];
            PgValue::Text(s)
        }
        PgType::Enum { .. } => {
            let s = r.utf8(r.b)?;
            r.b = &[];
            PgValue::Enum(s)
        }
        PgType::Json => {
            let s = r.utf8(r.b)?;
            r.b = &[];
            PgValue::Json(s)
        }
        PgType::Jsonb => {
            let v = r.take(1)?[0];
            if v != JSONB_VERSION {
                return Err(r.err(format!("jsonb version {v}")));
            }
            let s = r.utf8(r.b)?;
            r.b = &[];
            PgValue::Jsonb(s)
        }
        PgType::Bytea => {
            let b = r.b.to_vec();
            r.b = &[];
            PgValue::Bytea(b)
        }
        PgType::Geometry => {
            let b = r.b.to_vec();
            r.b = &[];
            PgValue::Geometry(b)
        }
        PgType::Date => PgValue::Date(r.i32()?),
        PgType::Timestamp { .. } => PgValue::Timestamp(r.i64()?),
        PgType::Timestamptz { .. } => PgValue::Timestamptz(r.i64()?),
        PgType::Interval { .. } => {
            let micros = r.i64()?;
            let days = r.i32()?;
            let months = r.i32()?;
            PgValue::Interval {
                months,
                days,
                micros,
            }
        }
        PgType::BitVarying { .. } => {
            let len = r.i32()?;
            let len = u32::try_from(len).map_err(|_| r.err(format!("bit length {len}")))?;
            let bytes = r.take(len.div_ceil(8) as usize)?.to_vec();
            PgValue::BitVarying { len, bytes }
        }
        PgType::Uuid => PgValue::Uuid(r.array()?),
        PgType::TextArray => PgValue::TextArray(decode_text_array(&mut r)?),
    };
    r.done()?;
    Ok(v)
}

fn decode_numeric(r: &mut Reader<'_>) -> Result<Numeric, BinaryError> {
    let ndigits = r.i16()?;
    let weight = i32::from(r.i16()?);
    let sign = r.u16()?;
    let dscale = usize::from(r.u16()?);
    let ndigits = usize::try_from(ndigits).map_err(|_| r.err(format!("ndigits {ndigits}")))?;
    let mut digits = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        let d = r.i16()?;
        if !(0..10_000).contains(&d) {
            return Err(r.err(format!("base-10000 digit {d}")));
        }
        digits.push(d);
    }
    match sign {
        NUMERIC_NAN => return Ok(Numeric::NaN),
        NUMERIC_PINF => return Ok(Numeric::Infinity),
        NUMERIC_NINF => return Ok(Numeric::NegInfinity),
        NUMERIC_POS | NUMERIC_NEG => {}
        s => return Err(r.err(format!("sign word {s:#06x}"))),
    }
    let digit = |i: i32| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut int = String::new();
    for i in 0..=weight.max(-1) {
        int.push_str(&format!("{:04}", digit(i)));
    }
    let int = int.trim_start_matches('0');
    let mut text = String::new();
    if sign == NUMERIC_NEG {
        text.push('-');
    }
    text.push_str(if int.is_empty() { "0" } else { int });
    if dscale > 0 {
        let groups = dscale.div_ceil(4);
        let mut frac = String::with_capacity(groups * 4);
        for j in 0..groups {
            let j = i32::try_from(j).map_err(|_| r.err("scale too large"))?;
            frac.push_str(&format!("{:04}", digit(weight + 1 + j)));
        }
        frac.truncate(dscale);
        text.push('.');
        text.push_str(&frac);
    }
    Decimal::parse(&text)
        .map(Numeric::Value)
        .map_err(|e| r.err(e.to_string()))
}

fn decode_text_array(r: &mut Reader<'_>) -> Result<Vec<String>, BinaryError> {
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let _element_oid = r.i32()?;
    match ndim {
        0 => return Ok(Vec::new()),
        1 => {}
        n => return Err(r.err(format!("{n} dimensions, expected 1"))),
    }
    let len = r.i32()?;
    let _lower = r.i32()?;
    let len = usize::try_from(len).map_err(|_| r.err(format!("length {len}")))?;
    let mut items = Vec::with_capacity(len.min(1024));
    for _ in 0..len {
        let n = r.i32()?;
        let n = usize::try_from(n).map_err(|_| r.err("NULL element"))?;
        let bytes = r.take(n)?;
        items.push(r.utf8(bytes)?);
    }
    Ok(items)
}

/// Decodes a whole `COPY … TO STDOUT (FORMAT binary)` stream of rows of `types`.
pub fn decode_copy(types: &[PgType], data: &[u8]) -> Result<Vec<Vec<PgValue>>, BinaryError> {
    let mut r = Reader {
        b: data,
        ty: "COPY stream",
    };
    if r.take(COPY_SIGNATURE.len())? != COPY_SIGNATURE {
        return Err(r.err("missing PGCOPY signature"));
    }
    let _flags = r.i32()?;
    let ext = r.i32()?;
    r.take(usize::try_from(ext).map_err(|_| r.err("negative header extension"))?)?;
    let mut rows = Vec::new();
    loop {
        let n = r.i16()?;
        if n == -1 {
            break;
        }
        if usize::try_from(n).ok() != Some(types.len()) {
            return Err(r.err(format!("tuple of {n} fields, expected {}", types.len())));
        }
        let mut row = Vec::with_capacity(types.len());
        for ty in types {
            let len = r.i32()?;
            let field = match usize::try_from(len) {
                Ok(len) => Some(r.take(len)?),
                Err(_) => None,
            };
            row.push(decode_value(ty, field)?);
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;
