//! RFC 9293 connection states and the transition table: everything that moves an endpoint lives here.
//!
//! Modelled on h11's `_state.py`: the machine *is* a table, `TRANSITIONS[(state, cue)] -> state`,
//! exported to Python as data (`handshake_probe.TRANSITIONS`) and drawn from the same rows in the docs.
//! A cue is what one endpoint did or saw: it *sent* (`Snd*`) or *received* (`Rcv*`) a kind of segment.
//! A `(state, cue)` pair missing from the table is a protocol violation for the caller to record.
//! Self-loops (retransmissions, plain data and ACKs) are rows too, so "missing" really means "illegal".

/// The eleven states of RFC 9293 §3.3.2, plus UNKNOWN: what the capture cannot tell (the state before
/// the capture began, or a silent peer whose reaction was never seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
    Unknown,
}

pub const ALL_STATES: [State; 12] = [
    State::Closed,
    State::Listen,
    State::SynSent,
    State::SynReceived,
    State::Established,
    State::FinWait1,
    State::FinWait2,
    State::CloseWait,
    State::Closing,
    State::LastAck,
    State::TimeWait,
    State::Unknown,
];

impl State {
    /// Spelled as the RFC spells them.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
            State::Unknown => "UNKNOWN",
        }
    }

    /// Both sides' sequence numbers are known (RFC 9293 §3.5.3 "synchronized").
    pub fn synchronized(self) -> bool {
        matches!(
            self,
            State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
                | State::Closing
                | State::LastAck
                | State::TimeWait
        )
    }

    /// The connection is over for this endpoint (used to split flows on port reuse).
    pub fn is_end(self) -> bool {
        matches!(self, State::Closed | State::TimeWait | State::Listen)
    }
}

/// What an endpoint sent or received, as far as the state machine cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cue {
    SndSyn,
    SndSynAck,
    /// any segment without SYN/FIN/RST: pure ACK, data, keep-alive
    SndAck,
    SndFin,
    SndRst,
    RcvSyn,
    /// a SYN-ACK whose ACK acknowledges our SYN
    RcvSynAck,
    /// acknowledges nothing that changes state (data, dup ACK)
    RcvAck,
    RcvAckOfSyn,
    RcvAckOfFin,
    RcvFin,
    /// only acceptable RSTs become this cue (RFC 9293 §3.10.7.4, §3.5.3)
    RcvRst,
    /// the TIME-WAIT timer, RFC 9293 §3.10.8
    Timeout2Msl,
    /// a new incarnation took the 4-tuple over (RFC 1122 §4.2.2.13)
    Reused,
}

pub const ALL_CUES: [Cue; 14] = [
    Cue::SndSyn,
    Cue::SndSynAck,
    Cue::SndAck,
    Cue::SndFin,
    Cue::SndRst,
    Cue::RcvSyn,
    Cue::RcvSynAck,
    Cue::RcvAck,
    Cue::RcvAckOfSyn,
    Cue::RcvAckOfFin,
    Cue::RcvFin,
    Cue::RcvRst,
    Cue::Timeout2Msl,
    Cue::Reused,
];

impl Cue {
    pub fn name(self) -> &'static str {
        match self {
            Cue::SndSyn => "snd SYN",
            Cue::SndSynAck => "snd SYN-ACK",
            Cue::SndAck => "snd ACK",
            Cue::SndFin => "snd FIN",
            Cue::SndRst => "snd RST",
            Cue::RcvSyn => "rcv SYN",
            Cue::RcvSynAck => "rcv SYN-ACK",
            Cue::RcvAck => "rcv ACK",
            Cue::RcvAckOfSyn => "rcv ACK of SYN",
            Cue::RcvAckOfFin => "rcv ACK of FIN",
            Cue::RcvFin => "rcv FIN",
            Cue::RcvRst => "rcv RST",
            Cue::Timeout2Msl => "2MSL timeout",
            Cue::Reused => "new SYN on the 4-tuple",
        }
    }
    pub fn is_send(self) -> bool {
        matches!(
            self,
            Cue::SndSyn | Cue::SndSynAck | Cue::SndAck | Cue::SndFin | Cue::SndRst
        )
    }
}

use Cue as C;
use State as S;

