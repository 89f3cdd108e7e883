//! Typed, ordered source positions.
//!
//! Three kinds of position exist, and a stream uses one of them consistently:
//! - a MySQL [`GtidSet`]: per source (server UUID, plus an optional tag since MySQL 8.4), the set
//!   of executed transaction numbers as merged, sorted, inclusive intervals. `uuid:1-5:7` is
//!   {1,2,3,4,5,7}. The set of a position *contains* every transaction before it, so resuming
//!   from a set is exact even when transactions of several sources interleave;
//! - a MariaDB [`MariaGtidPos`]: per replication domain, the last applied `domain-server-seq`.
//!   Within a domain sequence numbers increase, so the position is a vector clock over domains;
//! - a file coordinate [`BinlogCoord`]: binlog file name and byte offset, ordered by the file's
//!   numeric suffix and then the offset. Only meaningful on one server.
//!
//! Invariants kept by construction: GTID intervals are never empty, never overlap and never
//! touch (they are merged), so two equal sets have equal representations and `Display` is
//! canonical; a `MariaGtidPos` holds at most one GTID per domain.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A position text that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {text:?}: {reason}")]
pub struct PositionParseError {
    /// What was being parsed.
    pub kind: &'static str,
    /// The input.
    pub text: String,
    /// Why it is invalid.
    pub reason: String,
}

fn perr(kind: &'static str, text: &str, reason: impl Into<String>) -> PositionParseError {
    PositionParseError {
        kind,
        text: text.to_owned(),
        reason: reason.into(),
    }
}

/// A MySQL source id: server UUID and an optional tag (MySQL 8.4 tagged GTIDs, `uuid:tag:n`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    /// The UUID, 16 bytes.
    pub uuid: [u8; 16],
    /// The tag, lowercase; empty when untagged.
    pub tag: String,
}

impl Sid {
    /// Parses a UUID in the 8-4-4-4-12 hex form (or 32 hex digits).
    pub fn parse_uuid(text: &str) -> Result<[u8; 16], PositionParseError> {
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || (text.len() != 32 && text.len() != 36) {
            return Err(perr("server uuid", text, "expected 32 hex digits"));
        }
        let mut uuid = [0u8; 16];
        hex::decode_to_slice(&hex, &mut uuid)
            .map_err(|e| perr("server uuid", text, e.to_string()))?;
        Ok(uuid)
    }

    fn fmt_uuid(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.uuid);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

fn valid_tag(tag: &str) -> bool {
    // MySQL 8.4: a tag is 1-32 characters, letters, digits and `_`, starting with a letter or `_`.
    !tag.is_empty()
        && tag.len() <= 32
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One MySQL GTID: source and transaction number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MysqlGtid {
    /// Source.
    pub sid: Sid,
    /// Transaction number, 1..=2^63-1.
    pub gno: u64,
}

impl fmt::Display for MysqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.sid.fmt_uuid(f)?;
        if !self.sid.tag.is_empty() {
            write!(f, ":{}", self.sid.tag)?;
        }
        write!(f, ":{}", self.gno)
    }
}

/// A set of MySQL GTIDs, normalised (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GtidSet {
    sets: BTreeMap<Sid, Vec<(u64, u64)>>,
}

