"""A tiny conversation builder for engine tests: each side keeps its own sequence numbers, so a test reads
like the ladder diagram it checks (`t.c("S")`, `t.s("SA")`, `t.c("A")`, `t.c("PA", 6)`...).

Every segment is crafted as the bytes a capture would hold (raw IP, link type 101: IPv4 or IPv6, TCP with
its options, both checksums filled in) and fed to the engine (`_engine.Engine(..., keep_rows=True)`), so
the tests see exactly what the engine's boundary hands out: transition events as frames arrive, and flow
records and per-segment rows (src/rows.rs) for every flow.

Records and rows exist once a flow is finished; to look at a conversation in the middle (as the ladder
tests do), `record()`, `records()` and `rows()` replay the frames so far into a fresh engine and end that
capture there. The engine is deterministic, so the replay is what the live engine holds at that point.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import handshake_probe
from handshake_probe import _engine

LINKTYPE_RAW = 101      # raw IP: the version nibble tells IPv4 from IPv6
MOD = 1 << 32           # TCP sequence space

Record = Dict[str, Any]
Row = Dict[str, Any]
Event = Dict[str, Any]
Endpoint = Tuple[str, int]

# The letters of tcpdump's flag notation (and the tests' shorthand), by the engine's flag names.
_LETTERS = {"F": "FIN", "S": "SYN", "R": "RST", "P": "PSH", "A": "ACK", "U": "URG", "E": "ECE", "C": "CWR",
            "N": "NS"}


def flags_of(text: str) -> int:
    """`"SA"` -> SYN|ACK, from the engine's FLAGS vocabulary."""
    value = 0
    for ch in text:
        value |= handshake_probe.FLAGS[_LETTERS[ch]]
    return value


# --------------------------------------------------------------------------- crafting
@dataclass(frozen=True)
class TcpOptions:
    """The options the engine decodes (RFC 9293 MSS, RFC 7323 window scale and timestamps, RFC 2018
    SACK); None / False / () leave one out."""

    mss: Optional[int] = None
    wscale: Optional[int] = None
    sack_permitted: bool = False
    sack: Tuple[Tuple[int, int], ...] = ()
    ts_val: Optional[int] = None
    ts_ecr: Optional[int] = None

    def encode(self) -> bytes:
        """The option bytes, NOP-padded to a multiple of 4 (the data offset counts 32-bit words)."""
        out = b""
        if self.mss is not None:
            out += struct.pack("!BBH", 2, 4, self.mss)
        if self.sack_permitted:
            out += b"\x04\x02"
        if self.ts_val is not None or self.ts_ecr is not None:
            out += struct.pack("!BBII", 8, 10, self.ts_val or 0, self.ts_ecr or 0)
        if self.wscale is not None:
            out += struct.pack("!BBB", 3, 3, self.wscale)
        if self.sack:
            out += struct.pack("!BB", 5, 2 + 8 * len(self.sack))
            out += b"".join(struct.pack("!II", a, b) for a, b in self.sack)
        return out + b"\x01" * (-len(out) % 4)


NO_OPTIONS = TcpOptions()


def ones_complement_sum(data: bytes) -> int:
    """RFC 1071: the 16-bit ones' complement sum of `data` (an odd length is padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9293 §3.1 (IPv4, 12 bytes) or RFC 8200 §8.1 (IPv6, 40 bytes) pseudo-header for TCP."""
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, 6, length)
    return src + dst + struct.pack("!IxxxB", length, 6)


def tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    """The checksum field for `segment` (whose own checksum field is zero)."""
    return ~ones_complement_sum(pseudo_header(src, dst, len(segment)) + segment) & 0xFFFF


