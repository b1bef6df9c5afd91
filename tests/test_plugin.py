"""The pytest plugin, used as a user would: test files run by pytester, the fixtures coming from the
installed `pytest11` entry point (nothing imports or registers the plugin in these files)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Tuple

import pytest

from handshake_probe.files.flowsource import flow_with_rows
from handshake_probe.checks.plugin import _live_capture_unavailable, assert_flow

pytest_plugins = ["pytester"]

CLIENT_CLOSE = Path(__file__).resolve().parent.parent / "captures" / "echo-client-close.pcap"


@pytest.fixture(autouse=True)
def _entry_points_load(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests are about the entry point: an environment that turned autoloading off must not hide it.
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)


USER_TESTS = f'''
import pytest

CAPTURE = {str(CLIENT_CLOSE)!r}


def test_passes(analyze, assert_flow):
    flows = analyze(CAPTURE)
    assert len(flows) == 1
    assert_flow(flows[0], close="fin", handshake_complete=True, client_final="TIME-WAIT",
                server_final="CLOSED", client_states_contains=["FIN-WAIT-1", "FIN-WAIT-2"], no_rst=True,
                max_handshake_ms=5, max={{"duration_ms": 100}}, **{{"handshake.syn_count": 1}})


def test_fails(analyze):
    from handshake_probe.checks.plugin import assert_flow   # the importable form
    assert_flow(analyze(CAPTURE)[0], close="fin", client_final="CLOSED")
'''


def client_and_server(capture: Path) -> Tuple[str, str]:
    """The first connection's client and server ("ip:port"), read with scapy from the capture's first SYN
    without ACK: every re-recording changes the ports, and the failure message names this recording's."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import PcapReader

    with PcapReader(str(capture)) as reader:
        for packet in reader:
            if IP in packet and TCP in packet and packet[TCP].flags.S and not packet[TCP].flags.A:
                return f"{packet[IP].src}:{packet[TCP].sport}", f"{packet[IP].dst}:{packet[TCP].dport}"
    raise AssertionError(f"{capture}: no SYN in the capture")


def test_fixtures_from_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # The failure message: which flow, expected vs found, then the flow drawn segment by segment.
    client, server = client_and_server(CLIENT_CLOSE)
    result.stdout.fnmatch_lines([
        f"E * flow 1 ({client} -> {server}): 1 of 2 expectations not met",
        "E *client_final = CLOSED",
        "E *expected: CLOSED",
        "E *found:    TIME-WAIT (path CLOSED > SYN-SENT > ESTABLISHED > FIN-WAIT-1 > FIN-WAIT-2 > TIME-WAIT)",
        "E *ladder:",
    ])
    ladder = out.split("ladder:", 1)[1]
    for text in ("SYN-SENT", "SYN-RECEIVED", "CLOSE-WAIT", "LAST-ACK", "TIME-WAIT"):
        assert text in ladder
    assert "close = fin" not in out      # only what failed is listed


def test_fixtures_disappear_without_the_plugin(pytester: pytest.Pytester) -> None:
    # Proof that the fixtures above came from the entry point named handshake_probe.
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:handshake_probe")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'analyze' not found*"])


def test_echo_server_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_echo='''
        import socket

        def test_echo(echo_server):
            host, port = echo_server
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(b"python")
                assert s.recv(100) == b"PYTHON"
    ''')
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=1)


LIVE_TESTS = '''
import socket


def talk(host, port):
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"python")
        assert s.recv(100) == b"PYTHON"


def test_live_passes(echo_server, loopback_capture, assert_flow):
    host, port = echo_server
    with loopback_capture(port) as cap:
        talk(host, port)
    assert cap.path.exists()
    assert len(cap.flows) == 1
    assert_flow(cap.flows[0], close="fin", handshake_complete=True, client_final="TIME-WAIT",
                server_final="CLOSED", no_rst=True, packets=10, server=f"{host}:{port}")


def test_live_fails(echo_server, loopback_capture, assert_flow):
    host, port = echo_server
    with loopback_capture(port) as cap:
        talk(host, port)
    assert_flow(cap.flows[0], close="client-rst")
'''


@pytest.mark.skipif(_live_capture_unavailable() is not None, reason=str(_live_capture_unavailable()))
def test_loopback_capture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_live=LIVE_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E *close = client-rst", "E *expected: client-rst", "E *found:    fin",
                                 "E *ladder:", "E *SYN-SENT*"])