impl GtidSet {
    /// The empty set.
    pub fn new() -> Self {
        GtidSet::default()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Adds one transaction.
    pub fn add(&mut self, gtid: &MysqlGtid) {
        self.add_interval(&gtid.sid, gtid.gno, gtid.gno);
    }

    /// Adds the inclusive interval `start..=end` of `sid`. Empty or zero-based intervals are
    /// ignored (transaction numbers start at 1).
    pub fn add_interval(&mut self, sid: &Sid, start: u64, end: u64) {
        if start == 0 || end < start {
            return;
        }
        let ivs = self.sets.entry(sid.clone()).or_default();
        ivs.push((start, end));
        ivs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(s, e) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *ivs = merged;
    }

    /// Whether the set holds `gtid`.
    pub fn contains_gtid(&self, gtid: &MysqlGtid) -> bool {
        self.sets
            .get(&gtid.sid)
            .is_some_and(|ivs| ivs.iter().any(|&(s, e)| s <= gtid.gno && gtid.gno <= e))
    }

    /// Whether every transaction of `other` is in `self` (`self ⊇ other`).
    pub fn contains(&self, other: &GtidSet) -> bool {
        other.sets.iter().all(|(sid, ivs)| {
            let Some(mine) = self.sets.get(sid) else {
                return false;
            };
            ivs.iter()
                .all(|&(s, e)| mine.iter().any(|&(ms, me)| ms <= s && e <= me))
        })
    }

    /// The union of two sets.
    pub fn union(&self, other: &GtidSet) -> GtidSet {
        let mut out = self.clone();
        for (sid, ivs) in &other.sets {
            for &(s, e) in ivs {
                out.add_interval(sid, s, e);
            }
        }
        out
    }

    /// Iterates over (source, intervals).
    pub fn iter(&self) -> impl Iterator<Item = (&Sid, &[(u64, u64)])> {
        self.sets.iter().map(|(s, v)| (s, v.as_slice()))
    }

    /// Number of transactions in the set (saturating).
    pub fn len(&self) -> u64 {
        self.sets
            .values()
            .flat_map(|v| v.iter())
            .fold(0u64, |acc, &(s, e)| acc.saturating_add(e - s + 1))
    }
}

impl fmt::Display for GtidSet {
    /// The canonical MySQL text: `uuid:1-5:7,uuid2:tag:3` (sources in UUID order, tags after the
    /// untagged intervals of the same UUID).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prev_uuid: Option<[u8; 16]> = None;
        for (sid, ivs) in &self.sets {
            if prev_uuid == Some(sid.uuid) {
                // Same UUID, another tag: continue the same element.
            } else {
                if prev_uuid.is_some() {
                    f.write_str(",")?;
                }
                sid.fmt_uuid(f)?;
                prev_uuid = Some(sid.uuid);
            }
            if !sid.tag.is_empty() {
                write!(f, ":{}", sid.tag)?;
            }
            for &(s, e) in ivs {
                if s == e {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{e}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for GtidSet {
    type Err = PositionParseError;

    /// Parses MySQL's text form, tolerating whitespace and newlines after commas as
    /// `@@gtid_executed` prints them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let kind = "gtid set";
        let mut set = GtidSet::new();
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Ok(set);
        }
        for element in compact.split(',') {
            let mut parts = element.split(':');
            let uuid = Sid::parse_uuid(parts.next().unwrap_or_default())?;
            let mut sid = Sid {
                uuid,
                tag: String::new(),
            };
            let mut any = false;
            for part in parts {
                if part.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    let (s, e) = match part.split_once('-') {
                        Some((s, e)) => (s, e),
                        None => (part, part),
                    };
                    let s: u64 = s
                        .parse()
                        .map_err(|_| perr(kind, text, format!("bad interval {part:?}")))?;
                    let e: u64 = e
                        .parse()
                        .map_err(|_| perr(kind, text, format!("bad interval {part:?}")))?;
                    if s == 0 || e < s {
                        return Err(perr(kind, text, format!("empty or zero interval {part:?}")));
                    }
                    set.add_interval(&sid, s, e);
                    any = true;
                } else if valid_tag(part) {
                    sid = Sid {
                        uuid,
                        tag: part.to_ascii_lowercase(),
                    };
                } else {
                    return Err(perr(kind, text, format!("bad tag or interval {part:?}")));
                }
            }
            if !any {
                return Err(perr(kind, text, format!("no interval in {element:?}")));
            }
        }
        Ok(set)
    }
}

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MariaGtid {
    /// Replication domain.
    pub domain: u32,
    /// Originating server id.
    pub server_id: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

impl FromStr for MariaGtid {
    type Err = PositionParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let kind = "mariadb gtid";
        let mut it = text.trim().split('-');
        let mut next = |what: &str| {
            it.next()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| perr(kind, text, format!("missing {what}")))
        };
        let domain = next("domain")?
            .parse()
            .map_err(|_| perr(kind, text, "bad domain"))?;
        let server_id = next("server id")?
            .parse()
            .map_err(|_| perr(kind, text, "bad server id"))?;
        let seq = next("sequence number")?
            .parse()
            .map_err(|_| perr(kind, text, "bad sequence number"))?;
        if it.next().is_some() {
            return Err(perr(kind, text, "expected domain-server-seq"));
        }
        Ok(MariaGtid {
            domain,
            server_id,
            seq,
        })
    }
}

/// A MariaDB GTID position: the last GTID per domain (`@@gtid_binlog_pos` form).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MariaGtidPos {
    domains: BTreeMap<u32, MariaGtid>,
}

