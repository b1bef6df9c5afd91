//! One TCP connection: two endpoints, each driven through the RFC 9293 table (src/states.rs) by what
//! it sends and receives. Port of handshake_probe/core/flow.py (and record.py's base record).
//!
//! Every transition goes through `table()`; nothing here decides a next state. What this module adds is
//! *which* cue an endpoint saw (the order of RFC 9293 §3.10.7.4's checks) and *when* a cue is final.

use crate::endpoint::{seq_in_window, Endpoint, Role};
use crate::observe::Observer;
use crate::record::{Emit, Value, ValueBuilder};
use crate::segment::{Addr, Segment, ACK, FIN, RST, SYN};
use crate::states::{table, Cue, State};
use crate::tunnel::{Tunnel, TunnelKind};

const PLAIN_MASK: u16 = SYN | FIN | RST | ACK;
/// A pathological flow must not grow without bound; the count is kept in full.
pub const MAX_VIOLATIONS: usize = 50;
/// Distinct tunnels listed per flow (a flow whose packets come through more is odd; the rest are
/// not listed).
pub const MAX_TUNNELS: usize = 16;

/// A tunnel some of a flow's packets came through (src/tunnel.rs), named from the flow's side: the
/// outer end on the inner client's side is `client`, as the first packet through it showed
/// (for a tunnel whose one direction carries both inner directions, the first packet decides).
#[derive(Clone, Debug, PartialEq)]
pub struct TunnelSeen {
    pub kind: TunnelKind,
    pub client: (Addr, u16),
    pub server: (Addr, u16),
    /// the flow's packets that came through it
    pub packets: u64,
}

/// States in which a plain ACK, sent or received, can neither move the state nor acknowledge a SYN or
/// FIN that would (the ACK-of-SYN and ACK-of-FIN cues belong to SYN-RECEIVED, FIN-WAIT-1, CLOSING,
/// LAST-ACK).
#[inline]
fn quiet(s: State) -> bool {
    matches!(
        s,
        State::Established | State::FinWait2 | State::CloseWait | State::TimeWait
    )
}

#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub ts: f64,
    /// None for a timer (2MSL) or a takeover, which no segment causes
    pub frame: Option<u64>,
    pub endpoint: Role,
    pub from: State,
    pub to: State,
    pub cause: Cue,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub ts: f64,
    pub frame: u64,
    pub endpoint: Role,
    pub state: State,
    pub cue: String,
    pub reason: String,
}

/// A segment with both endpoints' states after it: kept only for flows the user asked to see.
#[derive(Clone, Debug)]
pub struct SegmentRow {
    pub seg: Segment,
    pub from_client: bool,
    pub client_state: State,
    pub server_state: State,
    pub transitions: Vec<Transition>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Handshake {
    /// first SYN from the client
    pub syn_ts: Option<f64>,
    /// first SYN-ACK from the server that acks the client's SYN
    pub synack_ts: Option<f64>,
    /// first client ACK of the server's SYN
    pub ack_ts: Option<f64>,
    pub syn_count: u64,
    pub synack_count: u64,
}

/// The record's `handshake.status` values (see `Handshake::status`).
pub const HANDSHAKE_STATUSES: [&str; 3] = ["complete", "partial", "none"];
/// The record's `direction` values: the client was seen sending the SYN, or was inferred.
pub const DIRECTIONS: [&str; 2] = ["observed", "inferred"];

impl Handshake {
    pub fn complete(&self) -> bool {
        self.syn_ts.is_some() && self.synack_ts.is_some() && self.ack_ts.is_some()
    }
    pub fn status(&self) -> &'static str {
        if self.complete() {
            "complete"
        } else if self.syn_count > 0 || self.synack_count > 0 {
            "partial"
        } else {
            "none"
        }
    }
}

fn sender_cue(flags: u16) -> Cue {
    if flags & RST != 0 {
        Cue::SndRst
    } else if flags & SYN != 0 {
        if flags & ACK != 0 {
            Cue::SndSynAck
        } else {
            Cue::SndSyn
        }
    } else if flags & FIN != 0 {
        Cue::SndFin
    } else {
        Cue::SndAck
    }
}

/// A received FIN whose CLOSE-WAIT is not final yet (see `Flow::apply`).
///
/// While it is held, the endpoint *is* in CLOSE-WAIT for every decision (`state_of`), but the
/// transition is neither in `transitions` nor in the path nor emitted: a capture serialises segments
/// that crossed on the wire, and only the endpoint's next move tells whether the FIN had reached it.
#[derive(Clone, Copy, Debug)]
struct HeldFin {
    role: Role,
    from: State,
    to: State,
    ts: f64,
    frame: u64,
    /// where the transition goes in `transitions`: where it would have been appended
    at: usize,
    /// the kept row of the FIN's segment, if rows are kept, and the transition's place in it
    row: Option<(usize, usize)>,
}

/// Both endpoints of one connection incarnation, fed segments in capture order.
pub struct Flow {
    pub number: u64,
    pub key: FlowKey,
    pub client: Endpoint,
    pub server: Endpoint,
    /// "observed" (the flow starts with the client's SYN) or "inferred"
    pub direction: &'static str,
    pub first_ts: f64,
    pub last_ts: f64,
    pub packets: u64,
    pub transitions: Vec<Transition>,
    pub violations: Vec<Violation>,
    pub violation_count: u64,
    pub handshake: Handshake,
    pub rst_by: Option<Role>,
    /// FIN sent by (client, server)
    pub fins: [bool; 2],
    pub rejected: bool,
    pub rows: Option<Vec<SegmentRow>>,
    pub msl: f64,
    /// the 4-tuple carried an earlier flow in this capture
    pub reused_port: bool,
    /// capture time of the segment that ended this incarnation (RST, rejection, FIN both ways):
    /// the flow table's linger rule counts from here (src/flows.rs, `split`)
    pub ended_at: Option<f64>,
    /// every tunnel the flow's packets came through, in order of first use, outermost layer first
    /// within a packet; empty when none did. One inner 4-tuple is one flow whatever carried it.
    pub tunnels: Vec<TunnelSeen>,
    /// what the SYN(s) and SYN-ACK(s) negotiated (src/negotiation.rs); boxed, None until one is seen
    pub negotiation: Option<Box<crate::negotiation::Negotiation>>,
    /// (ts, frame) of the client SYN the silent server has not reacted to yet
    pending_syn: Option<(f64, u64)>,
    held_fin: Option<HeldFin>,
    /// index in `transitions` of the first one made by the segment being added
    seg_first: usize,
    observers: Vec<Box<dyn Observer>>,
    /// transitions are also queued in `outbox` as they become final (live views)
    emit: bool,
    outbox: Vec<Transition>,
}

impl Flow {
    pub fn new(
        number: u64,
        seg: &Segment,
        msl: f64,
        keep_rows: bool,
        observers: Vec<Box<dyn Observer>>,
        reused_port: bool,
    ) -> Flow {
        let flags = seg.flags;
        let (client_is_src, direction) = if flags & SYN != 0 && flags & ACK == 0 {
            (true, "observed")
        } else if flags & SYN != 0 {
            (false, "inferred") // the SYN-ACK's sender is the server
        } else {
            // No handshake seen: the lower (well-known) port is the server's; on a tie, the first receiver.
            (seg.sport >= seg.dport, "inferred")
        };
        let (a, b) = ((seg.src, seg.sport), (seg.dst, seg.dport));
        let ((caddr, cport), (saddr, sport)) = if client_is_src { (a, b) } else { (b, a) };
        // A flow that starts with the SYN starts from CLOSED; otherwise the state before the capture
        // is unknown. The server's state is settled by its first answer: SYN-ACK -> it was LISTENing,
        // RST -> CLOSED.
        let opening = direction == "observed";
        let cstate = if opening {
            State::Closed
        } else {
            State::Unknown
        };
        Flow {
            number,
            key: flow_key(seg),
            client: Endpoint::new(Role::Client, caddr, cport, cstate),
            server: Endpoint::new(Role::Server, saddr, sport, State::Unknown),
            direction,
            first_ts: seg.ts,
            last_ts: seg.ts,
            packets: 0,
            // a whole connection makes ten or eleven (with TIME-WAIT's end): no growth for those
            transitions: Vec::with_capacity(12),
            violations: Vec::new(),
            violation_count: 0,
            handshake: Handshake::default(),
            rst_by: None,
            fins: [false; 2],
            rejected: false,
            rows: if keep_rows { Some(Vec::new()) } else { None },
            msl,
            reused_port,
            ended_at: None,
            tunnels: Vec::new(),
            negotiation: None,
            pending_syn: None,
            held_fin: None,
            seg_first: 0,
            observers,
            emit: false,
            outbox: Vec::new(),
        }
    }