/// One row of the table: `(state, cue) -> next`, with where the rule comes from.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub state: State,
    pub cue: Cue,
    pub next: State,
    pub why: &'static str,
}

const fn row(state: State, cue: Cue, next: State, why: &'static str) -> Row {
    Row {
        state,
        cue,
        next,
        why,
    }
}

/// States in which plain data and ACKs never move the state (§3.10.7.4 seventh check).
const QUIET_SELF_LOOPS: [State; 7] = [
    S::Established,
    S::FinWait1,
    S::FinWait2,
    S::CloseWait,
    S::Closing,
    S::LastAck,
    S::TimeWait,
];

/// The explicit rows. Loops over state groups (plain ACKs, RSTs) are expanded by `rows()`.
const ROWS: &[Row] = &[
    // --- opening (RFC 9293 §3.3.2 figure 5; §3.5 figures 6-8) ---
    row(S::Closed, C::SndSyn, S::SynSent, "active OPEN (§3.10.1)"),
    row(
        S::Listen,
        C::SndSyn,
        S::SynSent,
        "SEND on a listening socket (§3.10.2)",
    ),
    row(
        S::Closed,
        C::RcvSyn,
        S::Closed,
        "nobody listening: answered by RST (§3.10.7.1)",
    ),
    row(
        S::Closed,
        C::SndRst,
        S::Closed,
        "the RST that answers a segment to a closed port (§3.10.7.1)",
    ),
    row(
        S::Closed,
        C::RcvAck,
        S::Closed,
        "stray segment to a closed port, answered by RST (§3.10.7.1)",
    ),
    row(
        S::Closed,
        C::RcvFin,
        S::Closed,
        "stray segment to a closed port (§3.10.7.1)",
    ),
    row(
        S::Closed,
        C::RcvRst,
        S::Closed,
        "an incoming RST is discarded in CLOSED (§3.10.7.1)",
    ),
    row(
        S::Listen,
        C::RcvSyn,
        S::SynReceived,
        "passive open (§3.10.7.2)",
    ),
    row(
        S::Listen,
        C::RcvRst,
        S::Listen,
        "an incoming RST should be ignored in LISTEN (§3.10.7.2)",
    ),
    row(
        S::Listen,
        C::RcvAck,
        S::Listen,
        "answered by RST, listener unchanged (§3.10.7.2)",
    ),
    row(S::Listen, C::SndRst, S::Listen, "that RST (§3.10.7.2)"),
    row(
        S::SynSent,
        C::SndSyn,
        S::SynSent,
        "SYN retransmission (§3.8.1)",
    ),
    row(
        S::SynSent,
        C::RcvSynAck,
        S::Established,
        "our SYN acked, theirs received (§3.10.7.3)",
    ),
    row(
        S::SynSent,
        C::RcvSyn,
        S::SynReceived,
        "simultaneous open (§3.5 figure 7)",
    ),
    row(
        S::SynReceived,
        C::SndSynAck,
        S::SynReceived,
        "the SYN-ACK itself and its retransmissions",
    ),
    row(
        S::SynReceived,
        C::RcvSyn,
        S::SynReceived,
        "retransmitted SYN (ours was not seen yet)",
    ),
    row(
        S::SynReceived,
        C::RcvAckOfSyn,
        S::Established,
        "§3.10.7.4 fifth check, SYN-RECEIVED",
    ),
    row(
        S::SynReceived,
        C::RcvSynAck,
        S::Established,
        "simultaneous open: their SYN-ACK acks our SYN",
    ),
    row(
        S::SynReceived,
        C::SndFin,
        S::FinWait1,
        "CLOSE in SYN-RECEIVED (§3.10.4)",
    ),
    row(
        S::SynReceived,
        C::RcvFin,
        S::CloseWait,
        "§3.10.7.4 eighth check",
    ),
    row(
        S::Established,
        C::RcvSynAck,
        S::Established,
        "retransmitted SYN-ACK: our ACK was lost",
    ),
    row(
        S::Established,
        C::SndSynAck,
        S::Established,
        "retransmitting our SYN-ACK",
    ),
    row(
        S::Established,
        C::SndSyn,
        S::Established,
        "a SYN retransmission that crossed the SYN-ACK",
    ),
    // --- closing (§3.6 figures 12-13) ---
    row(S::Established, C::SndFin, S::FinWait1, "CLOSE (§3.10.4)"),
    row(
        S::Established,
        C::RcvFin,
        S::CloseWait,
        "§3.10.7.4 eighth check",
    ),
    row(
        S::FinWait1,
        C::RcvAckOfFin,
        S::FinWait2,
        "§3.10.7.4 fifth check, FIN-WAIT-1",
    ),
    row(
        S::FinWait1,
        C::RcvFin,
        S::Closing,
        "simultaneous close (§3.6 figure 13)",
    ),
    row(S::FinWait1, C::SndFin, S::FinWait1, "FIN retransmission"),
    row(
        S::FinWait2,
        C::RcvFin,
        S::TimeWait,
        "§3.10.7.4 eighth check, FIN-WAIT-2",
    ),
    row(
        S::FinWait2,
        C::SndFin,
        S::FinWait2,
        "late retransmission of an acked FIN",
    ),
    row(S::CloseWait, C::SndFin, S::LastAck, "CLOSE (§3.10.4)"),
    row(
        S::CloseWait,
        C::RcvFin,
        S::CloseWait,
        "retransmitted FIN (our ACK was lost)",
    ),
    row(
        S::Closing,
        C::RcvAckOfFin,
        S::TimeWait,
        "§3.10.7.4 fifth check, CLOSING",
    ),
    row(S::Closing, C::RcvFin, S::Closing, "retransmitted FIN"),
    row(S::Closing, C::SndFin, S::Closing, "FIN retransmission"),
    row(
        S::LastAck,
        C::RcvAckOfFin,
        S::Closed,
        "§3.10.7.4 fifth check, LAST-ACK",
    ),
    row(S::LastAck, C::RcvFin, S::LastAck, "retransmitted FIN"),
    row(S::LastAck, C::SndFin, S::LastAck, "FIN retransmission"),
    row(
        S::TimeWait,
        C::RcvFin,
        S::TimeWait,
        "retransmitted FIN: ACK it, restart 2MSL (§3.10.7.4)",
    ),
    row(S::TimeWait, C::SndFin, S::TimeWait, "FIN retransmission"),
    row(
        S::TimeWait,
        C::Timeout2Msl,
        S::Closed,
        "time-wait timeout (§3.10.8)",
    ),
    // A SYN with a higher ISN may reopen from TIME-WAIT (RFC 1122 §4.2.2.13, RFC 6191; Linux
    // tcp_tw_reuse does it on loopback): the old incarnation's TIME-WAIT ends there.
    row(
        S::TimeWait,
        C::Reused,
        S::Closed,
        "new incarnation (RFC 1122 §4.2.2.13)",
    ),
    // --- mid-stream start: the state before the capture is UNKNOWN until a segment defines it ---
    row(
        S::Unknown,
        C::SndAck,
        S::Unknown,
        "mid-stream: nothing learned",
    ),
    row(
        S::Unknown,
        C::RcvAck,
        S::Unknown,
        "mid-stream: nothing learned",
    ),
    row(
        S::Unknown,
        C::SndSynAck,
        S::SynReceived,
        "a SYN-ACK proves a SYN arrived before the capture",
    ),
    row(
        S::Unknown,
        C::RcvSynAck,
        S::Established,
        "... and that this side was in SYN-SENT",
    ),
    row(
        S::Unknown,
        C::SndFin,
        S::FinWait1,
        "assumes ESTABLISHED; the peer's FIN would be seen",
    ),
    row(S::Unknown, C::RcvFin, S::CloseWait, "assumes ESTABLISHED"),
    row(S::Unknown, C::SndRst, S::Closed, "ABORT (§3.10.5)"),
    row(
        S::Unknown,
        C::RcvRst,
        S::Closed,
        "an RST ends whatever it was",
    ),
    row(
        S::SynReceived,
        C::SndAck,
        S::SynReceived,
        "simultaneous open: the ACK of the peer's SYN",
    ),
    row(
        S::SynSent,
        C::SndAck,
        S::Established,
        "an ACK from SYN-SENT proves the SYN-ACK arrived (one-sided capture)",
    ),
    row(
        S::Closed,
        C::SndAck,
        S::Closed,
        "a closed socket's stray ACK (rare, harmless)",
    ),
    // An acceptable RST in SYN-RECEIVED after a passive OPEN goes back to LISTEN (§3.10.7.4); after an
    // active OPEN (simultaneous open) it is CLOSED: see ACTIVE_SYN_RECEIVED_RST, the pre-step below.
    row(
        S::SynReceived,
        C::RcvRst,
        S::Listen,
        "passive OPEN returns to LISTEN on RST (§3.10.7.4)",
    ),
];

