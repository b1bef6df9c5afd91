//! The flow table: splits segments into connection incarnations and numbers them in order of first
//! segment. Port of handshake_probe/core/flows.py.
//!
//! Two modes. By default every flow is kept and `finish` returns them all in number order (what tests
//! and small files want). With `streaming`, a flow that ended (FIN both ways or RST) and stayed quiet
//! for `linger` seconds, or that stayed silent for `idle_timeout`, is finished and queued for
//! `drain_finished`, then forgotten; so is the least recently active flow when more than `max_open`
//! are open (counted in `evicted`). Memory then grows with open flows, not with flows or packets.
//! Which flows go out when, and in which order, is the order of the JSON Lines output: it follows the
//! Python table exactly (its dicts ordered by last activity are the linked lists here).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::endpoint::Role;
use crate::flow::{flow_key, Flow, FlowKey, Transition};
use crate::observe::Observer;
use crate::segment::{Segment, ACK, SYN};
use crate::states::State;

/// Linux keeps a socket in TIME-WAIT for 60 s (TCP_TIMEWAIT_LEN), i.e. an effective MSL of 30 s;
/// RFC 9293 §3.4.2 suggests 2 minutes. We default to what a student will observe with `ss` on Linux.
pub const DEFAULT_MSL: f64 = 30.0;
/// Zeek's defaults for letting a finished connection go (tcp_close_delay / tcp_reset_delay: 5 s) and
/// for giving up on a silent one (tcp_inactivity_timeout: 5 min). Capture time, not wall time.
pub const DEFAULT_LINGER: f64 = 5.0;
pub const DEFAULT_IDLE_TIMEOUT: f64 = 300.0;
pub const DEFAULT_MAX_OPEN: usize = 200_000;
/// packets between two sweeps for finished flows
const SWEEP_EVERY: u32 = 1024;
/// how many departed 4-tuples are remembered for `reused_port`
const SEEN_KEYS_CAP: usize = 1_000_000;

/// What is a connection: the split rules. A segment on a 4-tuple whose current flow is `flow` starts a
/// new flow (a new incarnation of the 4-tuple) when the first rule that applies says so. Each rule
/// says which of Zeek and tshark (4.0, the conformance references) it follows; where they disagree
/// we follow Zeek, and tests/test_conformance_split.py names every trace where that changes tshark's
/// stream count.
///
/// | # | the segment | the flow | new flow? | follows |
/// |---|---|---|---|---|
/// | 1 | any | ended (RST, rejection, FIN both ways) `linger` s or longer before | yes | Zeek |
/// | 2 | SYN without ACK | ended | yes, even with the same ISN | Zeek |
/// | 3 | SYN without ACK | open, the sender's ISN | no: a retransmission | both |
/// | 4 | SYN without ACK | open, the other side's first segment, crossing the client's SYN | no: simultaneous open | both |
/// | 5 | SYN without ACK | open, another ISN | yes | both |
/// | 6 | anything else | | no | both |
///
/// 1. Zeek removes a connection `tcp_close_delay` / `tcp_reset_delay` (5 s, our default `linger`)
///    after it closed or was reset (TCPSessionAdapter::ConnectionClosed sets ConnDeleteTimer at the
///    closing packet's time + the delay; the timer fires at that time or later), and any later packet
///    on the 4-tuple opens a new connection. A scanner's SYN, SYN-ACK, RST and, 16 s later, its ACK
///    with data and the server's RST are two connections in conn.log (`RSTO ShR`, then `RSTRH`).
///    tshark 4.0 opens a new stream only on a SYN with a new ISN: one stream. Counted from the
///    segment that ended the flow (`Flow::ended_at`), not from the last one, as Zeek's timer is.
/// 2. A repeated SYN with the same ISN is a retransmission only while the first is unanswered: once
///    the flow ended (a rejected SYN *was* answered, by RST), the next SYN is a new attempt. Zeek:
///    TCPSessionAdapter::IsReuse compares the ISN only while the connection is not closed
///    (`IsClosed()`: either side closed or reset); three SYNs each answered by RST/ACK are three
///    REJ rows. tshark 4.0 (packet-tcp.c, "If this is a SYN packet, then check if its seq-nr is
///    different from the base_seq") keeps them in one stream.
/// 3. RFC 9293 §3.8.1: the same ISN is the same SYN sent again (Zeek: `base_seq == StartSeq`;
///    tshark: same base_seq).
/// 4. RFC 9293 §3.5 figure 7: the other side's SYN crosses the client's SYN.
/// 5. A new ISN on an open flow: the client gave up on it (or a port was reused early).
///
/// Not followed: Zeek's timers for connections that did not end (5 s after an unanswered SYN,
/// `tcp_attempt_delay`; a FIN while the peer has sent nothing, which Zeek's ConnectionClosed counts
/// as a complete close): a flow ends by RST or FINs, not by silence; see the README's conformance
/// section for the conn.log rows this splits differently.
#[inline]
pub fn split(flow: &Flow, seg: &Segment, linger: f64) -> bool {
    if let Some(ended) = flow.ended_at {
        if seg.ts - ended >= linger {
            return true; // rule 1
        }
    }
    if seg.flags & SYN == 0 || seg.flags & ACK != 0 {
        return false; // rule 6
    }
    if flow.ended() {
        return true; // rule 2: port reuse after RST, rejection, or FIN close / TIME-WAIT
    }
    let from_client = seg.src == flow.client.addr && seg.sport == flow.client.port;
    let sender = if from_client {
        &flow.client
    } else {
        &flow.server
    };
    if sender.isn == Some(seg.seq) {
        return false; // rule 3
    }
    let simultaneous = !from_client
        && flow.server.isn.is_none()
        && flow.state_of(Role::Client) == State::SynSent
        && flow.server.packets == 0;
    !simultaneous // rules 4 and 5
}