    /// Label both sides' p0f fingerprints from this database (`--p0f-db`).
    pub fn set_p0f_db(&mut self, db: std::sync::Arc<crate::p0f::Db>) {
        self.negotiation = Some(Box::new(crate::negotiation::Negotiation::with_db(db)));
    }

    /// Queue every transition as it becomes final, for `take_events` (live views).
    pub fn set_emit(&mut self, emit: bool) {
        self.emit = emit;
    }

    /// The transitions that became final since the last call (only with `set_emit(true)`).
    pub fn take_events(&mut self) -> std::vec::Drain<'_, Transition> {
        self.outbox.drain(..)
    }

    #[inline]
    fn ep(&self, role: Role) -> &Endpoint {
        match role {
            Role::Client => &self.client,
            Role::Server => &self.server,
        }
    }

    #[inline]
    fn ep_mut(&mut self, role: Role) -> &mut Endpoint {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// The endpoint's state as the capture shows it so far: CLOSE-WAIT while a received FIN is held.
    #[inline]
    pub fn state_of(&self, role: Role) -> State {
        match self.held_fin {
            Some(h) if h.role == role => h.to,
            _ => self.ep(role).state,
        }
    }

    // ----------------------------------------------------------------- queries
    /// True when this incarnation is over (RST, rejection, both ends closed): see `flows::split`.
    pub fn ended(&self) -> bool {
        let (c, s) = (self.state_of(Role::Client), self.state_of(Role::Server));
        self.rst_by.is_some() || self.rejected || (c.is_end() && s.is_end() && c != State::Listen)
    }

    pub fn close_kind(&self) -> &'static str {
        if self.rejected {
            return "rejected";
        }
        match self.rst_by {
            Some(Role::Client) => "client-rst",
            Some(Role::Server) => "server-rst",
            None if self.fins[0] && self.fins[1] => "fin",
            None => "none",
        }
    }

    // ----------------------------------------------------------------- feeding
    pub fn add(&mut self, mut seg: Segment) {
        self.packets += 1;
        self.last_ts = seg.ts;
        let from_client = seg.sport == self.client.port && seg.src == self.client.addr;
        if let Some(path) = &seg.tunnels {
            self.note_tunnels(path, from_client);
        }
        let (snd, rcv) = if from_client {
            (Role::Client, Role::Server)
        } else {
            (Role::Server, Role::Client)
        };
        let flags = seg.flags;
        if flags & PLAIN_MASK == ACK
            && quiet(self.state_of(snd))
            && quiet(self.state_of(rcv))
            && self.rows.is_none()
            && (self.handshake.ack_ts.is_some() || !from_client)
        {
            // The bulk of any capture: data or a pure ACK between synchronized endpoints, which
            // moves no state (RFC 9293 §3.10.7.4, seventh check). Same bookkeeping, no table walk.
            let sender = self.ep_mut(snd);
            sender.note_sent(seg.seq, seg.payload_len, false, false, seg.payload_len);
            sender.window = seg.window;
            let mut notes = Vec::new(); // allocates only if an observer speaks
            for observer in &mut self.observers {
                observer.on_segment(&seg, from_client, self.reused_port, &mut notes);
            }
            return;
        }
        let n_before = self.transitions.len();
        self.seg_first = n_before;
        let mut notes: Vec<String> = Vec::new();

        if snd == Role::Server && self.server.packets == 0 && self.pending_syn.is_some() {
            self.settle_server(flags);
        } else if snd == Role::Client
            && self.pending_syn.is_some()
            && flags & ACK != 0
            && flags & (SYN | RST) == 0
        {
            // The client acknowledges a SYN-ACK the capture does not hold (one-sided capture):
            // the server answered, so it was listening (RFC 9293 §3.10.7.2).
            self.settle_server(SYN | ACK);
        }
        self.note_handshake(&seg, from_client, rcv);
        if flags & SYN != 0 {
            // the SYN's details move into the negotiation (copied only when rows keep the segment)
            let details = if self.rows.is_some() {
                seg.options.syn.clone()
            } else {
                seg.options.syn.take()
            };
            self.negotiation
                .get_or_insert_with(Default::default)
                .note(&seg, details, from_client);
        }

        let mut rst_ok = true;
        if flags & RST != 0 {
            rst_ok = self.rst_acceptable(&seg, rcv, snd);
            if !rst_ok {
                notes.push("RST not acceptable: ignored (RFC 9293 §3.10.7.4)".to_string());
                self.violate(seg.ts, seg.frame, rcv, "rcv RST", || {
                    "RST outside the receive window: not a close (RFC 9293 §3.10.7.4)".into()
                });
            }
        }
        let sender_state_before = self.state_of(snd);
        let sender = self.ep_mut(snd);
        if rst_ok {
            sender.note_sent(
                seg.seq,
                seg.seq_len(),
                flags & SYN != 0,
                flags & FIN != 0,
                seg.payload_len,
            );
        } else {
            // a forged or stale RST says nothing about the sender's sequence space
            sender.packets += 1;
        }
        let sender_has_base = sender.base.is_some();
        if flags & SYN != 0 && seg.options.wscale.is_some() {
            sender.wscale = seg.options.wscale;
        }
        sender.window = seg.window;
        let receiver = self.ep_mut(rcv);
        if sender_has_base && receiver.base.is_none() && flags & ACK != 0 {
            receiver.base = Some(seg.ack.wrapping_sub(1));
        }

        // Simultaneous close seen from the wire (RFC 9293 §3.6 figure 13): the sender's FIN does not
        // acknowledge the peer's FIN, so that FIN had not reached it when it sent its own.
        let crossed = flags & FIN != 0
            && flags & ACK != 0
            && self.state_of(snd) == State::CloseWait
            && self.ep(rcv).fin_seq.is_some()
            && !self.ep(rcv).acks_fin(seg.ack);
        if crossed {
            self.uncross_fins(snd);
        }
        if rst_ok {
            self.apply(seg.ts, seg.frame, snd, sender_cue(flags));
            if crossed {
                // the peer's FIN arrives after ours left: CLOSING
                self.apply(seg.ts, seg.frame, snd, Cue::RcvFin);
            }
            if snd == Role::Server
                && self.pending_syn.is_some()
                && self.state_of(snd) == State::SynSent
            {
                // Simultaneous open: the client's SYN reaches the server after its own SYN left.
                self.pending_syn = None;
                self.apply(seg.ts, seg.frame, snd, Cue::RcvSyn);
            }
            for cue in self.receiver_cues(&seg, rcv).into_iter().flatten() {
                self.apply(seg.ts, seg.frame, rcv, cue);
            }
            if flags & RST != 0 && self.rst_by.is_none() && sender_state_before != State::Listen {
                if self.state_of(Role::Server) == State::Closed
                    && self.handshake.synack_count == 0
                    && snd == Role::Server
                {
                    self.rejected = true;
                } else {
                    self.rst_by = Some(snd);
                }
            }
        }
        if flags & FIN != 0 && flags & RST == 0 {
            self.fins[snd as usize] = true;
        }
        // Only this (slow) path can end a flow: the fast path above moves no state and sets no RST
        // or FIN. A flow ends on a segment with RST or FIN, or on one that moved a state after a FIN
        // (the ACK of the last FIN): without RST and FIN no endpoint reaches CLOSED or TIME-WAIT from
        // where a flow starts, so other segments need no look.
        if self.ended_at.is_none()
            && (flags & (FIN | RST) != 0
                || (self.fins[0] || self.fins[1]) && self.transitions.len() != n_before)
            && (self.fins[0] && self.fins[1] || self.ended())
        {
            self.ended_at = Some(seg.ts);
        }
        for observer in &mut self.observers {
            observer.on_segment(&seg, from_client, self.reused_port, &mut notes);
        }
        if self.rows.is_some() {
            // not the re-dated ones (a settled SYN is dated by the SYN's frame)
            let mine: Vec<Transition> = self
                .transitions
                .get(n_before..)
                .unwrap_or_default()
                .iter()
                .filter(|t| t.frame == Some(seg.frame))
                .cloned()
                .collect();
            let (client_state, server_state) =
                (self.state_of(Role::Client), self.state_of(Role::Server));
            if let Some(rows) = self.rows.as_mut() {
                rows.push(SegmentRow {
                    seg,
                    from_client,
                    client_state,
                    server_state,
                    transitions: mine,
                    notes,
                });
            }
        }
    }

    /// Count the packet in each tunnel of its path; a tunnel not seen before joins the list.
    #[cold]
    fn note_tunnels(&mut self, path: &[Tunnel], from_client: bool) {
        for layer in path {
            let (near, far) = ((layer.src, layer.sport), (layer.dst, layer.dport));
            let (client, server) = if from_client {
                (near, far)
            } else {
                (far, near)
            };
            let known = self.tunnels.iter().position(|t| {
                t.kind == layer.kind
                    && ((t.client, t.server) == (client, server)
                        || (t.client, t.server) == (server, client))
            });
            if let Some(t) = known.and_then(|i| self.tunnels.get_mut(i)) {
                t.packets += 1;
            } else if self.tunnels.len() < MAX_TUNNELS {
                self.tunnels.push(TunnelSeen {
                    kind: layer.kind,
                    client,
                    server,
                    packets: 1,
                });
            }
        }
    }

    /// The sender's FIN crossed the peer's (RFC 9293 §3.6 figure 13): the CLOSE-WAIT assumed from
    /// capture order never happened. It was held, never emitted: drop it; the FIN is applied again
    /// right after the sender's own FIN (FIN-WAIT-1 -> CLOSING). Kept rows showed the held state from
    /// the FIN on: they get the state before it back.
    fn uncross_fins(&mut self, role: Role) {
        if let Some(h) = self.held_fin {
            if h.role == role {
                self.held_fin = None;
                self.restate_rows(role, h.frame, h.from, None);
            }
        }
    }

    /// Later evidence changed what `role` was from `from_frame` on: rewrite the kept rows to match.
    fn restate_rows(
        &mut self,
        role: Role,
        from_frame: u64,
        state: State,
        add: Option<&Transition>,
    ) {
        let Some(rows) = self.rows.as_mut() else {
            return;
        };
        for row in rows.iter_mut() {
            if row.seg.frame < from_frame {
                continue;
            }
            if let Some(t) = add {
                if t.frame == Some(row.seg.frame) {
                    row.transitions.push(t.clone());
                }
            }
            match role {
                Role::Client => row.client_state = state,
                Role::Server => row.server_state = state,
            }
        }
    }

    /// The server's first segment tells what it was when the client's SYN reached it.
    fn settle_server(&mut self, flags: u16) {
        let Some((ts, frame)) = self.pending_syn.take() else {
            return;
        };
        if flags & SYN != 0 && flags & ACK != 0 {
            self.settle_initial(State::Listen); // passive OPEN (RFC 9293 §3.10.7.2)
            self.apply(ts, frame, Role::Server, Cue::RcvSyn);
            let last = self.transitions.last().cloned();
            let state = self.state_of(Role::Server);
            self.restate_rows(Role::Server, frame, state, last.as_ref());
        } else if flags & RST != 0 {
            self.settle_initial(State::Closed); // nobody listening (RFC 9293 §3.10.7.1)
            self.apply(ts, frame, Role::Server, Cue::RcvSyn);
        } else if flags & SYN != 0 {
            // Simultaneous open: its own SYN left before ours arrived; the receipt is applied after
            // its send.
            self.settle_initial(State::Closed);
            self.pending_syn = Some((ts, frame));
        }
        // anything else: the server stays UNKNOWN (it answered without a handshake we can explain)
    }

    fn settle_initial(&mut self, state: State) {
        self.server.set_initial(state);
        self.restate_rows(Role::Server, 0, state, None);
    }

    fn note_handshake(&mut self, seg: &Segment, from_client: bool, rcv: Role) {
        let flags = seg.flags;
        if flags & SYN != 0 && flags & ACK == 0 && from_client {
            self.handshake.syn_count += 1;
            if self.handshake.syn_ts.is_none() {
                self.handshake.syn_ts = Some(seg.ts);
            }
            if self.server.packets == 0 && self.state_of(Role::Server) == State::Unknown {
                // the latest SYN is the one the server will answer
                self.pending_syn = Some((seg.ts, seg.frame));
            }
        } else if flags & SYN != 0 && flags & ACK != 0 && !from_client {
            self.handshake.synack_count += 1;
            let receiver = self.ep(rcv);
            if self.handshake.synack_ts.is_none()
                && (receiver.isn.is_none() || receiver.acks_syn(seg.ack))
            {
                self.handshake.synack_ts = Some(seg.ts);
            }
        } else if from_client
            && flags & ACK != 0
            && self.handshake.synack_ts.is_some()
            && self.handshake.ack_ts.is_none()
            && self.ep(rcv).acks_syn(seg.ack)
        {
            self.handshake.ack_ts = Some(seg.ts);
        }
    }

    /// Cues for the receiving endpoint, in RFC 9293 §3.10.7.4's order: RST, SYN, ACK, FIN.
    fn receiver_cues(&mut self, seg: &Segment, rcv: Role) -> [Option<Cue>; 2] {
        let flags = seg.flags;
        if rcv == Role::Server && self.pending_syn.is_some() {
            // a silent server's reaction is unknown: its first answer settles it (settle_server)
            return [None, None];
        }
        if flags & RST != 0 {
            return [Some(Cue::RcvRst), None];
        }
        let receiver = self.ep(rcv);
        if flags & SYN != 0 {
            if flags & ACK == 0 {
                return [Some(Cue::RcvSyn), None];
            }
            if receiver.isn.is_some() && !receiver.acks_syn(seg.ack) {
                self.violate(seg.ts, seg.frame, rcv, "rcv SYN-ACK", || {
                    "SYN-ACK does not acknowledge our SYN (RFC 9293 §3.10.7.3: answered by RST)"
                        .into()
                });
                return [None, None];
            }
            return [Some(Cue::RcvSynAck), None];
        }
        let state = self.state_of(rcv);
        let mut ack_cue = None;
        if flags & ACK != 0 {
            if state == State::SynReceived && (receiver.isn.is_none() || receiver.acks_syn(seg.ack))
            {
                ack_cue = Some(Cue::RcvAckOfSyn);
            } else if matches!(state, State::FinWait1 | State::Closing | State::LastAck)
                && receiver.acks_fin(seg.ack)
            {
                ack_cue = Some(Cue::RcvAckOfFin);
            } else if flags & FIN == 0 {
                ack_cue = Some(Cue::RcvAck);
            }
        } else if flags & FIN == 0 {
            self.violate(seg.ts, seg.frame, rcv, "rcv segment", || {
                "segment without ACK in a connection (RFC 9293 §3.10.7.4 fifth check: dropped)"
                    .into()
            });
        }
        [
            ack_cue,
            if flags & FIN != 0 {
                Some(Cue::RcvFin)
            } else {
                None
            },
        ]
    }

    /// RFC 9293 §3.10.7.3 (SYN-SENT: the ACK must acknowledge our SYN) and §3.10.7.4 (in window).
    fn rst_acceptable(&self, seg: &Segment, rcv: Role, snd: Role) -> bool {
        let state = self.state_of(rcv);
        let (receiver, sender) = (self.ep(rcv), self.ep(snd));
        if state == State::SynSent {
            return seg.flags & ACK != 0 && receiver.acks_syn(seg.ack);
        }
        let Some(snd_nxt) = sender.snd_nxt else {
            return true; // nothing seen from the sender yet: no window to test against
        };
        if matches!(state, State::Unknown | State::Closed | State::Listen) {
            return true;
        }
        if seq_in_window(seg.seq, snd_nxt, receiver.scaled_window(sender.wscale)) {
            return true;
        }
        // Linux (tcp_reset_check) also takes RCV.NXT-1 once the peer's FIN is in: an RST sent with
        // the sequence number of that FIN, as stacks do when they abort right after closing.
        matches!(state, State::CloseWait | State::LastAck | State::Closing)
            && seg.seq == snd_nxt.wrapping_sub(1)
    }

    /// Move `role` by `cue` through the table, or record a violation where the table has no row.
    ///
    /// Every transition is final when emitted (ARCHITECTURE.md). One cue cannot be final on arrival:
    /// a FIN that takes an endpoint to CLOSE-WAIT. On the wire the two FINs of a simultaneous close
    /// cross (RFC 9293 §3.6 figure 13: both ends go FIN-WAIT-1 -> CLOSING -> TIME-WAIT), but a capture
    /// serialises them, so the second FIN's sender looks as if it had received the first FIN before
    /// sending its own. Only that endpoint's next *move* tells: a FIN|ACK that does not acknowledge the
    /// peer's FIN (it had not arrived: CLOSING, see `uncross_fins`), or any other move out of
    /// CLOSE-WAIT, or the end of the flow (then CLOSE-WAIT was real). Segments that leave CLOSE-WAIT
    /// as it is (data, ACKs, even violations) do not tell: the endpoint's data may have left before
    /// the FIN arrived, as its FIN did. So the CLOSE-WAIT is *held*
    /// (`HeldFin`): every decision sees the endpoint in CLOSE-WAIT (`state_of`), and the transition,
    /// dated by the FIN's segment, is put where it belongs in `transitions` and emitted only when
    /// confirmed (`confirm_held`). The pending SYN of a silent server (`pending_syn`) is deferred the
    /// same way.
    fn apply(&mut self, ts: f64, frame: u64, role: Role, cue: Cue) {
        let state = self.state_of(role);
        // `next_for` holds the one documented pre-step: RST in SYN-RECEIVED after an active OPEN.
        let passive = self.ep(role).passive;
        let Some(new) = table().next_for(state, cue, passive) else {
            let rst_by = self.rst_by;
            self.violate(ts, frame, role, cue.name(), || {
                let mut reason = format!(
                    "no RFC 9293 transition for {} in {}",
                    cue.name(),
                    state.name()
                );
                if state == State::Closed && rst_by.is_some() && cue.is_send() {
                    reason.push_str(" (sent after an RST closed it: the two crossed on the wire)");
                }
                reason
            });
            return;
        };
        let ep = self.ep_mut(role);
        if cue == Cue::RcvSyn && state == State::Listen {
            ep.passive = true;
        }
        if new == State::TimeWait && (state != State::TimeWait || cue == Cue::RcvFin) {
            ep.time_wait_since = Some(ts); // (re)start the 2MSL timer, also on a retransmitted FIN
        }
        if new == state {
            return;
        }
        if cue == Cue::RcvFin && new == State::CloseWait {
            if let Some(h) = self.held_fin {
                // Cannot happen (the other endpoint's FIN confirms or uncrosses its own hold first);
                // kept so that two holds never overlap.
                self.confirm_held(h.role);
            }
            self.held_fin = Some(HeldFin {
                role,
                from: state,
                to: new,
                ts,
                frame,
                at: self.transitions.len(),
                // this segment's row, pushed at the end of `add`, after this segment's transitions so far
                row: self.rows.as_ref().map(|rows| {
                    let made = self.transitions.get(self.seg_first..).unwrap_or_default();
                    (
                        rows.len(),
                        made.iter().filter(|t| t.frame == Some(frame)).count(),
                    )
                }),
            });
            return;
        }
        self.move_to(role, new, cue, ts, Some(frame));
    }

    /// A held CLOSE-WAIT is real: put it in the transitions list where capture order placed it, in the
    /// path, in the FIN's kept row, and emit it.
    fn confirm_held(&mut self, role: Role) {
        let Some(h) = self.held_fin else {
            return;
        };
        if h.role != role {
            return;
        }
        self.held_fin = None;
        let t = Transition {
            ts: h.ts,
            frame: Some(h.frame),
            endpoint: role,
            from: h.from,
            to: h.to,
            cause: Cue::RcvFin,
        };
        let ep = self.ep_mut(role);
        ep.state = h.to;
        ep.path.push(h.to);
        if let (Some(rows), Some((i, pos))) = (self.rows.as_mut(), h.row) {
            if let Some(row) = rows.get_mut(i) {
                row.transitions
                    .insert(pos.min(row.transitions.len()), t.clone());
            }
        }
        if self.emit {
            self.outbox.push(t.clone());
        }
        let at = h.at.min(self.transitions.len());
        self.transitions.insert(at, t);
    }

    fn move_to(&mut self, role: Role, new: State, cue: Cue, ts: f64, frame: Option<u64>) {
        self.confirm_held(role); // a move out of a held CLOSE-WAIT confirms it first
        let ep = self.ep_mut(role);
        let t = Transition {
            ts,
            frame,
            endpoint: role,
            from: ep.state,
            to: new,
            cause: cue,
        };
        ep.state = new;
        ep.path.push(new);
        if self.emit {
            self.outbox.push(t.clone());
        }
        self.transitions.push(t);
    }

    fn violate(
        &mut self,
        ts: f64,
        frame: u64,
        role: Role,
        cue: &str,
        reason: impl FnOnce() -> String,
    ) {
        self.violation_count += 1;
        if self.violations.len() < MAX_VIOLATIONS {
            let state = self.state_of(role);
            self.violations.push(Violation {
                ts,
                frame,
                endpoint: role,
                state,
                cue: cue.to_string(),
                reason: reason(),
            });
        }
    }

    // ----------------------------------------------------------------- ending
    /// End of the capture at time `now`: fire the TIME-WAIT timers that expired by then.
    ///
    /// TIME-WAIT lasts 2*MSL (RFC 9293 §3.10.8); only a capture that goes on that long shows CLOSED.
    /// A held CLOSE-WAIT is confirmed: no later FIN can uncross it.
    pub fn finish(&mut self, now: f64) {
        if let Some(h) = self.held_fin {
            self.confirm_held(h.role);
        }
        for role in [Role::Client, Role::Server] {
            let ep = self.ep(role);
            if let (State::TimeWait, Some(since)) = (ep.state, ep.time_wait_since) {
                let expiry = since + 2.0 * self.msl;
                if now >= expiry {
                    self.event(role, Cue::Timeout2Msl, expiry);
                }
            }
        }
    }

    /// A new incarnation takes the 4-tuple over at `now`: whatever is still in TIME-WAIT leaves it.
    pub fn retire(&mut self, now: f64) {
        self.finish(now);
        for role in [Role::Client, Role::Server] {
            self.event(role, Cue::Reused, now);
        }
    }

    /// A cue that no segment carries (a timer, a takeover): through the same table, quietly ignored
    /// where the table has no entry.
    fn event(&mut self, role: Role, cue: Cue, ts: f64) {
        let state = self.state_of(role);
        if let Some(new) = table().next(state, cue) {
            if new != state {
                self.move_to(role, new, cue, ts, None);
            }
        }
    }

    // ----------------------------------------------------------------- record
    /// The JSON object for one flow (record.py's `flow_record`). Keys are part of the project's output
    /// contract: add, never rename. The observers' fields follow, in observer order.
    /// The flow's record (the JSON contract) as a value: for Python objects and CSV.
    pub fn record(&self) -> Value {
        let mut b = ValueBuilder::new();
        self.emit(&mut b);
        b.finish()
    }

    /// Write the record, field by field in the contract's order (keys are part of the project's
    /// output contract: add, never rename). The one definition of the record: JSON Lines are written
    /// from it directly, Python objects and CSV rows through `record()`.
    pub fn emit<E: Emit>(&self, e: &mut E) {
        let hs = &self.handshake;
        let held = self.held_fin; // a flow recorded while open shows a held CLOSE-WAIT as it stands
        let path = |e: &mut E, role: Role| {
            e.begin_list();
            for s in &self.ep(role).path {
                e.vocab(s.name());
            }
            if let Some(h) = held.filter(|h| h.role == role) {
                e.vocab(h.to.name());
            }
            e.end_list();
        };
        let held_t = held.map(|h| {
            (
                h.at,
                Transition {
                    ts: h.ts,
                    frame: Some(h.frame),
                    endpoint: h.role,
                    from: h.from,
                    to: h.to,
                    cause: Cue::RcvFin,
                },
            )
        });
        e.begin_obj();
        e.key("flow");
        e.int(self.number as i64);
        e.key("client");
        e.str_with(&mut |out| self.client.write_label(out));
        e.key("server");
        e.str_with(&mut |out| self.server.write_label(out));
        e.key("direction");
        e.vocab(self.direction);
        e.key("packets");
        e.int(self.packets as i64);
        e.key("client_packets");
        e.int(self.client.packets as i64);
        e.key("server_packets");
        e.int(self.server.packets as i64);
        e.key("client_bytes");
        e.int(self.client.payload_bytes as i64);
        e.key("server_bytes");
        e.int(self.server.payload_bytes as i64);
        e.key("first_ts");
        e.float(self.first_ts);
        e.key("last_ts");
        e.float(self.last_ts);
        e.key("duration_ms");
        e.opt_float(ms(Some(self.first_ts), Some(self.last_ts)));
        e.key("client_states");
        path(e, Role::Client);
        e.key("server_states");
        path(e, Role::Server);
        e.key("transitions");
        e.begin_list();
        for (i, t) in self.transitions.iter().enumerate() {
            if let Some((at, ht)) = &held_t {
                if *at == i {
                    emit_transition(e, ht);
                }
            }
            emit_transition(e, t);
        }
        if let Some((at, ht)) = &held_t {
            if *at >= self.transitions.len() {
                emit_transition(e, ht);
            }
        }
        e.end_list();
        e.key("handshake");
        e.begin_obj();
        e.key("complete");
        e.bool(hs.complete());
        e.key("status");
        e.vocab(hs.status());
        e.key("syn_to_synack_ms");
        e.opt_float(ms(hs.syn_ts, hs.synack_ts));
        e.key("synack_to_ack_ms");
        e.opt_float(ms(hs.synack_ts, hs.ack_ts));
        e.key("syn_count");
        e.int(hs.syn_count as i64);
        e.key("synack_count");
        e.int(hs.synack_count as i64);
        e.end_obj();
        e.key("close");
        e.vocab(self.close_kind());
        e.key("violations");
        e.begin_list();
        for v in &self.violations {
            e.begin_obj();
            e.key("ts");
            e.float(v.ts);
            e.key("frame");
            e.int(v.frame as i64);
            e.key("endpoint");
            e.vocab(v.endpoint.name());
            e.key("state");
            e.vocab(v.state.name());
            e.key("cue");
            e.str(&v.cue);
            e.key("reason");
            e.str(&v.reason);
            e.end_obj();
        }
        e.end_list();
        e.key("violation_count");
        e.int(self.violation_count as i64);
        e.key("reused_port");
        e.bool(self.reused_port);
        e.key("tunnels");
        e.begin_list();
        for t in &self.tunnels {
            emit_tunnel(e, t);
        }
        e.end_list();
        for observer in &self.observers {
            observer.record(e);
        }
        e.key("negotiation");
        crate::negotiation::emit(e, self.negotiation.as_deref());
        e.end_obj();
    }
}

