//! Live capture on the engine: a thread of its own (never the Python interpreter's, never holding
//! the GIL) reads packets from the AF_PACKET socket the Python edge set up (kernel BPF filter
//! attached, bound, `PACKET_IGNORE_OUTGOING` on `lo`: see handshake_probe/live/capture.py) and
//! runs each one through the same `Pipeline` as a file's frames. What it hands over, in batches:
//! the transitions as they become final, the finished flows (written as JSON Lines by the caller's
//! thread, in bounded chunks; or counted and the last few kept for the closing table), the counters and the kernel's drop counts.
//!
//! How packets are read: through a TPACKET_V3 ring by default, `recvmmsg` batches of 64 where the
//! kernel refuses a ring (or when asked). Both were built and measured with bench/live_load.py
//! (README, "Live capture at load"): at 265-290k packets/s from `tcpreplay --topspeed` both kept every
//! packet, but recvmmsg cost 3.3 s of CPU per million packets and the ring 1.7 s: with a ring the
//! kernel copies each packet into the mapped block in the softirq that delivers it (on `lo`, the
//! sender's CPU) and this thread walks the block without a system call per packet. A block is handed
//! over when full or RING_RETIRE_MS after its first packet: the lag a live view shows. One thread
//! reads and analyzes; the 64 MiB ring (or the socket's 64 MiB buffer) is the queue that absorbs a
//! burst while the engine works, so the kernel never waits for the analysis.
//!
//! Memory: the flow table runs in streaming mode (linger, idle timeout, max_open, as `analyze`),
//! finished flows leave it at once; only the last `keep_last` are kept, for the table at the end.
//! Pending transition events are capped (`MAX_PENDING_EVENTS`) in case the printer falls behind:
//! the ones beyond are counted, never queued (the reader must never wait for the printer).

mod sys;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::analysis::{Counters, Options, Pipeline};
use crate::flow::{Flow, CLOSE_KINDS};
use crate::flows::Event;
use crate::record::JsonWriter;

/// Packets taken per `recvmmsg`.
const BATCH: usize = 64;
/// Transition events waiting for the printer at most; the rest are counted in `events_dropped`.
pub const MAX_PENDING_EVENTS: usize = 100_000;
/// How stale the pcap file, the counters and the printed lines may get under a load that never
/// lets the reader go idle.
const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// How long the reader waits for a packet before it looks at its stop flag again.
const POLL_MS: i32 = 50;
/// Between two sweeps of the flow table while no packet comes: flows that ended `linger` seconds
/// ago leave (and are printed) even when the traffic stopped.
const IDLE_SWEEP: Duration = Duration::from_secs(1);
/// The TPACKET_V3 ring: 64 MiB (as the socket buffer it replaces) in blocks of 1 MiB (each must
/// hold a whole frame: at least twice the snapshot length), handed over at the latest 10 ms after
/// a block's first packet (the lag a live view may show).
const RING_BYTES: usize = 64 << 20;
const RING_BLOCK: usize = 1 << 20;
const RING_RETIRE_MS: u32 = 10;
/// Bytes of the whole-record pcap buffer that trigger a write.
const PCAP_FLUSH_AT: usize = 1 << 16;

// include/uapi/linux/if_packet.h, asm-generic/socket.h
const SOL_SOCKET: i32 = 1;
const SOL_PACKET: i32 = 263;
const SO_TIMESTAMP: i32 = 29;
const SO_TIMESTAMPNS: i32 = 35;
const PACKET_AUXDATA: i32 = 8;
const PACKET_OUTGOING: u8 = 4;
const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;

