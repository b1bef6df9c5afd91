//! A capture file through the engine: frames -> decode -> flow table -> finished flows, with the
//! counters and faults a user is told about. Analysis never fails for bad input: a fault is kept in
//! `error` (one line: file, byte offset, frame) and everything before it is still reported.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::decode::{DecodeError, Decoded, Decoder, Skip};
use crate::flow::Flow;
use crate::flows::{FlowTable, ObserverFactory, RowFilter, TableOptions};
use crate::observe::Observer;
use crate::pcap::{where_, Reader};
use crate::record::{write_csv_row, JsonWriter, Value};

/// Per file; the rest are counted, not printed.
pub const MAX_FRAME_WARNINGS: usize = 10;
/// Frames between two hand-overs from the worker thread (and progress reports).
const BATCH: usize = 8192;
/// Batches in flight between the worker and the caller: bounds memory when the caller is slow.
const IN_FLIGHT: usize = 2;

/// Skip reasons in the order the summary line sorts them (by name), malformed last-but-sorted too.
pub const SKIP_REASONS: [&str; 6] = [
    "fragment",
    "malformed",
    "non-tcp",
    "truncated",
    "tunnel-depth-exceeded",
    "unknown-link",
];

pub fn skip_index(s: Skip) -> usize {
    match s {
        Skip::Fragment => 0,
        Skip::NotTcp => 2,
        Skip::Truncated => 3,
        Skip::TunnelDepth => 4,
        Skip::UnknownLink => 5,
    }
}
pub const MALFORMED: usize = 1;

/// The analyses every flow carries besides its two state machines: Zeek's conn_state and history,
/// tshark's completeness, Wireshark's TCP analysis (with bad checksums when they are verified).
pub fn default_observers(check_checksums: bool) -> ObserverFactory {
    Box::new(move || -> Vec<Box<dyn Observer>> {
        vec![
            Box::new(crate::zeek::ZeekObserver::new()),
            Box::new(crate::completeness::Completeness::new()),
            Box::new(crate::anomalies::Anomalies::new(check_checksums)),
        ]
    })
}

#[derive(Clone, Debug)]
pub struct Options {
    pub table: TableOptions,
    pub check_checksums: bool,
}

/// A capture file by path, or standard input ("-").
enum Input {
    File(Reader<std::fs::File>),
    Stdin(Reader<std::io::Stdin>),
}

impl Input {
    fn next_frame(&mut self) -> Result<Option<crate::pcap::Frame<'_>>, crate::pcap::CaptureError> {
        match self {
            Input::File(r) => r.next_frame(),
            Input::Stdin(r) => r.next_frame(),
        }
    }
    fn take_warnings(&mut self) -> Vec<String> {
        match self {
            Input::File(r) => r.take_warnings(),
            Input::Stdin(r) => r.take_warnings(),
        }
    }
    fn offset(&self) -> u64 {
        match self {
            Input::File(r) => r.offset(),
            Input::Stdin(r) => r.offset(),
        }
    }
}

/// The text formats the engine writes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

/// The counters a user is told about; cumulative, sent with every batch.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub frames: u64,
    pub segments: u64,
    pub skipped: [u64; SKIP_REASONS.len()],
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub violations: u64,
    pub flow_count: u64,
    pub evicted: u64,
    pub offset: u64,
}

/// What the worker hands over: the flows finished since the last batch and the counters so far.
/// Whole flows, not records: building and writing records is the caller's thread's share.
struct Batch {
    flows: Vec<Flow>,
    counters: Counters,
    done: bool,
    /// an engine bug: a panic in the worker, with the frame it happened at
    panic: Option<String>,
}

/// One frame through decode and the flow table: the step every input shares (files on the worker
/// thread below, frames fed one at a time by `Engine.feed`, the live reader in `live.rs`), so the
/// counters and the decode-to-table rule exist once.
pub struct Pipeline {
    pub table: FlowTable,
    pub decoder: Decoder,
    pub c: Counters,
}

impl Pipeline {
    pub fn new(opts: &Options) -> Pipeline {
        Pipeline {
            table: FlowTable::new(opts.table.clone(), default_observers(opts.check_checksums)),
            decoder: Decoder::new(opts.check_checksums),
            c: Counters::default(),
        }
    }

