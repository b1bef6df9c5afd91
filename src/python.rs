//! The boundary: the only module PyO3 sees. Records, rows, events and the vocabulary cross it;
//! nothing else does. Built with the `python` feature (maturin sets it).
//!
//! A Rust panic must never reach a user as a traceback: every entry point runs under
//! `catch_unwind` and turns a panic into `EngineError` naming the file and the frame.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::analysis::{FileAnalysis, Options, SKIP_REASONS};
use crate::flows::{RowFilter, TableOptions};
use crate::record::{write_csv_cell, Value};
use crate::states::{rows, ALL_CUES, ALL_STATES};

#[cfg(target_os = "linux")]
mod live;

create_exception!(
    handshake_probe._engine,
    EngineError,
    PyException,
    "An internal error of the engine (a bug): never bad input."
);

fn guard<T>(what: impl FnOnce() -> String, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(EngineError::new_err(format!(
                "internal error at {}: {}",
                what(),
                msg
            )))
        }
    }
}

/// A record value as Python objects: dicts keep the contract's key order.
fn to_py(py: Python<'_>, v: &Value) -> PyResult<PyObject> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Static(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Obj(fields) => {
            let d = PyDict::new(py);
            for (k, item) in fields {
                d.set_item(*k, to_py(py, item)?)?;
            }
            d.into_any().unbind()
        }
    })
}

fn row_filter(keep_rows: Option<&Bound<'_, PyAny>>) -> PyResult<RowFilter> {
    let Some(obj) = keep_rows else {
        return Ok(RowFilter::None);
    };
    if obj.is_none() {
        return Ok(RowFilter::None);
    }
    if let Ok(b) = obj.extract::<bool>() {
        return Ok(if b { RowFilter::All } else { RowFilter::None });
    }
    let numbers: Vec<u64> = obj.extract()?;
    Ok(RowFilter::Set(numbers.into_iter().collect()))
}

#[allow(clippy::too_many_arguments)]
fn options(
    msl: f64,
    linger: f64,
    idle_timeout: f64,
    max_open: usize,
    streaming: bool,
    keep_rows: RowFilter,
    events: bool,
    check_checksums: bool,
    p0f_db: Option<std::sync::Arc<crate::p0f::Db>>,
) -> Options {
    Options {
        table: TableOptions {
            msl,
            linger,
            idle_timeout,
            max_open,
            streaming,
            keep_rows,
            events,
            p0f_db,
        },
        check_checksums,
    }
}

/// p0f.fp text (`p0f_db=`) parsed, or ValueError naming the line.
fn p0f_db(text: Option<&str>) -> PyResult<Option<std::sync::Arc<crate::p0f::Db>>> {
    match text {
        None => Ok(None),
        Some(t) => crate::p0f::Db::parse(t)
            .map(|db| Some(std::sync::Arc::new(db)))
            .map_err(pyo3::exceptions::PyValueError::new_err),
    }
}

/// The number of TCP signatures in p0f.fp text; ValueError naming the line when p0f's parser would
/// refuse it (`--p0f-db` checks its file with this before any analysis).
#[pyfunction]
fn p0f_db_signatures(text: &str) -> PyResult<usize> {
    crate::p0f::Db::parse(text)
        .map(|db| db.len())
        .map_err(pyo3::exceptions::PyValueError::new_err)
}

/// One capture file through the engine. Iterating yields flow records (dicts, the JSON contract) as
/// flows finish (streaming) or all in flow order at the end; the counters are final once exhausted.
#[pyclass(unsendable, module = "handshake_probe._engine")]
struct Analysis {
    inner: FileAnalysis,
    /// `chunk`'s text, kept between calls: its capacity grows once to a chunk's size, not per chunk
    text: String,
}

impl Analysis {
    /// Where a panic would have happened, for the internal-error line: file and next frame.
    fn at(&self) -> String {
        format!("{}: frame {}", self.inner.path, self.inner.c.frames + 1)
    }
}