impl MariaGtidPos {
    /// The empty position (start of history).
    pub fn new() -> Self {
        MariaGtidPos::default()
    }

    /// Whether no domain has a GTID.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Records `gtid` as the last one of its domain.
    pub fn update(&mut self, gtid: MariaGtid) {
        self.domains.insert(gtid.domain, gtid);
    }

    /// The last GTID of `domain`.
    pub fn get(&self, domain: u32) -> Option<&MariaGtid> {
        self.domains.get(&domain)
    }

    /// Whether `gtid` is at or before this position (already applied).
    pub fn contains_gtid(&self, gtid: &MariaGtid) -> bool {
        self.domains
            .get(&gtid.domain)
            .is_some_and(|g| g.seq >= gtid.seq)
    }

    /// Whether this position is at or after `other` in every domain of `other`.
    pub fn contains(&self, other: &MariaGtidPos) -> bool {
        other.domains.values().all(|g| self.contains_gtid(g))
    }

    /// Iterates over the per-domain GTIDs in domain order.
    pub fn iter(&self) -> impl Iterator<Item = &MariaGtid> {
        self.domains.values()
    }
}

impl fmt::Display for MariaGtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for g in self.domains.values() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl FromStr for MariaGtidPos {
    type Err = PositionParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut pos = MariaGtidPos::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: MariaGtid = part.parse()?;
            if pos.domains.contains_key(&g.domain) {
                return Err(perr(
                    "mariadb gtid position",
                    text,
                    format!("domain {} appears twice", g.domain),
                ));
            }
            pos.update(g);
        }
        Ok(pos)
    }
}

/// A binlog file and byte offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinlogCoord {
    /// File name without directory, e.g. `binlog.000042`.
    pub file: String,
    /// Byte offset of the next event to read.
    pub offset: u64,
}

impl BinlogCoord {
    /// Builds a coordinate.
    pub fn new(file: impl Into<String>, offset: u64) -> Self {
        BinlogCoord {
            file: file.into(),
            offset,
        }
    }

    /// The numeric suffix of the file name (`binlog.000042` → 42), which orders files.
    pub fn file_seq(&self) -> Option<u64> {
        self.file.rsplit_once('.').and_then(|(_, n)| n.parse().ok())
    }
}

impl PartialOrd for BinlogCoord {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BinlogCoord {
    /// Files order by numeric suffix (then by name, for files without one), then offset.
    fn cmp(&self, other: &Self) -> Ordering {
        self.file_seq()
            .cmp(&other.file_seq())
            .then_with(|| self.file.cmp(&other.file))
            .then(self.offset.cmp(&other.offset))
    }
}

impl fmt::Display for BinlogCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

impl FromStr for BinlogCoord {
    type Err = PositionParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (file, offset) = text
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| perr("binlog coordinate", text, "expected FILE:OFFSET"))?;
        if file.is_empty() {
            return Err(perr("binlog coordinate", text, "empty file name"));
        }
        let offset = offset
            .parse()
            .map_err(|_| perr("binlog coordinate", text, "bad offset"))?;
        Ok(BinlogCoord::new(file, offset))
    }
}

/// The position from which a stream resumes: everything at or before it has been applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourcePosition {
    /// MySQL with GTIDs: the executed set, plus the file coordinate for operators.
    MysqlGtid {
        /// Executed transactions.
        executed: GtidSet,
        /// File coordinate after the last transaction, when known.
        coord: Option<BinlogCoord>,
    },
    /// MariaDB with GTIDs.
    MariaGtid {
        /// Last GTID per domain.
        pos: MariaGtidPos,
        /// File coordinate after the last transaction, when known.
        coord: Option<BinlogCoord>,
    },
    /// File coordinate only (a source without GTIDs).
    File(BinlogCoord),
}

