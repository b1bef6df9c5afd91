//! Per-flow observers: analyses that ride along the state machines (Zeek history and conn_state,
//! tshark completeness, Wireshark-style anomalies). Each flow owns one instance of each.

use crate::record::Emit;
use crate::segment::Segment;

/// `Send`: a finished flow, observers and all, moves from the engine's packet thread to the thread
/// that writes its record.
pub trait Observer: Send {
    /// Called after the state machines took `seg`. Pushes notes for this segment (e.g. anomaly labels),
    /// shown next to it by `analyze --flow N`; push nothing when there is nothing to say (the hot path).
    /// `reused_port`: the flow table started this flow on a 4-tuple that carried an earlier flow.
    fn on_segment(
        &mut self,
        seg: &Segment,
        from_client: bool,
        reused_port: bool,
        notes: &mut Vec<String>,
    );

    /// Fields added to the flow's record, each a `key` then its value (part of the output
    /// contract: add, never rename).
    fn record(&self, out: &mut dyn Emit);
}

/// The fields an observer adds to a record, as values (for tests and checks).
pub fn fields_of(observer: &dyn Observer) -> crate::record::Fields {
    use crate::record::{Value, ValueBuilder};
    let mut b = ValueBuilder::new();
    b.begin_obj();
    observer.record(&mut b);
    b.end_obj();
    match b.finish() {
        Value::Obj(fields) => fields,
        _ => Vec::new(),
    }
}