/// SYN-RECEIVED reached by simultaneous open (an active OPEN) returns to CLOSED on RST (§3.10.7.4):
/// the one row that depends on how the state was reached. `next_state_for` applies it.
pub const ACTIVE_SYN_RECEIVED_RST: State = State::Closed;

/// Every row of the table, expanded.
pub fn rows() -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    out.extend_from_slice(ROWS);
    for s in QUIET_SELF_LOOPS {
        out.push(row(
            s,
            C::SndAck,
            s,
            "plain data/ACK moves no state (§3.10.7.4 seventh check)",
        ));
        out.push(row(
            s,
            C::RcvAck,
            s,
            "plain data/ACK moves no state (§3.10.7.4 seventh check)",
        ));
    }
    // A sent RST aborts the connection from any state that has one (§3.10.7.4, §3.10.5 ABORT).
    for s in [S::SynSent, S::SynReceived]
        .into_iter()
        .chain(QUIET_SELF_LOOPS)
    {
        out.push(row(s, C::SndRst, S::Closed, "ABORT (§3.10.5)"));
    }
    // An acceptable received RST closes the connection (§3.10.7.3, §3.10.7.4 second check).
    for s in [S::SynSent].into_iter().chain(QUIET_SELF_LOOPS) {
        out.push(row(
            s,
            C::RcvRst,
            S::Closed,
            "acceptable RST (§3.10.7.3, §3.10.7.4)",
        ));
    }
    out
}