/// What the caller asks for.
pub struct LiveOptions {
    pub linktype: u32,
    pub snaplen: u32,
    /// on `lo`: drop the outgoing copy should the kernel lack PACKET_IGNORE_OUTGOING
    pub drop_outgoing: bool,
    /// stop after this many frames
    pub count: Option<u64>,
    /// also write every frame as pcap to this open file (a duplicate is taken; whole records only),
    /// named by the path for messages
    pub write: Option<(RawFd, String)>,
    /// hand finished flows out as JSON Lines text
    pub jsonl: bool,
    /// queue transition events for the printer
    pub events: bool,
    /// finished flows kept for the closing table
    pub keep_last: usize,
    /// read through a TPACKET_V3 ring (else, or where the kernel refuses one, recvmmsg batches)
    pub ring: bool,
    pub analysis: Options,
}

/// What the reader thread shares with the caller; taken under one lock per batch.
#[derive(Default)]
pub struct Shared {
    pub events: Vec<Event>,
    pub events_dropped: u64,
    /// finished flows waiting to be written as JSON Lines (with `jsonl`), oldest first: the caller
    /// writes them on its own thread, in bounded chunks (`write_jsonl`)
    pub ready: VecDeque<Flow>,
    pub last: VecDeque<Flow>,
    /// finished flows by close kind (CLOSE_KINDS order)
    pub closes: [u64; CLOSE_KINDS.len()],
    pub counters: Counters,
    pub open_flows: usize,
    /// the kernel's PACKET_STATISTICS, summed
    pub received: u64,
    pub dropped: u64,
    /// the socket or the pcap file failed: the capture stopped (what was read is kept)
    pub error: Option<String>,
    /// the packets come through a TPACKET_V3 ring (else recvmmsg)
    pub ring: bool,
    /// an engine bug: a panic in the reader, with the frame it happened at
    pub panic: Option<String>,
    pub done: bool,
}

/// A live capture being analyzed: the reader thread and what it shares.
pub struct Live {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic in the reader is caught before it could poison the lock; should it happen anyway,
    // the counters are still worth reading.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Live {
    /// Start reading `fd` (duplicated: the caller keeps its own descriptor). Fails only when the
    /// descriptor cannot be duplicated, the pcap file cannot be created, or no thread starts.
    pub fn start(fd: RawFd, opts: LiveOptions) -> io::Result<Live> {
        let fd = sys::dup(fd)?;
        let pcap = match &opts.write {
            Some((wfd, path)) => Some(PcapOut::create(
                File::from(sys::dup(*wfd)?),
                path,
                opts.linktype,
                opts.snaplen,
            )?),
            None => None,
        };
        // The ring is set up before this returns (before the caller says it is listening): while
        // the kernel switches the socket over, packets are not delivered to it.
        let snaplen = (opts.snaplen as usize).max(1);
        let block = RING_BLOCK.max(snaplen.next_power_of_two() * 2);
        let ring = if opts.ring {
            sys::Ring::new(&fd, block, (RING_BYTES / block).max(2), RING_RETIRE_MS).ok()
        } else {
            None
        };
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, stop2) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("engine-live".into())
            .spawn(move || {
                let mut reader = Reader::new(fd, opts, pcap, s2.clone(), stop2);
                let ran = catch_unwind(AssertUnwindSafe(|| reader.run(ring)));
                let (m, cv) = &*s2;
                let mut out = lock(m);
                if let Err(payload) = ran {
                    let msg = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    out.panic = Some(format!("frame {}: {}", reader.frames, msg));
                }
                out.done = true;
                cv.notify_all();
            })?;
        Ok(Live {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// Ask the reader to stop: it still reads what the kernel queued before now, then finishes.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Wait up to `timeout` for something to hand over (events, records, the end), then run `f`
    /// on the shared state (under its lock).
    pub fn wait<T>(&self, timeout: Duration, f: impl FnOnce(&mut Shared) -> T) -> T {
        let (m, cv) = &*self.shared;
        let guard = lock(m);
        let (mut guard, _) = cv
            .wait_timeout_while(guard, timeout, |s| {
                !s.done && s.events.is_empty() && s.ready.is_empty()
            })
            .unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Look at the shared state without waiting.
    pub fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        f(&mut lock(&self.shared.0))
    }

    /// Wait for the reader thread to end (after `stop`, or once `count` frames were read).
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop();
        self.join();
    }
}

/// The reader thread's side.
struct Reader {
    fd: OwnedFd,
    opts: LiveOptions,
    p: Pipeline,
    pcap: Option<PcapOut>,
    shared: Arc<(Mutex<Shared>, Condvar)>,
    stop: Arc<AtomicBool>,
    frames: u64,
    finished: Vec<Flow>,
    received: u64,
    dropped: u64,
    error: Option<String>,
    /// VLAN tag put back (rare): the frame is copied here
    scratch: Vec<u8>,
    with_ring: bool,
}

impl Reader {
    fn new(
        fd: OwnedFd,
        opts: LiveOptions,
        pcap: Option<PcapOut>,
        shared: Arc<(Mutex<Shared>, Condvar)>,
        stop: Arc<AtomicBool>,
    ) -> Reader {
        let p = Pipeline::new(&opts.analysis);
        Reader {
            fd,
            opts,
            p,
            pcap,
            shared,
            stop,
            frames: 0,
            finished: Vec::new(),
            received: 0,
            dropped: 0,
            error: None,
            scratch: Vec::new(),
            with_ring: false,
        }
    }