    /// Decode one frame and hand its segment(s) to the flow table; a skipped frame is counted by
    /// reason. A malformed one is counted and its error returned, for the caller to say where
    /// it was (file offset, frame number) in its own words.
    #[inline]
    pub fn frame(
        &mut self,
        data: &[u8],
        linktype: u32,
        ts: f64,
        frame: u64,
        wirelen: Option<u32>,
    ) -> Option<DecodeError> {
        self.c.frames += 1;
        match self.decoder.decode(data, linktype, ts, frame, wirelen) {
            Ok(Decoded::Segment(seg)) => {
                self.c.segments += 1;
                self.table.add(seg);
                if self.decoder.has_extra() {
                    for seg in self.decoder.take_extra() {
                        self.c.segments += 1;
                        self.table.add(seg);
                    }
                }
                None
            }
            Ok(Decoded::Skip(why)) => {
                self.c.skipped[skip_index(why)] += 1;
                None
            }
            Err(err) => {
                self.c.skipped[MALFORMED] += 1;
                Some(err)
            }
        }
    }

    /// Keep a warning line unless MAX_FRAME_WARNINGS are kept already (the rest are counted).
    pub fn warn(&mut self, line: String) {
        if self.c.warnings.len() < MAX_FRAME_WARNINGS {
            self.c.warnings.push(line);
        }
    }

    /// The flows the table let go since the last call (their violations counted).
    pub fn finished(&mut self, out: &mut Vec<Flow>) {
        for flow in self.table.drain_finished() {
            self.c.violations += flow.violation_count;
            out.push(flow);
        }
    }

    /// End of input: the 2MSL timers the input outlived fire; every flow still held goes to `out`
    /// (finishing order when streaming, flow order otherwise).
    pub fn finish(&mut self, out: &mut Vec<Flow>) {
        let rest = self.table.finish();
        self.finished(out);
        for flow in rest {
            self.c.violations += flow.violation_count;
            out.push(flow);
        }
    }

    /// The table's counters copied into `c` (for a snapshot handed to another thread).
    pub fn sync_counts(&mut self) {
        self.c.flow_count = self.table.count;
        self.c.evicted = self.table.evicted;
    }
}

/// The per-packet side, on its own thread: read, decode, flow table, records. Records are plain
/// values, so they cross to the caller's thread, which writes them (JSON Lines, CSV, Python
/// objects) while this thread goes on with the next packets: the two cores share the work.
struct Worker {
    input: Input,
    p: Pipeline,
    path: String,
}

impl Worker {
    /// Read and analyze up to `max_frames` frames into `batch`; true at the end of input.
    fn step(&mut self, max_frames: usize, batch: &mut Batch) -> bool {
        // Warning lines in the order they arise: a record's reader warning (cut to the snaplen)
        // before its decode warning.
        let mut lines: Vec<String> = Vec::new();
        let mut at_end = false;
        for _ in 0..max_frames {
            let malformed = match self.input.next_frame() {
                Ok(Some(f)) => self
                    .p
                    .frame(f.data, f.linktype, f.ts, f.frame, Some(f.wirelen))
                    .map(|err| {
                        format!(
                            "{}: {}: {}; frame skipped",
                            self.path,
                            where_(f.offset, Some(f.frame)),
                            err
                        )
                    }),
                Ok(None) => {
                    at_end = true;
                    None
                }
                Err(e) => {
                    self.p.c.error = Some(e.to_string());
                    at_end = true;
                    None
                }
            };
            lines.extend(self.input.take_warnings());
            lines.extend(malformed);
            if at_end {
                break;
            }
        }
        for w in lines {
            self.p.warn(w);
        }
        if at_end {
            self.p.finish(&mut batch.flows);
        } else {
            self.p.finished(&mut batch.flows);
        }
        self.p.sync_counts();
        self.p.c.offset = self.input.offset();
        at_end
    }

    fn run(mut self, tx: SyncSender<Batch>) {
        loop {
            let mut batch = Batch {
                flows: Vec::new(),
                counters: Counters::default(),
                done: false,
                panic: None,
            };
            let stepped = catch_unwind(AssertUnwindSafe(|| self.step(BATCH, &mut batch)));
            match stepped {
                Ok(done) => batch.done = done,
                Err(payload) => {
                    let msg = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    batch.panic = Some(format!("frame {}: {}", self.p.c.frames, msg));
                    batch.done = true;
                }
            }
            batch.counters = self.p.c.clone();
            let done = batch.done;
            if tx.send(batch).is_err() || done {
                return; // the caller went away (stopped iterating), or the input ended
            }
        }
    }
}