#[pymethods]
impl Analysis {
    #[new]
    #[pyo3(signature = (path, *, msl=crate::flows::DEFAULT_MSL, linger=crate::flows::DEFAULT_LINGER,
        idle_timeout=crate::flows::DEFAULT_IDLE_TIMEOUT, max_open=crate::flows::DEFAULT_MAX_OPEN,
        streaming=true, keep_rows=None, check_checksums=false, p0f_db=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        path: &str,
        msl: f64,
        linger: f64,
        idle_timeout: f64,
        max_open: usize,
        streaming: bool,
        keep_rows: Option<&Bound<'_, PyAny>>,
        check_checksums: bool,
        p0f_db: Option<&str>,
    ) -> PyResult<Self> {
        let filter = row_filter(keep_rows)?;
        let db = self::p0f_db(p0f_db)?;
        let opts = options(
            msl,
            linger,
            idle_timeout,
            max_open,
            streaming,
            filter,
            false,
            check_checksums,
            db,
        );
        guard(
            || path.to_string(),
            || {
                Ok(Analysis {
                    inner: FileAnalysis::open(path, opts),
                    text: String::new(),
                })
            },
        )
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        let at = self.at();
        let inner = &mut self.inner;
        // Without the GIL while waiting for the engine's thread: a Python thread may be the one
        // feeding the pipe the engine reads.
        let rec = py.allow_threads(|| guard(|| at, || Ok(inner.next_record())))?;
        rec.map(|r| to_py(py, &r)).transpose()
    }

    /// Up to `max_flows` finished records written as JSON Lines or CSV rows (bytes), None at the end.
    /// The engine writes the text itself: no Python object per flow on the fast path.
    #[pyo3(signature = (fmt, max_flows=1024))]
    fn chunk(&mut self, py: Python<'_>, fmt: &str, max_flows: usize) -> PyResult<Option<PyObject>> {
        let format = match fmt {
            "jsonl" => crate::analysis::Format::Jsonl,
            "csv" => crate::analysis::Format::Csv,
            _ => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "no chunk format {fmt}"
                )))
            }
        };
        let at = self.at();
        let (inner, text) = (&mut self.inner, &mut self.text);
        text.clear();
        text.reserve(1 << 20);
        py.allow_threads(|| {
            guard(
                || at,
                || {
                    inner.write_records(format, max_flows, text);
                    Ok(())
                },
            )
        })?;
        let text = &self.text;
        if text.is_empty() && self.inner.done() {
            return Ok(None);
        }
        Ok(Some(PyBytes::new(py, text.as_bytes()).into_any().unbind()))
    }

    /// Take the next batch of analyzed frames from the engine's thread (the worker sets the batch size;
    /// `max_frames` is kept for callers that pass it); True once the input ended. For a progress line.
    #[pyo3(signature = (max_frames=65536))]
    fn advance(&mut self, py: Python<'_>, max_frames: usize) -> PyResult<bool> {
        let at = self.at();
        let inner = &mut self.inner;
        py.allow_threads(|| {
            guard(
                || at,
                || {
                    let _ = max_frames; // the worker thread sets the pace: one batch per call
                    inner.step();
                    Ok(inner.done())
                },
            )
        })
    }

    /// The kept flow `number`'s segments with both endpoints' states after each (for `--flow N`),
    /// or None when that flow's rows were not kept or it does not exist.
    fn rows(&self, py: Python<'_>, number: u64) -> PyResult<Option<PyObject>> {
        match self.inner.kept.get(&number) {
            Some(rows) => to_py(py, rows).map(Some),
            None => Ok(None),
        }
    }

    /// `rows(number)`, then forgotten: a caller that reads each kept flow's rows once (the HTML report
    /// of a whole capture) holds one flow's rows at a time, not every flow's.
    fn take_rows(&mut self, py: Python<'_>, number: u64) -> PyResult<Option<PyObject>> {
        match self.inner.kept.remove(&number) {
            Some(rows) => to_py(py, &rows).map(Some),
            None => Ok(None),
        }
    }

    #[getter]
    fn path(&self) -> &str {
        &self.inner.path
    }
    #[getter]
    fn frames(&self) -> u64 {
        self.inner.c.frames
    }
    #[getter]
    fn segments(&self) -> u64 {
        self.inner.c.segments
    }
    /// reason -> count, only the reasons that occurred.
    #[getter]
    fn skipped<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        skipped_dict(py, &self.inner.c.skipped)
    }
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.c.warnings.clone()
    }
    #[getter]
    fn error(&self) -> Option<String> {
        self.inner.c.error.clone()
    }
    #[getter]
    fn flow_count(&self) -> u64 {
        self.inner.flow_count()
    }
    #[getter]
    fn evicted(&self) -> u64 {
        self.inner.evicted()
    }
    #[getter]
    fn violations(&self) -> u64 {
        self.inner.c.violations
    }
    #[getter]
    fn damaged(&self) -> bool {
        self.inner.damaged()
    }
    #[getter]
    fn done(&self) -> bool {
        self.inner.done()
    }
    #[getter]
    fn offset(&self) -> u64 {
        self.inner.offset()
    }
}