impl SourcePosition {
    /// Whether `self` is at or after `other` (everything applied at `other` is applied at
    /// `self`). Positions of different kinds compare by file coordinate when both have one;
    /// otherwise they are incomparable and this returns `None`.
    pub fn is_at_or_after(&self, other: &SourcePosition) -> Option<bool> {
        use SourcePosition::*;
        match (self, other) {
            (MysqlGtid { executed: a, .. }, MysqlGtid { executed: b, .. }) => Some(a.contains(b)),
            (MariaGtid { pos: a, .. }, MariaGtid { pos: b, .. }) => Some(a.contains(b)),
            _ => match (self.coord(), other.coord()) {
                (Some(a), Some(b)) => Some(a >= b),
                _ => None,
            },
        }
    }

    /// The file coordinate, when known.
    pub fn coord(&self) -> Option<&BinlogCoord> {
        match self {
            SourcePosition::MysqlGtid { coord, .. } | SourcePosition::MariaGtid { coord, .. } => {
                coord.as_ref()
            }
            SourcePosition::File(c) => Some(c),
        }
    }
}

impl fmt::Display for SourcePosition {
    /// `mysql-gtid:<set>[@file:offset]`, `mariadb-gtid:<pos>[@file:offset]`, `file:<file>:<off>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |f: &mut fmt::Formatter<'_>, c: &Option<BinlogCoord>| match c {
            Some(c) => write!(f, "@{c}"),
            None => Ok(()),
        };
        match self {
            SourcePosition::MysqlGtid { executed, coord } => {
                write!(f, "mysql-gtid:{executed}")?;
                at(f, coord)
            }
            SourcePosition::MariaGtid { pos, coord } => {
                write!(f, "mariadb-gtid:{pos}")?;
                at(f, coord)
            }
            SourcePosition::File(c) => write!(f, "file:{c}"),
        }
    }
}

impl FromStr for SourcePosition {
    type Err = PositionParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let kind = "source position";
        let (tag, rest) = text.split_once(':').ok_or_else(|| {
            perr(
                kind,
                text,
                "expected mysql-gtid:…, mariadb-gtid:… or file:…",
            )
        })?;
        let split_at = |rest: &str| -> Result<(String, Option<BinlogCoord>), PositionParseError> {
            match rest.rsplit_once('@') {
                Some((g, c)) => Ok((g.to_owned(), Some(c.parse()?))),
                None => Ok((rest.to_owned(), None)),
            }
        };
        match tag {
            "mysql-gtid" => {
                let (g, coord) = split_at(rest)?;
                Ok(SourcePosition::MysqlGtid {
                    executed: g.parse()?,
                    coord,
                })
            }
            "mariadb-gtid" => {
                let (g, coord) = split_at(rest)?;
                Ok(SourcePosition::MariaGtid {
                    pos: g.parse()?,
                    coord,
                })
            }
            "file" => Ok(SourcePosition::File(rest.parse()?)),
            _ => Err(perr(kind, text, format!("unknown kind {tag:?}"))),
        }
    }
}