/// One capture being analyzed, handed out flow by flow as flows finish.
pub struct FileAnalysis {
    pub path: String,
    pub c: Counters,
    /// Finished flows not yet taken by the caller, in the order the table let them go.
    ready: VecDeque<Flow>,
    keep_rows: RowFilter,
    /// Rows of the flows whose rows were asked for (for `--flow N`), by flow number.
    pub kept: HashMap<u64, Value>,
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    finished: bool,
}

impl FileAnalysis {
    /// Open `path` ("-" is standard input). A file that cannot be opened or is not a capture is an
    /// analysis with `error` set and nothing else, so callers have one way to report it.
    pub fn open(path: &str, opts: Options) -> FileAnalysis {
        let mut fa = FileAnalysis {
            path: path.to_string(),
            c: Counters::default(),
            ready: VecDeque::new(),
            keep_rows: opts.table.keep_rows.clone(),
            kept: HashMap::new(),
            rx: None,
            worker: None,
            finished: false,
        };
        let opened = if path == "-" {
            Reader::new(std::io::stdin(), path, None).map(Input::Stdin)
        } else {
            Reader::open(path).map(Input::File)
        };
        let input = match opened {
            Ok(r) => r,
            Err(e) => {
                fa.c.error = Some(e.to_string());
                fa.finished = true;
                return fa;
            }
        };
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let path_owned = path.to_string();
        let spawned = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                // The flow table is built on the worker's thread: flows never cross threads.
                let worker = Worker {
                    input,
                    p: Pipeline::new(&opts),
                    path: path_owned,
                };
                worker.run(tx);
            });
        match spawned {
            Ok(handle) => {
                fa.rx = Some(rx);
                fa.worker = Some(handle);
            }
            Err(e) => {
                fa.c.error = Some(format!("{path}: cannot start the engine's thread: {e}"));
                fa.finished = true;
            }
        }
        fa
    }

    pub fn flow_count(&self) -> u64 {
        self.c.flow_count
    }
    pub fn evicted(&self) -> u64 {
        self.c.evicted
    }
    /// A fault stopped the reading, or some frame was malformed.
    pub fn damaged(&self) -> bool {
        self.c.error.is_some() || self.c.skipped[MALFORMED] > 0
    }
    pub fn done(&self) -> bool {
        self.finished
    }
    /// Bytes of the file read so far (for a progress line).
    pub fn offset(&self) -> u64 {
        self.c.offset
    }

    /// Take the worker's next batch (waiting for it); false once the input has ended.
    /// A panic in the worker (an engine bug) is raised again here, naming the frame.
    pub fn step(&mut self) -> bool {
        if self.finished {
            return false;
        }
        let got = self.rx.as_ref().and_then(|rx| rx.recv().ok());
        let Some(batch) = got else {
            self.finished = true;
            if let Some(h) = self.worker.take() {
                let _ = h.join();
            }
            panic!(
                "the engine's worker thread ended without finishing {}",
                self.path
            );
        };
        self.ready.extend(batch.flows);
        self.c = batch.counters;
        if batch.done {
            self.finished = true;
            self.rx = None;
            if let Some(h) = self.worker.take() {
                let _ = h.join();
            }
            if let Some(msg) = batch.panic {
                panic!("{}", msg);
            }
        }
        !self.finished
    }

    /// The next finished flow, reading on as needed; None at the end of the capture. The rows of a
    /// flow whose rows were asked for are kept (`kept`) as it passes.
    pub fn next_flow(&mut self) -> Option<Flow> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                if self.keep_rows.keeps(f.number) {
                    self.kept.insert(f.number, crate::rows::rows_value(&f));
                }
                return Some(f);
            }
            if self.finished {
                return None;
            }
            self.step();
        }
    }

    /// Write up to `max_flows` finished flows' records as text lines, reading on as needed; the
    /// number written (0: the capture has ended). JSON Lines go straight from the flow to the text.
    pub fn write_records(&mut self, format: Format, max_flows: usize, out: &mut String) -> usize {
        let mut n = 0;
        while n < max_flows {
            let Some(flow) = self.next_flow() else {
                break;
            };
            match format {
                Format::Jsonl => flow.emit(&mut JsonWriter::new(out)),
                Format::Csv => write_csv_row(&flow.record(), out),
            }
            out.push('\n');
            n += 1;
        }
        n
    }

    /// The next finished flow's record (see `next_flow`).
    pub fn next_record(&mut self) -> Option<Value> {
        self.next_flow().map(|f| f.record())
    }
}

impl Drop for FileAnalysis {
    fn drop(&mut self) {
        // Dropping the receiver makes the worker's next send fail: it stops at its next batch.
        self.rx = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}
