"""A threaded TCP echo server: the socket lesson's loop, made robust.

The classic lesson server loops on ``data = conn.recv(...)`` / ``conn.send(data.upper())``.
It breaks in four ways that this module fixes:

* ``send`` may write only part of the buffer; ``sendall`` loops until all of it is queued.
* one client at a time: an idle client blocks everybody queued behind it in the listen
  backlog. Here every accepted connection gets its own thread.
* a client that vanishes with a RST raises ``ConnectionResetError`` / ``BrokenPipeError``
  in the serving loop and kills the whole server. Here it ends only that connection.
* an empty read means the peer sent FIN (closed its sending side); the lesson often spins
  on it. Here the server answers by closing its own side.

Out of file descriptors (EMFILE/ENFILE), it backs off instead of spinning: a failed accept leaves
the connection in the kernel's queue, so retrying at once fails again at once. The loop stops
polling the listener until a client leaves (or a short pause passes) and says so in one line, not
one line per retry. Each client costs one fd (poll, unlike epoll, needs no fd of its own), and the
default backlog is the system's ``somaxconn``, so clients that cannot be served yet wait in the
kernel's queue instead of being dropped.

This is an edge (it owns sockets and threads), not part of the pure core. The recording
script uses it to produce the captures in ``captures/``, so its closing behaviour is part
of what those captures show: the server closes only after an empty read (peer closed),
after ``idle_timeout`` (server closes first), on a reset, or on shutdown.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import threading
import time
from types import TracebackType
from typing import Callable, Literal, Optional

__all__ = ["EchoServer", "Mode", "END_REASONS", "format_peer", "default_backlog"]

Mode = Literal["upper", "echo"]

# The reasons a connection can end, as they appear in the log lines.
CLOSED_BY_PEER = "closed by peer"
RESET_BY_PEER = "reset by peer"
IDLE_TIMEOUT = "idle timeout"
SERVER_SHUTDOWN = "server shutdown"
KEEPALIVE_TIMEOUT = "keepalive timeout"
END_REASONS = frozenset({CLOSED_BY_PEER, RESET_BY_PEER, IDLE_TIMEOUT, SERVER_SHUTDOWN,
                         KEEPALIVE_TIMEOUT})

_RECV_SIZE = 65536
# How long shutdown() lets client threads finish on their own before it forces their
# sockets shut (a thread blocked in sendall towards a client that never reads would
# otherwise never notice the shutdown).
_SHUTDOWN_GRACE = 1.0
# Out of fds, accept() keeps failing until one is freed: wait for a client to leave, or this long at
# most (the fds may be held by something other than our clients), before trying again.
_FD_BACKOFF = 0.5
# At most one "accept paused" line per this many seconds, however often the pause repeats.
_FD_LOG_EVERY = 10.0
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_logger = logging.getLogger(__name__)


def default_backlog() -> int:
    """The system's cap on a listen backlog (net.core.somaxconn): asking for more is silently cut to it,
    asking for less drops clients that arrive together (16 lost a quarter of 1,000 at once)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(int(f.read()), 1)
    except (OSError, ValueError):
        return socket.SOMAXCONN