/// Which flows keep every segment with the states after it (for `--flow N`).
#[derive(Clone, Debug, Default)]
pub enum RowFilter {
    #[default]
    None,
    All,
    Set(HashSet<u64>),
}

impl RowFilter {
    pub fn keeps(&self, number: u64) -> bool {
        match self {
            RowFilter::None => false,
            RowFilter::All => true,
            RowFilter::Set(numbers) => numbers.contains(&number),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TableOptions {
    pub msl: f64,
    pub linger: f64,
    pub idle_timeout: f64,
    pub max_open: usize,
    pub streaming: bool,
    pub keep_rows: RowFilter,
    /// queue every transition as it becomes final, for `drain_events` (live views)
    pub events: bool,
    /// p0f's database (`--p0f-db`): records label both sides' fingerprints
    pub p0f_db: Option<std::sync::Arc<crate::p0f::Db>>,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            msl: DEFAULT_MSL,
            linger: DEFAULT_LINGER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_open: DEFAULT_MAX_OPEN,
            streaming: false,
            keep_rows: RowFilter::None,
            events: false,
            p0f_db: None,
        }
    }
}

/// A transition as a live view shows it (`capture`, the prober): with its flow's number and both
/// ends' labels (`10.0.0.1:40000`, `[::1]:80`), so that a line names its connection without the
/// view holding on to flows.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub flow: u64,
    pub client: String,
    pub server: String,
    pub transition: Transition,
}

impl Event {
    /// Move the flow's final transitions to `out`. The labels are made only when there is a
    /// transition to carry them: most segments cause none, and they then cost no allocation.
    fn collect(flow: &mut Flow, out: &mut Vec<Event>) {
        let done: Vec<Transition> = flow.take_events().collect(); // empty: no allocation
        if done.is_empty() {
            return;
        }
        let (client, server) = (flow.client.label(), flow.server.label());
        out.extend(done.into_iter().map(|transition| Event {
            flow: flow.number,
            client: client.clone(),
            server: server.clone(),
            transition,
        }));
    }
}

/// One set of per-flow analyses (history, anomalies), made for each new flow.
pub type ObserverFactory = Box<dyn Fn() -> Vec<Box<dyn Observer>> + Send>;

/// FxHash (rustc's hasher): the flow key is hashed once per packet, and SipHash's flooding
/// resistance buys nothing against a capture file that is read, not served.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

const FX_K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

type Fx = BuildHasherDefault<FxHasher>;

const NIL: usize = usize::MAX;

/// A doubly linked list over slot indices: Python's insertion-ordered dicts, where "re-insert at the
/// end" and "pop the oldest" are O(1).
#[derive(Clone, Copy)]
struct Links {
    prev: usize,
    next: usize,
}

const UNLINKED: Links = Links {
    prev: NIL,
    next: NIL,
};

