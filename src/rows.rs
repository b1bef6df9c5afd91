//! Per-segment rows of a kept flow (for `analyze --flow N` and the ladder): each segment with both
//! endpoints' states after it, the transitions it caused and the notes the analyses attached.
//! Relative sequence numbers use each side's final origin (ISN, or first seq - 1), as Wireshark does.

use crate::flow::{Flow, Transition};
use crate::flows::Event;
use crate::record::{Fields, Value};
use crate::segment::{flag_names, tcpdump_flags, ACK, SYN};

pub fn transition_value(t: &Transition) -> Value {
    Value::Obj(vec![
        ("ts", t.ts.into()),
        ("frame", t.frame.into()),
        ("endpoint", t.endpoint.name().into()),
        ("from", t.from.name().into()),
        ("to", t.to.name().into()),
        ("cause", t.cause.name().into()),
    ])
}

/// The rows as a list of objects, or an empty list when the flow kept none.
pub fn rows_value(flow: &Flow) -> Value {
    let Some(rows) = flow.rows.as_ref() else {
        return Value::List(Vec::new());
    };
    let rel = |v: u32, base: Option<u32>| base.map(|b| v.wrapping_sub(b));
    Value::List(
        rows.iter()
            .map(|row| {
                let seg = &row.seg;
                let (snd, rcv) = if row.from_client {
                    (&flow.client, &flow.server)
                } else {
                    (&flow.server, &flow.client)
                };
                let has_ack = seg.flags & ACK != 0;
                // tshark's calculated window (tcp.window_size): the header value shifted by the
                // sender's scale once both SYNs offered scaling, never on a SYN (RFC 7323 §2.2);
                // the raw value where the handshake was not seen or scaling is not in effect.
                let shift = if seg.flags & SYN != 0 {
                    None
                } else {
                    flow.negotiation
                        .as_ref()
                        .and_then(|n| n.scale_of(row.from_client))
                };
                let scaled = u64::from(seg.window) << shift.unwrap_or(0);
                let fields: Fields = vec![
                    ("frame", seg.frame.into()),
                    ("ts", seg.ts.into()),
                    ("from_client", row.from_client.into()),
                    ("flags", seg.flags.into()),
                    ("tcpdump_flags", tcpdump_flags(seg.flags).into()),
                    ("flag_names", flag_names(seg.flags).into()),
                    ("seq", seg.seq.into()),
                    ("ack", if has_ack { seg.ack.into() } else { Value::Null }),
                    ("rel_seq", rel(seg.seq, snd.base).into()),
                    (
                        "rel_ack",
                        if has_ack {
                            rel(seg.ack, rcv.base).into()
                        } else {
                            Value::Null
                        },
                    ),
                    ("len", seg.payload_len.into()),
                    ("window", seg.window.into()),
                    ("window_scale", shift.map(u16::from).into()),
                    ("window_scaled", scaled.into()),
                    (
                        "syn_options",
                        if seg.flags & SYN != 0 {
                            crate::negotiation::offer_text(&seg.options, seg.flags, seg.payload_len)
                                .into()
                        } else {
                            Value::Null
                        },
                    ),
                    ("client_state", row.client_state.name().into()),
                    ("server_state", row.server_state.name().into()),
                    (
                        "transitions",
                        Value::List(row.transitions.iter().map(transition_value).collect()),
                    ),
                    (
                        "notes",
                        Value::List(row.notes.iter().map(|n| n.clone().into()).collect()),
                    ),
                ];
                Value::Obj(fields)
            })
            .collect(),
    )
}

/// A live transition event: the flow's number and ends, then the transition's fields.
pub fn event_value(e: &Event) -> Value {
    let Value::Obj(mut fields) = transition_value(&e.transition) else {
        return Value::Null;
    };
    let mut out: Fields = Vec::with_capacity(3 + fields.len());
    out.push(("flow", e.flow.into()));
    out.push(("client", e.client.clone().into()));
    out.push(("server", e.server.clone().into()));
    out.append(&mut fields);
    Value::Obj(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Role;
    use crate::record::write_json;
    use crate::states::{Cue, State};

    #[test]
    fn event_names_flow_and_ends_before_the_transition() {
        let e = Event {
            flow: 3,
            client: "127.0.0.1:40452".into(),
            server: "127.0.0.1:8080".into(),
            transition: Transition {
                ts: 1.5,
                frame: Some(7),
                endpoint: Role::Client,
                from: State::Closed,
                to: State::SynSent,
                cause: Cue::SndSyn,
            },
        };
        let mut out = String::new();
        write_json(&event_value(&e), &mut out);
        assert_eq!(
            out,
            r#"{"flow":3,"client":"127.0.0.1:40452","server":"127.0.0.1:8080","ts":1.5,"frame":7,"endpoint":"client","from":"CLOSED","to":"SYN-SENT","cause":"snd SYN"}"#
        );
    }
}
