//! The reader's tests: the broken-file corpus of tests/test_broken_files.py with its exact lines,
//! timestamps, byte orders, pcapng sections and options, pipes, and a fixed-seed mutation loop
//! through reader + decoder that must never panic.

use super::*;
use crate::decode::{decode, Decoded};
use std::io::Cursor;

// --- frames and files, as tests/test_broken_files.py builds them -------------------------------

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const C_IP: [u8; 4] = [192, 0, 2, 1];
const S_IP: [u8; 4] = [192, 0, 2, 2];
const ETH_V4: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
const ETH_V6: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];

struct Tcp4 {
    ihl: u8,
    doff: u8,
    total: Option<u16>,
}

const PLAIN: Tcp4 = Tcp4 {
    ihl: 5,
    doff: 5,
    total: None,
};

fn tcp4(from_client: bool, flags: u8, seq: u32, ack: u32, payload: &[u8], t: Tcp4) -> Vec<u8> {
    let (src, dst) = if from_client {
        (C_IP, S_IP)
    } else {
        (S_IP, C_IP)
    };
    let (sport, dport): (u16, u16) = if from_client {
        (40000, 80)
    } else {
        (80, 40000)
    };
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.extend_from_slice(&[t.doff << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let length = t.total.unwrap_or((20 + tcp.len() + payload.len()) as u16);
    let mut f = ETH_V4.to_vec();
    f.extend_from_slice(&[0x40 | t.ihl, 0]);
    f.extend_from_slice(&length.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&tcp);
    f.extend_from_slice(payload);
    f
}

fn session() -> Vec<Vec<u8>> {
    vec![
        tcp4(true, SYN, 1000, 0, b"", PLAIN),
        tcp4(false, SYN | ACK, 5000, 1001, b"", PLAIN),
        tcp4(true, ACK, 1001, 5001, b"", PLAIN),
        tcp4(true, PSH | ACK, 1001, 5001, b"hello", PLAIN),
        tcp4(false, ACK, 5001, 1006, b"", PLAIN),
        tcp4(true, FIN | ACK, 1006, 5001, b"", PLAIN),
        tcp4(false, FIN | ACK, 5001, 1007, b"", PLAIN),
        tcp4(true, ACK, 1007, 5002, b"", PLAIN),
    ]
}

fn data_frame() -> Vec<u8> {
    session().swap_remove(3)
}

fn pcap_header(snaplen: u32, linktype: u32) -> Vec<u8> {
    let mut h = 0xA1B2_C3D4u32.to_le_bytes().to_vec();
    h.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&linktype.to_le_bytes());
    h
}

fn record_raw(sec: u32, frac: u32, caplen: u32, wirelen: u32) -> Vec<u8> {
    [sec, frac, caplen, wirelen]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn record(i: u32, data: &[u8]) -> Vec<u8> {
    let mut r = record_raw(
        1_700_000_000,
        i * 1000,
        data.len() as u32,
        data.len() as u32,
    );
    r.extend_from_slice(data);
    r
}

fn pcap(frames: &[Vec<u8>], snaplen: u32) -> Vec<u8> {
    let mut out = pcap_header(snaplen, 1);
    for (i, f) in frames.iter().enumerate() {
        out.extend(record(i as u32, f));
    }
    out
}

fn block(btype: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (12 + body.len()) as u32;
    let mut b = btype.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b.extend(body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn shb() -> Vec<u8> {
    let mut body = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    body.extend_from_slice(&[1, 0, 0, 0]);
    body.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0A0D_0D0A, &body)
}

fn idb() -> Vec<u8> {
    block(1, &[1, 0, 0, 0, 0, 0, 0, 0])
}

fn epb(i: u64, data: &[u8], iid: u32) -> Vec<u8> {
    let ticks = 1_700_000_000_000_000u64 + i * 1000;
    let mut body = Vec::new();
    for v in [
        iid,
        (ticks >> 32) as u32,
        ticks as u32,
        data.len() as u32,
        data.len() as u32,
    ] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(data);
    block(6, &body)
}

fn pcapng(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = shb();
    out.extend(idb());
    for (i, f) in frames.iter().enumerate() {
        out.extend(epb(i as u64, f, 0));
    }
    out
}

/// The session with `bad` inserted as frame 4 (at byte offset 234).
fn with_bad_frame(bad: Vec<u8>) -> Vec<u8> {
    let mut frames = session();
    frames.insert(3, bad);
    pcap(&frames, 65535)
}

/// An IPv6 frame whose Hop-by-Hop header says it is 2048 bytes long, captured whole with 80 bytes
/// after the IPv6 header: the chain runs off the packet.
fn v6_runs_off() -> Vec<u8> {
    let mut f = ETH_V6.to_vec();
    f.extend_from_slice(&0x6000_0000u32.to_be_bytes());
    f.extend_from_slice(&2068u16.to_be_bytes());
    f.extend_from_slice(&[0, 64]);
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = 1;
    f.extend_from_slice(&a);
    a[15] = 2;
    f.extend_from_slice(&a);
    f.extend_from_slice(&[6, 255, 1, 4, 0, 0, 0, 0]);
    f.extend_from_slice(&[0; 72]);
    f
}

/// What the command line would print for `content`, one line per message, without the program
/// name and the flow count the CLI appends to an error: reader warnings, decode warnings, the error.
fn lines(content: &[u8], path: &str, file_len: Option<u64>) -> (Vec<String>, u64) {
    let mut out = Vec::new();
    let mut reader = match Reader::new(Cursor::new(content.to_vec()), path, file_len) {
        Ok(r) => r,
        Err(e) => return (vec![format!("error: {e}")], 0),
    };
    let mut segments = 0;
    loop {
        let (decoded, offset, frame) = match reader.next_frame() {
            Ok(Some(f)) => (
                decode(f.data, f.linktype, f.ts, f.frame, Some(f.wirelen), false),
                f.offset,
                f.frame,
            ),
            Ok(None) => break,
            Err(e) => {
                out.push(format!("error: {e}"));
                break;
            }
        };
        out.extend(
            reader
                .take_warnings()
                .into_iter()
                .map(|w| format!("warning: {w}")),
        );
        match decoded {
            Ok(Decoded::Segment(_)) => segments += 1,
            Ok(Decoded::Skip(_)) => {}
            Err(e) => out.push(format!(
                "warning: {path}: {}: {e}; frame skipped",
                where_(offset, Some(frame))
            )),
        }
    }
    (out, segments)
}

fn expect(content: &[u8], want: &str, segments: u64) {
    let path = "/tmp/case.pcap";
    let want: Vec<String> = if want.is_empty() {
        vec![]
    } else {
        vec![want.replace("{path}", path)]
    };
    // As a regular file and as a pipe: the same lines.
    for len in [Some(content.len() as u64), None] {
        let (got, segs) = lines(content, path, len);
        assert_eq!(got, want);
        assert_eq!(segs, segments, "{want:?}");
    }
}

#[test]
fn broken_files_have_pythons_lines() {
    let p_end = pcap(&session(), 65535);
    let ng_end = pcapng(&session());
    assert_eq!((p_end.len(), ng_end.len()), (589, 756));
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let data = data_frame();

    expect(b"", "error: {path}: byte offset 0: empty file", 0);
    expect(
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        "error: {path}: byte offset 0: not a pcap or pcapng file (magic 0x47455420)",
        0,
    );
    expect(
        &pcap_header(65535, 1)[..10],
        "error: {path}: byte offset 0: truncated global header (10 of 24 bytes)",
        0,
    );
    expect(
        &cat(&p_end, &record(8, &data)[..8]),
        "error: {path}: frame 9 at byte offset 589: truncated record header (8 of 16 bytes)",
        8,
    );
    expect(
        &cat(&p_end, &record(8, &data)[..36]),
        "error: {path}: frame 9 at byte offset 589: truncated packet data (20 of 59 bytes)",
        8,
    );
    expect(
        &pcap(&session(), 56),
        "warning: {path}: frame 4 at byte offset 234: captured length 59 exceeds the file's snaplen 56; frame kept, cut to 56 bytes (as libpcap does)",
        8,
    );
    let huge = |caplen: u32, wirelen: u32| {
        cat(
            &cat(&p_end, &record_raw(1_700_000_000, 0, caplen, wirelen)),
            &data,
        )
    };
    expect(
        &huge(262145, 262145),
        "error: {path}: frame 9 at byte offset 589: impossible captured length 262145 (more than 262144, libpcap's largest snaplen for link type 1)",
        8,
    );
    expect(
        &huge(0x1000_0001, 60),
        "error: {path}: frame 9 at byte offset 589: impossible captured length 268435457 (more than 262144, libpcap's largest snaplen for link type 1)",
        8,
    );
    let mut bad_len = ng_end.clone();
    bad_len.extend_from_slice(&6u32.to_le_bytes());
    bad_len.extend_from_slice(&30u32.to_le_bytes());
    bad_len.extend_from_slice(&[0; 24]);
    expect(
        &bad_len,
        "error: {path}: frame 9 at byte offset 756: invalid block total length 30 (must be a multiple of 4 and at least 12)",
        8,
    );
    let mut unknown = cat(&shb(), &idb());
    for (i, d) in session().iter().enumerate() {
        unknown.extend(epb(i as u64, d, 0));
        if i == 3 {
            unknown.extend(block(0xBAD, &b"unknown to us".repeat(3)));
        }
    }
    expect(&unknown, "", 8);
    expect(
        &cat(&ng_end, &epb(8, &data, 3)),
        "error: {path}: frame 9 at byte offset 756: packet names interface 3, but the section declares 1",
        8,
    );
    let bad = |t: Tcp4| tcp4(true, PSH | ACK, 1001, 5001, b"hello", t);
    let (ihl, doff, total) = (5, 5, None);
    expect(
        &with_bad_frame(bad(Tcp4 { ihl: 3, doff, total })),
        "warning: {path}: frame 4 at byte offset 234: byte 14 of the frame: IPv4 header length 12 < 20; frame skipped",
        8,
    );
    expect(
        &with_bad_frame(v6_runs_off()),
        "warning: {path}: frame 4 at byte offset 234: byte 54 of the frame: IPv6 extension headers (2048 bytes) run past the end of the frame (134 bytes); frame skipped",
        8,
    );
    expect(
        &with_bad_frame(bad(Tcp4 { ihl, doff: 4, total })),
        "warning: {path}: frame 4 at byte offset 234: byte 46 of the frame: TCP data offset 16 < 20; frame skipped",
        8,
    );
    expect(
        &with_bad_frame(bad(Tcp4 { ihl, doff: 15, total })),
        "warning: {path}: frame 4 at byte offset 234: byte 46 of the frame: TCP data offset 60 runs past the IP payload of 25 bytes; frame skipped",
        8,
    );
    expect(
        &with_bad_frame(bad(Tcp4 { ihl, doff: 15, total: Some(100) })),
        "warning: {path}: frame 4 at byte offset 234: byte 46 of the frame: TCP header of 60 bytes runs past the end of the frame (59 bytes); frame skipped",
        8,
    );
    let mut mid = session();
    mid.extend([
        tcp4(true, SYN, 9000, 0, b"", PLAIN),
        tcp4(false, SYN | ACK, 7000, 9001, b"", PLAIN),
        tcp4(true, ACK, 9001, 7001, b"", PLAIN),
        tcp4(true, PSH | ACK, 9001, 7001, b"unfinished", PLAIN),
    ]);
    expect(&pcap(&mid, 65535), "", 12);
}

#[test]
fn huge_blocks_on_a_pipe_are_read_as_far_as_they_go() {
    // A 4 GiB length, from a pipe: reading stops at the end of the bytes, memory stays small.
    let mut epb_4g = cat3(&shb(), &idb(), &6u32.to_le_bytes());
    epb_4g.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    epb_4g.extend_from_slice(&[0; 64]);
    let (got, _) = lines(&epb_4g, "/dev/stdin", None);
    assert_eq!(
        got,
        ["error: /dev/stdin: frame 1 at byte offset 48: truncated block (72 of 4294967280 bytes)"]
    );
    // The same from a regular file is refused before reading, by the file's size.
    let (got, _) = lines(&epb_4g, "f", Some(epb_4g.len() as u64));
    assert_eq!(
        got,
        ["error: f: frame 1 at byte offset 48: truncated block (72 of 4294967280 bytes)"]
    );
    let mut shb_4g = 0x0A0D_0D0Au32.to_le_bytes().to_vec();
    shb_4g.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    shb_4g.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb_4g.extend_from_slice(&[1, 0, 0, 0]);
    shb_4g.extend_from_slice(&(-1i64).to_le_bytes());
    shb_4g.extend_from_slice(&[0; 40]);
    let (got, _) = lines(&shb_4g, "/dev/stdin", None);
    assert_eq!(
        got,
        ["error: /dev/stdin: byte offset 0: truncated block (64 of 4294967280 bytes)"]
    );
}

fn cat3(a: &[u8], b: &[u8], c: &[u8]) -> Vec<u8> {
    [a, b, c].concat()
}

/// A reader that hands out at most 3 bytes per read, as a slow pipe may.
struct Trickle(Cursor<Vec<u8>>);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(3);
        self.0.read(&mut buf[..n])
    }
}

fn all_frames<R: Read>(mut r: Reader<R>) -> Vec<(u64, u64, u32, Vec<u8>, u32, u64)> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = r.next_frame() {
        out.push((
            f.frame,
            f.ts.to_bits(),
            f.linktype,
            f.data.to_vec(),
            f.wirelen,
            f.offset,
        ));
    }
    out
}