/// The engine for frames that arrive one by one (live capture, the prober): `feed` decodes a frame,
/// runs it through the flow table and returns the transitions it caused (final when emitted);
/// finished flows' records are collected by `finished()`, the rest by `finish()`.
#[pyclass(unsendable, module = "handshake_probe._engine")]
struct Engine {
    linktype: u32,
    p: crate::analysis::Pipeline,
    kept: std::collections::HashMap<u64, crate::flow::Flow>,
    keep_rows: RowFilter,
    ready: Vec<Value>,
}

impl Engine {
    fn take(&mut self, flow: crate::flow::Flow) {
        self.ready.push(flow.record());
        if self.keep_rows.keeps(flow.number) {
            self.kept.insert(flow.number, flow);
        }
    }
    fn drain_events(&mut self) -> Vec<Value> {
        self.p
            .table
            .drain_events()
            .map(|e| crate::rows::event_value(&e))
            .collect()
    }
    fn collect(&mut self) {
        let mut done = Vec::new();
        self.p.finished(&mut done);
        for f in done {
            self.take(f);
        }
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (linktype, *, msl=crate::flows::DEFAULT_MSL, linger=crate::flows::DEFAULT_LINGER,
        idle_timeout=crate::flows::DEFAULT_IDLE_TIMEOUT, max_open=crate::flows::DEFAULT_MAX_OPEN,
        streaming=false, keep_rows=None, check_checksums=false, p0f_db=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        linktype: u32,
        msl: f64,
        linger: f64,
        idle_timeout: f64,
        max_open: usize,
        streaming: bool,
        keep_rows: Option<&Bound<'_, PyAny>>,
        check_checksums: bool,
        p0f_db: Option<&str>,
    ) -> PyResult<Self> {
        let filter = row_filter(keep_rows)?;
        let db = self::p0f_db(p0f_db)?;
        let opts = options(
            msl,
            linger,
            idle_timeout,
            max_open,
            streaming,
            filter.clone(),
            true,
            check_checksums,
            db,
        );
        Ok(Engine {
            linktype,
            p: crate::analysis::Pipeline::new(&opts),
            kept: Default::default(),
            keep_rows: filter,
            ready: Vec::new(),
        })
    }

    /// One frame: returns the transitions it caused, as dicts (flow, client, server, ts, frame,
    /// endpoint, from, to, cause). A malformed frame is counted and named in `warnings`.
    /// `frame`: its number where the edge numbers frames itself (the prober, as in the pcap it
    /// writes); by default the count of frames fed so far, this one included.
    #[pyo3(signature = (data, ts, wirelen=None, frame=None))]
    fn feed(
        &mut self,
        py: Python<'_>,
        data: &[u8],
        ts: f64,
        wirelen: Option<u32>,
        frame: Option<u64>,
    ) -> PyResult<PyObject> {
        let frame = frame.unwrap_or(self.p.c.frames + 1);
        let events = guard(
            || format!("frame {frame}"),
            || {
                if let Some(err) = self.p.frame(data, self.linktype, ts, frame, wirelen) {
                    self.p.warn(format!("frame {frame}: {err}; frame skipped"));
                }
                let events = self.drain_events();
                self.collect();
                Ok(events)
            },
        )?;
        to_py(py, &Value::List(events))
    }

    /// Records of the flows finished since the last call (streaming mode).
    fn finished(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        let ready = std::mem::take(&mut self.ready);
        to_py(py, &Value::List(ready))
    }

    /// End of input: the 2MSL timers the capture outlived; returns every record not yet handed out,
    /// in flow order (non-streaming) or finishing order (streaming).
    fn finish(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        let mut rest = Vec::new();
        guard(
            || "finish".to_string(),
            || {
                self.p.finish(&mut rest);
                Ok(())
            },
        )?;
        for f in rest {
            self.take(f);
        }
        self.finished(py)
    }

    /// The transitions no frame handed out: those `finish` made (a held FIN decided at the end of
    /// input, the 2MSL timers the capture outlived), as `feed` returns them.
    fn events(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        let events = self.drain_events();
        to_py(py, &Value::List(events))
    }

    /// A kept flow's segments with both endpoints' states after each (as `Analysis.rows`), once
    /// the flow is finished; None when its rows were not kept or it has not finished.
    fn rows(&self, py: Python<'_>, number: u64) -> PyResult<Option<PyObject>> {
        match self.kept.get(&number) {
            Some(flow) => to_py(py, &crate::rows::rows_value(flow)).map(Some),
            None => Ok(None),
        }
    }

    #[getter]
    fn frames(&self) -> u64 {
        self.p.c.frames
    }
    #[getter]
    fn segments(&self) -> u64 {
        self.p.c.segments
    }
    #[getter]
    fn skipped<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        skipped_dict(py, &self.p.c.skipped)
    }
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.p.c.warnings.clone()
    }
    #[getter]
    fn flow_count(&self) -> u64 {
        self.p.table.count
    }
    /// Flows finished early because more than `max_open` were open (as Analysis.evicted).
    #[getter]
    fn evicted(&self) -> u64 {
        self.p.table.evicted
    }
    #[getter]
    fn violations(&self) -> u64 {
        self.p.c.violations
    }
}