#[derive(Clone, Copy)]
struct List {
    head: usize,
    tail: usize,
    len: usize,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Which list: `open` (every open flow, streaming only) or `ended` (the ended ones among them).
const OPEN: usize = 0;
const ENDED: usize = 1;

/// What the table knows of a slot besides its flow: kept apart from the (large) flows so that the
/// per-packet list updates touch small records only.
struct Meta {
    key: FlowKey,
    /// place in `open` and in `ended`, and whether it is linked there
    links: [Links; 2],
    linked: [bool; 2],
}

/// Feeds segments to flows; `split` (above) decides when a segment starts a new flow on its 4-tuple.
pub struct FlowTable {
    opts: TableOptions,
    observers: ObserverFactory,
    /// the current flow of each 4-tuple: its slot
    map: HashMap<FlowKey, usize, Fx>,
    /// a slot's flow (None: a free slot) and its bookkeeping, by slot index
    slots: Vec<Option<Flow>>,
    meta: Vec<Meta>,
    free: Vec<usize>,
    /// streaming: open flows by last activity, oldest first; and the ended ones among them
    open: List,
    ended: List,
    /// streaming: 4-tuples of flows already handed out, oldest first, at most SEEN_KEYS_CAP
    seen: HashSet<FlowKey, Fx>,
    seen_order: VecDeque<FlowKey>,
    /// not streaming: 4-tuples in order of first appearance (the order `finish` fires timers in)
    key_order: Vec<FlowKey>,
    finished: Vec<Flow>,
    events: Vec<Event>,
    /// flows created (= the last flow number)
    pub count: u64,
    /// flows pushed out by max_open
    pub evicted: u64,
    pub last_ts: Option<f64>,
    until_sweep: u32,
}

impl FlowTable {
    pub fn new(opts: TableOptions, observers: ObserverFactory) -> Self {
        FlowTable {
            opts,
            observers,
            map: HashMap::default(),
            slots: Vec::new(),
            meta: Vec::new(),
            free: Vec::new(),
            open: EMPTY,
            ended: EMPTY,
            seen: HashSet::default(),
            seen_order: VecDeque::new(),
            key_order: Vec::new(),
            finished: Vec::new(),
            events: Vec::new(),
            count: 0,
            evicted: 0,
            last_ts: None,
            until_sweep: SWEEP_EVERY,
        }
    }

    pub fn options(&self) -> &TableOptions {
        &self.opts
    }

    /// Open flows (streaming) or all flows so far (not streaming).
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current flow of a 4-tuple, if it is still in the table.
    pub fn get(&self, key: &FlowKey) -> Option<&Flow> {
        let i = *self.map.get(key)?;
        self.slots.get(i)?.as_ref()
    }

    /// Every flow still held, in slot order (number order when not streaming).
    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.slots.iter().flatten()
    }

    pub fn add(&mut self, seg: Segment) {
        let key = flow_key(&seg);
        let ts = seg.ts;
        let found = self.map.get(&key).copied();
        let linger = self.opts.linger;
        let i = match found {
            Some(i) if matches!(self.slots.get(i), Some(Some(f)) if !split(f, &seg, linger)) => i,
            _ => self.start_flow(key, &seg, found),
        };
        let events = self.opts.events;
        if let Some(flow) = self.slots.get_mut(i).and_then(Option::as_mut) {
            flow.add(seg);
            if events {
                Event::collect(flow, &mut self.events);
            }
        }
        self.last_ts = Some(ts);
        if self.opts.streaming {
            // Keep both lists in order of last activity: re-insert at the end (nothing to do for
            // the flow that was already the last one active, the common case in bursts).
            if self.open.tail != i {
                self.unlink(i, OPEN);
                self.push_back(i, OPEN);
            }
            // Ended: from the segment that ended it on (`Flow::ended_at`), as split rule 1 counts.
            if self.flow_at(i).is_none_or(|f| f.ended_at.is_none()) {
                self.unlink(i, ENDED);
            } else if self.ended.tail != i {
                self.unlink(i, ENDED);
                self.push_back(i, ENDED);
            }
            self.until_sweep -= 1;
            if self.until_sweep == 0 {
                self.until_sweep = SWEEP_EVERY;
                self.sweep(ts);
            }
        }
    }