    /// Read until stopped. `ring`: where the kernel took one; else recvmmsg batches from the
    /// socket's queue. Packets queued before the ring existed are read from the queue first.
    fn run(&mut self, mut ring: Option<sys::Ring>) {
        let snaplen = (self.opts.snaplen as usize).max(1);
        let mut batch = sys::Batch::new(BATCH, snaplen);
        self.with_ring = ring.is_some();
        let mut queue = true; // the socket's queue may hold packets: read it
        let mut end: Option<f64> = None; // wall-clock end once asked to stop: drain up to it
        let mut waited_after_end = false;
        let mut last_flush = Instant::now();
        let mut last_sweep = Instant::now();
        'read: loop {
            if end.is_none() && self.stop.load(Ordering::Relaxed) {
                end = Some(now());
            }
            if queue {
                let got = match batch.recv(&self.fd) {
                    Ok(n) => n,
                    Err(e) => {
                        self.error = Some(format!("capture stopped: {e}"));
                        break;
                    }
                };
                for i in 0..got {
                    let Some(slot) = batch.slot(i) else {
                        continue;
                    };
                    let meta = control_messages(slot.control);
                    let pk = Packet {
                        data: slot.data,
                        ts: meta.ts,
                        wirelen: meta.wirelen,
                        vlan: meta.vlan,
                        pkttype: pkttype(slot.name),
                    };
                    if !self.packet(pk, end) {
                        break 'read;
                    }
                }
                if got > 0 {
                    self.after_batch(&mut last_flush);
                    continue;
                }
                queue = ring.is_none();
            }
            if let Some(r) = ring.as_mut() {
                let mut go = true;
                if let Some(bytes) = r.block() {
                    waited_after_end = false;
                    for_each_packet(bytes, |pk| {
                        go = self.packet(pk, end);
                        go
                    });
                    r.release();
                    if !go {
                        break 'read;
                    }
                    self.after_batch(&mut last_flush);
                    continue;
                }
            }
            if self.error.is_some() {
                break;
            }
            if end.is_some() {
                // Drained after the end; a ring's block that is still filling is handed over
                // within RING_RETIRE_MS: wait that long once more before concluding.
                if ring.is_none() || waited_after_end {
                    break;
                }
                waited_after_end = true;
                sys::wait_readable(&self.fd, 3 * RING_RETIRE_MS as i32);
                continue;
            }
            self.idle(&mut last_sweep);
            self.flush_pcap();
            self.publish();
            last_flush = Instant::now();
            sys::wait_readable(&self.fd, POLL_MS);
        }
        drop(ring);
        self.p.finish(&mut self.finished);
        self.flush_pcap();
        self.publish();
    }

