//! Parity driver for `ZeekObserver`: reads JSON lines `{"id": .., "segs": [[ts, frame, src, sport,
//! dst, dport, seq, ack, flags, window, payload_len, ip_version, checksum_ok, from_client,
//! reused_port], ..]}` (one flow each, as the Python reference saw it) on stdin, replays each flow
//! through a fresh observer and prints `{"id": .., "got": [conn_state, history, zeek_orig]}`.
use std::io::{BufRead, Write};
use std::net::IpAddr;

use _engine::observe::Observer;
use _engine::record::{Fields, Value};
use _engine::segment::{Addr, Segment, TcpOptions};
use _engine::zeek::ZeekObserver;
use serde_json::Value as J;

fn addr(v: &J) -> Addr {
    match v.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(a)) => Addr::V4(a.octets()),
        Some(IpAddr::V6(a)) => Addr::V6(a.octets()),
        None => Addr::V4([0, 0, 0, 0]),
    }
}

fn int(v: &J) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn main() {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = line.expect("read stdin");
        let v: J = serde_json::from_str(&line).expect("a JSON line");
        let mut zeek = ZeekObserver::new();
        let mut notes = Vec::new();
        for s in v["segs"].as_array().expect("segs") {
            let f = s.as_array().expect("a segment row");
            let seg = Segment {
                ts: f[0].as_f64().unwrap_or(0.0),
                frame: int(&f[1]),
                src: addr(&f[2]),
                sport: int(&f[3]) as u16,
                dst: addr(&f[4]),
                dport: int(&f[5]) as u16,
                seq: int(&f[6]) as u32,
                ack: int(&f[7]) as u32,
                flags: int(&f[8]) as u16,
                window: int(&f[9]) as u16,
                payload_len: int(&f[10]) as u32,
                options: TcpOptions::default(),
                ip_version: int(&f[11]) as u8,
                checksum_ok: f[12].as_bool(),
            };
            zeek.on_segment(
                &seg,
                f[13].as_bool().expect("from_client"),
                f[14].as_bool().unwrap_or(false),
                &mut notes,
            );
            assert!(notes.is_empty());
        }
        let mut rec = Fields::new();
        zeek.record(&mut rec);
        let got: Vec<J> = rec
            .into_iter()
            .map(|(_, val)| match val {
                Value::Str(s) => J::String(s),
                other => J::String(format!("{other:?}")),
            })
            .collect();
        let o = serde_json::json!({"id": v["id"], "got": got});
        writeln!(out, "{o}").expect("write stdout");
    }
}