def test_loopback_capture_skips_without_live_capture(pytester: pytest.Pytester) -> None:
    # A conftest that hides handshake_probe.live: the fixture must skip, saying why.
    pytester.makeconftest('''
        import sys
        sys.modules["handshake_probe.live"] = None   # "import handshake_probe.live" now fails
    ''')
    pytester.makepyfile(test_live=LIVE_TESTS)
    result = pytester.runpytest_subprocess("-q", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*live capture is not available (handshake_probe.live cannot be imported*"])


# ------------------------------------------------------------------------------ assert_flow directly


def test_assert_flow_takes_a_flow_with_its_rows() -> None:
    flow = flow_with_rows(str(CLIENT_CLOSE), 1)
    assert flow is not None
    assert_flow(flow, close="fin", server_final="CLOSED")
    with pytest.raises(AssertionError, match=r"(?s)expected: LISTEN.*ladder:.*SYN-RECEIVED"):
        assert_flow(flow, server_final="LISTEN")


def test_assert_flow_on_a_plain_dict_says_why_there_is_no_ladder() -> None:
    record = {"flow": 1, "client": "a", "server": "b", "close": "fin"}
    with pytest.raises(AssertionError) as info:
        assert_flow(record, close="none")
    assert "expected: none\n    found:    fin" in str(info.value)
    assert "(no ladder: this record does not say which capture it came from" in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "at least one expectation"),
    ({"close": "FIN"}, '"FIN" is not a close kind'),
    ({"no_rts": True}, "did you mean 'no_rst'?"),
    ({"client_final": "TIME_WAIT"}, "did you mean 'TIME-WAIT'?"),
])
def test_assert_flow_rejects_bad_expectations(kwargs: dict, message: str) -> None:
    # A mistake in the test is a ValueError, never a pass or an AssertionError about the traffic.
    with pytest.raises(ValueError) as info:
        assert_flow({"flow": 1, "close": "fin"}, **kwargs)
    assert message in str(info.value)


def test_assert_flow_fixture_is_the_function(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_same='''
        from handshake_probe.checks.plugin import assert_flow as imported
        from handshake_probe.pytest_plugin import assert_flow as old_name   # the name before checks/

        def test_same(assert_flow):
            assert assert_flow is imported is old_name
    ''')
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=1)


def test_readme_example(pytester: pytest.Pytester) -> None:
    """The test the README offers users to copy, verbatim."""
    if _live_capture_unavailable() is not None:
        pytest.skip(str(_live_capture_unavailable()))
    pytester.makepyfile(test_readme=textwrap.dedent(README_EXAMPLE))
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=1)


def _readme_example() -> str:
    """The python block of the README's "pytest plugin" section, as a user would copy it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## pytest plugin"):]
    return section[section.index("```python") + len("```python"):section.index("```", section.index("```python") + 9)]


README_EXAMPLE = _readme_example()


def test_a_failure_writes_the_html_report_of_its_capture(pytester: pytest.Pytester, tmp_path: Path) -> None:
    import json
    import re
    pytester.makepyfile(test_user=USER_TESTS)
    reports = tmp_path / "reports"
    result = pytester.runpytest_subprocess("-q", f"--handshake-probe-reports={reports}")
    result.assert_outcomes(passed=1, failed=1)
    # The message's last line names the page, opened at the failing flow.
    result.stdout.fnmatch_lines([f"E *HTML report: {reports}/test_user.py_test_fails-flow1.html#flow=1"])
    page = reports / "test_user.py_test_fails-flow1.html"
    assert sorted(p.name for p in reports.iterdir()) == [page.name]          # the passing test wrote none
    head = json.loads(re.search(r'<script type="application/json" id="hp-data">(.*?)</script>',
                                page.read_text(encoding="utf-8"), re.S).group(1))
    assert head["flows"]["n"] == [1] and head["sources"][0]["name"] == str(CLIENT_CLOSE)
    assert head["title"] == "test_user.py::test_fails: flow 1 failed"


def test_a_failure_without_the_option_writes_into_pytests_cache(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E *HTML report: */.pytest_cache/d/handshake-probe-reports/test_user.py_test_fails-flow1.html#flow=1"])
    assert (pytester.path / ".pytest_cache/d/handshake-probe-reports/test_user.py_test_fails-flow1.html").is_file()