    /// One packet through the pipeline (and the pcap); false when reading ends here (it arrived
    /// after the end, or `count` frames are read).
    fn packet(&mut self, pk: Packet<'_>, end: Option<f64>) -> bool {
        if self.opts.drop_outgoing && pk.pkttype == Some(PACKET_OUTGOING) {
            return true;
        }
        let (sec, usec) = micro(pk.ts.unwrap_or_else(now_parts));
        let ts = crate::pcap::ticks::pcap_seconds(sec, usec, 1_000_000);
        if end.is_some_and(|e| ts > e) {
            return false; // arrived after the end
        }
        let mut wirelen = pk.wirelen.unwrap_or(pk.data.len() as u32);
        let data = match pk.vlan {
            Some((tpid, tci)) if self.opts.linktype == 1 && pk.data.len() >= 12 => {
                // The NIC stripped the 802.1Q tag into metadata; the frame on the wire had it
                // (libpcap puts it back too).
                self.scratch.clear();
                self.scratch.extend_from_slice(&pk.data[..12]);
                self.scratch.extend_from_slice(&tpid.to_be_bytes());
                self.scratch.extend_from_slice(&tci.to_be_bytes());
                self.scratch.extend_from_slice(&pk.data[12..]);
                wirelen = wirelen.saturating_add(4);
                &self.scratch[..]
            }
            _ => pk.data,
        };
        self.frames += 1;
        if let Some(pcap) = self.pcap.as_mut() {
            if let Err(e) = pcap.record(sec, usec, data, wirelen) {
                self.error = Some(format!("{}: {e}", pcap.path));
                self.pcap = None;
            }
        }
        if let Some(err) = self
            .p
            .frame(data, self.opts.linktype, ts, self.frames, Some(wirelen))
        {
            let line = format!("frame {}: {err}; frame skipped", self.frames);
            self.p.warn(line);
        }
        self.opts.count.is_none_or(|c| self.frames < c)
    }

    fn after_batch(&mut self, last_flush: &mut Instant) {
        if last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush_pcap();
            *last_flush = Instant::now();
            self.publish();
        } else {
            self.publish_events();
        }
    }

    /// No packet queued: flows that ended `linger` ago (or went silent) leave at the current time,
    /// which is the kernel's clock the frames are stamped with.
    fn idle(&mut self, last_sweep: &mut Instant) {
        if last_sweep.elapsed() >= IDLE_SWEEP {
            *last_sweep = Instant::now();
            self.p.table.sweep(now());
        }
    }

    fn flush_pcap(&mut self) {
        if let Some(pcap) = self.pcap.as_mut() {
            if let Err(e) = pcap.flush() {
                self.error = Some(format!("{}: {e}", pcap.path));
                self.pcap = None;
            }
        }
    }

    /// Events and finished flows to the caller (cheap: one lock).
    fn publish_events(&mut self) {
        self.p.finished(&mut self.finished);
        self.publish_inner(false);
    }

    /// Everything, counters and kernel statistics included.
    fn publish(&mut self) {
        self.p.finished(&mut self.finished);
        match sys::packet_stats(&self.fd) {
            Ok((r, d)) => {
                self.received += u64::from(r);
                self.dropped += u64::from(d);
            }
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(format!("cannot read the kernel's statistics: {e}"));
                }
            }
        }
        self.publish_inner(true);
    }

    fn publish_inner(&mut self, counters: bool) {
        if counters {
            self.p.sync_counts();
        }
        let keep = self.opts.keep_last;
        let (m, cv) = &*self.shared;
        let mut out = lock(m);
        if self.opts.events {
            let room = MAX_PENDING_EVENTS.saturating_sub(out.events.len());
            let mut events = self.p.table.drain_events();
            out.events.extend(events.by_ref().take(room));
            out.events_dropped += events.len() as u64;
        }
        for flow in self.finished.drain(..) {
            if let Some(k) = CLOSE_KINDS.iter().position(|c| *c == flow.close_kind()) {
                out.closes[k] += 1;
            }
            if self.opts.jsonl {
                out.ready.push_back(flow);
            } else if keep > 0 {
                if out.last.len() >= keep {
                    out.last.pop_front();
                }
                out.last.push_back(flow);
            }
        }
        if counters {
            out.counters = self.p.c.clone();
            out.open_flows = self.p.table.len();
            out.received = self.received;
            out.dropped = self.dropped;
            out.ring = self.with_ring;
            if out.error.is_none() {
                out.error = self.error.clone();
            }
        }
        cv.notify_all();
    }
}

