"""Fuzz the file edge and the engine: its reader, decoder and analysis (through the Python API) + rendering.

    python bench/fuzz.py --seconds 300                     # atheris (coverage-guided) if installed
    python bench/fuzz.py --engine random --inputs 200000   # the plain mutation loop
    python bench/fuzz.py --replay bench/fuzz-out/crashes   # re-run saved crashing inputs

The seed corpus is every capture in captures/ up to 64 KiB (not the 2.5 MB port-reuse one) and a
pcapng built here with one interface per supported link type, an SPB, an obsolete PB, an unknown block
and a second, big-endian section. The property: nothing raises but `CaptureError` from the reader
(`_engine.Frames`) and `DecodeError` from `_engine.decode` (both reported inside the analysis, so
`handshake_probe.analyze` never raises, and no `EngineError`, the engine's panic guard, ever shows),
the engine's JSON Lines text is Python's json.dumps of its records, every input ends within --timeout
seconds, and every 10th input read through a pipe gives the same frames and fault as the file. The
process runs under a 2 GiB address-space limit, so that a buffer sized by a corrupt length field
surfaces as a MemoryError. Each crashing input is saved under OUT/crashes/ (one per distinct exception
and place, with its traceback beside it) and the run goes on; at the end it prints the inputs tried and
the crashes found (exit status 1 if any).

Engines: `atheris` mutates with libFuzzer, guided by the coverage of the instrumented handshake_probe
Python code (the views; the compiled engine is fuzzed under coverage by its own cargo-fuzz target);
`random` (the fallback when atheris is not installed) applies the structure-aware mutations below (bit
flips, truncations, length-field tweaks, insertions, deletions) to the seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MAX_SEED = 64 * 1024  # bigger captures (echo-port-reuse-3000.pcap: 2.5 MB) are too slow to mutate and re-read


# --- seeds ----------------------------------------------------------------------------------

def _block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


def _opt(code: int, value: bytes, e: str = "<") -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _shb(e: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)


def _idb(linktype: int, snaplen: int = 0, options: bytes = b"", e: str = "<") -> bytes:
    return _block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + options
                  + (_opt(0, b"", e) if options else b""), e)


def _epb(iid: int, ticks: int, data: bytes, wirelen: Optional[int] = None, e: str = "<") -> bytes:
    wl = len(data) if wirelen is None else wirelen
    return _block(6, struct.pack(e + "IIIII", iid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wl) + data, e)


def _relink(eth_frame: bytes, linktype: int) -> bytes:
    """An Ethernet frame's IP packet under another link layer."""
    etype, ip = eth_frame[12:14], eth_frame[14:]
    v6 = etype == b"\x86\xdd"
    if linktype in (101, 12, 14, 228, 229):
        return ip
    if linktype == 113:  # SLL: packet type, ARPHRD, address length, address (8), protocol
        return struct.pack("!HHH8s", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0") + etype + ip
    if linktype == 276:  # SLL2: protocol, reserved, ifindex, ARPHRD, packet type, address length, address
        return etype + struct.pack("!HIHBB8s", 0, 1, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0") + ip
    if linktype == 0:  # NULL: address family in the capturing host's byte order
        return struct.pack("<I", 30 if v6 else 2) + ip
    if linktype == 108:  # LOOP: address family in network byte order
        return struct.pack("!I", 24 if v6 else 2) + ip
    if linktype == 1:  # 802.1Q-tagged Ethernet, then QinQ
        return eth_frame[:12] + b"\x88\xa8\0\x05\x81\x00\0\x07" + eth_frame[12:]
    raise ValueError(linktype)


def pcapng_seed(frames: Sequence[bytes]) -> bytes:
    """A pcapng holding `frames` (Ethernet) under every link type the decoder knows, in two sections."""
    linktypes = [1, 0, 108, 101, 113, 276, 228, 229]
    out = _shb() + b"".join(_idb(lt, 262144 if lt == 1 else 0,
                                 _opt(9, bytes([9])) if lt == 113 else
                                 _opt(14, struct.pack("<q", 1_700_000_000)) if lt == 0 else b"")
                            for lt in linktypes)
    out += _block(0x0BAD, b"a block type nobody knows")  # skipped, as pcapng §3.1 says
    for i, data in enumerate(frames):
        lt = linktypes[i % len(linktypes)]
        v6 = data[12:14] == b"\x86\xdd"
        if (lt == 228 and v6) or (lt == 229 and not v6):
            lt = 101
        out += _epb(linktypes.index(lt), 1_700_000_000_000_000 + i * 1000,
                    data if i % len(linktypes) == 0 else _relink(data, lt))
    out += _block(3, struct.pack("<I", len(frames[0])) + frames[0])  # SPB, interface 0
    out += _block(2, struct.pack("<HHIIII", 0, 0, 0, 5, len(frames[1]), len(frames[1])) + frames[1])  # old PB
    # A second section, big-endian, with its own interfaces.
    out += _shb(">") + _idb(1, 65535, _opt(9, bytes([0x80 | 20]), ">"), ">")
    out += b"".join(_epb(0, (1_700_000_000 << 20) + i, d, e=">") for i, d in enumerate(frames[:4]))
    return out


def seed_corpus(include_big: bool = False) -> Dict[str, bytes]:
    """name -> bytes: the captures, and a pcapng built from two of them (IPv4 and IPv6)."""
    from handshake_probe._engine import Frames

    seeds: Dict[str, bytes] = {}
    for path in sorted((ROOT / "captures").rglob("*.pcap*")):
        if include_big or path.stat().st_size <= MAX_SEED:
            seeds[str(path.relative_to(ROOT))] = path.read_bytes()
    frames = [data for name in ("echo-client-close.pcap", "echo-ipv6.pcap")
              for _n, _ts, _lt, data, _wl, _off in Frames(str(ROOT / "captures" / name))]
    seeds["built:all-link-types.pcapng"] = pcapng_seed(frames)
    return seeds


# --- structure-aware mutations --------------------------------------------------------------

Field = Tuple[int, int, str]  # offset, width in bytes, byte order ("<" or ">")


def _net_offset(linktype: int, data: bytes) -> Optional[int]:
    """Where the IP header starts in a frame of this link type (None: unknown)."""
    base = {1: 14, 0: 4, 108: 4, 101: 0, 12: 0, 14: 0, 228: 0, 229: 0, 113: 16, 276: 20}.get(linktype)
    if linktype == 1:
        while base is not None and data[base - 2:base] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
            base += 4
    return base


def _frame_fields(start: int, data: bytes, linktype: int) -> List[Field]:
    """Length-like fields of one frame starting at file offset `start`: IP lengths, TCP data offset."""
    off = _net_offset(linktype, data)
    if off is None or off >= len(data):
        return []
    out: List[Field] = []
    if linktype == 1:
        out.append((start + off - 2, 2, ">"))  # the EtherType
    version = data[off] >> 4
    if version == 4 and len(data) >= off + 20:
        ihl = (data[off] & 15) * 4
        out += [(start + off, 1, ">"), (start + off + 2, 2, ">"), (start + off + 6, 2, ">"),
                (start + off + 9, 1, ">")]  # ver/IHL, total length, flags/fragment offset, protocol
        tcp = off + ihl
    elif version == 6 and len(data) >= off + 40:
        out += [(start + off + 4, 2, ">"), (start + off + 6, 1, ">")]  # payload length, next header
        tcp = off + 40
    else:
        return out
    if len(data) >= tcp + 14:
        out += [(start + tcp + 12, 1, ">"), (start + tcp + 13, 1, ">")]  # data offset, flags
    if len(data) > tcp + 21:
        out += [(start + tcp + 21, 1, ">")]  # the first option's length byte
    return out


def length_fields(blob: bytes) -> List[Field]:
    """The length and type fields of a pcap/pcapng file, and of the frames in it, found by walking it
    (stopping at the first inconsistency): where tweaking a value hurts most."""
    out: List[Field] = []
    if len(blob) >= 24 and blob[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x34\xcd\xb2\xa1",
                                        b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d", b"\xa1\xb2\xcd\x34"):
        e = "<" if blob[3] == 0xA1 else ">"
        extra = 8 if blob[:4] in (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34") else 0
        linktype = struct.unpack_from(e + "I", blob, 20)[0] & 0xFFFF
        out += [(16, 4, e), (20, 4, e)]  # snaplen, link type
        pos = 24
        while pos + 16 + extra <= len(blob) and len(out) < 4000:
            caplen = struct.unpack_from(e + "I", blob, pos + 8)[0]
            out += [(pos + 8, 4, e), (pos + 12, 4, e)]
            data_at = pos + 16 + extra
            out += _frame_fields(data_at, blob[data_at:data_at + caplen], linktype)
            pos = data_at + caplen
    elif len(blob) >= 12 and blob[:4] == b"\x0a\x0d\x0d\x0a":
        pos, e, linktypes = 0, "<", []
        while pos + 12 <= len(blob) and len(out) < 4000:
            btype = struct.unpack_from("<I", blob, pos)[0]
            if btype == 0x0A0D0D0A:
                e = "<" if blob[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                linktypes = []
            btype, blen = struct.unpack_from(e + "II", blob, pos)
            if blen < 12 or pos + blen > len(blob):
                break
            out += [(pos, 4, e), (pos + 4, 4, e), (pos + blen - 4, 4, e)]
            if btype == 1 and blen >= 20:
                linktypes.append(struct.unpack_from(e + "H", blob, pos + 8)[0])
                out += [(pos + 8, 2, e), (pos + 12, 4, e)]
                if blen > 24:
                    out += [(pos + 16, 2, e), (pos + 18, 2, e)]  # the first option's code and length
            elif btype == 6 and blen >= 32:
                iid, caplen = struct.unpack_from(e + "I", blob, pos + 8)[0], struct.unpack_from(e + "I", blob, pos + 20)[0]
                out += [(pos + 8, 4, e), (pos + 20, 4, e), (pos + 24, 4, e)]
                if iid < len(linktypes):
                    out += _frame_fields(pos + 28, blob[pos + 28:pos + 28 + caplen], linktypes[iid])
            elif btype == 3 and blen >= 16:
                out += [(pos + 8, 4, e)]
            pos += blen
    return out


_INTERESTING = (0, 1, 2, 3, 4, 5, 7, 8, 12, 15, 16, 20, 24, 28, 32, 40, 60, 64, 0x7F, 0x80, 0xFF, 0x100,
                0x7FFF, 0x8000, 0xFFFF, 0x10000, 262144, 262145, 0x7FFFFFFF, 0x80000000, 0x10000001,
                0xFFFFFFFC, 0xFFFFFFFF)

# A mutation: (kind, a, b, c) with small non-negative ints, interpreted modulo what is there, so that
# any tuple is valid on any input (hypothesis draws them; the random engine generates them).
Mutation = Tuple[str, int, int, int]
KINDS = ("flip", "cut", "tweak", "set", "insert", "delete", "duplicate")


def apply(blob: bytes, mutations: Sequence[Mutation]) -> bytes:
    """Apply mutations in order: bit flips, truncations, length-field tweaks, byte splices."""
    data = bytearray(blob)
    for kind, a, b, c in mutations:
        n = len(data)
        if kind == "flip" and n:
            data[a % n] ^= 1 << (b % 8)
        elif kind == "cut":
            del data[a % (n + 1):]
        elif kind in ("tweak", "set"):
            fields = length_fields(bytes(data))
            if not fields:
                continue
            off, width, e = fields[a % len(fields)]
            if off + width > n:
                continue
            fmt = e + {1: "B", 2: "H", 4: "I"}[width]
            old = struct.unpack_from(fmt, data, off)[0]
            mask = (1 << (8 * width)) - 1
            if kind == "tweak":  # near the old value: off by a few, doubled, halved
                new = [old + 1, old - 1, old + 4, old - 4, old * 2, old // 2, old + 8 * (c % 64),
                       old - 8 * (c % 64)][b % 8]
            else:  # a value that breaks things: 0, limits, libpcap's snaplen boundaries
                new = _INTERESTING[b % len(_INTERESTING)]
            struct.pack_into(fmt, data, off, new & mask)
        elif kind == "insert":
            data[a % (n + 1):a % (n + 1)] = bytes([(b + i * c) & 0xFF for i in range(1 + c % 64)])
        elif kind == "delete" and n:
            del data[a % n:a % n + 1 + b % 64]
        elif kind == "duplicate" and n:
            start = a % n
            chunk = data[start:start + 1 + b % 128]
            at = c % (n + 1)
            data[at:at] = chunk
    return bytes(data)


def random_mutations(rng: random.Random) -> List[Mutation]:
    return [(rng.choice(KINDS), rng.getrandbits(20), rng.getrandbits(16), rng.getrandbits(8))
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8)))]


# --- the property ---------------------------------------------------------------------------

class Hang(Exception):
    """An input ran longer than the time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread after `seconds` (SIGALRM; POSIX only)."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def exercise(path: str) -> Any:
    """Everything the analyze command does to a file, minus argument parsing. Raises only on a bug.

    1. The engine's reader (Frames) may raise CaptureError only; decode (both ways: default and
       checksum-verifying) may raise DecodeError only.
    2. The analysis (reader + decoder + flow table with every observer, keeping every flow's rows)
       never raises; its error and warnings are one line each. Twice more: verifying checksums, and
       streaming flows out of a table with tiny limits (MSL, linger, idle timeout, two open flows), so
       that timers and eviction run too. The JSON Lines text the engine writes itself (`chunk`) is
       Python's json.dumps of the records it hands out, line for line.
    3. Rendering every flow (json, csv, table, summary, per-flow detail, ladder) never raises.
    """
    import handshake_probe
    from handshake_probe._engine import CaptureError, DecodeError, Frames, decode
    from handshake_probe.ladder import ladder_text
    from handshake_probe.render import flow_detail, summary_line, write_records

    try:
        for number, ts, linktype, data, wirelen, _offset in Frames(path):
            for verify in (False, True):
                try:
                    decode(data, linktype, ts, number, wirelen, verify)
                except DecodeError:
                    pass
    except CaptureError as err:
        assert "\n" not in str(err), str(err)

    analysis = handshake_probe.analyze(path, streaming=False, keep_rows=True)
    records = list(analysis)
    assert analysis.error is None or "\n" not in analysis.error, analysis.error
    assert all("\n" not in w for w in analysis.warnings), analysis.warnings
    out = io.StringIO()
    for fmt in ("jsonl", "csv", "table"):
        write_records(records, fmt, out)
    summary_line(analysis)
    for rec in records[:5]:
        rows = analysis.rows(rec["flow"])
        flow_detail(rec, rows)
        ladder_text(rec, rows)

    list(handshake_probe.analyze(path, check_checksums=True))
    small = handshake_probe.analyze(path, msl=0.001, linger=0.001, idle_timeout=0.01, max_open=2)
    streamed = list(small)
    assert len(streamed) == small.flow_count, (len(streamed), small.flow_count)
    written = handshake_probe.analyze(path, msl=0.001, linger=0.001, idle_timeout=0.01, max_open=2)
    text = b""
    while (chunk := written.chunk("jsonl", 7)) is not None:
        text += chunk
    assert text.decode() == "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in streamed)
    return analysis


def read_via_pipe(data: bytes) -> Tuple[List[Any], Optional[str]]:
    """The engine's reader on a pipe holding `data` (no file size to check a length against): the
    frames, and the fault that ended them (None at a clean end) without its path. The pipe is written
    by another process (cat): the engine reads a pipe without releasing the GIL, so a thread of this
    process could never feed it."""
    from handshake_probe._engine import CaptureError, Frames

    with tempfile.NamedTemporaryFile(suffix=".cap") as source:
        source.write(data)
        source.flush()
        cat = subprocess.Popen(["cat", source.name], stdout=subprocess.PIPE)
        assert cat.stdout is not None
        pipe = f"/dev/fd/{cat.stdout.fileno()}"
        frames: List[Any] = []
        error: Optional[str] = None
        try:
            for frame in Frames(pipe):
                frames.append(frame)
        except CaptureError as err:
            error = _without_path(str(err), pipe)
        finally:
            cat.stdout.close()          # a reader that stopped at a fault: cat gets EPIPE and ends
            cat.wait()
    return frames, error


def _without_path(message: str, path: str) -> str:
    """A fault's line after its "<path>: " (the same fault, read from a file or a pipe)."""
    assert message.startswith(path + ": "), message
    return message[len(path) + 2:]


def same_through_a_pipe(path: str) -> None:
    """A pipe gives the same frames and the same fault as the file (a length is only checked against
    the file size on a file; on a pipe it must not cost memory either: see --memory-limit)."""
    from handshake_probe._engine import CaptureError, Frames

    data = Path(path).read_bytes()
    frames: List[Any] = []
    error: Optional[str] = None
    try:
        for frame in Frames(path):
            frames.append(frame)
    except CaptureError as err:
        error = _without_path(str(err), path)
    piped, piped_error = read_via_pipe(data)
    # (frame, ts, linktype, data, wirelen, offset): the same, frame for frame
    assert piped == frames, "a pipe yields other frames than the file"
    assert error == piped_error, (error, piped_error)


def crash_key(err: BaseException) -> str:
    """Exception type and the innermost project frame: one saved input per distinct bug."""
    tb = traceback.extract_tb(err.__traceback__)
    ours = [f for f in tb if "handshake_probe" in f.filename] or tb
    last = ours[-1] if ours else None
    place = f"{Path(last.filename).name}:{last.lineno}" if last else "?"
    return f"{type(err).__name__} at {place}"


# --- the driver -----------------------------------------------------------------------------

class Run:
    """Counts inputs, saves crashing ones, stops at the input or time budget."""

    def __init__(self, out: Path, timeout: float, max_inputs: int, seconds: float, pipe_every: int = 0) -> None:
        self.out = out
        (out / "crashes").mkdir(parents=True, exist_ok=True)
        if not (out / ".gitignore").exists():  # findings and corpus are local, never committed by accident
            (out / ".gitignore").write_text("*\n")
        self.timeout = timeout
        self.max_inputs = max_inputs
        self.deadline = time.monotonic() + seconds
        self.started = time.monotonic()
        self.inputs = 0
        self.pipe_every = pipe_every  # every Nth input is also read through a pipe (0: never)
        self.crashes: Dict[str, Tuple[str, int]] = {}  # key -> (saved file, times seen)
        fd, self.path = tempfile.mkstemp(suffix=".cap", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        os.close(fd)

    def one(self, data: bytes) -> None:
        self.inputs += 1
        with open(self.path, "wb") as f:
            f.write(data)
        try:
            with time_limit(self.timeout):
                exercise(self.path)
                if self.pipe_every and self.inputs % self.pipe_every == 0:
                    same_through_a_pipe(self.path)
        except Exception as err:  # noqa: BLE001 - every exception here is a finding
            key = crash_key(err)
            if key in self.crashes:
                name, seen = self.crashes[key]
                self.crashes[key] = (name, seen + 1)
            else:
                name = str(self.out / "crashes" / f"crash-{hashlib.sha1(data).hexdigest()[:16]}")
                Path(name).write_bytes(data)
                Path(name + ".txt").write_text(f"{key}\n\n" + "".join(traceback.format_exception(err)))
                self.crashes[key] = (name, 1)
                print(f"CRASH {key}: saved {name}", file=sys.stderr, flush=True)

    def done(self) -> bool:
        return self.inputs >= self.max_inputs or time.monotonic() >= self.deadline

    def report(self, engine: str, command: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"engine: {engine}\ncommand: {command}\ninputs tried: {self.inputs} in {elapsed:.0f} s "
              f"({self.inputs / max(elapsed, 1e-9):.0f}/s)\ncrashes found: {len(self.crashes)} distinct "
              f"({sum(n for _, n in self.crashes.values())} crashing inputs)", flush=True)
        for key, (name, seen) in sorted(self.crashes.items()):
            print(f"  {key}: {seen} inputs, first saved as {name}", flush=True)
        os.unlink(self.path)


def run_random(run: Run, seeds: Dict[str, bytes], seed: int) -> None:
    rng = random.Random(seed)
    blobs = list(seeds.values())
    for blob in blobs:  # the seeds themselves first: they must pass untouched
        run.one(blob)
    while not run.done():
        roll = rng.random()
        if roll < 0.05:
            data = rng.randbytes(rng.randrange(0, 512))
        elif roll < 0.10:  # random bytes behind a valid file header
            head = rng.choice([blobs[0][:24], seeds["built:all-link-types.pcapng"][:28 + 20]])
            data = head + rng.randbytes(rng.randrange(0, 512))
        else:
            data = apply(rng.choice(blobs), random_mutations(rng))
        run.one(data)


def instrument() -> None:
    """Import the project under atheris' coverage instrumentation (before anything else imports it)."""
    import atheris

    assert "handshake_probe.render" not in sys.modules, "instrument before importing the project"
    with atheris.instrument_imports(include=["handshake_probe"]):
        import handshake_probe.flowsource  # noqa: F401 - the Python side: the engine is compiled
        import handshake_probe.ladder  # noqa: F401
        import handshake_probe.render  # noqa: F401


def run_atheris(run: Run, seeds: Dict[str, bytes], command: str, extra: List[str]) -> None:
    import atheris

    corpus = run.out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name, blob in seeds.items():
        (corpus / name.replace("/", "_").replace(":", "_")).write_bytes(blob)

    def one_input(data: bytes) -> None:
        run.one(data)
        if run.done():  # libFuzzer exits without running Python's atexit: report here
            run.report("atheris (libFuzzer, coverage-guided)", command)
            sys.stdout.flush()
            os._exit(1 if run.crashes else 0)

    longest = max(len(b) for b in seeds.values())
    argv = [sys.argv[0], str(corpus), f"-max_len={max(longest * 2, 4096)}", "-timeout=0",
            f"-artifact_prefix={run.out}/", "-print_final_stats=0", *extra]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def replay(paths: List[Path], timeout: float) -> int:
    failures = 0
    for path in paths:
        try:
            with time_limit(timeout):
                exercise(str(path))
                same_through_a_pipe(str(path))
            print(f"ok    {path}")
        except Exception as err:  # noqa: BLE001
            failures += 1
            print(f"CRASH {path}: {crash_key(err)}: {err}")
    return 1 if failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    ap.add_argument("--seconds", type=float, default=60.0, help="stop after this long (default 60)")
    ap.add_argument("--inputs", type=int, default=10**12, help="stop after this many inputs")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds one input may take (a hang)")
    ap.add_argument("--seed", type=int, default=1, help="random engine's seed")
    ap.add_argument("--pipe-every", type=int, default=10, metavar="N",
                    help="read every Nth input through a pipe too, and compare with the file (default 10; 0: never)")
    ap.add_argument("--memory-limit", type=int, default=2048, metavar="MiB",
                    help="address-space limit of this process (default 2048), so that an allocation "
                         "sized by a corrupt length field fails as a MemoryError, a finding (0: none)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "fuzz-out",
                    help="crashes/ (and atheris' corpus/) go here")
    ap.add_argument("--replay", type=Path, nargs="+", help="re-run saved inputs (files or folders) instead")
    args, extra = ap.parse_known_args(argv)
    if args.memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (args.memory_limit << 20, args.memory_limit << 20))
    if args.replay:
        files = [p for r in args.replay for p in (sorted(r.iterdir()) if r.is_dir() else [r])
                 if p.is_file() and not p.name.endswith(".txt")]
        return replay(files, args.timeout)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "random"
    command = "python bench/fuzz.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if engine == "atheris":
        instrument()
    seeds = seed_corpus()
    run = Run(args.out, args.timeout, args.inputs, args.seconds, args.pipe_every)
    if engine == "atheris":
        run_atheris(run, seeds, command, extra)  # exits the process itself
    run_random(run, seeds, args.seed)
    run.report(f"random mutation (seed {args.seed})", command)
    return 1 if run.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
