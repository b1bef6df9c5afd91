"""The lesson's keepalive timer, live: `serve --keepalive 1,1,3` makes probes show within seconds, and the
analyzer names them as Wireshark does. Uses the project's own pytest plugin fixtures."""

from __future__ import annotations

import socket
import threading
import time

from handshake_probe.echo.server import EchoServer


def test_keepalive_probes_are_seen_and_named(loopback_capture, assert_flow):
    closed = threading.Event()

    def log(line: str) -> None:
        if "disconnect" in line:
            closed.set()

    with EchoServer(keepalive=(1, 1, 3), log=log) as (host, port):
        with loopback_capture(port) as cap:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(b"python")
                assert s.recv(16) == b"PYTHON"
                time.sleep(2.6)              # idle: probes after 1 s, then every 1 s
            # Stay in the capture until the server has closed its side too (its FIN is on the wire).
            assert closed.wait(5)
    (flow,) = cap.flows
    counts = flow["anomalies"]
    assert counts["keep_alive"] >= 2 and counts["keep_alive_ack"] == counts["keep_alive"]
    assert counts["retransmission"] == 0      # a keep-alive is not counted as a retransmission
    assert_flow(flow, close="fin", handshake_complete=True, client_final="TIME-WAIT", server_final="CLOSED")