#[test]
fn short_reads_give_the_same_frames() {
    let mut unknown = pcapng(&session());
    unknown.extend(block(0xBAD, &[7; 3000]));
    unknown.extend(epb(9, &data_frame(), 0));
    let whole = all_frames(Reader::new(Cursor::new(unknown.clone()), "x", None).unwrap());
    let trickled = all_frames(Reader::new(Trickle(Cursor::new(unknown)), "x", None).unwrap());
    assert_eq!(whole.len(), 9);
    assert_eq!(whole, trickled);
    assert_eq!(whole[8].5, 756 + 3012);
}

#[test]
fn open_reads_ahead_and_gives_the_same_frames() {
    // Small records across many chunk boundaries, then blocks longer than the room kept before a
    // chunk (64 KiB), longer than a chunk, and above 1 MiB (checked against the file size first).
    let mut f = cat3(&shb(), &idb(), &[]);
    let data = data_frame();
    for i in 0..40_000u64 {
        f.extend(epb(i, &data[..54 + (i % 6) as usize], 0));
    }
    for (i, size) in [100_000usize, 300_000, 2_500_000, 70_000, 54]
        .iter()
        .enumerate()
    {
        let mut big = data.clone();
        big.resize(*size, 0xAB);
        f.extend(epb(i as u64, &big, 0));
    }
    f.extend(block(0xBAD, &vec![1; 3_000_000])); // skipped by length, in chunks
    f.extend(epb(7, &data, 0));
    let path = std::env::temp_dir().join(format!("hp-reader-ahead-{}.pcapng", std::process::id()));
    std::fs::write(&path, &f).unwrap();
    let name = path.to_str().unwrap();
    let ahead = all_frames(Reader::open(name).unwrap());
    let plain =
        all_frames(Reader::new(Cursor::new(f.clone()), name, Some(f.len() as u64)).unwrap());
    assert_eq!(ahead.len(), 40_006);
    assert_eq!(ahead, plain);
    // Cut inside the 2.5 MB block: the same error both ways, after the same frames.
    std::fs::write(&path, &f[..f.len() - 3_300_000]).unwrap();
    let cut = &f[..f.len() - 3_300_000];
    let mut r = Reader::open(name).unwrap();
    let mut p = Reader::new(Cursor::new(cut.to_vec()), name, Some(cut.len() as u64)).unwrap();
    loop {
        match (r.next_frame(), p.next_frame()) {
            (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
            (a, b) => {
                let (a, b) = (a.map(|x| x.map(|f| f.frame)), b.map(|x| x.map(|f| f.frame)));
                assert_eq!(a, b);
                assert!(a.is_err(), "{a:?}");
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn byte_orders_and_resolutions() {
    // The same record in each of the six pcap magics: same frame, same time (ns divides exactly).
    let data = data_frame();
    for (magic, ns, extra) in [
        (0xA1B2_C3D4u32, false, 0usize),
        (0xA1B2_3C4D, true, 0),
        (0xA1B2_CD34, false, 8),
    ] {
        for be in [false, true] {
            let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
            let mut f = w(magic).to_vec();
            f.extend_from_slice(&[0; 12]);
            f.extend_from_slice(&w(65535));
            f.extend_from_slice(&w(1));
            let frac = if ns { 500_000_000 } else { 500_000 };
            for v in [1_700_000_000, frac, data.len() as u32, 1000] {
                f.extend_from_slice(&w(v));
            }
            f.extend(std::iter::repeat_n(0xEE, extra));
            f.extend_from_slice(&data);
            let frames = all_frames(Reader::new(Cursor::new(f), "x", None).unwrap());
            assert_eq!(frames.len(), 1, "magic {magic:#x} be {be}");
            let (n, ts, lt, d, wl, off) = &frames[0];
            assert_eq!(
                (*n, f64::from_bits(*ts), *lt, *wl, *off),
                (1, 1_700_000_000.5, 1, 1000, 24)
            );
            assert_eq!(d, &data);
        }
    }
}

#[test]
fn nanosecond_pcap_times_are_correctly_rounded() {
    // 1700000000.123456789 is not a double: Python's int/int picks the nearest, a naive double
    // division of the rounded tick count can miss it by one ulp.
    let mut f = 0xA1B2_3C4Du32.to_le_bytes().to_vec();
    f.extend_from_slice(&[0; 12]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    let cases = [
        (1_700_000_000u32, 123_456_789u32),
        (4_294_967_295, 999_999_999),
        (1, 1),
    ];
    for (sec, ns) in cases {
        f.extend(record_raw(sec, ns, 0, 0));
    }
    let frames = all_frames(Reader::new(Cursor::new(f), "x", None).unwrap());
    for ((sec, ns), fr) in cases.iter().zip(&frames) {
        assert_eq!(
            fr.1,
            ticks::pcap_seconds(*sec, *ns, 1_000_000_000).to_bits()
        );
    }
    // From Python: (1700000000 * 10**9 + 123456789) / 10**9
    assert_eq!(f64::from_bits(frames[0].1), 1700000000.1234567);
}

fn opt(code: u16, value: &[u8]) -> Vec<u8> {
    let mut o = code.to_le_bytes().to_vec();
    o.extend_from_slice(&(value.len() as u16).to_le_bytes());
    o.extend_from_slice(value);
    while !o.len().is_multiple_of(4) {
        o.push(0);
    }
    o
}

#[test]
fn pcapng_sections_interfaces_and_blocks() {
    let data = data_frame();
    let mut f = shb();
    // Interface 0: Ethernet, ns resolution, offset 10 s; interface 1: raw IP, snaplen 40.
    let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0];
    body.extend(opt(9, &[9]));
    body.extend(opt(14, &10i64.to_le_bytes()));
    body.extend(opt(0, &[]));
    f.extend(block(1, &body));
    f.extend(block(1, &[101, 0, 0, 0, 40, 0, 0, 0]));
    let ticks: u64 = 1_700_000_000_123_456_789;
    let mut e = Vec::new();
    for v in [0, (ticks >> 32) as u32, ticks as u32, 54, 60] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&data[..54]);
    f.extend(block(6, &e));
    // SPB: the first interface, caplen = wirelen cut to its snaplen (none here).
    let mut s = (data.len() as u32).to_le_bytes().to_vec();
    s.extend_from_slice(&data);
    f.extend(block(3, &s));
    // Obsolete PB on interface 1.
    let mut pb = 1u16.to_le_bytes().to_vec();
    pb.extend_from_slice(&[0, 0]);
    for v in [0u32, 2_000_000, 45, 45] {
        pb.extend_from_slice(&v.to_le_bytes());
    }
    pb.extend_from_slice(&data[14..]);
    f.extend(block(2, &pb));
    // A second, big-endian section: interfaces start over.
    let mut be_shb = 0x0A0D_0D0Au32.to_be_bytes().to_vec();
    be_shb.extend_from_slice(&28u32.to_be_bytes());
    be_shb.extend_from_slice(&0x1A2B_3C4Du32.to_be_bytes());
    be_shb.extend_from_slice(&[0, 1, 0, 0]);
    be_shb.extend_from_slice(&(-1i64).to_be_bytes());
    be_shb.extend_from_slice(&28u32.to_be_bytes());
    f.extend(be_shb);
    let mut be_idb = 1u32.to_be_bytes().to_vec();
    be_idb.extend_from_slice(&20u32.to_be_bytes());
    be_idb.extend_from_slice(&[0, 113, 0, 0, 0, 0, 0, 0]);
    be_idb.extend_from_slice(&20u32.to_be_bytes());
    f.extend(be_idb);
    let frames = all_frames(Reader::new(Cursor::new(f.clone()), "x", None).unwrap());
    assert_eq!(frames.len(), 3);
    assert_eq!(f64::from_bits(frames[0].1), 1700000010.1234567);
    assert_eq!((frames[0].2, frames[0].3.len(), frames[0].4), (1, 54, 60));
    assert_eq!((frames[1].1, frames[1].2, frames[1].3.len()), (0, 1, 59));
    assert_eq!(
        (frames[2].1, frames[2].2, frames[2].4),
        (2.0f64.to_bits(), 101, 45)
    );
    // A big-endian EPB in the second section on interface 1: the section declares only 1.
    let mut be_epb = 6u32.to_be_bytes().to_vec();
    be_epb.extend_from_slice(&32u32.to_be_bytes());
    for v in [1u32, 0, 0, 0, 0, 32] {
        be_epb.extend_from_slice(&v.to_be_bytes());
    }
    f.extend(be_epb);
    let mut r = Reader::new(Cursor::new(f), "x", None).unwrap();
    for _ in 0..3 {
        assert!(r.next_frame().unwrap().is_some());
    }
    let err = r.next_frame().unwrap_err();
    assert!(err.message.contains("packet names interface 1"), "{err}");
    assert_eq!(r.next_frame(), Ok(None)); // finished after an error, like a generator
}

#[test]
fn open_errors_are_pythons() {
    let e = Reader::open("/nonexistent/x.pcap").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/x.pcap: byte offset 0: No such file or directory"
    );
    let e = Reader::open("/").unwrap_err();
    assert_eq!(e.to_string(), "/: byte offset 0: Is a directory");
}

#[test]
fn idb_option_faults() {
    let mut f = shb();
    f.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2, 0, 6, 6, 0, 0]));
    let e = Reader::new(Cursor::new(f), "x", None)
        .unwrap()
        .next_frame()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "x: byte offset 28: if_tsresol option of 2 bytes (expected 1)"
    );
    let mut f = shb();
    f.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0, 14, 0, 9, 0]));
    let e = Reader::new(Cursor::new(f), "x", None)
        .unwrap()
        .next_frame()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "x: byte offset 28: interface option 14 runs past the block"
    );
}

