"""The live-capture edge: an AF_PACKET socket with a kernel BPF filter, handing out `RawFrame`s.

Nothing here decodes or prints: frames go to the same `decode` as frames read from files. The
`capture` command uses this class only to set the socket up: the engine (`_engine.Live`,
src/live.rs) then reads it on its own thread through a TPACKET_V3 ring (see there for why and how
fast); `frames()` below is the Python reader, kept for the tests and for callers that want frames.

How it is built, and why (measured on this project's 2-CPU VM, kernel 6.x, see bench/live_load.py):

* One `recvmsg` per packet on a non-blocking socket, `poll` only when the queue is empty. A drain
  of a full queue runs at ~350k packets/s (2.9 us a packet; a bare recv() takes 1.35 us, the
  rest is the control messages and the address tuple), seven times the 50k/s target, so PACKET_MMAP (TPACKET_V3) is not worth
  its complexity; and a V3 ring hands packets over only when a block fills or times out, which
  the live transition view would feel as lag. A large receive buffer absorbs the bursts when the
  reading thread is descheduled.
* The BPF program runs in the kernel (SO_ATTACH_FILTER): packets that do not match are never
  queued, never copied, never counted. The program's return value is the snapshot length, so the
  kernel also cuts packets to `snaplen`; without a filter expression a one-instruction program
  `ret #snaplen` is attached for that.
* The classic race (packets queued between socket() and the filter being attached) cannot happen:
  the socket is created with protocol 0, which receives nothing; the filter is attached, and only
  then is it bound to the interface with ETH_P_ALL. Nothing is queued that the filter did not pass.
* On `lo` every packet passes the packet taps twice: once leaving (PACKET_OUTGOING, on the
  transmit path) and once arriving (PACKET_HOST, on the receive path); both are the same bytes.
  libpcap keeps the arriving copy only (pcap-linux.c drops PACKET_OUTGOING on the loopback);
  so do we, so our counts equal tcpdump's. The kernel does it for us with PACKET_IGNORE_OUTGOING
  (Linux >= 4.20): the outgoing copy is then never cloned, queued or counted, which halves the
  work and keeps PACKET_STATISTICS meaningful. The pkttype check stays in the loop as the
  fallback for older kernels. On other interfaces both directions are kept (an outgoing packet
  there is seen once).
* Timestamps are the kernel's (SO_TIMESTAMPNS, the skb's receive stamp); tcpdump's stamps for the
  same packets agree within its microsecond rounding (a few differ by up to ~13 us). Because the
  kernel turns stamping on lazily, we wait until it is on before binding (`_await_rx_timestamps`).
  The original length comes from PACKET_AUXDATA (`tp_len`, taken before the filter cut the
  packet); VLAN tags the NIC stripped are put back from it, as libpcap does.
* Measured with bench/live_load.py (load processes on the same 2 CPUs): 0 lost at ~71k packets/s
  offered, the capture loop using ~30 % of one CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import select
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Callable, Iterator, List, NamedTuple, Optional, Tuple, Type

from handshake_probe.files.pcapwriter import RawFrame

__all__ = ["BpfInsn", "CapturePermissionError", "InterfaceError", "LibpcapMissingError",
           "LiveCapture", "compile_bpf", "has_capture_privilege", "DEFAULT_SNAPLEN"]

DEFAULT_SNAPLEN = 262144  # libpcap's MAXIMUM_SNAPLEN: the whole of any packet on any interface
POLL_INTERVAL = 0.2  # longest wait before frames() looks at its stop conditions again

# Linux ABI numbers (include/uapi/linux/if_packet.h, if_ether.h, asm-generic/socket.h).
# Python 3.11's socket module lacks most of them.
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_OUTGOING = 4  # sll_pkttype of a packet this host sent
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
SO_TIMESTAMP = 29  # SO_TIMESTAMP_OLD; also the cmsg type SCM_TIMESTAMP
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD; also the cmsg type SCM_TIMESTAMPNS
SO_TIMESTAMPING = 37  # SO_TIMESTAMPING_OLD; also the cmsg type SCM_TIMESTAMPING
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
BPF_RET_K = 0x06  # BPF_RET | BPF_K

# Interface hardware types (include/uapi/linux/if_arp.h) -> pcap LINKTYPE of what a SOCK_RAW
# packet socket hands us. lo carries a 14-byte Ethernet header with zero addresses.
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE  # TUN devices (IFF_TUN): the packet starts with the IP header
_LINKTYPES = {ARPHRD_ETHER: 1, ARPHRD_LOOPBACK: 1, ARPHRD_NONE: 101}
# pcap_open_dead wants a DLT, and DLT_RAW is 12 on Linux while LINKTYPE_RAW is 101.
_LINKTYPE_TO_DLT = {101: 12}

_TIMESPEC = struct.Struct("@ll")  # struct timespec: tv_sec, tv_nsec (the _OLD options: native longs)
_TIMEVAL = struct.Struct("@ll")  # struct timeval: tv_sec, tv_usec
_AUXDATA = struct.Struct("@IIIHHHH")  # tp_status, tp_len, tp_snaplen, tp_mac, tp_net, vlan tci, tpid
_STATS = struct.Struct("@II")  # struct tpacket_stats: tp_packets (incl. drops), tp_drops
_INSN = struct.Struct("@HBBI")  # struct sock_filter / bpf_insn: code, jt, jf, k
_FPROG = struct.Struct("@HP")  # struct sock_fprog: len, pointer to the instructions
# Room for both control messages (timestamp 16 bytes, auxdata 20 bytes) with their headers.
_ANCBUF = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_AUXDATA.size)

_SETCAP_HINT = ("run as root, or grant the capability to the interpreter: "
                "sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which python3))")


class CapturePermissionError(PermissionError):
    """The process lacks CAP_NET_RAW, which an AF_PACKET socket needs."""


class InterfaceError(OSError):
    """The interface does not exist, is down, or has a link type `decode` cannot be handed."""


class LibpcapMissingError(RuntimeError):
    """libpcap (which compiles filter expressions) is not installed."""


class BpfInsn(NamedTuple):
    """One classic BPF instruction (struct sock_filter), as `tcpdump -ddd` prints it."""

    code: int
    jt: int
    jf: int
    k: int


# ----------------------------------------------------------------------------- filter compiling


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


_PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF  # "ip broadcast" then fails instead of guessing a netmask
_libpcap: Optional[ctypes.CDLL] = None
_libpcap_lock = threading.Lock()  # libpcap before 1.8 had a non-reentrant parser


def _load_libpcap() -> ctypes.CDLL:
    global _libpcap
    if _libpcap is not None:
        return _libpcap
    names = [n for n in (ctypes.util.find_library("pcap"),) if n]
    names += ["libpcap.so.1", "libpcap.so.0.8", "libpcap.so"]  # find_library needs ldconfig
    lib = None
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise LibpcapMissingError("libpcap is needed to compile filter expressions and was not "
                                  "found: apt-get install libpcap0.8")
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.restype = None
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.restype = None
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    _libpcap = lib
    return lib


def compile_bpf(expr: str, linktype: int = 1, snaplen: int = DEFAULT_SNAPLEN) -> List[BpfInsn]:
    """Compile a tcpdump filter expression for frames of `linktype`, optimised, as tcpdump does.

    Raises ValueError with libpcap's message for a bad expression, LibpcapMissingError when
    libpcap is not installed. The program's accept value is `snaplen` (the kernel cuts to it).
    """
    lib = _load_libpcap()
    with _libpcap_lock:
        handle = lib.pcap_open_dead(_LINKTYPE_TO_DLT.get(linktype, linktype), snaplen)
        if not handle:
            raise MemoryError("pcap_open_dead failed")
        try:
            prog = _BpfProgram()
            if lib.pcap_compile(handle, ctypes.byref(prog), expr.encode(), 1,
                                _PCAP_NETMASK_UNKNOWN) != 0:
                message = (lib.pcap_geterr(handle) or b"cannot compile").decode(errors="replace")
                raise ValueError(message)
            try:
                raw = ctypes.string_at(prog.bf_insns, prog.bf_len * _INSN.size)
            finally:
                lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(handle)
    return [BpfInsn(*_INSN.unpack_from(raw, i)) for i in range(0, len(raw), _INSN.size)]


def _attach_filter(sock: socket.socket, program: List[BpfInsn]) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer only lives for the call."""
    insns = ctypes.create_string_buffer(b"".join(_INSN.pack(*i) for i in program))
    fprog = _FPROG.pack(len(program), ctypes.addressof(insns))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# ----------------------------------------------------------------------------- interfaces


