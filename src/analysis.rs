//! A capture file through the engine: frames -> decode -> flow table -> finished flows, with the
//! counters and faults a user is told about. Analysis never fails for bad input: a fault is kept in
//! `error` (one line: file, byte offset, frame) and everything before it is still reported.

use std::collections::HashMap;

use crate::decode::{Decoded, Decoder, Skip};
use crate::flow::Flow;
use crate::flows::{FlowTable, ObserverFactory, RowFilter, TableOptions};
use crate::observe::Observer;
use crate::pcap::{where_, Reader};
use crate::record::Value;

/// Per file; the rest are counted, not printed.
pub const MAX_FRAME_WARNINGS: usize = 10;
/// Frames between two looks at the finished-flow queue (and progress reports).
const BATCH: usize = 4096;

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

/// One capture being analyzed, step by step, so the caller can hand out finished flows as they come.
pub struct FileAnalysis {
    pub path: String,
    reader: Option<Input>,
    table: FlowTable,
    decoder: Decoder,
    pub frames: u64,
    pub segments: u64,
    pub skipped: [u64; SKIP_REASONS.len()],
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub violations: u64,
    /// Records of finished flows not yet taken by the caller, in the order the table let them go.
    ready: std::collections::VecDeque<Value>,
    /// Flows whose rows were asked for, kept whole once finished (for `--flow N`).
    pub kept: HashMap<u64, Flow>,
    keep_rows: RowFilter,
    finished: bool,
}

impl FileAnalysis {
    /// Open `path` ("-" is standard input). A file that cannot be opened or is not a capture is an
    /// analysis with `error` set and nothing else, so callers have one way to report it.
    pub fn open(path: &str, opts: Options) -> FileAnalysis {
        let keep_rows = opts.table.keep_rows.clone();
        let table = FlowTable::new(opts.table, default_observers(opts.check_checksums));
        let mut fa = FileAnalysis {
            path: path.to_string(),
            reader: None,
            table,
            decoder: Decoder::new(opts.check_checksums),
            frames: 0,
            segments: 0,
            skipped: [0; SKIP_REASONS.len()],
            warnings: Vec::new(),
            error: None,
            violations: 0,
            ready: Default::default(),
            kept: HashMap::new(),
            keep_rows,
            finished: false,
        };
        let opened = if path == "-" {
            Reader::new(std::io::stdin(), path, None).map(Input::Stdin)
        } else {
            Reader::open(path).map(Input::File)
        };
        match opened {
            Ok(r) => fa.reader = Some(r),
            Err(e) => {
                fa.error = Some(e.to_string());
                fa.finish_table();
            }
        }
        fa
    }

    pub fn flow_count(&self) -> u64 {
        self.table.count
    }
    pub fn evicted(&self) -> u64 {
        self.table.evicted
    }
    /// A fault stopped the reading, or some frame was malformed.
    pub fn damaged(&self) -> bool {
        self.error.is_some() || self.skipped[MALFORMED] > 0
    }
    pub fn done(&self) -> bool {
        self.finished
    }
    /// Bytes of the file read so far (for a progress line).
    pub fn offset(&self) -> u64 {
        self.reader.as_ref().map_or(0, |r| r.offset())
    }

    fn warn(&mut self, line: String) {
        if self.warnings.len() < MAX_FRAME_WARNINGS {
            self.warnings.push(line);
        }
    }

    /// Read and analyze up to `max_frames` frames; at the end of input, finish the table.
    pub fn step(&mut self, max_frames: usize) {
        let Some(reader) = self.reader.as_mut() else {
            return;
        };
        // Warning lines in the order they arise: a record's reader warning (cut to the snaplen)
        // before its decode warning, as the Python reference and a reader of the log expect.
        let mut lines: Vec<String> = Vec::new();
        let mut fault: Option<String> = None;
        let mut at_end = false;
        for _ in 0..max_frames {
            let malformed = match reader.next_frame() {
                Ok(Some(f)) => {
                    self.frames += 1;
                    match self
                        .decoder
                        .decode(f.data, f.linktype, f.ts, f.frame, Some(f.wirelen))
                    {
                        Ok(Decoded::Segment(seg)) => {
                            self.segments += 1;
                            self.table.add(seg);
                            if self.decoder.has_extra() {
                                for seg in self.decoder.take_extra() {
                                    self.segments += 1;
                                    self.table.add(seg);
                                }
                            }
                            None
                        }
                        Ok(Decoded::Skip(why)) => {
                            self.skipped[skip_index(why)] += 1;
                            None
                        }
                        Err(err) => {
                            self.skipped[MALFORMED] += 1;
                            Some(format!(
                                "{}: {}: {}; frame skipped",
                                self.path,
                                where_(f.offset, Some(f.frame)),
                                err
                            ))
                        }
                    }
                }
                Ok(None) => {
                    at_end = true;
                    None
                }
                Err(e) => {
                    fault = Some(e.to_string());
                    at_end = true;
                    None
                }
            };
            lines.extend(reader.take_warnings());
            lines.extend(malformed);
            if at_end {
                break;
            }
        }
        for w in lines {
            self.warn(w);
        }
        if fault.is_some() {
            self.error = fault;
        }
        self.collect();
        if at_end {
            self.reader = None;
            self.finish_table();
        }
    }

    fn finish_table(&mut self) {
        let rest = self.table.finish();
        self.collect();
        for flow in rest {
            self.take(flow);
        }
        self.finished = true;
    }

    fn collect(&mut self) {
        let done: Vec<Flow> = self.table.drain_finished().collect();
        for flow in done {
            self.take(flow);
        }
    }

    fn take(&mut self, flow: Flow) {
        self.violations += flow.violation_count;
        self.ready.push_back(flow.record());
        if self.keep_rows.keeps(flow.number) {
            self.kept.insert(flow.number, flow);
        }
    }

    /// The next finished flow's record, reading on as needed; None at the end of the capture.
    pub fn next_record(&mut self) -> Option<Value> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                return Some(f);
            }
            if self.finished {
                return None;
            }
            self.step(BATCH);
        }
    }
}
