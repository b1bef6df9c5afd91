//! Per-flow observers: analyses that ride along the state machines (Zeek history and conn_state,
//! tshark completeness, Wireshark-style anomalies). Each flow owns one instance of each.

use crate::record::Fields;
use crate::segment::Segment;

pub trait Observer {
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

    /// Fields added to the flow's record (part of the output contract: add, never rename).
    fn record(&self, out: &mut Fields);
}