def _hardware_type(iface: str) -> Optional[int]:
    """The interface's ARPHRD type from sysfs; None when sysfs is not there to ask."""
    try:
        with open(f"/sys/class/net/{iface}/type") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _linktype_of(iface: str, hatype: int) -> int:
    linktype = _LINKTYPES.get(hatype)
    if linktype is None:
        raise InterfaceError(errno.EINVAL, f"interface {iface} has hardware type {hatype} "
                             "(see linux/if_arp.h); live capture supports loopback, Ethernet "
                             "and raw-IP (TUN) interfaces")
    return linktype


# ----------------------------------------------------------------------------- capture


class LiveCapture:
    """Capture on one interface; every packet on `lo` exactly once (the arriving copy).

    Use as a context manager. `frames()` yields RawFrames numbered from 1 (`offset` is 0: there
    is no file); `stats()` gives (received, dropped) from the kernel, cumulative.
    """

    def __init__(self, iface: str = "lo", bpf: Optional[str] = None,
                 snaplen: int = DEFAULT_SNAPLEN, rcvbuf: int = 64 << 20) -> None:
        if not 0 < snaplen <= DEFAULT_SNAPLEN:
            raise ValueError(f"snaplen must be 1 .. {DEFAULT_SNAPLEN}, not {snaplen}")
        self.iface = iface
        self.bpf = bpf
        self.snaplen = snaplen
        try:
            self.ifindex = socket.if_nametoindex(iface)
        except OSError:
            raise InterfaceError(errno.ENODEV, f"no such interface: {iface}") from None
        # Link type and filter first: both need no privilege, so a typo in the interface or the
        # expression is reported before the user is told to become root.
        hatype = _hardware_type(iface)
        self.linktype: int = _linktype_of(iface, hatype) if hatype is not None else 0
        program = self._program() if hatype is not None else None
        self._sock = self._open()
        try:
            if hatype is None:
                # No sysfs: bind with protocol 0 (receives nothing) just to learn the type.
                self._sock.bind((iface, 0))
                hatype = int(self._sock.getsockname()[3])
                self.linktype = _linktype_of(iface, hatype)
                program = self._program()
            assert program is not None
            self._setup(program, rcvbuf, hatype == ARPHRD_LOOPBACK)
        except BaseException:
            self._sock.close()
            raise
        self._frame = 0
        self._received = 0
        self._dropped = 0
        self._stats_lock = threading.Lock()
        self._closed = False
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)

    def _program(self) -> List[BpfInsn]:
        if self.bpf is not None and self.bpf.strip():
            return compile_bpf(self.bpf, self.linktype, self.snaplen)
        return [BpfInsn(BPF_RET_K, 0, 0, self.snaplen)]  # accept all, cut to snaplen

    @staticmethod
    def _open() -> socket.socket:
        try:
            # Protocol 0: the socket receives nothing until bind() names ETH_P_ALL (see module doc).
            return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as err:
            raise CapturePermissionError(
                err.errno, "capturing packets needs the CAP_NET_RAW capability: " + _SETCAP_HINT
            ) from None

    def _setup(self, program: List[BpfInsn], rcvbuf: int, loopback: bool) -> None:
        sock = self._sock
        _attach_filter(sock, program)
        try:
            # Beyond net.core.rmem_max; needs CAP_NET_ADMIN.
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.rcvbuf: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # as granted (doubled)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        self.rx_timestamps = _await_rx_timestamps()
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        # On lo, the outgoing copy is the duplicate: let the kernel drop it (module doc).
        self.kernel_drops_outgoing = False
        self._loopback = loopback
        self.loopback: bool = loopback  # on lo: keep the arriving copy only
        if loopback:
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
                self.kernel_drops_outgoing = True
            except OSError:
                pass  # kernel < 4.20: frames() drops PACKET_OUTGOING itself
        sock.bind((self.iface, ETH_P_ALL))
        # Binding to an interface that is down succeeds but leaves ENETDOWN pending, which the
        # first read would raise; refuse here instead, as tcpdump does ("That device is not up").
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ENETDOWN:
            raise InterfaceError(errno.ENETDOWN, f"interface {self.iface} is down")
        sock.setblocking(False)

    # ------------------------------------------------------------------------- reading

    def frames(self, count: Optional[int] = None, duration: Optional[float] = None,
               stop: Optional[threading.Event] = None,
               on_idle: Optional[Callable[[], None]] = None) -> Iterator[RawFrame]:
        """Yield captured frames until `count` frames, `duration` seconds, or `stop` is set.

        Stop conditions are checked before each frame and at least every POLL_INTERVAL while idle.
        At the end, the frames the kernel had already queued (stamped no later than the end) are
        still delivered, so "stop after the traffic" never loses the tail of it.
        `on_idle()` is called each time the queue is empty, before waiting (flush output there).
        """
        if self._closed:
            raise ValueError("capture is closed")
        recvmsg = self._sock.recvmsg
        poll = self._poll.poll
        bufsize, ancsize = self.snaplen, _ANCBUF
        linktype = self.linktype
        drop_outgoing = self._loopback  # only matters where the kernel option is missing
        new = tuple.__new__  # skips namedtuple's Python-level __new__ (a tuple per frame, nothing more)
        monotonic = time.monotonic
        deadline = None if duration is None else monotonic() + duration
        end_ts: Optional[float] = None  # wall-clock end once a stop condition holds: drain up to it
        wanted = count
        n = 0
        while wanted is None or n < wanted:
            if end_ts is None and ((stop is not None and stop.is_set())
                                   or (deadline is not None and monotonic() >= deadline)):
                end_ts = time.time()
            try:
                data, anc, _flags, addr = recvmsg(bufsize, ancsize)
            except BlockingIOError:
                if end_ts is not None:
                    return  # queue drained after the end
                if on_idle is not None:
                    on_idle()
                wait = POLL_INTERVAL if deadline is None else \
                    min(POLL_INTERVAL, max(0.0, deadline - monotonic()))
                poll(wait * 1000.0)
                continue
            if drop_outgoing and addr[2] == PACKET_OUTGOING:
                continue
            ts, wirelen, data = _ancillary(anc, data, linktype)
            if end_ts is not None and ts > end_ts:
                return  # arrived after the end
            self._frame += 1
            n += 1
            yield new(RawFrame, (self._frame, ts, linktype, data, wirelen, 0))

    def stats(self) -> Tuple[int, int]:
        """(packets received, packets dropped by the kernel), cumulative since the start.

        `received` counts every packet the filter passed, dropped ones included (libpcap's
        ps_recv, tcpdump's "received by filter"). The kernel resets its counters on each read,
        so they are summed here.
        """
        with self._stats_lock:
            if not self._closed:
                raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
                packets, drops = _STATS.unpack(raw)
                self._received += packets
                self._dropped += drops
            return self._received, self._dropped

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        if self._closed:
            return
        self.stats()  # keep the final counts readable after close
        with self._stats_lock:
            self._closed = True
            self._sock.close()

    def __enter__(self) -> "LiveCapture":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()


