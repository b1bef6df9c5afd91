//! `_engine.Live`: a live capture read and analyzed on the engine's own thread (src/live.rs).
//! Python polls it for what to print: transition events and JSON Lines text, in batches.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::{options, skipped_dict, to_py, EngineError};
use crate::flows::RowFilter;
use crate::live::{Live as Reader, LiveOptions, Shared};
use crate::record::Value;

/// Finished flows written as JSON Lines per `poll`: bounds the text (and its Python copy) in flight.
const JSONL_CHUNK: usize = 1024;

/// Reads the capture socket `fd` (set up by handshake_probe.live.capture.LiveCapture: filter
/// attached, bound; the engine reads a duplicate of it) on a thread that never holds the GIL, and
/// runs every frame through the same pipeline as a file. `poll` hands over the transitions and
/// the finished flows (JSON Lines text, with `jsonl`) since the last call; `stop` ends the capture
/// once the packets the kernel queued before it are read; `last()` is the last `keep_last`
/// finished flows' records once done.
#[pyclass(unsendable, module = "handshake_probe._engine")]
pub struct Live {
    inner: Reader,
}

impl Live {
    fn check(&self) -> PyResult<()> {
        match self.inner.with(|s| s.panic.clone()) {
            Some(msg) => Err(EngineError::new_err(format!("internal error at {msg}"))),
            None => Ok(()),
        }
    }
    fn get<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        self.inner.with(f)
    }
}

#[pymethods]
impl Live {
    #[new]
    #[pyo3(signature = (fd, linktype, *, snaplen=262144, loopback=false, count=None, write=None,
        jsonl=false, events=true, keep_last=50, ring=true, msl=crate::flows::DEFAULT_MSL,
        linger=crate::flows::DEFAULT_LINGER, idle_timeout=crate::flows::DEFAULT_IDLE_TIMEOUT,
        max_open=crate::flows::DEFAULT_MAX_OPEN, check_checksums=false, p0f_db=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        fd: i32,
        linktype: u32,
        snaplen: u32,
        loopback: bool,
        count: Option<u64>,
        write: Option<(i32, String)>,
        jsonl: bool,
        events: bool,
        keep_last: usize,
        ring: bool,
        msl: f64,
        linger: f64,
        idle_timeout: f64,
        max_open: usize,
        check_checksums: bool,
        p0f_db: Option<&str>,
    ) -> PyResult<Self> {
        let analysis = options(
            msl,
            linger,
            idle_timeout,
            max_open,
            true, // streaming: finished flows leave memory, as in `analyze`
            RowFilter::None,
            events,
            check_checksums,
            super::p0f_db(p0f_db)?, // p0f.fp text: OS labels as `analyze --p0f-db` gives them
        );
        let opts = LiveOptions {
            linktype,
            snaplen,
            drop_outgoing: loopback,
            count,
            write,
            jsonl,
            events,
            keep_last,
            ring,
            analysis,
        };
        // An OSError (errno and message) for a descriptor or file that cannot be used.
        Ok(Live {
            inner: Reader::start(fd, opts)?,
        })
    }

    /// Wait up to `timeout` seconds for something to print; returns (events, jsonl bytes): the
    /// transitions (dicts, as Engine.feed returns them) since the last call and up to 1024
    /// finished flows' JSON Lines. Both empty and `done` true: the capture has ended.
    #[pyo3(signature = (timeout=0.2))]
    fn poll(&self, py: Python<'_>, timeout: f64) -> PyResult<(PyObject, PyObject)> {
        let wait = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        let inner = &self.inner;
        let (events, text) = py.allow_threads(|| {
            let (events, flows) = inner.wait(wait, |s| {
                let events: Vec<Value> = s
                    .events
                    .drain(..)
                    .map(|e| crate::rows::event_value(&e))
                    .collect();
                let n = s.ready.len().min(JSONL_CHUNK);
                (
                    events,
                    s.ready
                        .drain(..n)
                        .collect::<std::collections::VecDeque<_>>(),
                )
            });
            // The text is written here, on the caller's thread and outside the lock: the reader
            // thread goes on reading meanwhile.
            let mut flows = flows;
            let mut text = String::new();
            crate::live::write_jsonl(&mut flows, JSONL_CHUNK, &mut text);
            (events, text)
        });
        self.check()?;
        Ok((
            to_py(py, &Value::List(events))?,
            PyBytes::new(py, text.as_bytes()).into_any().unbind(),
        ))
    }

    /// End the capture: the reader still takes what the kernel queued up to now, then finishes
    /// every open flow (its records follow through `poll`).
    fn stop(&self) {
        self.inner.stop();
    }

    /// Wait for the reader thread to end (after `stop`, or `count` frames).
    fn join(&mut self, py: Python<'_>) -> PyResult<()> {
        let inner = &mut self.inner;
        py.allow_threads(|| inner.join());
        self.check()
    }

    /// The records of the last `keep_last` finished flows, oldest first.
    fn last(&self, py: Python<'_>) -> PyResult<PyObject> {
        let records: Vec<Value> = self.get(|s| s.last.iter().map(|f| f.record()).collect());
        to_py(py, &Value::List(records))
    }

    #[getter]
    fn done(&self) -> bool {
        self.get(|s| s.done)
    }
    #[getter]
    fn frames(&self) -> u64 {
        self.get(|s| s.counters.frames)
    }
    #[getter]
    fn segments(&self) -> u64 {
        self.get(|s| s.counters.segments)
    }
    #[getter]
    fn skipped<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let counts = self.get(|s| s.counters.skipped);
        skipped_dict(py, &counts)
    }
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.get(|s| s.counters.warnings.clone())
    }
    #[getter]
    fn flow_count(&self) -> u64 {
        self.get(|s| s.counters.flow_count)
    }
    #[getter]
    fn evicted(&self) -> u64 {
        self.get(|s| s.counters.evicted)
    }
    #[getter]
    fn violations(&self) -> u64 {
        self.get(|s| s.counters.violations)
    }
    /// Flows still in the table (open, or ended and lingering).
    #[getter]
    fn open_flows(&self) -> usize {
        self.get(|s| s.open_flows)
    }
    /// The kernel's PACKET_STATISTICS, summed: packets the filter passed (dropped ones included).
    #[getter]
    fn received(&self) -> u64 {
        self.get(|s| s.received)
    }
    /// Packets the kernel dropped because the socket's queue was full.
    #[getter]
    fn dropped(&self) -> u64 {
        self.get(|s| s.dropped)
    }
    /// Transitions not handed to `poll` because the printer fell MAX_PENDING_EVENTS behind.
    #[getter]
    fn events_dropped(&self) -> u64 {
        self.get(|s| s.events_dropped)
    }
    /// Finished flows by close kind (CLOSE_KINDS), only the kinds that occurred.
    #[getter]
    fn closes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let counts = self.get(|s| s.closes);
        let d = PyDict::new(py);
        for (name, n) in crate::flow::CLOSE_KINDS.iter().zip(counts) {
            if n > 0 {
                d.set_item(*name, n)?;
            }
        }
        Ok(d)
    }
    /// "tpacket-v3" (a ring mapped from the kernel) or "recvmmsg": how the packets were read.
    #[getter]
    fn reader(&self) -> &'static str {
        if self.get(|s| s.ring) {
            "tpacket-v3"
        } else {
            "recvmmsg"
        }
    }
    /// Why the capture stopped early (the socket or the pcap file failed), or None.
    #[getter]
    fn error(&self) -> Option<String> {
        self.get(|s| s.error.clone())
    }
}