/// Up to `max_flows` of the waiting finished flows as JSON Lines (the text `analyze --format jsonl`
/// writes), taken from `ready`.
pub fn write_jsonl(ready: &mut VecDeque<Flow>, max_flows: usize, out: &mut String) {
    for flow in ready.drain(..max_flows.min(ready.len())) {
        flow.emit(&mut JsonWriter::new(out));
        out.push('\n');
    }
}

/// The wall clock as the kernel stamps packets (CLOCK_REALTIME), in seconds.
fn now() -> f64 {
    let (s, ns) = now_parts();
    s as f64 + ns as f64 * 1e-9
}

fn now_parts() -> (i64, i64) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
        Err(_) => (0, 0),
    }
}

/// The kernel's stamp rounded to the microsecond in integers (.9999996 carries into the seconds),
/// as the pcap record (-w) stores it; the engine gets the same value the file reader makes of that
/// record, so what is printed live is what `analyze` says of the written file, to the digit.
fn micro((sec, nsec): (i64, i64)) -> (u32, u32) {
    let mut sec = sec;
    let mut usec = (nsec.clamp(0, 999_999_999) + 500) / 1000;
    if usec >= 1_000_000 {
        sec += 1;
        usec -= 1_000_000;
    }
    (u32::try_from(sec).unwrap_or(0), usec as u32)
}

/// One packet as read, whichever way (ring or recvmmsg).
struct Packet<'a> {
    data: &'a [u8],
    /// kernel receive stamp (seconds, nanoseconds)
    ts: Option<(i64, i64)>,
    wirelen: Option<u32>,
    vlan: Option<(u16, u16)>,
    /// sll_pkttype (PACKET_OUTGOING: a copy this host sent)
    pkttype: Option<u8>,
}

/// Walk the packets of a TPACKET_V3 block (struct tpacket_block_desc, then struct tpacket3_hdr
/// chained by tp_next_offset, each followed by its struct sockaddr_ll and, at tp_mac, the frame),
/// every offset checked against the block; `f` returns false to stop.
fn for_each_packet(block: &[u8], mut f: impl FnMut(Packet<'_>) -> bool) {
    let (Some(num), Some(first)) = (ne_u32(block, 12), ne_u32(block, 16)) else {
        return;
    };
    let mut at = first as usize;
    for _ in 0..num {
        let Some(h) = block.get(at..) else {
            return;
        };
        let (Some(next), Some(sec), Some(nsec), Some(snap), Some(len), Some(status)) = (
            ne_u32(h, 0),
            ne_u32(h, 4),
            ne_u32(h, 8),
            ne_u32(h, 12),
            ne_u32(h, 16),
            ne_u32(h, 20),
        ) else {
            return;
        };
        let (Some(mac), Some(tci), Some(tpid)) = (ne_u16(h, 24), ne_u32(h, 32), ne_u16(h, 36))
        else {
            return;
        };
        let Some(data) = h.get(mac as usize..mac as usize + snap as usize) else {
            return;
        };
        let vlan = (status & TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            };
            (tpid, tci as u16)
        });
        // struct sockaddr_ll at TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) = 48
        let pk = Packet {
            data,
            ts: Some((i64::from(sec), i64::from(nsec))),
            wirelen: Some(len),
            vlan,
            pkttype: h.get(48 + 10).copied(),
        };
        if !f(pk) || next == 0 {
            return;
        }
        at += next as usize;
    }
}