fn skipped_dict<'py>(
    py: Python<'py>,
    counts: &[u64; SKIP_REASONS.len()],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, n) in SKIP_REASONS.iter().zip(counts) {
        if *n > 0 {
            d.set_item(*name, n)?;
        }
    }
    Ok(d)
}

create_exception!(
    handshake_probe._engine,
    DecodeError,
    pyo3::exceptions::PyValueError,
    "A malformed frame: args are (offset, reason)."
);
create_exception!(
    handshake_probe._engine,
    CaptureError,
    PyException,
    "A file-level fault: str() is the one-line message."
);

/// A decoded segment as a dict (the fields of the engine's Segment), for tests and the prober.
fn segment_value(seg: &crate::segment::Segment) -> Value {
    let o = &seg.options;
    Value::Obj(vec![
        ("ts", seg.ts.into()),
        ("frame", seg.frame.into()),
        ("src", seg.src.text().into()),
        ("sport", seg.sport.into()),
        ("dst", seg.dst.text().into()),
        ("dport", seg.dport.into()),
        ("seq", seg.seq.into()),
        ("ack", seg.ack.into()),
        ("flags", seg.flags.into()),
        ("window", seg.window.into()),
        ("payload_len", seg.payload_len.into()),
        (
            "options",
            Value::Obj(vec![
                ("mss", o.mss.into()),
                ("wscale", o.wscale.map(u16::from).into()),
                ("sack_permitted", o.sack_permitted.into()),
                (
                    "sack",
                    Value::List(
                        o.sack
                            .iter()
                            .flatten()
                            .map(|(a, b)| Value::List(vec![(*a).into(), (*b).into()]))
                            .collect(),
                    ),
                ),
                ("ts_val", o.ts_val.into()),
                ("ts_ecr", o.ts_ecr.into()),
            ]),
        ),
        ("ip_version", u16::from(seg.ip_version).into()),
        ("checksum_ok", seg.checksum_ok.into()),
        (
            "tunnels",
            match &seg.tunnels {
                None => Value::Null,
                Some(path) => Value::List(path.iter().map(crate::tunnel::Tunnel::value).collect()),
            },
        ),
    ])
}

/// Decode one frame: a dict of the segment's fields, or the reason string it was skipped for
/// ("non-tcp", "fragment", "truncated", "unknown-link"); raises DecodeError(offset, reason).
#[pyfunction]
#[pyo3(signature = (data, linktype, ts=0.0, frame=1, wirelen=None, verify_checksum=false))]
fn decode(
    py: Python<'_>,
    data: &[u8],
    linktype: u32,
    ts: f64,
    frame: u64,
    wirelen: Option<u32>,
    verify_checksum: bool,
) -> PyResult<PyObject> {
    let out = guard(
        || format!("frame {frame}"),
        || {
            Ok(crate::decode::decode(
                data,
                linktype,
                ts,
                frame,
                wirelen,
                verify_checksum,
            ))
        },
    )?;
    match out {
        Ok(crate::decode::Decoded::Segment(seg)) => to_py(py, &segment_value(&seg)),
        Ok(crate::decode::Decoded::Skip(why)) => to_py(py, &Value::Static(why.name())),
        Err(e) => Err(DecodeError::new_err((e.offset, e.reason))),
    }
}

/// The frames of a capture file, undecoded: (frame, ts, linktype, data, wirelen, offset) tuples;
/// a fault raises CaptureError after the frames before it; reader warnings in `warnings`.
#[pyclass(unsendable, module = "handshake_probe._engine")]
struct Frames {
    reader: Option<crate::pcap::Reader<std::fs::File>>,
    #[pyo3(get)]
    warnings: Vec<String>,
}

#[pymethods]
impl Frames {
    #[new]
    fn new(path: &str) -> PyResult<Self> {
        match crate::pcap::Reader::open(path) {
            Ok(r) => Ok(Frames {
                reader: Some(r),
                warnings: Vec::new(),
            }),
            Err(e) => Err(CaptureError::new_err(e.to_string())),
        }
    }
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let item = match reader.next_frame() {
            Ok(Some(f)) => Some(
                (
                    f.frame,
                    f.ts,
                    f.linktype,
                    PyBytes::new(py, f.data),
                    f.wirelen,
                    f.offset,
                )
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
            ),
            Ok(None) => None,
            Err(e) => {
                self.warnings.extend(reader.take_warnings());
                self.reader = None;
                return Err(CaptureError::new_err(e.to_string()));
            }
        };
        self.warnings.extend(reader.take_warnings());
        if item.is_none() {
            self.reader = None;
        }
        Ok(item)
    }
}

