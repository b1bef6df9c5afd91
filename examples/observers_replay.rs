//! Parity harness driver: replays per-flow segment streams (JSON lines logged from the Python
//! reference's AnomalyObserver / CompletenessObserver) through `Anomalies` and `Completeness`, and
//! prints, per flow, the labels each call pushed and the record fields, as JSON lines.
//!
//! Input line: {"src", "cc", "flow", "anom_calls": [[segment, from_client, reused_port, labels], ...],
//! "comp_calls": [...]}; segment = [ts, frame, src, sport, dst, dport, seq, ack, flags, window,
//! payload_len, [mss, wscale, sack_permitted, [[l, r], ...], ts_val, ts_ecr], ip_version, checksum_ok].
use std::io::{BufRead, Write};
use std::net::IpAddr;

use _engine::anomalies::Anomalies;
use _engine::completeness::Completeness;
use _engine::observe::Observer;
use _engine::record::{write_json, Fields, Value};
use _engine::segment::{Addr, Segment, TcpOptions};
use serde_json::Value as J;

fn int(v: &J) -> u64 {
    v.as_u64().expect("unsigned integer")
}

fn opt_int(v: &J) -> Option<u64> {
    v.as_u64()
}

fn addr(v: &J) -> Addr {
    match v.as_str().expect("address").parse::<IpAddr>().expect("ip") {
        IpAddr::V4(a) => Addr::V4(a.octets()),
        IpAddr::V6(a) => Addr::V6(a.octets()),
    }
}

fn segment(v: &J) -> Segment {
    let f = v.as_array().expect("segment list");
    let o = f[11].as_array().expect("options");
    Segment {
        ts: f[0].as_f64().expect("ts"),
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
        options: TcpOptions {
            mss: opt_int(&o[0]).map(|x| x as u16),
            wscale: opt_int(&o[1]).map(|x| x as u8),
            sack_permitted: o[2].as_bool().unwrap_or(false),
            sack: o[3]
                .as_array()
                .expect("sack")
                .iter()
                .map(|b| (int(&b[0]) as u32, int(&b[1]) as u32))
                .collect(),
            ts_val: opt_int(&o[4]).map(|x| x as u32),
            ts_ecr: opt_int(&o[5]).map(|x| x as u32),
        },
        ip_version: int(&f[12]) as u8,
        checksum_ok: f[13].as_bool(),
    }
}

fn replay(obs: &mut dyn Observer, calls: &J, out: &mut String) {
    let mut notes = Vec::new();
    let mut lists = Vec::new();
    for call in calls.as_array().expect("calls") {
        let c = call.as_array().expect("call");
        notes.clear();
        let seg = segment(&c[0]);
        obs.on_segment(
            &seg,
            c[1].as_bool().expect("from_client"),
            c[2].as_bool().expect("reused"),
            &mut notes,
        );
        lists.push(Value::List(
            notes.iter().map(|n| Value::Str(n.clone())).collect(),
        ));
    }
    write_json(&Value::List(lists), out);
}

fn main() {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = line.expect("read");
        let v: J = serde_json::from_str(&line).expect("json");
        let mut anomalies = Anomalies::new(v["cc"].as_bool().expect("cc"));
        let mut completeness = Completeness::new();
        let mut out = String::new();
        out.push_str("{\"flow\":");
        out.push_str(&v["flow"].to_string());
        out.push_str(",\"anom_labels\":");
        replay(&mut anomalies, &v["anom_calls"], &mut out);
        out.push_str(",\"comp_labels\":");
        replay(&mut completeness, &v["comp_calls"], &mut out);
        let mut record = Fields::new();
        anomalies.record(&mut record);
        completeness.record(&mut record);
        out.push_str(",\"record\":");
        write_json(&Value::Obj(record), &mut out);
        out.push('}');
        writeln!(w, "{out}").expect("write");
    }
}