def format_peer(address: tuple[object, ...]) -> str:
    """`127.0.0.1:5000` or `[::1]:5000` (IPv6 needs the brackets to keep the port readable)."""
    host, port = str(address[0]), address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EchoServer:
    """Echo (or upper-case) every chunk a client sends, one thread per client.

    Use as a context manager to run it in a background thread::

        with EchoServer(port=0) as (host, port):
            ...  # talk to (host, port)

    or call :meth:`serve_forever` in the foreground and :meth:`shutdown` from elsewhere.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        backlog: Optional[int] = None,
        mode: Mode = "upper",
        idle_timeout: Optional[float] = None,
        max_clients: Optional[int] = None,
        keepalive: Optional[tuple[int, int, int]] = None,
        log: Optional[Callable[[str], None]] = None,
    ) -> None:
        if mode not in ("upper", "echo"):
            raise ValueError(f"mode must be 'upper' or 'echo', not {mode!r}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive (or None for no timeout)")
        if backlog is not None and backlog < 1:
            raise ValueError("backlog must be at least 1 (or None for the system's somaxconn)")
        if max_clients is not None and max_clients < 1:
            raise ValueError("max_clients must be at least 1 (or None for no limit)")
        if keepalive is not None and (len(keepalive) != 3 or min(keepalive) < 1):
            raise ValueError("keepalive is (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT), all >= 1")
        self.host = host
        self.port = port
        self.backlog = default_backlog() if backlog is None else backlog
        self.mode: Mode = mode
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients
        self.keepalive = keepalive
        # Default to the logging module so a library user is not forced to see our lines.
        self._log_to: Callable[[str], None] = log if log is not None else _logger.info
        # Client threads log concurrently: one call at a time, so a callback that writes a line in
        # pieces (print writes the text, then the newline) never interleaves two lines.
        self._log_lock = threading.Lock()
        self._full_logged = False          # "max-clients reached" is said once per server
        self._fd_logged_at: Optional[float] = None
        self._fd_pauses = 0                # accept pauses for lack of fds since the last line about them
        self._left = 0                     # clients that have ended: an fd came free

        self._listener: Optional[socket.socket] = None
        self._address: Optional[tuple[str, int]] = None
        # A socketpair used as a broadcast wake-up: shutdown() closes the write end, and
        # the read end then stays readable for every selector that watches it, so the
        # accept loop and all client threads wake at once without polling.
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()  # not serving yet
        self._lock = threading.Condition()
        self._clients: dict[threading.Thread, socket.socket] = {}
        self._thread: Optional[threading.Thread] = None  # set when run by __enter__
        # shutdown() came between bind() and serving (a signal right after start-up): serving must
        # then return at once, not bind again and serve on with the request lost.
        self._cancelled = False
        self._serving: Optional[threading.Thread] = None  # whoever runs the accept loop

    def _log(self, line: str) -> None:
        with self._log_lock:
            self._log_to(line)

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); binds first if needed (port 0 becomes a real port)."""
        if self._address is None:
            self.bind()
        assert self._address is not None
        return self._address

    def bind(self) -> tuple[str, int]:
        """Create, bind and listen; separate from serving so callers learn the port early."""
        if self._listener is not None:
            assert self._address is not None
            return self._address
        infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, socktype, proto, _, sockaddr = infos[0]
        listener = socket.socket(family, socktype, proto)
        try:
            # SO_REUSEADDR lets a restarted server bind the same fixed port while old
            # connections of the previous run sit in TIME-WAIT.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(sockaddr)
            listener.listen(self.backlog)
            # Non-blocking so that a queued client that vanished between select and
            # accept can never park the accept loop (and with it shutdown()).
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        bound = listener.getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping.clear()
        self._cancelled = False
        return self._address

    def __enter__(self) -> tuple[str, int]:
        if self._serving is not None:
            raise RuntimeError("EchoServer is already serving")
        with self._lock:
            address = self.bind()
            thread = threading.Thread(target=self._serve, name=f"echo-accept-{address[1]}",
                                      daemon=True)
            # Recorded before start() so a shutdown() racing the thread start still waits.
            self._stopped.clear()
            self._thread = self._serving = thread
        thread.start()
        return address

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.shutdown()

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`shutdown` is called from another one."""
        if self._serving is not None:
            raise RuntimeError("EchoServer is already serving")
        with self._lock:
            # Checked and marked under the lock shutdown() takes: it either sees us serving (and
            # stops the loop) or has already cancelled this run.
            if self._cancelled:
                self._cancelled = False
                return
            self.bind()
            self._stopped.clear()
            self._serving = threading.current_thread()
        self._serve()

    def shutdown(self) -> None:
        """Stop accepting, end every open connection ("server shutdown"), wait for threads.

        Safe to call more than once, before serving, or from a client thread's log callback
        (then it signals and returns without waiting, since waiting would deadlock). Called after
        bind() and before serve_forever(), it cancels that serve_forever() (which then returns at
        once) until bind() is called again.
        """
        with self._lock:
            if self._listener is None:
                return
            self._stopping.set()
            self._lock.notify_all()  # an accept loop waiting for a free max_clients slot
            if self._wake_w is not None:
                self._wake_w.close()  # read end turns readable (EOF) for every selector
                self._wake_w = None
            serving = self._serving
            waiting_is_safe = threading.current_thread() not in (serving, *self._clients)
            if serving is None:
                self._cancelled = True
        if serving is None:
            self._release()  # bound but never served: nothing else will close the sockets
            return
        if waiting_is_safe:
            self._stopped.wait()
            if self._thread is not None:
                self._thread.join()
                self._thread = None

    # ------------------------------------------------------------------ accept loop

    def _serve(self) -> None:
        listener = self._listener
        assert listener is not None and self._wake_r is not None
        # poll, not epoll: a poll set is no file descriptor, so the loop keeps working at RLIMIT_NOFILE.
        selector = selectors.PollSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                if not self._wait_for_slot():
                    break
                # While we are at max_clients the listener is not even polled: new clients
                # wait in the kernel's accept queue (the listen backlog), as in the lesson.
                selector.register(listener, selectors.EVENT_READ)
                ready = selector.select()
                selector.unregister(listener)
                if self._stopping.is_set():
                    break
                if not any(key.fileobj is listener for key, _ in ready):
                    continue
                try:
                    conn, peer = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as err:
                    if err.errno in _OUT_OF_FDS:
                        # The connection stays queued; retrying now would fail now: wait for an fd.
                        self._pause_accepting(err)
                        continue
                    # e.g. ECONNABORTED (client reset while queued): one failed accept must not end
                    # the server, and it concerns that one connection only.
                    self._log(f"accept failed: {err}")
                    continue
                self._start_client(conn, peer)
        finally:
            selector.close()
            self._close_all()
            self._stopped.set()

    def _wait_for_slot(self) -> bool:
        """Block while max_clients connections are open; False when shutting down."""
        if self.max_clients is None:
            return True
        with self._lock:
            full = len(self._clients) >= self.max_clients
        if full and not self._full_logged:
            # Once: under churn the server is full again after every departure, and a line each
            # time would be a flood saying nothing new.
            self._full_logged = True
            self._log(f"max-clients {self.max_clients} reached: further clients wait in the listen "
                      f"backlog (said once)")
        with self._lock:
            while len(self._clients) >= self.max_clients and not self._stopping.is_set():
                self._lock.wait()
        return not self._stopping.is_set()

    def _pause_accepting(self, err: OSError) -> None:
        """Out of fds: wait until a client leaves (its fd is free then), at most _FD_BACKOFF."""
        now = time.monotonic()
        self._fd_pauses += 1
        if self._fd_logged_at is None or now - self._fd_logged_at >= _FD_LOG_EVERY:
            times = "" if self._fd_pauses == 1 else f" ({self._fd_pauses} pauses since the last such line)"
            self._log(f"accept paused: {err.strerror or err}; new clients wait in the listen backlog "
                      f"until a client leaves{times}")
            self._fd_logged_at, self._fd_pauses = now, 0
        with self._lock:
            left = self._left
            self._lock.wait_for(lambda: self._left != left or self._stopping.is_set(), _FD_BACKOFF)

    def _start_client(self, conn: socket.socket, peer: tuple[object, ...]) -> None:
        thread = threading.Thread(target=self._handle, args=(conn, peer),
                                  name=f"echo-client-{format_peer(peer)}", daemon=True)
        with self._lock:
            self._clients[thread] = conn
        try:
            thread.start()
        except RuntimeError as err:
            # No thread for it ("can't start new thread"): close it rather than leak the socket
            # and a max_clients slot with it.
            with self._lock:
                self._clients.pop(thread, None)
                self._left += 1
                self._lock.notify_all()
            conn.close()
            self._log(f"disconnect {format_peer(peer)} (error: {err})")

    def _close_all(self) -> None:
        """Runs when the accept loop ends: give clients a grace period, then force them."""
        assert self._listener is not None
        # Closing the listener resets connections still queued in the backlog.
        self._listener.close()
        with self._lock:
            threads = list(self._clients.items())
        for thread, conn in threads:
            if thread is threading.current_thread():
                continue
            thread.join(_SHUTDOWN_GRACE)
            if thread.is_alive():
                # Blocked in sendall to a client that does not read: shutting the socket
                # down makes the blocked send fail so the thread can log and exit.
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                thread.join()
        self._release()

    def _release(self) -> None:
        """Close the listener and the wake-up pair; the server can be bound again after."""
        with self._lock:
            for sock in (self._listener, self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            self._listener = self._wake_r = self._wake_w = None
            self._address = None
            self._serving = None

    # ------------------------------------------------------------------ one client

    def _configure(self, conn: socket.socket) -> None:
        if self.keepalive is not None:
            idle, interval, count = self.keepalive
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)

    def _handle(self, conn: socket.socket, peer: tuple[object, ...]) -> None:
        who = format_peer(peer)
        reason = CLOSED_BY_PEER
        selector: Optional[selectors.BaseSelector] = None
        try:
            self._log(f"connect {who}")  # inside try: a failing log callback still cleans up
            # A global socket.setdefaulttimeout() would leak into accepted sockets; the loop
            # does its own idle timing with select, and sendall must be allowed to block.
            conn.settimeout(None)
            self._configure(conn)
            assert self._wake_r is not None
            # Made inside the try: whatever fails here still closes the socket and frees the slot.
            # poll needs no fd of its own (epoll does, and failed with EMFILE when fds ran out).
            selector = selectors.PollSelector()
            selector.register(conn, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            reason = self._echo_loop(conn, selector)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            # The peer reset the connection (or we wrote after its RST): only this
            # connection ends; the accept loop never sees the exception.
            reason = SERVER_SHUTDOWN if self._stopping.is_set() else RESET_BY_PEER
        except TimeoutError:
            # A blocking socket only times out with ETIMEDOUT, i.e. keepalive probes failed.
            reason = KEEPALIVE_TIMEOUT
        except OSError as err:
            reason = SERVER_SHUTDOWN if self._stopping.is_set() else f"error: {err}"
        finally:
            if selector is not None:
                selector.close()
            try:
                conn.close()  # sends our FIN (or nothing more after a reset)
            finally:
                # Said before this thread leaves the client list: shutdown joins the threads on that
                # list, so every "disconnect" line is out before the server says it stopped.
                try:
                    self._log(f"disconnect {who} ({reason})")
                finally:
                    with self._lock:
                        self._clients.pop(threading.current_thread(), None)
                        self._left += 1
                        self._lock.notify_all()  # a max_clients slot and an fd are free

    def _echo_loop(self, conn: socket.socket, selector: selectors.BaseSelector) -> str:
        """Serve one connection until it ends; returns why it ended."""
        while True:
            ready = selector.select(self.idle_timeout)
            if self._stopping.is_set():
                # A FIN that arrived together with the shutdown still counts as the peer's
                # close, so the log says who really closed first.
                if any(key.fileobj is conn for key, _ in ready) and _peer_sent_fin(conn):
                    return CLOSED_BY_PEER
                return SERVER_SHUTDOWN
            if not ready:
                # Nothing from the client for idle_timeout seconds: the server closes
                # first (active close, so the server side ends in TIME-WAIT).
                return IDLE_TIMEOUT
            data = conn.recv(_RECV_SIZE)
            if not data:
                # FIN from the peer (RFC 9293: we are now in CLOSE-WAIT); answer with ours.
                return CLOSED_BY_PEER
            conn.sendall(data.upper() if self.mode == "upper" else data)


def _peer_sent_fin(conn: socket.socket) -> bool:
    """True when the next read would return EOF (peeked, so no data is consumed)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except OSError:
        return False


class EchoLog:
    """Collects an EchoServer's log lines (pass it as `log=`) and waits for one, so a test or a script
    knows the server has seen a connection start or end. Thread-safe: client threads log concurrently."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._cond:
            self.lines.append(line)
            self._cond.notify_all()

    def wait_for(self, match: "str | Callable[[str], bool]", timeout: float = 5.0) -> str:
        """The first line that contains `match` (or satisfies it, if callable), waiting for it to be
        logged; TimeoutError naming what was logged instead."""
        test = match if callable(match) else (lambda line: match in line)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if test(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the server never logged {match!r}; it logged {self.lines!r}")
                self._cond.wait(remaining)
