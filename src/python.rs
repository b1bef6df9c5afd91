//! The boundary: the only module PyO3 sees. Records, rows, events and the vocabulary cross it;
//! nothing else does. Built with the `python` feature (maturin sets it).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::states::{rows, ALL_CUES, ALL_STATES};

/// The vocabulary, defined once in the engine and exported: state names, cues, the transition table.
fn add_vocabulary(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let states = PyList::new(py, ALL_STATES.iter().map(|s| s.name()))?;
    m.add("STATES", states)?;
    let cues = PyList::new(py, ALL_CUES.iter().map(|c| c.name()))?;
    m.add("CUES", cues)?;
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
    Ok(())
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_vocabulary(m)?;
    Ok(())
}