def _ancillary(anc: List[Tuple[int, int, bytes]], data: bytes, linktype: int) -> Tuple[float, int, bytes]:
    """Kernel timestamp and original length from the control messages; VLAN tag put back."""
    ts: Optional[float] = None
    wirelen = len(data)
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET:
            if kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack_from(value)
                ts = sec + nsec / 1e9
            elif kind == SO_TIMESTAMP:
                sec, usec = _TIMEVAL.unpack_from(value)
                ts = sec + usec / 1e6
        elif level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, tp_len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(value)
            wirelen = tp_len
            if status & TP_STATUS_VLAN_VALID and linktype == 1 and len(data) >= 12:
                # The NIC stripped the 802.1Q tag into metadata; the frame on the wire had it.
                if not status & TP_STATUS_VLAN_TPID_VALID:
                    tpid = 0x8100
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
                wirelen += 4
    if ts is None:
        ts = time.time()  # a kernel that stamps nothing: the best we have
    return ts, wirelen, data


def _await_rx_timestamps(timeout: float = 1.0) -> bool:
    """Wait until the kernel stamps packets as they arrive; True once it does.

    Asking for timestamps flips a global static key (netstamp_needed_key) from a workqueue, i.e.
    a moment later. A packet that arrives before that carries no stamp, and the kernel then
    stamps it when we *read* it: we saw a connection's first five packets dated 0.2 s after the
    rest. So before binding, send ourselves one datagram on 127.0.0.1 until it comes back with a
    receive-time software stamp (SO_TIMESTAMPING reports none for an unstamped packet, so the
    answer does not depend on timing). Usually the first datagram already has one.
    """
    flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
            rx.bind(("127.0.0.1", 0))
            rx.settimeout(0.1)
            while time.monotonic() < deadline:
                tx.sendto(b"\0", rx.getsockname())
                try:
                    _, anc, _, _ = rx.recvmsg(1, socket.CMSG_SPACE(48))
                except TimeoutError:
                    continue
                if any(level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING
                       for level, kind, _ in anc):
                    return True
                time.sleep(0.001)
    except OSError:
        pass  # no IPv4 loopback to probe with: the first packets may carry read-time stamps
    return False


def has_capture_privilege() -> bool:
    """True when this process may open an AF_PACKET socket (root or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
        return True
    except OSError:  # PermissionError, or a kernel without AF_PACKET
        return False