/// One tunnel as the record writes it: `{kind, outer_client, outer_server, packets}`.
pub fn emit_tunnel<E: Emit>(e: &mut E, t: &TunnelSeen) {
    let layer = Tunnel {
        kind: t.kind,
        src: t.client.0,
        sport: t.client.1,
        dst: t.server.0,
        dport: t.server.1,
    };
    e.begin_obj();
    e.key("kind");
    e.vocab(t.kind.name());
    e.key("outer_client");
    e.str(&layer.end_label(t.client.0, t.client.1));
    e.key("outer_server");
    e.str(&layer.end_label(t.server.0, t.server.1));
    e.key("packets");
    e.int(i64::try_from(t.packets).unwrap_or(i64::MAX));
    e.end_obj();
}

/// One transition as the record writes it.
pub fn emit_transition<E: Emit>(e: &mut E, t: &Transition) {
    e.begin_obj();
    e.key("ts");
    e.float(t.ts);
    e.key("frame");
    e.opt_int(t.frame.map(|f| f as i64));
    e.key("endpoint");
    e.vocab(t.endpoint.name());
    e.key("from");
    e.vocab(t.from.name());
    e.key("to");
    e.vocab(t.to.name());
    e.key("cause");
    e.vocab(t.cause.name());
    e.end_obj();
}

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