def address(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def ip_tcp(src: Endpoint, dst: Endpoint, seq: int, ack: int, flags: int, window: int = 65535,
           payload: bytes = b"", options: TcpOptions = NO_OPTIONS, bad_checksum: bool = False) -> bytes:
    """A raw IPv4 or IPv6 packet (link type 101) carrying one TCP segment, checksums filled in (the
    TCP one deliberately wrong with `bad_checksum`)."""
    saddr, daddr = address(src[0]), address(dst[0])
    opts = options.encode()
    head = struct.pack("!HHIIHHHH", src[1], dst[1], seq % MOD, ack % MOD,
                       ((5 + len(opts) // 4) << 12) | (flags & 0x1FF), window, 0, 0) + opts
    checksum = tcp_checksum(saddr, daddr, head + payload) ^ (0x5555 if bad_checksum else 0)
    tcp = head[:16] + struct.pack("!H", checksum) + head[18:] + payload
    if len(saddr) == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, saddr, daddr)
        ip = ip[:10] + struct.pack("!H", ~ones_complement_sum(ip) & 0xFFFF) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(tcp), 6, 64, saddr, daddr)
    return ip + tcp


# --------------------------------------------------------------------------- the engine's side
@dataclass(frozen=True)
class Sent:
    """One segment as sent: where it is in the capture and what the engine said when it arrived."""

    ts: float
    frame: int
    seq: int
    ack: int
    flags: int
    length: int
    from_client: bool
    events: List[Event] = field(default_factory=list, compare=False)


class Wire:
    """The capture several Talks write into (one per 4-tuple), fed frame by frame to one engine.
    `options` are the engine's: msl, linger, idle_timeout, max_open, streaming, check_checksums."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.engine = _engine.Engine(LINKTYPE_RAW, keep_rows=True, **options)
        self.frames: List[Tuple[bytes, float, Optional[int]]] = []
        self.events: List[Event] = []
        self.finished: Optional[List[Record]] = None
        self.handed_out: List[Record] = []      # streaming: records of the flows finished so far
        self._replay: Optional[Tuple[int, Any, List[Record]]] = None

    def feed(self, data: bytes, ts: float, wirelen: Optional[int] = None) -> List[Event]:
        assert self.finished is None, "the capture has ended"
        self.frames.append((data, ts, wirelen))
        events: List[Event] = self.engine.feed(data, ts, wirelen)
        self.events.extend(events)
        return events

    def finished_so_far(self) -> List[Record]:
        """Streaming: every record the engine handed out before the end, in the order the flows
        finished (each once)."""
        self.handed_out += self.engine.finished()
        return self.handed_out

    def finish(self) -> List[Record]:
        """End the capture: every record not handed out yet (all of them, in flow order, unless
        streaming). Called again, the same list."""
        if self.finished is None:
            self.finished = self.engine.finish()
        return self.finished

    def replay(self) -> Tuple[Any, List[Record]]:
        """A fresh engine fed every frame so far and finished: (that engine, its records in flow order).
        Cached until the next frame."""
        if self._replay is None or self._replay[0] != len(self.frames):
            options = {k: v for k, v in self.options.items() if k != "streaming"}
            engine = _engine.Engine(LINKTYPE_RAW, keep_rows=True, **options)
            for data, ts, wirelen in self.frames:
                engine.feed(data, ts, wirelen)
            self._replay = (len(self.frames), engine, engine.finish())
        return self._replay[1], self._replay[2]


class Talk:
    """Client 10.0.0.1:40000 talks to server 10.0.0.2:80 (or the addresses given). `wire`: share another
    Talk's capture (another 4-tuple in the same engine); otherwise a new one with `options`."""

    def __init__(self, cisn: int = 1000, sisn: int = 5000, client: Endpoint = ("10.0.0.1", 40000),
                 server: Endpoint = ("10.0.0.2", 80), msl: float = 30.0, t0: float = 100.0,
                 wire: Optional[Wire] = None, **options: Any) -> None:
        self.client, self.server = client, server
        self.nxt = {"c": cisn, "s": sisn}
        self.isn = {"c": cisn, "s": sisn}
        self.ts = t0
        self.wire = wire if wire is not None else Wire(msl=msl, **options)
        self.segments: List[Sent] = []

    def _send(self, side: str, flags: str, length: int, seq: Optional[int], ack: Optional[int],
              window: int, dt: float, options: TcpOptions, checksum_ok: Optional[bool]) -> Sent:
        other = "s" if side == "c" else "c"
        f = flags_of(flags)
        syn, fin, has_ack = handshake_probe.FLAGS["SYN"], handshake_probe.FLAGS["FIN"], handshake_probe.FLAGS["ACK"]
        if seq is None:
            seq = self.isn[side] if f & syn else self.nxt[side]
        if ack is None:
            ack = self.nxt[other] if f & has_ack else 0
        src, dst = (self.client, self.server) if side == "c" else (self.server, self.client)
        self.ts += dt
        data = ip_tcp(src, dst, seq, ack, f, window, bytes(length), options, bad_checksum=checksum_ok is False)
        wirelen = None
        if checksum_ok is None:
            # A frame cut by the snaplen inside its payload: the checksum cannot be verified.
            assert length >= 1, "only a segment with payload can be cut without cutting its header"
            data, wirelen = data[:-1], len(data)
        events = self.wire.feed(data, self.ts, wirelen)
        end = seq + length + (1 if f & syn else 0) + (1 if f & fin else 0)
        if (end - self.nxt[side]) % MOD < (1 << 31):
            self.nxt[side] = end
        sent = Sent(self.ts, len(self.wire.frames), seq % MOD, ack % MOD, f, length, side == "c", events)
        self.segments.append(sent)
        return sent

    def c(self, flags: str, length: int = 0, seq: Optional[int] = None, ack: Optional[int] = None,
          window: int = 65535, dt: float = 0.001, options: TcpOptions = NO_OPTIONS,
          checksum_ok: Optional[bool] = True) -> Sent:
        """The client sends. `checksum_ok`: True a correct TCP checksum, False a wrong one, None a frame
        cut by one payload byte (no verdict possible)."""
        return self._send("c", flags, length, seq, ack, window, dt, options, checksum_ok)

    def s(self, flags: str, length: int = 0, seq: Optional[int] = None, ack: Optional[int] = None,
          window: int = 65535, dt: float = 0.001, options: TcpOptions = NO_OPTIONS,
          checksum_ok: Optional[bool] = True) -> Sent:
        """The server sends (see `c`)."""
        return self._send("s", flags, length, seq, ack, window, dt, options, checksum_ok)

    def handshake(self) -> "Talk":
        self.c("S")
        self.s("SA")
        self.c("A")
        return self

    def new_client_isn(self, isn: int) -> None:
        self.isn["c"] = self.nxt["c"] = isn

    def new_server_isn(self, isn: int) -> None:
        self.isn["s"] = self.nxt["s"] = isn

    # ------------------------------------------------------------------ what the engine says
    @property
    def events(self) -> List[Event]:
        """Every transition event the live engine emitted so far (all 4-tuples of the wire)."""
        return self.wire.events

    def finish(self) -> List[Record]:
        """End the capture in the live engine: the records it hands out then (see Wire.finish)."""
        return self.wire.finish()

    def records(self) -> List[Record]:
        """Every flow's record as the capture so far ends (a replay), in flow order."""
        return self.wire.replay()[1]

    def record(self, index: int = 0) -> Record:
        return self.records()[index]

    def rows(self, index: int = 0) -> List[Row]:
        """The segments of the flow at `index` (flow number index + 1), with both endpoints' states after
        each, the transitions each caused and the notes the analyses attached (src/rows.rs)."""
        engine, records = self.wire.replay()
        rows: List[Row] = engine.rows(records[index]["flow"])
        return rows

    def row_of(self, sent: Sent) -> Row:
        """The row of one segment sent, in whichever flow it landed."""
        engine, records = self.wire.replay()
        for rec in records:
            for row in engine.rows(rec["flow"]) or ():
                if row["frame"] == sent.frame:
                    return dict(row)
        raise AssertionError(f"frame {sent.frame} is in no flow")


def paths(records: Sequence[Record], index: int = 0) -> Tuple[List[str], List[str]]:
    """(client path, server path) of one record."""
    rec = records[index]
    return rec["client_states"], rec["server_states"]


# --------------------------------------------------------------------------- reading records
def endpoint(text: str) -> Endpoint:
    """A record's "10.0.0.1:40000" or "[::1]:80" as (address, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def zeek_row_tuple(record: Record) -> Tuple[str, int, str, int]:
    """(orig_h, orig_p, resp_h, resp_p) as Zeek would log this flow's connection: the record's
    `zeek_orig` says which of its endpoints Zeek calls the originator."""
    orig, resp = ("client", "server") if record["zeek_orig"] == "client" else ("server", "client")
    return (*endpoint(record[orig]), *endpoint(record[resp]))
