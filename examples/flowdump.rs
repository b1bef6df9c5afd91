//! Parity driver: reads segments as JSON lines (the harness dumps them from Python's decoder), feeds
//! a FlowTable without observers and prints each flow's record (and its kept rows) as JSON lines, in
//! the order the table hands flows out.
//!
//! Usage: flowdump MODE FILE [MSL]   MODE: plain | rows | stream | streamrows | small | smallrows | evict
use std::io::{BufRead, Write};

use _engine::flow::{transition_value, Flow};
use _engine::flows::{FlowTable, RowFilter, TableOptions};
use _engine::record::{write_json, Value};
use _engine::segment::{Addr, Segment, TcpOptions};
use serde_json::Value as J;

fn addr(v: &J) -> Addr {
    match v.as_str().unwrap_or("").parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => Addr::V4(a.octets()),
        Ok(std::net::IpAddr::V6(a)) => Addr::V6(a.octets()),
        Err(_) => Addr::V4([0; 4]),
    }
}

fn int(v: &J) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn segment(a: &J) -> Segment {
    let o = &a[11];
    let sack = o[3]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|b| (int(&b[0]) as u32, int(&b[1]) as u32))
                .collect()
        })
        .unwrap_or_default();
    Segment {
        ts: a[0].as_f64().unwrap_or(0.0),
        frame: int(&a[1]),
        src: addr(&a[2]),
        sport: int(&a[3]) as u16,
        dst: addr(&a[4]),
        dport: int(&a[5]) as u16,
        seq: int(&a[6]) as u32,
        ack: int(&a[7]) as u32,
        flags: int(&a[8]) as u16,
        window: int(&a[9]) as u16,
        payload_len: int(&a[10]) as u32,
        options: TcpOptions {
            mss: o[0].as_u64().map(|v| v as u16),
            wscale: o[1].as_u64().map(|v| v as u8),
            sack_permitted: o[2].as_bool().unwrap_or(false),
            sack,
            ts_val: o[4].as_u64().map(|v| v as u32),
            ts_ecr: o[5].as_u64().map(|v| v as u32),
        },
        ip_version: int(&a[12]) as u8,
        checksum_ok: a[13].as_bool(),
    }
}

fn emit(f: &Flow, rows: bool, out: &mut String) {
    write_json(&f.record(), out);
    out.push('\n');
    if let (true, Some(kept)) = (rows, &f.rows) {
        let list = kept
            .iter()
            .map(|r| {
                Value::List(vec![
                    r.seg.frame.into(),
                    r.from_client.into(),
                    r.client_state.name().into(),
                    r.server_state.name().into(),
                    Value::List(r.transitions.iter().map(transition_value).collect()),
                    Value::List(r.notes.iter().map(|n| n.as_str().into()).collect()),
                ])
            })
            .collect();
        write_json(
            &Value::Obj(vec![("rows", f.number.into()), ("list", Value::List(list))]),
            out,
        );
        out.push('\n');
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("plain");
    let path = args.get(2).cloned().unwrap_or_default();
    let msl: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(30.0);
    let rows = matches!(mode, "rows" | "smallrows" | "streamrows");
    let mut opts = TableOptions {
        msl,
        streaming: !matches!(mode, "plain" | "rows"),
        keep_rows: if rows {
            RowFilter::All
        } else {
            RowFilter::None
        },
        ..TableOptions::default()
    };
    if mode.starts_with("small") {
        opts.max_open = 3;
        opts.linger = 0.001;
        opts.idle_timeout = 1.0;
    }
    if mode == "evict" {
        opts.max_open = 3;
        opts.linger = 0.001;
    }
    let mut table = FlowTable::new(opts, Box::new(Vec::new));
    let file = std::fs::File::open(&path).expect("segments file");
    let mut out = String::new();
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.expect("line");
        let v: J = serde_json::from_str(&line).expect("json");
        table.add(segment(&v));
        for f in table.drain_finished() {
            emit(&f, rows, &mut out);
        }
        if out.len() > 1 << 16 {
            lock.write_all(out.as_bytes()).expect("write");
            out.clear();
        }
    }
    let flows = table.finish();
    for f in table.drain_finished().chain(flows) {
        emit(&f, rows, &mut out);
    }
    out.push_str(&format!(
        "{{\"count\": {}, \"evicted\": {}}}\n",
        table.count, table.evicted
    ));
    lock.write_all(out.as_bytes()).expect("write");
}