/// Milliseconds from `a` to `b`, rounded to 3 decimals as Python's `round(x, 3)` rounds (the exact
/// binary value, ties to even: Rust's `{:.3}` formats exactly that way).
fn ms(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(py_round3((b - a) * 1000.0)),
        _ => None,
    }
}

fn py_round3(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    use std::fmt::Write as _;
    // formatted on the stack: three of these per record, no allocation each
    let mut buf = StackText::default();
    if write!(buf, "{:.3}", x).is_ok() {
        if let Some(v) = buf.as_str().and_then(|t| t.parse().ok()) {
            return v;
        }
    }
    format!("{:.3}", x).parse().unwrap_or(x)
}

/// A short text formatted without a heap allocation; writing more than fits fails.
struct StackText {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.buf.get(..self.len)?).ok()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The 4-tuple with the two ends in a fixed order, the same for both directions.
pub type FlowKey = (Addr, u16, Addr, u16);

#[inline]
pub fn flow_key(seg: &Segment) -> FlowKey {
    let (a, b) = ((seg.src, seg.sport), (seg.dst, seg.dport));
    if a <= b {
        (a.0, a.1, b.0, b.1)
    } else {
        (b.0, b.1, a.0, a.1)
    }
}

/// How a flow closed, the vocabulary of the record's `close` field (see `Flow::close_kind`).
pub const CLOSE_KINDS: [&str; 5] = ["fin", "client-rst", "server-rst", "rejected", "none"];