    /// A new incarnation on `key`; `old` is the slot of the flow it takes the 4-tuple over from.
    fn start_flow(&mut self, key: FlowKey, seg: &Segment, old: Option<usize>) -> usize {
        let reused = old.is_some() || self.seen.contains(&key);
        if let Some(o) = old {
            if let Some(flow) = self.slots.get_mut(o).and_then(Option::as_mut) {
                flow.retire(seg.ts);
            }
            self.collect_events(o);
            self.let_go(o);
        }
        self.count += 1;
        let keep = self.opts.keep_rows.keeps(self.count);
        let mut flow = Flow::new(
            self.count,
            seg,
            self.opts.msl,
            keep,
            (self.observers)(),
            reused,
        );
        flow.set_emit(self.opts.events);
        if let Some(db) = &self.opts.p0f_db {
            flow.set_p0f_db(db.clone());
        }
        let meta = Meta {
            key,
            links: [UNLINKED; 2],
            linked: [false; 2],
        };
        let i = match self.free.pop() {
            Some(i) if i < self.slots.len() && i < self.meta.len() => {
                self.slots[i] = Some(flow);
                self.meta[i] = meta;
                i
            }
            _ => {
                self.slots.push(Some(flow));
                self.meta.push(meta);
                self.slots.len() - 1
            }
        };
        if self.map.insert(key, i).is_none() && !self.opts.streaming {
            self.key_order.push(key);
        }
        i
    }

    fn flow_at(&self, i: usize) -> Option<&Flow> {
        self.slots.get(i)?.as_ref()
    }

    fn collect_events(&mut self, i: usize) {
        if !self.opts.events {
            return;
        }
        if let Some(flow) = self.slots.get_mut(i).and_then(Option::as_mut) {
            Event::collect(flow, &mut self.events);
        }
    }

    /// Hand out the flows that are over at capture time `now` (streaming mode only).
    pub fn sweep(&mut self, now: f64) {
        if !self.opts.streaming {
            return;
        }
        for (ended_list, quiet) in [(true, self.opts.linger), (false, self.opts.idle_timeout)] {
            loop {
                let head = if ended_list {
                    self.ended.head
                } else {
                    self.open.head
                };
                let Some(flow) = self.flow_at(head) else {
                    break;
                };
                if flow.last_ts + quiet > now {
                    break;
                }
                self.finish_flow(head, now);
                self.let_go(head);
            }
        }
        while self.open.len > self.opts.max_open {
            let head = self.open.head;
            if self.flow_at(head).is_none() {
                break;
            }
            self.finish_flow(head, now);
            self.let_go(head);
            self.evicted += 1;
        }
    }

    fn finish_flow(&mut self, i: usize, now: f64) {
        if let Some(flow) = self.slots.get_mut(i).and_then(Option::as_mut) {
            flow.finish(now);
        }
        self.collect_events(i);
    }

    /// Streaming: the flow leaves the table for the finished queue; its 4-tuple is remembered.
    fn let_go(&mut self, i: usize) {
        if !self.opts.streaming {
            return;
        }
        self.unlink(i, OPEN);
        self.unlink(i, ENDED);
        let Some(flow) = self.slots.get_mut(i).and_then(Option::take) else {
            return;
        };
        self.free.push(i);
        let Some(key) = self.meta.get(i).map(|m| m.key) else {
            return;
        };
        if self.map.get(&key) == Some(&i) {
            self.map.remove(&key);
        }
        if self.seen.insert(key) {
            self.seen_order.push_back(key);
            if self.seen.len() > SEEN_KEYS_CAP {
                if let Some(oldest) = self.seen_order.pop_front() {
                    self.seen.remove(&oldest);
                }
            }
        }
        self.finished.push(flow);
    }