/// What the control messages say about one packet.
#[derive(Debug, Default, PartialEq, Eq)]
struct Meta {
    /// kernel receive stamp (seconds, nanoseconds)
    ts: Option<(i64, i64)>,
    /// length on the wire (PACKET_AUXDATA tp_len, before the filter cut the packet)
    wirelen: Option<u32>,
    /// an 802.1Q tag the NIC stripped: (TPID, TCI)
    vlan: Option<(u16, u16)>,
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
/// A C `long` (the _OLD timestamp options use native longs) or `size_t`.
fn ne_word(b: &[u8], at: usize) -> Option<i64> {
    const W: usize = std::mem::size_of::<usize>();
    let bytes: [u8; W] = b.get(at..at + W)?.try_into().ok()?;
    Some(isize::from_ne_bytes(bytes) as i64)
}

/// Parse the control-message bytes (struct cmsghdr: size_t len, int level, int type, data; each
/// aligned to size_t), as CMSG_FIRSTHDR / CMSG_NXTHDR walk them, without pointers.
fn control_messages(buf: &[u8]) -> Meta {
    const W: usize = std::mem::size_of::<usize>();
    let align = |n: usize| (n + W - 1) & !(W - 1);
    let header = align(W + 8);
    let mut meta = Meta::default();
    let mut at = 0;
    while at + header <= buf.len() {
        let (Some(len), Some(level), Some(kind)) = (
            ne_word(buf, at),
            ne_u32(buf, at + W),
            ne_u32(buf, at + W + 4),
        ) else {
            break;
        };
        let len = len as usize;
        if len < header || at + len > buf.len() {
            break;
        }
        let data = &buf[at + header..at + len];
        match (level as i32, kind as i32) {
            (SOL_SOCKET, SO_TIMESTAMPNS) => {
                if let (Some(s), Some(ns)) = (ne_word(data, 0), ne_word(data, W)) {
                    meta.ts = Some((s, ns));
                }
            }
            (SOL_SOCKET, SO_TIMESTAMP) => {
                if let (Some(s), Some(us)) = (ne_word(data, 0), ne_word(data, W)) {
                    meta.ts = Some((s, us * 1000));
                }
            }
            (SOL_PACKET, PACKET_AUXDATA) => {
                // struct tpacket_auxdata: u32 status, len, snaplen; u16 mac, net, vlan_tci, vlan_tpid
                if let (Some(status), Some(tp_len), Some(tci), Some(tpid)) = (
                    ne_u32(data, 0),
                    ne_u32(data, 4),
                    ne_u16(data, 16),
                    ne_u16(data, 18),
                ) {
                    meta.wirelen = Some(tp_len);
                    if status & TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                            tpid
                        } else {
                            0x8100
                        };
                        meta.vlan = Some((tpid, tci));
                    }
                }
            }
            _ => {}
        }
        at += align(len);
    }
    meta
}

/// sll_pkttype from a struct sockaddr_ll (u16 family, u16 protocol, i32 ifindex, u16 hatype,
/// u8 pkttype, ...).
fn pkttype(name: &[u8]) -> Option<u8> {
    name.get(10).copied()
}

/// A classic little-endian microsecond pcap (as handshake_probe/files/pcapwriter.py writes),
/// reaching the file in whole records only: every write(2) ends on a record boundary, so a capture
/// killed at any moment (SIGKILL included) leaves a file every reader reads to its end.
struct PcapOut {
    path: String,
    file: File,
    pending: Vec<u8>,
    snaplen: usize,
}

