//! Any bytes through the whole per-packet path, as `analysis::FileAnalysis` runs it (which opens
//! paths, so its loop is replicated here over memory): reader -> decoder -> flow table with the
//! default observers -> every finished flow's record written as JSON (and its rows, its live
//! events). Nothing may panic or overflow (the fuzz build keeps debug assertions and overflow
//! checks on, see Cargo.toml), the decoder's fast path must agree with its general path, and the
//! JSON written straight from a flow must be the text of its record value and parse as JSON.
//!
//! Two tables see the same segments, so that both modes of the table are exercised:
//! - A: streaming (the CLI's mode) with a tiny `max_open`, short linger and idle timeout, swept
//!   after every segment (the table sweeps itself every 1024 segments, which small inputs never
//!   reach), so that eviction, linger and idle sweeps all happen on small inputs; checksums
//!   verified; rows kept for every flow on odd-length inputs.
//! - B: as the live engine (`python.rs`'s `Engine`) runs it: events on and drained after every
//!   frame; streaming on odd-length inputs, the non-streaming (whole-file) table otherwise; rows
//!   kept on even-length inputs; checksums not verified.
#![no_main]

use _engine::analysis::default_observers;
use _engine::decode::{decode, decode_general, Decoded};
use _engine::flow::Flow;
use _engine::flows::{FlowTable, RowFilter, TableOptions};
use _engine::pcap::Reader;
use _engine::record::{write_json, JsonWriter, Value};
use _engine::rows::{event_value, rows_value};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;

/// A finished flow's record, written as the CLI writes JSON Lines, and checked against the record
/// value and a JSON parser; its rows when it kept them.
fn write_flow(flow: &Flow, rows: bool, out: &mut String) {
    out.clear();
    flow.emit(&mut JsonWriter::new(out));
    let mut via_value = String::new();
    write_json(&flow.record(), &mut via_value);
    assert_eq!(*out, via_value, "emit and record() disagree");
    // Syntax only (no value tree): a NaN or an infinity written as Python writes them is caught
    // here, as are escaping faults. Rows and events are written by the same `write_json`.
    if let Err(e) = serde_json::from_str::<IgnoredAny>(out) {
        panic!("record is not JSON ({e}): {out}");
    }
    let rows_v = rows_value(flow);
    // every flow has at least its first segment: rows kept <=> rows written
    assert_eq!(rows, !matches!(&rows_v, Value::List(l) if l.is_empty()));
    via_value.clear();
    write_json(&rows_v, &mut via_value);
}

/// Write the flows the table handed out since the last call and its queued events; the number of
/// flows written.
fn drain(table: &mut FlowTable, rows: bool, out: &mut String) -> u64 {
    let done: Vec<Flow> = table.drain_finished().collect();
    for flow in &done {
        write_flow(flow, rows, out);
    }
    let mut text = String::new();
    for e in table.drain_events() {
        text.clear();
        write_json(&event_value(&e), &mut text);
    }
    done.len() as u64
}

fuzz_target!(|data: &[u8]| {
    let odd = data.len() % 2 == 1;
    let Ok(mut reader) = Reader::new(std::io::Cursor::new(data), "fuzz", Some(data.len() as u64))
    else {
        return;
    };
    let mut a = FlowTable::new(
        TableOptions {
            streaming: true,
            max_open: 8,
            linger: 1.0,
            idle_timeout: 10.0,
            keep_rows: if odd { RowFilter::All } else { RowFilter::None },
            ..Default::default()
        },
        default_observers(true),
    );
    let mut b = FlowTable::new(
        TableOptions {
            streaming: odd,
            events: true,
            keep_rows: if odd { RowFilter::None } else { RowFilter::All },
            ..Default::default()
        },
        default_observers(false),
    );
    let mut out = String::new();
    let mut written = [0u64; 2];
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                let wirelen = Some(f.wirelen);
                let fast = decode(f.data, f.linktype, f.ts, f.frame, wirelen, false);
                let general = decode_general(f.data, f.linktype, f.ts, f.frame, wirelen, false);
                assert_eq!(fast, general);
                if let Ok(Decoded::Segment(seg)) =
                    decode(f.data, f.linktype, f.ts, f.frame, wirelen, true)
                {
                    let ts = seg.ts;
                    a.add(seg);
                    a.sweep(ts);
                }
                if let Ok(Decoded::Segment(seg)) = fast {
                    b.add(seg);
                }
                let _ = reader.take_warnings();
                written[0] += drain(&mut a, odd, &mut out);
                written[1] += drain(&mut b, !odd, &mut out);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = reader.take_warnings();
    for ((table, rows), n) in [(&mut a, odd), (&mut b, !odd)].into_iter().zip(written) {
        let rest = table.finish();
        let mut n = n + drain(table, rows, &mut out);
        for flow in &rest {
            write_flow(flow, rows, &mut out);
        }
        n += rest.len() as u64;
        // Every flow the table made comes out exactly once, and none is left behind.
        assert_eq!(n, table.count, "flows made vs flows written");
        assert!(table.is_empty());
    }
});