    /// Streaming: the flows handed out since the last call, in the order they finished.
    pub fn drain_finished(&mut self) -> std::vec::Drain<'_, Flow> {
        self.finished.drain(..)
    }

    /// With `events`: every transition as it became final, with its flow's number and ends.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// End of input: fire the 2MSL timers the capture outlived; return all flows in number order
    /// (streaming: queue every open flow for `drain_finished`, oldest activity first, return []).
    pub fn finish(&mut self) -> Vec<Flow> {
        let order: Vec<usize> = if self.opts.streaming {
            let mut v = Vec::with_capacity(self.open.len);
            let mut i = self.open.head;
            while let Some(m) = self.meta.get(i) {
                v.push(i);
                i = m.links[OPEN].next;
            }
            v
        } else {
            self.key_order
                .iter()
                .filter_map(|k| self.map.get(k).copied())
                .collect()
        };
        if let Some(now) = self.last_ts {
            for &i in &order {
                self.finish_flow(i, now);
            }
        }
        if self.opts.streaming {
            for &i in &order {
                self.let_go(i);
            }
            return Vec::new();
        }
        self.map.clear();
        self.key_order.clear();
        self.free.clear();
        self.meta.clear();
        self.slots.drain(..).flatten().collect()
    }

    // ----------------------------------------------------------------- the two lists
    fn list(&mut self, which: usize) -> &mut List {
        if which == ENDED {
            &mut self.ended
        } else {
            &mut self.open
        }
    }

    fn meta_mut(&mut self, i: usize) -> Option<&mut Meta> {
        self.meta.get_mut(i)
    }

    fn push_back(&mut self, i: usize, which: usize) {
        let tail = self.list(which).tail;
        let Some(slot) = self.meta_mut(i) else {
            return;
        };
        if slot.linked[which] {
            return;
        }
        slot.linked[which] = true;
        slot.links[which] = Links {
            prev: tail,
            next: NIL,
        };
        match self.meta_mut(tail) {
            Some(t) => t.links[which].next = i,
            None => self.list(which).head = i,
        }
        let list = self.list(which);
        list.tail = i;
        list.len += 1;
    }

    fn unlink(&mut self, i: usize, which: usize) {
        let Some(slot) = self.meta_mut(i) else {
            return;
        };
        if !slot.linked[which] {
            return;
        }
        let Links { prev, next } = slot.links[which];
        slot.linked[which] = false;
        slot.links[which] = UNLINKED;
        match self.meta_mut(prev) {
            Some(p) => p.links[which].next = next,
            None => self.list(which).head = next,
        }
        match self.meta_mut(next) {
            Some(n) => n.links[which].prev = prev,
            None => self.list(which).tail = prev,
        }
        let list = self.list(which);
        list.len = list.len.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    //! Streaming mode (tests/test_flow_table.py): finished flows leave memory, in the order they
    //! finish.
    use super::*;
    use crate::flow::tests::{v4, Talk};
    use crate::segment::Addr;

    fn streaming(linger: f64, idle_timeout: f64, max_open: usize) -> Talk {
        Talk::with(TableOptions {
            streaming: true,
            linger,
            idle_timeout,
            max_open,
            ..TableOptions::default()
        })
    }

    fn numbers(t: &mut Talk) -> Vec<u64> {
        t.table.drain_finished().map(|f| f.number).collect()
    }

    #[test]
    fn ended_flow_leaves_after_linger_and_open_flows_stay() {
        let mut t = streaming(5.0, 300.0, DEFAULT_MAX_OPEN).handshake();
        t.c("FA");
        t.s("FA");
        t.c("A");
        t.conv((v4(7), 7), (v4(2), 80));
        t.c("S");
        t.s("SA");
        t.c("A"); // an open flow, still talking
        for _ in 0..1100 {
            t.send(0, "A", 0, None, None, 65535, 0.01); // a sweep, 10 s later in capture time
        }
        assert_eq!(numbers(&mut t), [1]);
        assert_eq!(t.table.count, 2);
        assert!(t.table.finish().is_empty());
        assert_eq!(numbers(&mut t), [2]);
    }

    #[test]
    fn idle_flow_is_finished_after_idle_timeout() {
        let mut t = streaming(DEFAULT_LINGER, 1.0, DEFAULT_MAX_OPEN).handshake(); // never closes
        t.conv((v4(7), 7), (v4(2), 80));
        t.ts += 2.0;
        for _ in 0..1100 {
            t.c("A");
        }
        let done: Vec<Flow> = t.table.drain_finished().collect();
        assert_eq!(done[0].number, 1);
        assert_eq!(done[0].close_kind(), "none");
    }

    #[test]
    fn max_open_evicts_least_recently_active() {
        let mut t = streaming(DEFAULT_LINGER, DEFAULT_IDLE_TIMEOUT, 10);
        for i in 0..30u8 {
            t.conv((Addr::V4([10, 0, 1, i]), 1000 + u16::from(i)), (v4(2), 80));
            t.ts = 100.0 + f64::from(i);
            t.c("S");
        }
        t.switch(0);
        for _ in 0..1100 {
            t.send(0, "S", 0, None, None, 65535, 0.0); // the same SYN again: a retransmission
        }
        assert_eq!(t.table.evicted, 21); // 31 open, 10 allowed
        assert_eq!(numbers(&mut t), (1..22).collect::<Vec<u64>>()); // least recently active first
    }

    #[test]
    fn reused_port_is_remembered_after_the_flow_left() {
        let mut t = streaming(0.5, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_OPEN).handshake();
        t.c("RA");
        t.conv((v4(7), 7), (v4(2), 80));
        t.ts += 1.0;
        for _ in 0..1100 {
            t.send(0, "A", 0, None, None, 65535, 0.0);
        }
        assert_eq!(numbers(&mut t), [1]);
        t.switch(0);
        t.new_client_isn(99_999);
        t.send(0, "S", 0, None, None, 65535, 5.0);
        assert!(t.flow().reused_port);
        assert_eq!(t.flow().number, 3);
    }

    #[test]
    fn not_streaming_keeps_every_flow_in_number_order() {
        let mut t = Talk::new().handshake();
        t.c("RA");
        t.conv((v4(7), 7), (v4(2), 80));
        t.c("S");
        t.switch(0);
        t.new_client_isn(99_999);
        t.c("S"); // port reuse: flow 3 on flow 1's 4-tuple
        assert!(t.table.drain_finished().next().is_none());
        let flows = t.finish();
        let n: Vec<u64> = flows.iter().map(|f| f.number).collect();
        assert_eq!(n, [1, 2, 3]);
        assert!(flows[2].reused_port && !flows[1].reused_port);
    }

    /// Zeek's conn_state and history of a flow (its observers' fields).
    fn zeek_of(f: &Flow) -> (String, String) {
        let crate::record::Value::Obj(fields) = f.record() else {
            panic!("a record is an object")
        };
        let text = |k: &str| match fields.iter().find(|(n, _)| *n == k) {
            Some((_, crate::record::Value::Str(s))) => s.clone(),
            Some((_, crate::record::Value::Static(s))) => s.to_string(),
            other => panic!("{k}: {other:?}"),
        };
        (text("conn_state"), text("history"))
    }

    fn zeek_talk() -> Talk {
        Talk::with_observers(
            TableOptions::default(),
            crate::analysis::default_observers(false),
        )
    }

    #[test]
    fn rule_2_a_rejected_syn_sent_again_with_the_same_isn_is_a_new_flow() {
        // The first miss: SYN, RST/ACK, three times, one ISN. Zeek: three REJ rows;
        // tshark 4.0: one stream (same base_seq). We follow Zeek.
        let mut t = zeek_talk();
        for _ in 0..3 {
            t.c("S");
            t.send(1, "RA", 0, Some(0), None, 0, 0.001);
            t.ts += 1.0;
        }
        let flows = t.finish();
        assert_eq!(flows.len(), 3);
        for (k, f) in flows.iter().enumerate() {
            assert_eq!(f.packets, 2);
            assert_eq!(f.close_kind(), "rejected");
            assert_eq!(f.reused_port, k > 0);
            assert_eq!(zeek_of(f), ("REJ".into(), "Sr".into()));
        }
    }

    #[test]
    fn rule_3_an_unanswered_syn_sent_again_is_a_retransmission() {
        let mut t = zeek_talk();
        t.c("S");
        t.send(0, "S", 0, None, None, 65535, 1.0);
        t.s("SA");
        t.send(0, "S", 0, None, None, 65535, 0.5); // the SYN-ACK was lost on its way: still open
        t.c("A");
        let flows = t.finish();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].handshake.syn_count, 3);
    }

    #[test]
    fn rule_1_a_segment_linger_seconds_after_the_end_starts_a_new_flow() {
        // The second miss: a scanner's SYN, the SYN-ACK, the scanner's RST; 16 s later its
        // ACK with 109 bytes and the server's RST. Zeek: `RSTO ShR`, then a second connection.
        let mut t = zeek_talk();
        t.conv((v4(9), 61000), (v4(2), 80));
        t.c("S");
        t.s("SA");
        t.c("R");
        t.ts += 16.0;
        t.send(0, "PA", 109, None, None, 65535, 0.0);
        t.s("R");
        let flows = t.finish();
        assert_eq!(flows.len(), 2);
        assert_eq!(zeek_of(&flows[0]), ("RSTO".into(), "ShR".into()));
        assert_eq!((flows[1].packets, flows[1].reused_port), (2, true));
        assert_eq!(flows[1].direction, "inferred");
        assert_eq!(flows[1].client.label(), "10.0.0.9:61000");
        assert_eq!(zeek_of(&flows[1]), ("RSTRH".into(), "Dr".into()));
    }

    #[test]
    fn rule_1_counts_from_the_segment_that_ended_the_flow() {
        for (gap, flows) in [(4.999, 1), (5.0, 2)] {
            let mut t = zeek_talk().handshake();
            t.c("FA");
            t.s("FA"); // FIN both ways: ended here
            t.send(0, "A", 0, None, None, 65535, 3.0); // the last ACK, late: does not restart the clock
            t.send(0, "A", 0, None, None, 65535, gap - 3.0);
            assert_eq!(t.finish().len(), flows, "{gap} s after the second FIN");
        }
        // An open flow is never split by silence (Zeek's attempt and inactivity timers: not followed).
        let mut t = zeek_talk().handshake();
        t.send(0, "PA", 10, None, None, 65535, 600.0);
        assert_eq!(t.finish().len(), 1);
    }

    #[test]
    fn rule_1_in_streaming_mode_agrees_with_the_sweep() {
        // The sweep lets an ended flow go after `linger` quiet seconds; rule 1 decides the same
        // whether or not a sweep happened in between.
        let mut t = Talk::with(TableOptions {
            streaming: true,
            ..TableOptions::default()
        })
        .handshake();
        t.c("RA");
        t.send(1, "RA", 0, None, None, 65535, 6.0);
        assert!(t.table.finish().is_empty());
        assert_eq!(numbers(&mut t), [1, 2]);
    }

    #[test]
    fn every_ended_flow_knows_when_it_ended() {
        // `Flow::add` looks for the end only on some segments (RST, FIN, a move after a FIN): on any
        // stream of segments, a flow that is over has `ended_at`.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let letters = ["S", "SA", "A", "PA", "FA", "F", "R", "RA"];
        for _ in 0..300 {
            let mut t = Talk::new();
            for _ in 0..12 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let flags = letters[(x % 8) as usize];
                let len = if flags.contains('P') { 10 } else { 0 };
                t.send(
                    ((x >> 8) % 2) as usize,
                    flags,
                    len,
                    None,
                    None,
                    65535,
                    0.001,
                );
                let f = t.flow();
                assert!(!f.ended() || f.ended_at.is_some(), "{:?}", t.segments);
            }
        }
    }

    #[test]
    fn events_name_their_flow() {
        let mut t = Talk::with(TableOptions {
            events: true,
            ..TableOptions::default()
        })
        .handshake();
        let seen: Vec<(u64, &str, &str)> = t
            .table
            .drain_events()
            .map(|e| (e.flow, e.transition.endpoint.name(), e.transition.to.name()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "client", "SYN-SENT"),
                (1, "server", "SYN-RECEIVED"),
                (1, "client", "ESTABLISHED"),
                (1, "server", "ESTABLISHED")
            ]
        );
    }

    #[test]
    fn events_carry_their_flows_endpoints() {
        let mut t = Talk::with(TableOptions {
            events: true,
            ..TableOptions::default()
        })
        .handshake();
        let v6 = |last: u8| {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]); // 2001:db8::/32, for documentation
            a[15] = last;
            Addr::V6(a)
        };
        t.conv((v6(1), 50000), (v6(2), 443));
        t.c("S");
        let events: Vec<Event> = t.table.drain_events().collect();
        assert_eq!(events.len(), 5);
        let first = &events[0];
        assert_eq!(
            (first.flow, first.client.as_str(), first.server.as_str()),
            (1, "10.0.0.1:40000", "10.0.0.2:80")
        );
        // The server's transitions name the same ends: client first, whoever sent the segment.
        assert!(events[..4]
            .iter()
            .all(|e| e.client == "10.0.0.1:40000" && e.server == "10.0.0.2:80"));
        let last = &events[4];
        assert_eq!(
            (last.flow, last.client.as_str(), last.server.as_str()),
            (2, "[2001:db8::1]:50000", "[2001:db8::2]:443")
        );
        assert_eq!(last.transition.to.name(), "SYN-SENT");
        // A segment that changes no state queues nothing.
        t.switch(0);
        t.c("A");
        assert_eq!(t.table.drain_events().count(), 0);
    }
}
