//! Print every frame of captures as the reader and decoder see them, one line each, for parity
//! checks against the Python reference (and a speed figure with `--bench`).
//!
//!     cargo run --release --example frames -- [--verify] [--bench] FILE...
//!
//! Lines: `== FILE`, then per frame `F frame ts-bits linktype caplen crc32 wirelen offset`, the
//! decode outcome (`S ...` segment, `K reason`, `E offset reason`) with verify off then on, `W line`
//! per reader warning, and `X error` for a capture error.
use std::fmt::Write as _;
use std::io::Write as _;

use _engine::decode::{decode, decode_general, DecodeError, Decoded};
use _engine::pcap::Reader;
use _engine::segment::Addr;

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn hex(a: &Addr) -> String {
    let b: &[u8] = match a {
        Addr::V4(b) => b,
        Addr::V6(b) => b,
    };
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn outcome(out: &mut String, d: &Result<Decoded, DecodeError>) {
    match d {
        Ok(Decoded::Segment(s)) => {
            let o = &s.options;
            let sack: Vec<String> = o
                .sack
                .iter()
                .flatten()
                .map(|(a, b)| format!("{a}:{b}"))
                .collect();
            let _ = write!(
                out,
                "S {} {:016x} {} {} {} {} {} {} {} {} {} {} {} {} {} [{}] {} {} {} {}",
                s.frame,
                s.ts.to_bits(),
                hex(&s.src),
                s.src.text(),
                s.sport,
                hex(&s.dst),
                s.dst.text(),
                s.dport,
                s.seq,
                s.ack,
                s.flags,
                s.window,
                s.payload_len,
                opt(o.mss),
                opt(o.wscale),
                sack.join(","),
                u8::from(o.sack_permitted),
                opt(o.ts_val),
                opt(o.ts_ecr),
                s.ip_version
            );
            let _ = write!(out, " {}", opt(s.checksum_ok.map(u8::from)));
        }
        Ok(Decoded::Skip(k)) => {
            let _ = write!(out, "K {}", k.name());
        }
        Err(e) => {
            let _ = write!(out, "E {} {}", e.offset, e.reason);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let verify = args.iter().any(|a| a == "--verify");
    let read_only = args.iter().any(|a| a == "--read-only");
    let in_memory = args.iter().any(|a| a == "--mem");
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    for path in args.iter().filter(|a| !a.starts_with("--")) {
        if bench {
            if in_memory {
                // The file read first: times the parsing and decoding alone, without the kernel's copy.
                let bytes = std::fs::read(path).unwrap_or_default();
                let reader = Reader::new(std::io::Cursor::new(bytes), path, None);
                bench_loop(path, reader, verify, read_only);
            } else {
                bench_loop(path, Reader::open(path), verify, read_only);
            }
            continue;
        }
        let _ = writeln!(w, "== {path}");
        let mut reader = match Reader::open(path) {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(w, "X {e}");
                continue;
            }
        };
        let mut line = String::new();
        loop {
            line.clear();
            match reader.next_frame() {
                Ok(Some(f)) => {
                    let _ = write!(
                        line,
                        "F {} {:016x} {} {} {:08x} {} {} | ",
                        f.frame,
                        f.ts.to_bits(),
                        f.linktype,
                        f.data.len(),
                        crc32(f.data),
                        f.wirelen,
                        f.offset
                    );
                    let d0 = decode(f.data, f.linktype, f.ts, f.frame, Some(f.wirelen), false);
                    outcome(&mut line, &d0);
                    // The fast path and the general path must agree on every frame.
                    let g0 =
                        decode_general(f.data, f.linktype, f.ts, f.frame, Some(f.wirelen), false);
                    if g0 != d0 {
                        eprintln!("FASTDIFF {path} frame {}: {d0:?} vs {g0:?}", f.frame);
                    }
                    line.push_str(" | ");
                    let d1 = decode(f.data, f.linktype, f.ts, f.frame, Some(f.wirelen), true);
                    outcome(&mut line, &d1);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = writeln!(w, "X {e}");
                    break;
                }
            }
            for warning in reader.take_warnings() {
                let _ = writeln!(w, "W {warning}");
            }
            let _ = writeln!(w, "{line}");
        }
    }
}

/// Read and decode every frame, count the outcomes, print frames/s.
fn bench_loop<R: std::io::Read>(
    path: &str,
    reader: Result<Reader<R>, _engine::pcap::CaptureError>,
    verify: bool,
    read_only: bool,
) {
    let t = std::time::Instant::now();
    let (mut frames, mut segments, mut payload) = (0u64, 0u64, 0u64);
    let mut reader = match reader {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                frames += 1;
                if read_only {
                    payload += u64::from(f.wirelen) + f.ts as u64;
                    continue;
                }
                if let Ok(Decoded::Segment(s)) =
                    decode(f.data, f.linktype, f.ts, f.frame, Some(f.wirelen), verify)
                {
                    segments += 1;
                    payload += u64::from(s.payload_len);
                }
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("{e}");
                break;
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{path}: {frames} frames, {segments} segments, {payload} payload bytes in {secs:.3} s: {:.1} M frames/s",
        frames as f64 / secs / 1e6
    );
}