impl PcapOut {
    fn create(file: File, path: &str, linktype: u32, snaplen: u32) -> io::Result<PcapOut> {
        let mut out = PcapOut {
            path: path.to_string(),
            file,
            pending: Vec::with_capacity(PCAP_FLUSH_AT * 2),
            snaplen: snaplen as usize,
        };
        out.pending.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        out.pending.extend_from_slice(&2u16.to_le_bytes());
        out.pending.extend_from_slice(&4u16.to_le_bytes());
        out.pending.extend_from_slice(&0i32.to_le_bytes());
        out.pending.extend_from_slice(&0u32.to_le_bytes());
        out.pending.extend_from_slice(&snaplen.to_le_bytes());
        out.pending.extend_from_slice(&linktype.to_le_bytes());
        out.flush()?;
        Ok(out)
    }

    fn record(&mut self, sec: u32, usec: u32, data: &[u8], wirelen: u32) -> io::Result<()> {
        let data = &data[..data.len().min(self.snaplen)];
        self.pending.extend_from_slice(&sec.to_le_bytes());
        self.pending.extend_from_slice(&usec.to_le_bytes());
        self.pending
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.pending
            .extend_from_slice(&wirelen.max(data.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(data);
        if self.pending.len() >= PCAP_FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Every whole record collected so far to the file; what did not reach it stays pending.
    fn flush(&mut self) -> io::Result<()> {
        let mut done = 0;
        let result = loop {
            if done >= self.pending.len() {
                break Ok(());
            }
            match self.file.write(&self.pending[done..]) {
                Ok(0) => break Err(io::Error::new(io::ErrorKind::WriteZero, "disk full?")),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.pending.drain(..done);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        const W: usize = std::mem::size_of::<usize>();
        let header = (W + 8 + W - 1) & !(W - 1);
        let len = header + data.len();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.resize(header, 0);
        v.extend_from_slice(data);
        v.resize((len + W - 1) & !(W - 1), 0);
        v
    }

    fn auxdata(status: u32, len: u32, tci: u16, tpid: u16) -> Vec<u8> {
        let mut d = Vec::new();
        for x in [status, len, len] {
            d.extend_from_slice(&x.to_ne_bytes());
        }
        for x in [14u16, 34, tci, tpid] {
            d.extend_from_slice(&x.to_ne_bytes());
        }
        d
    }

    #[test]
    fn timestamp_and_auxdata_are_read_from_the_control_messages() {
        let mut ts = Vec::new();
        ts.extend_from_slice(&1_700_000_000isize.to_ne_bytes());
        ts.extend_from_slice(&123_456_789isize.to_ne_bytes());
        let mut buf = cmsg(SOL_SOCKET, SO_TIMESTAMPNS, &ts);
        buf.extend(cmsg(SOL_PACKET, PACKET_AUXDATA, &auxdata(0, 1514, 0, 0)));
        let meta = control_messages(&buf);
        assert_eq!(meta.ts, Some((1_700_000_000, 123_456_789)));
        assert_eq!(meta.wirelen, Some(1514));
        assert_eq!(meta.vlan, None);
    }

    #[test]
    fn a_stripped_vlan_tag_is_reported_with_the_default_tpid() {
        let buf = cmsg(
            SOL_PACKET,
            PACKET_AUXDATA,
            &auxdata(TP_STATUS_VLAN_VALID, 60, 42, 0),
        );
        assert_eq!(control_messages(&buf).vlan, Some((0x8100, 42)));
    }

    #[test]
    fn truncated_or_lying_control_messages_are_ignored_not_a_panic() {
        let mut buf = cmsg(SOL_PACKET, PACKET_AUXDATA, &auxdata(0, 60, 0, 0));
        for cut in 0..buf.len() {
            let _ = control_messages(&buf[..cut]);
        }
        buf[0] = 0xff; // a length beyond the buffer
        assert_eq!(control_messages(&buf), Meta::default());
        assert_eq!(pkttype(&[0; 4]), None);
    }

    /// A TPACKET_V3 block as the kernel lays it out: descriptor, then each packet's header,
    /// sockaddr_ll at 48 and the frame at tp_mac, chained by tp_next_offset.
    fn block(frames: &[(&[u8], u32, u8)]) -> Vec<u8> {
        let mut b = vec![0u8; 48];
        b[12..16].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
        b[16..20].copy_from_slice(&48u32.to_ne_bytes());
        for (i, (data, status, pkttype)) in frames.iter().enumerate() {
            let start = b.len();
            let mac = 80usize;
            let size = (mac + data.len() + 15) & !15;
            b.resize(start + size, 0);
            let h = &mut b[start..];
            let next = if i + 1 == frames.len() {
                0
            } else {
                size as u32
            };
            h[0..4].copy_from_slice(&next.to_ne_bytes());
            h[4..8].copy_from_slice(&1_700_000_000u32.to_ne_bytes());
            h[8..12].copy_from_slice(&(i as u32 * 1000).to_ne_bytes());
            h[12..16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            h[16..20].copy_from_slice(&(data.len() as u32 + 100).to_ne_bytes());
            h[20..24].copy_from_slice(&status.to_ne_bytes());
            h[24..26].copy_from_slice(&(mac as u16).to_ne_bytes());
            h[32..36].copy_from_slice(&7u32.to_ne_bytes());
            h[58] = *pkttype;
            h[mac..mac + data.len()].copy_from_slice(data);
        }
        b
    }

    #[test]
    fn ring_blocks_are_walked_packet_by_packet() {
        let b = block(&[
            (b"first", 0, 0),
            (b"second", TP_STATUS_VLAN_VALID, PACKET_OUTGOING),
        ]);
        let mut seen = Vec::new();
        for_each_packet(&b, |p| {
            seen.push((p.data.to_vec(), p.ts, p.wirelen, p.vlan, p.pkttype));
            true
        });
        assert_eq!(
            seen,
            vec![
                (
                    b"first".to_vec(),
                    Some((1_700_000_000, 0)),
                    Some(105),
                    None,
                    Some(0)
                ),
                (
                    b"second".to_vec(),
                    Some((1_700_000_000, 1000)),
                    Some(106),
                    Some((0x8100, 7)),
                    Some(PACKET_OUTGOING)
                ),
            ]
        );
    }

    #[test]
    fn a_cut_or_lying_ring_block_stops_the_walk_not_the_program() {
        let b = block(&[(b"first", 0, 0), (b"second", 0, 0)]);
        for cut in 0..b.len() {
            for_each_packet(&b[..cut], |_| true);
        }
        let mut lying = b.clone();
        lying[12..16].copy_from_slice(&u32::MAX.to_ne_bytes()); // more packets than there are
        let mut n = 0;
        for_each_packet(&lying, |_| {
            n += 1;
            true
        });
        assert_eq!(n, 2);
        let mut stop_early = 0;
        for_each_packet(&b, |_| {
            stop_early += 1;
            false
        });
        assert_eq!(stop_early, 1);
    }

    #[test]
    fn pcap_records_are_whole_and_rounded_to_the_microsecond() {
        let dir = std::env::temp_dir().join(format!("hp-live-{}", std::process::id()));
        let path = dir.with_extension("pcap");
        let file = File::create(&path).unwrap();
        let mut w = PcapOut::create(file, "x.pcap", 1, 65535).unwrap();
        let (sec, usec) = micro((10, 999_999_600));
        w.record(sec, usec, &[1, 2, 3], 60).unwrap();
        w.flush().unwrap();
        let data = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(data.len(), 24 + 16 + 3);
        assert_eq!(&data[24..28], &11u32.to_le_bytes());
        assert_eq!(&data[28..32], &0u32.to_le_bytes());
        assert_eq!(&data[32..36], &3u32.to_le_bytes());
        assert_eq!(&data[36..40], &60u32.to_le_bytes());
    }
}
