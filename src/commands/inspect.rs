//! `my2pg inspect-binlog FILE…`: decode binlog files offline, one JSON object per event and per
//! row change with typed values (or readable text), like `mariadb-binlog -vvv` but exact.

use std::io::{BufReader, Write as _};

use anyhow::{Context, Result};
use serde_json::{Map, Value as Json, json};

use cdc_reader::binlog::decoder::Decoded;
use cdc_reader::binlog::file::{BinlogFileReader, FileEvent};
use schemas::{Row, TableSchema, Value};

use crate::cli::Format;

/// A value as typed JSON: `{"type": …, "value": …}` with exact text for numbers that JSON
/// numbers cannot hold (unsigned 64-bit, decimals) and hex for bytes.
pub fn typed(v: &Value) -> Json {
    let (t, val) = match v {
        Value::Null => return Json::Null,
        Value::Int(i) => ("int", json!(i)),
        Value::UInt(u) => ("uint", json!(u.to_string())),
        Value::Float(f) => ("float", json!(f)),
        Value::Double(d) => ("double", json!(d)),
        Value::Decimal(d) => ("decimal", json!(d.as_str())),
        Value::Bit { width, bits } => (
            "bit",
            json!(format!("{:0w$b}", bits, w = usize::from(*width))),
        ),
        Value::Date(d) => ("date", json!(d.to_string())),
        Value::DateTime(d) => ("datetime", json!(d.to_string())),
        Value::Timestamp(t) if t.is_zero() => ("timestamp", json!("0000-00-00T00:00:00Z")),
        Value::Timestamp(t) => {
            let u = t.to_utc();
            let d = u.date;
            let iso = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                d.year, d.month, d.day, u.hour, u.minute, u.second, u.micros
            );
            ("timestamp", json!(iso))
        }
        Value::Time(t) => ("time", json!(t.to_string())),
        Value::Year(y) => ("year", json!(y)),
        Value::Text(s) => ("text", json!(s)),
        Value::InvalidText { bytes, charset } => (
            "invalid_text",
            json!({"hex": hex(bytes), "charset": charset}),
        ),
        Value::Bytes(b) => ("bytes", json!(hex(b))),
        Value::Enum(s) => ("enum", json!(s)),
        Value::Set(m) => ("set", json!(m)),
        Value::Json(s) => ("json", json!(s)),
        Value::Geometry { srid, wkb } => ("geometry", json!({"srid": srid, "wkb": hex(wkb)})),
    };
    json!({"type": t, "value": val})
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn row_json(schema: &TableSchema, row: &Row) -> Json {
    let mut m = Map::new();
    for (c, v) in schema.columns.iter().zip(&row.0) {
        m.insert(c.name.clone(), typed(v));
    }
    Json::Object(m)
}

fn event_json(file: &str, e: &FileEvent) -> Json {
    let mut o = json!({
        "file": file,
        "offset": e.offset,
        "type": e.type_name,
        "type_code": e.type_code,
        "timestamp": e.timestamp,
        "server_id": e.server_id,
        "log_pos": e.log_pos,
        "size": e.size,
    });
    let extra = match &e.decoded {
        Decoded::Rotate {
            file,
            position,
            fake,
        } => json!({"next_file": file, "next_position": position, "fake": fake}),
        Decoded::FormatDescription { server_version } => json!({"server_version": server_version}),
        Decoded::MariaGtid(g) => {
            json!({"gtid": g.gtid.to_string(), "standalone": g.standalone(), "flags": g.flags})
        }
        Decoded::MysqlGtid {
            gtid,
            commit_micros,
        } => json!({"gtid": gtid.to_string(), "commit_micros": commit_micros}),
        Decoded::GtidList(p) => json!({"gtid_list": p.to_string()}),
        Decoded::Query(q) => json!({"database": q.database, "statement": q.statement}),
        Decoded::TableMap(m) => json!({
            "table_id": m.event.table_id,
            "table": m.event.table.to_string(),
            "columns": m.schema.columns.iter().map(|c| json!({"name": c.name, "type": c.ty.to_string(), "nullable": c.nullable})).collect::<Vec<_>>(),
            "primary_key": m.event.primary_key,
        }),
        Decoded::Rows { map, op, rows } => {
            json!({"table": map.event.table.to_string(), "op": op.as_str(), "rows": rows.len()})
        }
        Decoded::RowsSkipped { table } => json!({"table": table.to_string(), "skipped": true}),
        Decoded::Xid(x) => json!({"xid": x}),
        Decoded::Annotate(s) => json!({"statement": s}),
        _ => json!({}),
    };
    if let (Json::Object(o), Json::Object(x)) = (&mut o, extra) {
        o.extend(x);
    }
    o
}