/// tcpdump's flag letters for a flags field (`S.`, `FP.`, `R`): the one spelling, for edges that
/// hold a decoded segment rather than a row (the prober's ladders and messages).
#[pyfunction]
fn tcpdump_flags(flags: u16) -> String {
    crate::segment::tcpdump_flags(flags)
}

/// CSV header row (the flat columns of `--format csv`).
#[pyfunction]
fn csv_header() -> String {
    let mut out = String::new();
    for (i, c) in crate::record::CSV_COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_csv_cell(&Value::Str((*c).to_string()), &mut out);
    }
    out
}

/// The vocabulary, defined once in the engine and exported: state names, cues, the transition table.
fn add_vocabulary(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add(
        "STATES",
        PyList::new(py, ALL_STATES.iter().map(|s| s.name()))?,
    )?;
    m.add("CUES", PyList::new(py, ALL_CUES.iter().map(|c| c.name()))?)?;
    let table = PyList::empty(py);
    for r in rows() {
        table.append((r.state.name(), r.cue.name(), r.next.name(), r.why))?;
    }
    m.add("TRANSITION_ROWS", table)?;
    let flags = PyDict::new(py);
    for (bit, name) in crate::segment::FLAG_NAMES {
        flags.set_item(name, bit)?;
    }
    m.add("FLAGS", flags)?;
    m.add("CLOSE_KINDS", PyList::new(py, crate::flow::CLOSE_KINDS)?)?;
    m.add("CONN_STATES", PyList::new(py, crate::zeek::CONN_STATES)?)?;
    m.add(
        "HANDSHAKE_STATUSES",
        PyList::new(py, crate::flow::HANDSHAKE_STATUSES)?,
    )?;
    m.add("DIRECTIONS", PyList::new(py, crate::flow::DIRECTIONS)?)?;
    m.add(
        "ANOMALY_KINDS",
        PyList::new(py, crate::anomalies::ANOMALY_KINDS)?,
    )?;
    m.add(
        "NEGOTIATION_WARNINGS",
        PyList::new(py, crate::negotiation::NEGOTIATION_WARNINGS)?,
    )?;
    m.add(
        "NEGOTIATION_FIELDS",
        PyList::new(py, crate::negotiation::NEGOTIATION_FIELDS)?,
    )?;
    m.add(
        "NEGOTIATION_SIDE_FIELDS",
        PyList::new(py, crate::negotiation::SIDE_FIELDS)?,
    )?;
    m.add(
        "NEGOTIATION_EFFECT_FIELDS",
        PyList::new(py, crate::negotiation::EFFECT_FIELDS)?,
    )?;
    m.add(
        "NEGOTIATION_OPTIONS",
        PyList::new(py, crate::negotiation::NEGOTIATION_OPTIONS)?,
    )?;
    m.add("CSV_COLUMNS", PyList::new(py, crate::record::CSV_COLUMNS)?)?;
    m.add("SKIP_REASONS", PyList::new(py, SKIP_REASONS)?)?;
    m.add(
        "TUNNEL_KINDS",
        PyList::new(py, crate::tunnel::TUNNEL_KINDS)?,
    )?;
    m.add("DEFAULT_MSL", crate::flows::DEFAULT_MSL)?;
    m.add("DEFAULT_LINGER", crate::flows::DEFAULT_LINGER)?;
    m.add("DEFAULT_IDLE_TIMEOUT", crate::flows::DEFAULT_IDLE_TIMEOUT)?;
    m.add("DEFAULT_MAX_OPEN", crate::flows::DEFAULT_MAX_OPEN)?;
    Ok(())
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_vocabulary(m)?;
    m.add_class::<Analysis>()?;
    m.add_class::<Engine>()?;
    #[cfg(target_os = "linux")]
    m.add_class::<live::Live>()?;
    m.add_function(wrap_pyfunction!(csv_header, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(p0f_db_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(tcpdump_flags, m)?)?;
    m.add_class::<Frames>()?;
    m.add("DecodeError", m.py().get_type::<DecodeError>())?;
    m.add("CaptureError", m.py().get_type::<CaptureError>())?;
    m.add("EngineError", m.py().get_type::<EngineError>())?;
    Ok(())
}
