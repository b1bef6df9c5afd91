"""Files that fight back: a corpus of broken captures run through the real command line.

Every file is built here from bytes with struct (small, deterministic). For each: the exact stderr
(one line: file, byte offset, frame number where a frame is involved, what is wrong), the exit code,
and the flows read before the fault, which are still reported. One test runs them all again through
`python -m handshake_probe` in subprocesses, to show that no traceback ever reaches the user.

What the tool does, by kind of fault:
- the file cannot be read to the end (header, record or block damaged): the flows before the fault
  are printed, stderr has one `error:` line, exit 2;
- a frame whose headers contradict themselves: the frame is skipped with one `warning:` line, the
  analysis goes on, exit 2;
- a pcap record longer than the file's snaplen but within libpcap's largest snaplen for the link
  type (262144 for Ethernet): kept, cut to the snaplen as libpcap's sf-pcap.c does, one `warning:`
  line, exit 0; beyond that largest snaplen: an error, as in libpcap;
- a pcapng block of a type we do not know: skipped by its length, silently, exit 0 (pcapng §3.1:
  a reader must skip blocks it does not understand);
- a file that ends mid-flow: not an error; the flow is reported as never closed, exit 0.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from handshake_probe.cli import main

# --- frames ---------------------------------------------------------------------------------

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
C_IP, S_IP = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
C_PORT, S_PORT = 40000, 80
ETH_V4 = bytes.fromhex("020000000002" "020000000001" "0800")
ETH_V6 = bytes.fromhex("020000000002" "020000000001" "86dd")


def tcp4(from_client: bool, flags: int, seq: int, ack: int, payload: bytes = b"", *,
         ihl: int = 5, doff: int = 5, total: Optional[int] = None) -> bytes:
    """Ethernet / IPv4 / TCP; `ihl`, `doff` and `total` can be set to lie. Checksums stay zero
    (the decoder does not check them unless asked)."""
    src, dst = (C_IP, S_IP) if from_client else (S_IP, C_IP)
    sport, dport = (C_PORT, S_PORT) if from_client else (S_PORT, C_PORT)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0)
    length = 20 + len(tcp) + len(payload) if total is None else total
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, 1, 0, 64, 6, 0, src, dst)
    return ETH_V4 + ip + tcp + payload


# One connection, opened and closed cleanly: 8 frames, client 192.0.2.1:40000, server 192.0.2.2:80.
SESSION = [
    tcp4(True, SYN, 1000, 0),
    tcp4(False, SYN | ACK, 5000, 1001),
    tcp4(True, ACK, 1001, 5001),
    tcp4(True, PSH | ACK, 1001, 5001, b"hello"),
    tcp4(False, ACK, 5001, 1006),
    tcp4(True, FIN | ACK, 1006, 5001),
    tcp4(False, FIN | ACK, 5001, 1007),
    tcp4(True, ACK, 1007, 5002),
]
DATA = SESSION[3]  # the frame the decode faults are made from (a copy is inserted as frame 4)

# --- files ----------------------------------------------------------------------------------

PCAP_HEADER = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
RECORD = struct.Struct("<IIII")  # seconds, microseconds, caplen, wirelen


def pcap_header(snaplen: int = 65535, linktype: int = 1) -> bytes:
    return PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


def record(i: int, data: bytes, caplen: Optional[int] = None, wirelen: Optional[int] = None) -> bytes:
    return RECORD.pack(1_700_000_000, i * 1000, len(data) if caplen is None else caplen,
                       len(data) if wirelen is None else wirelen) + data


def pcap(frames: Sequence[bytes], snaplen: int = 65535) -> bytes:
    return pcap_header(snaplen) + b"".join(record(i, d) for i, d in enumerate(frames))


def block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


SHB = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))  # 28 bytes
IDB = block(1, struct.pack("<HHI", 1, 0, 0))  # Ethernet, no snaplen: 20 bytes


def epb(i: int, data: bytes, iid: int = 0) -> bytes:
    ticks = 1_700_000_000_000_000 + i * 1000  # microseconds, the default if_tsresol
    return block(6, struct.pack("<IIIII", iid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + data)


def pcapng(frames: Sequence[bytes]) -> bytes:
    return SHB + IDB + b"".join(epb(i, d) for i, d in enumerate(frames))


SESSION_PCAP = pcap(SESSION)  # 24 + 8 records: the good part before every pcap fault (589 bytes)
SESSION_NG = pcapng(SESSION)  # SHB + IDB + 8 EPBs: the same for pcapng (756 bytes)
WITH_FRAME_4 = SESSION[:3] + [None] + SESSION[3:]  # None: where the damaged frame goes


def with_bad_frame(bad: bytes) -> bytes:
    """The session with `bad` inserted as frame 4 (at byte offset 234)."""
    return pcap([bad if f is None else f for f in WITH_FRAME_4])


# An IPv6 frame whose Hop-by-Hop header says it is (255 + 1) * 8 = 2048 bytes long; the payload
# length (2068) agrees, but the frame was captured whole (caplen = wirelen) and holds 80 bytes
# after the IPv6 header: the chain runs off the packet.
V6_RUNS_OFF = (ETH_V6 + struct.pack("!IHBB16s16s", 0x60000000, 2068, 0, 64,
                                    bytes.fromhex("20010db8" + "00" * 11 + "01"),
                                    bytes.fromhex("20010db8" + "00" * 11 + "02"))
               + bytes([6, 255]) + b"\x01\x04" + b"\0" * 4 + b"\0" * 72)


@dataclass
class Case:
    name: str
    content: bytes
    stderr: str  # exact, "{path}" stands for the file's path; "" = nothing on stderr
    code: int
    flows: List[Tuple[int, str]] = field(default_factory=list)  # (packets, close) of each flow reported
    suffix: str = ".pcap"


# Offsets: the pcap session ends at 24 + 8 * 16 + 7 * 54 + 59 = 589, the pcapng one at
# 28 + 20 + 7 * 88 + 92 = 756; the damaged frame 4 of the decode cases starts at 24 + 3 * (16 + 54) = 234.
P_END = len(SESSION_PCAP)
NG_END = len(SESSION_NG)
FRAME4 = len(pcap(SESSION[:3]))
assert (P_END, NG_END, FRAME4) == (589, 756, 234)

CLOSED = [(8, "fin")]  # flow 1 of SESSION: 8 segments, FIN both ways
ERROR = "handshake-probe: error: {path}: "
WARNING = "handshake-probe: warning: {path}: "

CASES = [
    # Caught before the reader: no table, one line (commands/inputs.py).
    Case("empty file", b"", ERROR + "empty file, not a pcap or pcapng file", 2),
    Case("wrong magic", b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
         ERROR + "not a pcap or pcapng file", 2),
    Case("truncated global header", pcap_header()[:10],
         ERROR + "byte offset 0: truncated global header (10 of 24 bytes)", 2),
    Case("truncated record header", SESSION_PCAP + record(8, DATA)[:8],
         ERROR + "frame 9 at byte offset 589: truncated record header (8 of 16 bytes)"
                 " (the 1 flow before it is reported)", 2, CLOSED),
    Case("truncated record body", SESSION_PCAP + record(8, DATA)[:16 + 20],
         ERROR + "frame 9 at byte offset 589: truncated packet data (20 of 59 bytes)"
                 " (the 1 flow before it is reported)", 2, CLOSED),
    # libpcap keeps a record above the file's snaplen if it is within the largest snaplen for the
    # link type, cut to the snaplen; the payload length still comes from the IP header.
    Case("caplen > snaplen (kept, cut)", pcap(SESSION, snaplen=56),
         WARNING + "frame 4 at byte offset 234: captured length 59 exceeds the file's snaplen 56;"
                   " frame kept, cut to 56 bytes (as libpcap does)", 0, CLOSED),
    Case("caplen > libpcap's largest snaplen", SESSION_PCAP + RECORD.pack(1_700_000_000, 0, 262145, 262145) + DATA,
         ERROR + "frame 9 at byte offset 589: impossible captured length 262145 (more than 262144,"
                 " libpcap's largest snaplen for link type 1) (the 1 flow before it is reported)", 2, CLOSED),
    Case("caplen > 256 MiB", SESSION_PCAP + RECORD.pack(1_700_000_000, 0, 0x10000001, 60) + DATA,
         ERROR + "frame 9 at byte offset 589: impossible captured length 268435457 (more than 262144,"
                 " libpcap's largest snaplen for link type 1) (the 1 flow before it is reported)", 2, CLOSED),
    Case("pcapng bad block length", SESSION_NG + struct.pack("<II", 6, 30) + b"\0" * 24,
         ERROR + "frame 9 at byte offset 756: invalid block total length 30 (must be a multiple of 4 and"
                 " at least 12) (the 1 flow before it is reported)", 2, CLOSED, ".pcapng"),
    # pcapng §3.1: a reader skips blocks it does not understand; so do we, without a word.
    Case("pcapng unknown block type", SHB + IDB + b"".join(
        epb(i, d) + (block(0x00000BAD, b"unknown to us" * 3) if i == 3 else b"") for i, d in enumerate(SESSION)),
         "", 0, CLOSED, ".pcapng"),
    Case("pcapng EPB on an undeclared interface", SESSION_NG + epb(8, DATA, iid=3),
         ERROR + "frame 9 at byte offset 756: packet names interface 3, but the section declares 1"
                 " (the 1 flow before it is reported)", 2, CLOSED, ".pcapng"),
    Case("IPv4 IHL < 5", with_bad_frame(tcp4(True, PSH | ACK, 1001, 5001, b"hello", ihl=3)),
         WARNING + "frame 4 at byte offset 234: byte 14 of the frame: IPv4 header length 12 < 20;"
                   " frame skipped", 2, CLOSED),
    Case("IPv6 extension headers run off the packet", with_bad_frame(V6_RUNS_OFF),
         WARNING + "frame 4 at byte offset 234: byte 54 of the frame: IPv6 extension headers (2048 bytes)"
                   " run past the end of the frame (134 bytes); frame skipped", 2, CLOSED),
    Case("TCP data offset < 5", with_bad_frame(tcp4(True, PSH | ACK, 1001, 5001, b"hello", doff=4)),
         WARNING + "frame 4 at byte offset 234: byte 46 of the frame: TCP data offset 16 < 20;"
                   " frame skipped", 2, CLOSED),
    Case("TCP data offset past the IP payload", with_bad_frame(tcp4(True, PSH | ACK, 1001, 5001, b"hello", doff=15)),
         WARNING + "frame 4 at byte offset 234: byte 46 of the frame: TCP data offset 60 runs past the"
                   " IP payload of 25 bytes; frame skipped", 2, CLOSED),
    Case("TCP data offset past the end of the frame",
         with_bad_frame(tcp4(True, PSH | ACK, 1001, 5001, b"hello", doff=15, total=100)),
         WARNING + "frame 4 at byte offset 234: byte 46 of the frame: TCP header of 60 bytes runs past the"
                   " end of the frame (59 bytes); frame skipped", 2, CLOSED),
    # Not an error: the capture stopped while the second connection was open.
    Case("file ends mid-flow", pcap(SESSION + [
        tcp4(True, SYN, 9000, 0), tcp4(False, SYN | ACK, 7000, 9001), tcp4(True, ACK, 9001, 7001),
        tcp4(True, PSH | ACK, 9001, 7001, b"unfinished")]),
         "", 0, [(8, "fin"), (4, "none")]),
]
IDS = [c.name for c in CASES]


def write(tmp_path: Path, case: Case) -> Path:
    name = re.sub(r"[^a-z0-9]+", "-", case.name.lower().replace(">", " gt ").replace("<", " lt ")).strip("-")
    path = tmp_path / (name + case.suffix)
    path.write_bytes(case.content)
    return path


def expected_stderr(case: Case, path: Path) -> str:
    return case.stderr.format(path=path) + "\n" if case.stderr else ""


# In "file ends mid-flow" the second connection reuses the 4-tuple: a new SYN after the first one
# closed starts flow 2 (README "Flow split").

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Case) -> None:
    path = write(tmp_path, case)
    code = main(["analyze", str(path), "--format", "jsonl"])
    out, err = capsys.readouterr()
    assert err == expected_stderr(case, path)
    assert code == case.code
    flows = [json.loads(line) for line in out.splitlines()]
    assert [(f["packets"], f["close"]) for f in flows] == case.flows  # what came before the fault


@pytest.mark.parametrize("case", [c for c in CASES if c.flows], ids=[c.name for c in CASES if c.flows])
def test_table_output_reports_the_flows_too(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            case: Case) -> None:
    # The default table prints the flows read before the fault, its summary line, then the one error.
    path = write(tmp_path, case)
    code = main(["analyze", str(path)])
    out, err = capsys.readouterr()
    assert code == case.code and err == expected_stderr(case, path)
    rows = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == len(case.flows)
    assert ("FIN both ways" in rows[0]) and (len(rows) < 2 or "never closed" in rows[1])
    assert f"{path}: " in out.splitlines()[-1]  # the summary line


def test_mid_flow_end_reports_the_open_flow_as_never_closed(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[IDS.index("file ends mid-flow")]
    path = write(tmp_path, case)
    assert main(["analyze", str(path), "--format", "jsonl"]) == 0
    open_flow = [json.loads(line) for line in capsys.readouterr().out.splitlines()][1]
    assert open_flow["close"] == "none" and open_flow["client_states"][-1] == "ESTABLISHED"
    assert open_flow["server_states"][-1] == "ESTABLISHED" and open_flow["client_bytes"] == 10


def test_frame_cut_to_snaplen_keeps_the_sequence_arithmetic(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Frame 4 (59 bytes, 5 of payload) is cut to 56: the payload length still comes from the IP header.
    case = CASES[IDS.index("caplen > snaplen (kept, cut)")]
    path = write(tmp_path, case)
    main(["analyze", str(path), "--format", "jsonl"])
    flow = json.loads(capsys.readouterr().out.splitlines()[0])
    assert flow["client_bytes"] == 5 and flow["close"] == "fin"


def test_every_broken_file_through_the_real_program(tmp_path: Path) -> None:
    """The same corpus, each file in its own `python -m handshake_probe analyze` process (run side by
    side): the same single stderr line, the same exit code, never a traceback."""
    paths = [write(tmp_path, case) for case in CASES]
    procs = [subprocess.Popen([sys.executable, "-m", "handshake_probe", "analyze", str(p)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in paths]
    results: Dict[str, Tuple[int, str]] = {}
    for case, path, proc in zip(CASES, paths, procs):
        _, err = proc.communicate(timeout=60)
        results[case.name] = (proc.returncode, err)
        assert "Traceback" not in err, case.name
        assert (proc.returncode, err) == (case.code, expected_stderr(case, path)), case.name
    assert len(results) == len(CASES)


# --- found while fuzzing: a block length nobody can check ------------------------------------

# A pcapng read from a pipe cannot have its block lengths checked against a file size, and
# `f.read(4 GiB)` allocates the 4 GiB up front: on a machine with less memory (or under a memory
# limit) that was a MemoryError traceback. Now the body is read in bounded chunks. The third input is
# the one bench/fuzz.py found (random engine, pipe mode, 2 GiB memory limit): its built pcapng seed
# with the length of the obsolete Packet Block at byte 2436 set to 0x80000000.
def fuzz_find() -> bytes:
    from bench.fuzz import seed_corpus

    data = bytearray(seed_corpus()["built:all-link-types.pcapng"])
    assert struct.unpack_from("<II", data, 2436) == (2, 108)  # the seed is deterministic
    struct.pack_into("<I", data, 2440, 0x80000000)
    return bytes(data)


PIPE_CASES = [
    Case("EPB claiming 4 GiB, on a pipe", SHB + IDB + struct.pack("<II", 6, 0xFFFFFFF0) + b"\0" * 64,
         ERROR + "frame 1 at byte offset 48: truncated block (72 of 4294967280 bytes)"
                 "", 2, [], ".pcapng"),
    Case("SHB claiming 4 GiB, on a pipe", struct.pack("<II", 0x0A0D0D0A, 0xFFFFFFF0)
         + struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + b"\0" * 40,
         ERROR + "byte offset 0: truncated block (64 of 4294967280 bytes)",
         2, [], ".pcapng"),
    # 4 flows: the seed's interfaces disagree on the time by 54 years, so its frame 10 (the last ACK)
    # comes that long after flow 1 ended and starts a flow of its own (src/flows.rs split rule 1),
    # and frame 21's SYN then finds that open flow, not an ended one, and starts another.
    Case("fuzz find: packet block claiming 2 GiB, on a pipe", fuzz_find(),
         ERROR + "frame 22 at byte offset 2436: truncated block (588 of 2147483648 bytes)"
                 " (the 4 flows before it are reported)", 2, [], ".pcapng"),
]


@pytest.mark.parametrize("case", PIPE_CASES, ids=[c.name for c in PIPE_CASES])
def test_huge_block_length_on_a_pipe_under_a_memory_limit(case: Case) -> None:
    import resource

    def limit_memory() -> None:  # 1 GiB of address space: Python runs, a 4 GiB buffer cannot
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = subprocess.run([sys.executable, "-m", "handshake_probe", "analyze", "/dev/stdin"],
                          input=case.content, capture_output=True, preexec_fn=limit_memory, timeout=60)
    err = proc.stderr.decode()
    assert "Traceback" not in err and "MemoryError" not in err
    assert (proc.returncode, err) == (case.code, case.stderr.format(path="/dev/stdin") + "\n")