#[cfg(test)]
pub(crate) mod tests {
    //! The flow model on hand-built conversations (tests/test_flow.py, tests/test_states.py): a test
    //! reads like the ladder diagram it checks (`t.c("S")`, `t.s("SA")`, `t.c("A")`).
    use super::*;
    use crate::flows::{FlowTable, RowFilter, TableOptions};
    use crate::record::write_json;

    struct Conv {
        client: (Addr, u16),
        server: (Addr, u16),
        nxt: [u32; 2],
        isn: [u32; 2],
    }

    /// Client 10.0.0.1:40000 talks to server 10.0.0.2:80; more conversations share the table.
    pub(crate) struct Talk {
        pub table: FlowTable,
        pub ts: f64,
        pub frame: u64,
        pub segments: Vec<Segment>,
        convs: Vec<Conv>,
        cur: usize,
    }

    pub(crate) fn v4(last: u8) -> Addr {
        Addr::V4([10, 0, 0, last])
    }

    impl Talk {
        pub fn new() -> Talk {
            Talk::with(TableOptions {
                keep_rows: RowFilter::All,
                ..TableOptions::default()
            })
        }
        pub fn with(opts: TableOptions) -> Talk {
            Talk::with_observers(opts, Box::new(Vec::new))
        }
        pub fn with_observers(
            opts: TableOptions,
            observers: crate::flows::ObserverFactory,
        ) -> Talk {
            Talk {
                table: FlowTable::new(opts, observers),
                ts: 100.0,
                frame: 0,
                segments: Vec::new(),
                convs: vec![Conv {
                    client: (v4(1), 40000),
                    server: (v4(2), 80),
                    nxt: [1000, 5000],
                    isn: [1000, 5000],
                }],
                cur: 0,
            }
        }
        /// Another conversation on the same table; later segments belong to it.
        pub fn conv(&mut self, client: (Addr, u16), server: (Addr, u16)) {
            self.convs.push(Conv {
                client,
                server,
                nxt: [1000, 5000],
                isn: [1000, 5000],
            });
            self.cur = self.convs.len() - 1;
        }
        pub fn switch(&mut self, i: usize) {
            self.cur = i;
        }
        pub fn new_client_isn(&mut self, isn: u32) {
            let c = &mut self.convs[self.cur];
            c.isn[0] = isn;
            c.nxt[0] = isn;
        }
        pub fn new_server_isn(&mut self, isn: u32) {
            let c = &mut self.convs[self.cur];
            c.isn[1] = isn;
            c.nxt[1] = isn;
        }
        pub fn nxt(&self, side: usize) -> u32 {
            self.convs[self.cur].nxt[side]
        }
        #[allow(clippy::too_many_arguments)]
        pub fn send(
            &mut self,
            side: usize,
            flags: &str,
            len: u32,
            seq: Option<u32>,
            ack: Option<u32>,
            window: u16,
            dt: f64,
        ) -> Segment {
            let mut f = 0u16;
            for ch in flags.chars() {
                f |= match ch {
                    'F' => FIN,
                    'S' => SYN,
                    'R' => RST,
                    'P' => crate::segment::PSH,
                    'A' => ACK,
                    _ => 0,
                };
            }
            let conv = &mut self.convs[self.cur];
            let other = 1 - side;
            let seq = seq.unwrap_or(if f & SYN != 0 {
                conv.isn[side]
            } else {
                conv.nxt[side]
            });
            let ack = ack.unwrap_or(if f & ACK != 0 { conv.nxt[other] } else { 0 });
            let (src, dst) = if side == 0 {
                (conv.client, conv.server)
            } else {
                (conv.server, conv.client)
            };
            self.ts += dt;
            self.frame += 1;
            let seg = Segment {
                ts: self.ts,
                frame: self.frame,
                src: src.0,
                sport: src.1,
                dst: dst.0,
                dport: dst.1,
                seq,
                ack,
                flags: f,
                window,
                payload_len: len,
                options: Default::default(),
                ip_version: 4,
                checksum_ok: None,
                tunnels: None,
            };
            let end = seq.wrapping_add(seg.seq_len());
            if crate::endpoint::seq_ge(end, conv.nxt[side]) {
                conv.nxt[side] = end;
            }
            self.segments.push(seg.clone());
            self.table.add(seg.clone());
            seg
        }
        pub fn c(&mut self, flags: &str) -> Segment {
            self.send(0, flags, 0, None, None, 65535, 0.001)
        }
        pub fn s(&mut self, flags: &str) -> Segment {
            self.send(1, flags, 0, None, None, 65535, 0.001)
        }
        pub fn handshake(mut self) -> Talk {
            self.c("S");
            self.s("SA");
            self.c("A");
            self
        }
        pub fn finish(&mut self) -> Vec<Flow> {
            self.table.finish()
        }
        /// The current flow of the current conversation, still in the table.
        pub fn flow(&self) -> &Flow {
            let c = &self.convs[self.cur];
            let key = if (c.client.0, c.client.1) <= (c.server.0, c.server.1) {
                (c.client.0, c.client.1, c.server.0, c.server.1)
            } else {
                (c.server.0, c.server.1, c.client.0, c.client.1)
            };
            self.table.get(&key).expect("flow in the table")
        }
    }