// --- fuzz: mutations must never panic ----------------------------------------------------------

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        pcap(&session(), 65535),
        pcapng(&session()),
        with_bad_frame(v6_runs_off()),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut paths: Vec<_> = ["", "anomalies"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    paths.sort();
    for p in paths {
        if let Ok(b) = std::fs::read(&p) {
            if b.len() <= 64 * 1024 {
                seeds.push(b);
            }
        }
    }
    seeds
}

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if d.is_empty() {
            d.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(d.len());
        match rng.below(6) {
            0 => d[at] ^= 1 << rng.below(8),
            1 => d[at] = rng.next() as u8,
            2 => d.truncate(at),
            3 => {
                // A 32-bit length field set to something large or small.
                let v = [0u32, 1, 12, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 20, 65536][rng.below(7)];
                let end = (at + 4).min(d.len());
                let bytes = v.to_le_bytes();
                d[at..end].copy_from_slice(&bytes[..end - at]);
            }
            4 => {
                let n = rng.below(16);
                let b = rng.next() as u8;
                d.splice(at..at, std::iter::repeat_n(b, n));
            }
            _ => {
                let end = (at + rng.below(32)).min(d.len());
                d.drain(at..end);
            }
        }
    }
    d
}

#[test]
fn mutations_never_panic() {
    let seeds = seeds();
    let mut rng = XorShift(0x5EED_1234_ABCD_0001);
    let rounds = if cfg!(debug_assertions) { 1000 } else { 30000 };
    for _ in 0..rounds {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        for len in [Some(input.len() as u64), None] {
            let Ok(mut r) = Reader::new(Cursor::new(input.clone()), "fuzz", len) else {
                continue;
            };
            let mut frames = 0;
            while let Ok(Some(f)) = r.next_frame() {
                frames += 1;
                for verify in [false, true] {
                    let _ = decode(f.data, f.linktype, f.ts, f.frame, Some(f.wirelen), verify);
                }
                assert!(frames < 1_000_000);
            }
            let _ = r.take_warnings();
        }
    }
}

#[test]
fn decode_never_panics_on_random_frames() {
    let mut rng = XorShift(0xDEC0_DE00_0000_0001);
    let base = data_frame();
    for i in 0..20000 {
        let mut f = base.clone();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(f.len());
            f[at] = rng.next() as u8;
        }
        f.truncate(rng.below(f.len() + 1));
        let lt = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276][i % 10];
        for wl in [None, Some(f.len() as u32), Some(u32::MAX)] {
            let _ = decode(&f, lt, 0.0, 1, wl, i % 2 == 0);
        }
    }
}