const N_STATES: usize = ALL_STATES.len();
const N_CUES: usize = ALL_CUES.len();

/// The table as a dense array for the hot path, built once from `rows()`.
pub struct Table {
    cells: [[Option<State>; N_CUES]; N_STATES],
}

impl Table {
    pub fn build() -> Table {
        let mut cells = [[None; N_CUES]; N_STATES];
        for r in rows() {
            let cell = &mut cells[r.state as usize][r.cue as usize];
            debug_assert!(cell.is_none(), "duplicate row {:?} {:?}", r.state, r.cue);
            *cell = Some(r.next);
        }
        Table { cells }
    }
    /// The state after `cue`, or None when the RFC has no such transition (a violation).
    #[inline]
    pub fn next(&self, state: State, cue: Cue) -> Option<State> {
        self.cells[state as usize][cue as usize]
    }
    /// Same, with the pre-step for SYN-RECEIVED reached by an active OPEN (`passive == false`).
    #[inline]
    pub fn next_for(&self, state: State, cue: Cue, passive: bool) -> Option<State> {
        if cue == Cue::RcvRst && state == State::SynReceived && !passive {
            return Some(ACTIVE_SYN_RECEIVED_RST);
        }
        self.next(state, cue)
    }
}

pub fn table() -> &'static Table {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Table::build)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn no_duplicate_rows() {
        let rows = rows();
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            assert!(
                seen.insert((r.state, r.cue)),
                "duplicate {:?} {:?}",
                r.state,
                r.cue
            );
        }
        assert_eq!(rows.len(), 85);
    }
    #[test]
    fn handshake_rows() {
        let t = table();
        assert_eq!(t.next(S::Closed, C::SndSyn), Some(S::SynSent));
        assert_eq!(t.next(S::Listen, C::RcvSyn), Some(S::SynReceived));
        assert_eq!(t.next(S::SynReceived, C::RcvAckOfSyn), Some(S::Established));
        assert_eq!(t.next(S::Listen, C::RcvFin), None);
        assert_eq!(t.next_for(S::SynReceived, C::RcvRst, true), Some(S::Listen));
        assert_eq!(
            t.next_for(S::SynReceived, C::RcvRst, false),
            Some(S::Closed)
        );
    }
}