macro_rules! serde_via_string {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_via_string!(GtidSet, MariaGtidPos, BinlogCoord, SourcePosition);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn gtid_set_parses_merges_and_prints_canonically() {
        let s: GtidSet = format!("{U1}:1-5:7:6, {U2}:3").parse().unwrap();
        assert_eq!(s.to_string(), format!("{U1}:1-7,{U2}:3"));
        assert_eq!(s.len(), 8);
        let e: GtidSet = "".parse().unwrap();
        assert!(e.is_empty());
        assert!(format!("{U1}:0-3").parse::<GtidSet>().is_err());
        assert!(format!("{U1}:5-3").parse::<GtidSet>().is_err());
        assert!(U1.parse::<GtidSet>().is_err());
        assert!("nonsense:1".parse::<GtidSet>().is_err());
    }

    #[test]
    fn tagged_gtids_of_mysql_8_4() {
        let s: GtidSet = format!("{U1}:1-3:Tag_a:5:7-8").parse().unwrap();
        assert_eq!(s.to_string(), format!("{U1}:1-3:tag_a:5:7-8"));
        let uuid = Sid::parse_uuid(U1).unwrap();
        assert!(s.contains_gtid(&MysqlGtid {
            sid: Sid {
                uuid,
                tag: "tag_a".into()
            },
            gno: 7
        }));
        assert!(!s.contains_gtid(&MysqlGtid {
            sid: Sid {
                uuid,
                tag: String::new()
            },
            gno: 7
        }));
        assert!(format!("{U1}:9bad:1").parse::<GtidSet>().is_err());
    }

    #[test]
    fn maria_positions() {
        let p: MariaGtidPos = "0-1-5,1-2-7".parse().unwrap();
        assert_eq!(p.to_string(), "0-1-5,1-2-7");
        assert!(p.contains_gtid(&"0-9-5".parse().unwrap()));
        assert!(!p.contains_gtid(&"0-1-6".parse().unwrap()));
        assert!(!p.contains_gtid(&"2-1-1".parse().unwrap()));
        assert!("0-1-5,0-1-6".parse::<MariaGtidPos>().is_err());
        assert!("0-1".parse::<MariaGtidPos>().is_err());
        assert!("".parse::<MariaGtidPos>().unwrap().is_empty());
    }

    #[test]
    fn coords_order_by_file_number_then_offset() {
        let a: BinlogCoord = "binlog.000009:900".parse().unwrap();
        let b: BinlogCoord = "binlog.000010:4".parse().unwrap();
        assert!(a < b);
        assert!(BinlogCoord::new("binlog.000010", 5) > b);
    }

    #[test]
    fn source_positions_round_trip_through_text_and_json() {
        for text in [
            format!("mysql-gtid:{U1}:1-3@binlog.000002:154"),
            "mariadb-gtid:0-1-5,1-1-2".to_owned(),
            "file:mysql-bin.000003:4".to_owned(),
        ] {
            let p: SourcePosition = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<SourcePosition>(&json).unwrap(), p);
        }
    }

    fn arb_set() -> impl Strategy<Value = GtidSet> {
        let sids = prop_oneof![Just(U1), Just(U2)];
        proptest::collection::vec((sids, 1u64..60, 0u64..8, prop::bool::ANY), 0..12).prop_map(|v| {
            let mut s = GtidSet::new();
            for (u, start, len, tagged) in v {
                let sid = Sid {
                    uuid: Sid::parse_uuid(u).unwrap(),
                    tag: if tagged { "t".into() } else { String::new() },
                };
                s.add_interval(&sid, start, start + len);
            }
            s
        })
    }

    proptest! {
        #[test]
        fn gtid_text_round_trip(s in arb_set()) {
            let back: GtidSet = s.to_string().parse().unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn union_contains_both_and_is_commutative(a in arb_set(), b in arb_set()) {
            let u = a.union(&b);
            prop_assert!(u.contains(&a));
            prop_assert!(u.contains(&b));
            prop_assert_eq!(&u, &b.union(&a));
            prop_assert_eq!(u.union(&a), u.clone());
        }

        #[test]
        fn contains_agrees_with_membership(a in arb_set(), b in arb_set()) {
            let mut all_in = true;
            for (sid, ivs) in b.iter() {
                for &(s, e) in ivs {
                    for gno in s..=e {
                        all_in &= a.contains_gtid(&MysqlGtid { sid: sid.clone(), gno });
                    }
                }
            }
            prop_assert_eq!(a.contains(&b), all_in);
        }

        #[test]
        fn maria_update_is_monotone(seqs in proptest::collection::vec((0u32..3, 1u64..100), 1..20)) {
            let mut p = MariaGtidPos::new();
            for (d, s) in seqs {
                let before = p.clone();
                let cur = p.get(d).map_or(0, |g| g.seq);
                p.update(MariaGtid { domain: d, server_id: 1, seq: cur.max(s) });
                prop_assert!(p.contains(&before));
                let back: MariaGtidPos = p.to_string().parse().unwrap();
                prop_assert_eq!(back, p.clone());
            }
        }
    }
}