fn text_lines(file: &str, e: &FileEvent, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# at {} ({file})  {}  server_id {}  end_log_pos {}",
        e.offset, e.type_name, e.server_id, e.log_pos
    );
    match &e.decoded {
        Decoded::Query(q) => {
            let _ = writeln!(out, "use `{}`; {}", q.database, q.statement);
        }
        Decoded::MariaGtid(g) => {
            let _ = writeln!(
                out,
                "GTID {}{}",
                g.gtid,
                if g.standalone() { "" } else { " trans" }
            );
        }
        Decoded::MysqlGtid { gtid, .. } => {
            let _ = writeln!(out, "GTID {gtid}");
        }
        Decoded::TableMap(m) => {
            let _ = writeln!(
                out,
                "Table_map: {} mapped to number {}",
                m.event.table, m.event.table_id
            );
        }
        Decoded::Rows { map, op, rows } => {
            for (before, after) in rows {
                let _ = writeln!(
                    out,
                    "### {} {}",
                    op.as_str().to_uppercase(),
                    map.event.table
                );
                for (label, img) in [("WHERE", before), ("SET", after)] {
                    if let Some(r) = img {
                        let _ = writeln!(out, "### {label}");
                        for (c, v) in map.schema.columns.iter().zip(&r.0) {
                            let _ = writeln!(out, "###   {}={v} /* {} */", c.name, c.ty);
                        }
                    }
                }
            }
        }
        Decoded::Xid(x) => {
            let _ = writeln!(out, "COMMIT /* xid={x} */");
        }
        _ => {}
    }
}

/// Decodes `files` and writes them to stdout. Returns exit code 0, or an error naming the file
/// and offset of the first undecodable event.
pub fn run(
    files: &[std::path::PathBuf],
    format: Format,
    start_position: Option<u64>,
) -> Result<u8> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for path in files {
        let name = path.display().to_string();
        let f = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
        let reader =
            BinlogFileReader::new(&name, BufReader::with_capacity(1 << 20, f), start_position)?;
        let short = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.clone());
        for ev in reader {
            let ev = ev?;
            let mut text = String::new();
            match format {
                Format::Json => {
                    text.push_str(&event_json(&short, &ev).to_string());
                    text.push('\n');
                    if let Decoded::Rows { map, op, rows } = &ev.decoded {
                        for (i, (before, after)) in rows.iter().enumerate() {
                            let row = json!({
                                "file": short,
                                "offset": ev.offset,
                                "row": i,
                                "table": map.event.table.to_string(),
                                "op": op.as_str(),
                                "before": before.as_ref().map(|r| row_json(&map.schema, r)),
                                "after": after.as_ref().map(|r| row_json(&map.schema, r)),
                            });
                            text.push_str(&row.to_string());
                            text.push('\n');
                        }
                    }
                }
                Format::Text => text_lines(&short, &ev, &mut text),
            }
            if out.write_all(text.as_bytes()).is_err() {
                // A closed pipe (`| head`) ends the output quietly.
                return Ok(crate::exit::OK);
            }
        }
    }
    let _ = out.flush();
    Ok(crate::exit::OK)
}