    pub(crate) fn names(path: &[State]) -> Vec<&'static str> {
        path.iter().map(|s| s.name()).collect()
    }

    fn paths(f: &Flow) -> (Vec<&'static str>, Vec<&'static str>) {
        (names(&f.client.path), names(&f.server.path))
    }

    fn with(base: &[&'static str], more: &[&'static str]) -> Vec<&'static str> {
        base.iter().chain(more).copied().collect()
    }

    const EST_C: [&str; 3] = ["CLOSED", "SYN-SENT", "ESTABLISHED"];
    const EST_S: [&str; 3] = ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"];

    fn json(v: &Value) -> String {
        let mut s = String::new();
        write_json(v, &mut s);
        s
    }

    #[test]
    fn client_closes_first_four_segments() {
        let mut t = Talk::new().handshake();
        t.send(0, "PA", 6, None, None, 65535, 0.001);
        t.send(1, "PA", 6, None, None, 65535, 0.001);
        t.c("FA");
        t.s("A");
        t.s("FA");
        t.c("A");
        let flows = t.finish();
        let f = &flows[0];
        let (c, s) = paths(f);
        assert_eq!(c, with(&EST_C, &["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]));
        assert_eq!(s, with(&EST_S, &["CLOSE-WAIT", "LAST-ACK", "CLOSED"]));
        assert_eq!(f.close_kind(), "fin");
        assert_eq!(f.direction, "observed");
        assert!(f.violations.is_empty());
        let rec = f.record();
        let hs = rec.get("handshake").expect("handshake");
        assert_eq!(hs.get("complete"), Some(&Value::Bool(true)));
        assert_eq!(hs.get("syn_to_synack_ms"), Some(&Value::Float(1.0)));
        assert_eq!(hs.get("synack_to_ack_ms"), Some(&Value::Float(1.0)));
        // every transition names the frame that caused it; the client's ESTABLISHED is the SYN-ACK's
        let est: Vec<&Transition> = f
            .transitions
            .iter()
            .filter(|x| x.endpoint == Role::Client && x.to == State::Established)
            .collect();
        assert_eq!(est.len(), 1);
        assert_eq!(est[0].frame, Some(2));
        assert_eq!(est[0].cause, Cue::RcvSynAck);
        assert_eq!(est[0].ts, t.segments[1].ts);
    }

    #[test]
    fn record_is_python_json() {
        let mut t = Talk::new().handshake();
        t.send(0, "R", 0, Some(1001), None, 65535, 0.5);
        let rec = t.finish()[0].record();
        // as `json.dumps(flow_record(flow), separators=(",", ":"))` writes it for the same segments
        let expected = concat!(
            r#"{"flow":1,"client":"10.0.0.1:40000","server":"10.0.0.2:80","direction":"observed","#,
            r#""packets":4,"client_packets":3,"server_packets":1,"client_bytes":0,"server_bytes":0,"#,
            r#""first_ts":100.001,"last_ts":100.50300000000001,"duration_ms":502.0,"#,
            r#""client_states":["CLOSED","SYN-SENT","ESTABLISHED","CLOSED"],"#,
            r#""server_states":["LISTEN","SYN-RECEIVED","ESTABLISHED","CLOSED"],"transitions":["#,
            r#"{"ts":100.001,"frame":1,"endpoint":"client","from":"CLOSED","to":"SYN-SENT","cause":"snd SYN"},"#,
            r#"{"ts":100.001,"frame":1,"endpoint":"server","from":"LISTEN","to":"SYN-RECEIVED","cause":"rcv SYN"},"#,
            r#"{"ts":100.00200000000001,"frame":2,"endpoint":"client","from":"SYN-SENT","to":"ESTABLISHED","cause":"rcv SYN-ACK"},"#,
            r#"{"ts":100.00300000000001,"frame":3,"endpoint":"server","from":"SYN-RECEIVED","to":"ESTABLISHED","cause":"rcv ACK of SYN"},"#,
            r#"{"ts":100.50300000000001,"frame":4,"endpoint":"client","from":"ESTABLISHED","to":"CLOSED","cause":"snd RST"},"#,
            r#"{"ts":100.50300000000001,"frame":4,"endpoint":"server","from":"ESTABLISHED","to":"CLOSED","cause":"rcv RST"}],"#,
            r#""handshake":{"complete":true,"status":"complete","syn_to_synack_ms":1.0,"synack_to_ack_ms":1.0,"#,
            r#""syn_count":1,"synack_count":1},"close":"client-rst","violations":[],"violation_count":0,"#,
            r#""reused_port":false,"tunnels":[]}"#
        );
        // the negotiation object (src/negotiation.rs, tested there) closes the record
        let text = json(&rec);
        let (head, tail) = text
            .split_once(r#","negotiation":"#)
            .expect("negotiation last");
        assert_eq!(format!("{head}}}"), expected);
        assert!(tail.starts_with(r#"{"syn_seen":true,"synack_seen":true,"client":{"isn":1000,"#));
    }

    #[test]
    fn fin_piggybacked_on_ack_moves_two_states_on_one_segment() {
        let mut t = Talk::new().handshake();
        t.c("FA");
        t.s("FA"); // acks the client's FIN and carries the server's own
        t.c("A");
        let f = &t.finish()[0];
        let (c, s) = paths(f);
        assert_eq!(c, with(&EST_C, &["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]));
        assert_eq!(s, with(&EST_S, &["CLOSE-WAIT", "LAST-ACK", "CLOSED"]));
        let frames: Vec<Option<u64>> = f
            .transitions
            .iter()
            .filter(|x| x.endpoint == Role::Client)
            .map(|x| x.frame)
            .collect();
        // RFC 9293 §3.10.7.4: ACK processing (FIN-WAIT-2), then FIN (TIME-WAIT), on one segment
        assert_eq!(frames[frames.len() - 2..], [Some(5), Some(5)]);
    }

    #[test]
    fn server_closes_first() {
        let mut t = Talk::new().handshake();
        t.s("FA");
        t.c("A");
        t.c("FA");
        t.s("A");
        let (c, s) = paths(&t.finish()[0]);
        assert_eq!(c, with(&EST_C, &["CLOSE-WAIT", "LAST-ACK", "CLOSED"]));
        assert_eq!(s, with(&EST_S, &["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]));
    }

    #[test]
    fn half_close_with_data_keeps_close_wait_in_the_rows() {
        let mut t = Talk::new().handshake();
        t.send(0, "PA", 6, None, None, 65535, 0.001);
        t.c("FA");
        t.s("A");
        t.send(1, "PA", 6, None, None, 65535, 0.001); // the server still sends in CLOSE-WAIT
        t.c("A"); // ... and the client still acknowledges in FIN-WAIT-2
        t.s("FA");
        t.c("A");
        let flows = t.finish();
        let f = &flows[0];
        assert_eq!(
            paths(f).1,
            with(&EST_S, &["CLOSE-WAIT", "LAST-ACK", "CLOSED"])
        );
        assert!(f.violations.is_empty());
        let rows = f.rows.as_ref().expect("rows");
        assert_eq!(rows[4].server_state, State::CloseWait); // the FIN's own row
        assert_eq!(rows[5].server_state, State::CloseWait);
        // the confirmed CLOSE-WAIT is in the FIN's row, dated by the FIN
        let t4: Vec<State> = rows[4].transitions.iter().map(|x| x.to).collect();
        assert_eq!(t4, [State::FinWait1, State::CloseWait]);
        assert_eq!(rows[4].transitions[1].frame, Some(5));
    }

    #[test]
    fn passive_close_wait_is_emitted_once_final_and_listed_in_capture_order() {
        let mut t = Talk::with(TableOptions {
            events: true,
            ..TableOptions::default()
        })
        .handshake();
        t.table.drain_events().for_each(drop);
        t.c("FA"); // frame 4
        let now: Vec<State> = t.table.drain_events().map(|e| e.transition.to).collect();
        assert_eq!(now, [State::FinWait1]); // the server's CLOSE-WAIT is held: not final yet
        assert_eq!(t.flow().state_of(Role::Server), State::CloseWait);
        t.s("A"); // frame 5: acks the FIN; the client moves; the server's state is unchanged
        t.s("FA"); // frame 6: the server's own FIN: CLOSE-WAIT was real, then LAST-ACK
        let later: Vec<(State, State, Option<u64>)> = t
            .table
            .drain_events()
            .map(|e| (e.transition.from, e.transition.to, e.transition.frame))
            .collect();
        assert_eq!(
            later,
            [
                (State::FinWait1, State::FinWait2, Some(5)),
                (State::Established, State::CloseWait, Some(4)),
                (State::CloseWait, State::LastAck, Some(6)),
                (State::FinWait2, State::TimeWait, Some(6)),
            ]
        );
        let f = &t.finish()[0];
        // in the record, capture order: the CLOSE-WAIT right after the FIN that caused it
        let order: Vec<(Role, State)> = f.transitions[4..]
            .iter()
            .map(|x| (x.endpoint, x.to))
            .collect();
        assert_eq!(
            order[..3],
            [
                (Role::Client, State::FinWait1),
                (Role::Server, State::CloseWait),
                (Role::Client, State::FinWait2),
            ]
        );
    }

    #[test]
    fn simultaneous_open() {
        let mut t = Talk::new();
        t.c("S");
        t.s("S"); // crosses the client's SYN
        t.c("SA");
        t.s("SA");
        t.send(0, "PA", 3, None, None, 65535, 0.001);
        t.s("A");
        let flows = t.finish();
        assert_eq!(flows.len(), 1);
        let both = ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"];
        assert_eq!(paths(&flows[0]), (both.to_vec(), both.to_vec()));
        assert!(flows[0].violations.is_empty());
    }

    #[test]
    fn simultaneous_close_goes_through_closing_and_never_emits_close_wait() {
        let mut t = Talk::with(TableOptions {
            events: true,
            keep_rows: RowFilter::All,
            ..TableOptions::default()
        })
        .handshake();
        let fin_c = t.c("FA");
        // the FINs cross: neither acknowledges the other's FIN (RFC 9293 §3.6 figure 13)
        t.send(1, "FA", 0, None, Some(fin_c.seq), 65535, 0.001);
        t.c("A");
        t.s("A");
        let flows = t.finish();
        let closing = ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"];
        assert_eq!(
            paths(&flows[0]),
            (with(&EST_C, &closing), with(&EST_S, &closing))
        );
        assert_eq!(flows[0].close_kind(), "fin");
        assert!(t
            .table
            .drain_events()
            .all(|e| e.transition.to != State::CloseWait));
        // the client's FIN row shows the server as it really was: ESTABLISHED
        let rows = flows[0].rows.as_ref().expect("rows");
        assert_eq!(rows[3].server_state, State::Established);
        assert_eq!(rows[3].transitions.len(), 1);
    }

    #[test]
    fn fins_crossed_behind_data_in_flight() {
        // The server's data left before the client's FIN arrived (its ACK does not cover the FIN),
        // then its own FIN: the FINs crossed even though segments came between them in the capture.
        let mut t = Talk::new().handshake();
        let fin_c = t.c("FA");
        t.send(1, "PA", 100, None, Some(fin_c.seq), 65535, 0.001);
        t.send(0, "A", 0, Some(fin_c.seq + 1), None, 65535, 0.001);
        t.send(1, "FA", 0, None, Some(fin_c.seq), 65535, 0.001);
        let flows = t.finish();
        let f = &flows[0];
        assert_eq!(paths(f).1, with(&EST_S, &["FIN-WAIT-1", "CLOSING"]));
        assert!(f.transitions.iter().all(|x| x.to != State::CloseWait));
        let rows = f.rows.as_ref().expect("rows");
        assert!(rows[3..6]
            .iter()
            .all(|r| r.server_state == State::Established));
        assert_eq!(rows[6].server_state, State::Closing);
    }

    #[test]
    fn rst_abort_by_client() {
        let mut t = Talk::new().handshake();
        t.send(0, "PA", 6, None, None, 65535, 0.001);
        t.send(1, "PA", 6, None, None, 65535, 0.001);
        t.c("RA");
        let f = &t.finish()[0];
        assert_eq!(
            paths(f),
            (with(&EST_C, &["CLOSED"]), with(&EST_S, &["CLOSED"]))
        );
        assert_eq!(f.close_kind(), "client-rst");
    }

    #[test]
    fn connection_refused_server_never_listened() {
        let mut t = Talk::new();
        t.c("S");
        t.send(1, "RA", 0, Some(0), None, 65535, 0.001);
        let f = &t.finish()[0];
        assert_eq!(
            paths(f),
            (vec!["CLOSED", "SYN-SENT", "CLOSED"], vec!["CLOSED"])
        );
        assert_eq!(f.close_kind(), "rejected");
        assert_eq!(f.handshake.status(), "partial");
        assert!(f.violations.is_empty());
    }

    #[test]
    fn syn_retransmissions_are_one_flow_and_server_unknown() {
        let mut t = Talk::new();
        for dt in [0.0, 1.0, 2.0] {
            t.send(0, "S", 0, None, None, 65535, dt);
        }
        let flows = t.finish();
        assert_eq!(flows.len(), 1);
        assert_eq!(
            paths(&flows[0]),
            (vec!["CLOSED", "SYN-SENT"], vec!["UNKNOWN"])
        );
        assert_eq!(flows[0].handshake.syn_count, 3);
        assert_eq!(flows[0].close_kind(), "none");
    }

    #[test]
    fn rst_in_syn_received_after_passive_open_returns_to_listen() {
        let mut t = Talk::new();
        t.c("S");
        t.s("SA");
        t.send(0, "R", 0, Some(1001), None, 65535, 0.001);
        let f = &t.finish()[0];
        assert_eq!(
            paths(f),
            (
                with(&EST_C, &["CLOSED"]),
                vec!["LISTEN", "SYN-RECEIVED", "LISTEN"]
            )
        );
        assert_eq!(f.close_kind(), "client-rst");
    }

    #[test]
    fn rst_in_syn_received_after_active_open_closes() {
        // simultaneous open: the client reached SYN-RECEIVED from SYN-SENT (an active OPEN), so an
        // acceptable RST takes it to CLOSED, not LISTEN (RFC 9293 §3.10.7.4)
        let mut t = Talk::new();
        t.c("S");
        t.s("S");
        t.s("RA");
        let f = &t.finish()[0];
        let both = ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "CLOSED"];
        assert_eq!(paths(f), (both.to_vec(), both.to_vec()));
        // the server never sent a SYN-ACK and ends CLOSED: the flow model calls that a rejection
        assert_eq!(f.close_kind(), "rejected");
    }

    #[test]
    fn out_of_window_rst_is_not_a_close() {
        let mut t = Talk::new().handshake();
        t.send(0, "PA", 100, None, None, 65535, 0.001);
        t.send(1, "A", 0, None, None, 1000, 0.001);
        t.send(0, "R", 0, Some(1001 + 100 + 50_000), None, 65535, 0.001);
        {
            let f = t.flow();
            assert_eq!(f.server.state, State::Established);
            assert_eq!(f.violation_count, 1);
            assert!(f.violations[0]
                .reason
                .contains("RST outside the receive window"));
            assert!(!f.rows.as_ref().expect("rows")[5].notes.is_empty());
        }
        t.send(0, "R", 0, Some(1101 + 10), None, 65535, 0.001); // in window: resets
        assert_eq!(t.flow().server.state, State::Closed);
        assert_eq!(t.flow().close_kind(), "client-rst");
    }

    #[test]
    fn mid_stream_start_is_unknown_and_inferred() {
        let mut t = Talk::new();
        t.conv((v4(1), 51000), (v4(2), 443));
        t.send(1, "PA", 100, None, None, 65535, 0.001); // the first segment seen comes from the server
        t.c("A");
        t.c("FA");
        t.s("FA");
        t.c("A");
        let f = &t.finish()[0];
        assert_eq!(f.direction, "inferred");
        assert_eq!(f.server.label(), "10.0.0.2:443");
        assert_eq!(
            paths(f),
            (
                vec!["UNKNOWN", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"],
                vec!["UNKNOWN", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
            )
        );
        assert_eq!(f.handshake.status(), "none");
    }

    #[test]
    fn port_reuse_after_time_wait_starts_new_flow() {
        let mut t = Talk::new();
        for i in 0..3u32 {
            t.c("S");
            t.s("SA");
            t.c("A");
            t.c("FA");
            t.s("FA");
            t.c("A");
            t.new_client_isn(10_000 * (i + 2));
            t.new_server_isn(90_000 * (i + 2));
        }
        let flows = t.finish();
        assert_eq!(flows.len(), 3);
        let first = &flows[0];
        let c = names(&first.client.path);
        assert_eq!(c[c.len() - 2..], ["TIME-WAIT", "CLOSED"]);
        assert_eq!(first.transitions.last().map(|x| x.cause), Some(Cue::Reused));
        assert_eq!(first.client.path.last(), Some(&State::Closed));
        assert_eq!(flows[2].client.path.last(), Some(&State::TimeWait));
        let numbers: Vec<u64> = flows.iter().map(|f| f.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert!(!flows[0].reused_port && flows[1].reused_port && flows[2].reused_port);
    }

    #[test]
    fn new_syn_with_new_isn_on_open_flow_starts_new_flow() {
        let mut t = Talk::new().handshake();
        t.new_client_isn(777_777);
        t.c("S");
        let flows = t.finish();
        assert_eq!(flows.len(), 2);
        assert_eq!(names(&flows[1].client.path), ["CLOSED", "SYN-SENT"]);
    }

    #[test]
    fn time_wait_ends_after_2msl_when_the_capture_lasts_that_long() {
        let mut t = Talk::with(TableOptions {
            msl: 1.0,
            ..TableOptions::default()
        })
        .handshake();
        t.c("FA");
        t.s("FA");
        t.c("A");
        let fin_ts = t.segments[t.segments.len() - 2].ts;
        t.conv((v4(9), 1), (v4(2), 80));
        t.send(0, "S", 0, None, None, 65535, 5.0); // any later segment: 5 s > 2*MSL
        let flows = t.finish();
        let c = names(&flows[0].client.path);
        assert_eq!(c[c.len() - 2..], ["TIME-WAIT", "CLOSED"]);
        let timer = flows[0].transitions.last().expect("timer");
        assert_eq!(timer.cause, Cue::Timeout2Msl);
        assert_eq!(timer.frame, None);
        assert_eq!(timer.ts, fin_ts + 2.0); // from the FIN that entered TIME-WAIT
    }

    #[test]
    fn time_wait_stays_when_capture_ends_early() {
        let mut t = Talk::new().handshake();
        t.c("FA");
        t.s("FA");
        t.c("A");
        assert_eq!(t.finish()[0].client.path.last(), Some(&State::TimeWait));
    }

    #[test]
    fn syn_ack_acknowledging_nothing_is_a_violation() {
        let mut t = Talk::new();
        t.c("S");
        t.send(0, "PA", 5, None, None, 65535, 0.001); // data before any SYN-ACK
        t.send(1, "SA", 0, None, Some(999), 65535, 0.001);
        let f = &t.finish()[0];
        assert!(f
            .violations
            .iter()
            .any(|v| v.reason.contains("does not acknowledge our SYN")));
    }

    #[test]
    fn one_sided_capture_infers_the_missing_syn_ack() {
        let mut t = Talk::new();
        t.c("S");
        t.send(0, "A", 0, None, Some(5001), 65535, 0.001);
        t.send(0, "PA", 10, None, None, 65535, 0.001);
        t.c("FA");
        let f = &t.finish()[0];
        assert_eq!(
            paths(f),
            (with(&EST_C, &["FIN-WAIT-1"]), with(&EST_S, &["CLOSE-WAIT"]))
        );
        assert!(f.violations.is_empty());
    }

    #[test]
    fn rst_with_the_fin_sequence_number_after_close_is_accepted() {
        let mut t = Talk::new().handshake();
        let fin = t.s("FA");
        t.c("A");
        t.send(1, "R", 0, Some(fin.seq), None, 65535, 0.001); // Linux tcp_reset_check
        assert_eq!(t.flow().client.state, State::Closed);
        assert_eq!(t.flow().close_kind(), "server-rst");
    }

    #[test]
    fn segment_sent_after_rst_names_the_crossing() {
        let mut t = Talk::new().handshake();
        t.c("RA");
        t.s("FA"); // the server's FIN crossed the client's RST
        assert!(t.flow().violations[0]
            .reason
            .contains("crossed on the wire"));
    }

    #[test]
    fn missing_row_is_a_violation_with_the_rfc_wording() {
        let mut t = Talk::new().handshake();
        t.send(1, "SA", 0, Some(5000), None, 65535, 0.001); // retransmitted SYN-ACK: a self-loop
        assert_eq!(t.flow().violation_count, 0);
        let mut u = Talk::new();
        u.c("S");
        u.c("FA"); // SYN-SENT sends a FIN: no row
        let f = &u.finish()[0];
        assert_eq!(
            f.violations[0].reason,
            "no RFC 9293 transition for snd FIN in SYN-SENT"
        );
        assert_eq!(f.violations[0].state, State::SynSent);
    }

    #[test]
    fn acceptable_rst_in_every_synchronized_state_closes_the_receiver() {
        // Put the client into each state, then the server sends an acceptable RST (RFC 9293 §3.10.7.4)
        type Steps = fn(&mut Talk);
        let targets: [(&str, Steps); 7] = [
            ("ESTABLISHED", |_| {}),
            ("FIN-WAIT-1", |t| {
                t.c("FA");
            }),
            ("FIN-WAIT-2", |t| {
                t.c("FA");
                t.s("A");
            }),
            ("CLOSE-WAIT", |t| {
                t.s("FA");
                t.c("A");
            }),
            ("CLOSING", |t| {
                t.c("FA");
                let ack = t.nxt(0) - 1;
                t.send(1, "FA", 0, None, Some(ack), 65535, 0.001);
            }),
            ("LAST-ACK", |t| {
                t.s("FA");
                t.c("A");
                t.c("FA");
            }),
            ("TIME-WAIT", |t| {
                t.c("FA");
                t.s("FA");
            }),
        ];
        for (state, steps) in targets {
            let mut t = Talk::new().handshake();
            steps(&mut t);
            t.s("RA");
            let f = &t.finish()[0];
            let c = names(&f.client.path);
            assert_eq!(c[c.len() - 2..], [state, "CLOSED"], "{state}");
            assert_eq!(f.close_kind(), "server-rst", "{state}");
        }
    }
}
