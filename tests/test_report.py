"""The HTML report (`handshake-probe report`, handshake_probe.report), driven in a real headless Chromium.

The browser is the oracle we did not write: it parses the page, runs its script and lays out the table
and the ladder. Without Chromium, chromedriver or selenium the browser tests are skipped with that reason
(`.ci/run` installs them); the file-level checks always run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import handshake_probe
from handshake_probe.views.table import window_cell
from handshake_probe.report import Source, write_report, write_report_from
from handshake_probe.views.ladder_svg import ladder_svg

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT / "captures").glob("*.pcap")) + sorted((ROOT / "captures" / "anomalies").glob("*.pcap"))
CONFORMANCE = ROOT.parent / "shared" / "conformance"
CONFORMANCE_TRACES = sorted(CONFORMANCE.glob("traces/*.pcap*")) + sorted(CONFORMANCE.glob("tunnels/traces/*.pcap*"))
SEVERAL = ["closed-port.pcap", "echo-client-close.pcap", "echo-ipv6.pcap", "echo-port-reuse-3000.pcap",
           "rst-out-of-window.pcap", "anomalies/zero-window.pcap"]


def flows_of(path: Path) -> Tuple[List[Dict[str, Any]], Dict[int, List[Dict[str, Any]]]]:
    analysis = handshake_probe.analyze(str(path), streaming=False, keep_rows=True)
    records = list(analysis)
    return records, {r["flow"]: analysis.rows(r["flow"]) for r in records}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "handshake_probe", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def make_report(tmp_path: Path, *names: str) -> Path:
    out = tmp_path / "report.html"
    done = cli("report", *[str(ROOT / "captures" / n) for n in names], "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


# ------------------------------------------------------------------------------------ the file itself
def test_report_command_writes_one_page(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    done = cli("report", "captures/echo-client-close.pcap", "captures/closed-port.pcap", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {out}: 2 flows from 2 captures\n"
    assert done.stderr == ""
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_no_external_url_is_referenced(tmp_path: Path) -> None:
    page = make_report(tmp_path, *SEVERAL).read_text(encoding="utf-8")
    # Nothing loads from elsewhere: no src/href to another place, no CSS url() or @import of one.
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:[a-z]+:)?//""", page, re.I)
    assert "@import" not in page
    assert "<link" not in page and "<iframe" not in page
    # The inline script cannot end its own element early, nor can the data's.
    for name in ("ladder.js", "report.js"):
        text = (ROOT / "handshake_probe/report/assets" / name).read_text(encoding="utf-8").lower()
        assert "</script" not in text and "<!--" not in text
    assert page.lower().count("</script") == page.lower().count("<script")
    # The only "http" text is the SVG namespace name (an identifier, never fetched).
    assert set(re.findall(r"https?://[^\s\"'<>)]*", page)) <= {"http://www.w3.org/2000/svg"}


def test_data_is_embedded_once_and_complete(tmp_path: Path) -> None:
    page = make_report(tmp_path, "echo-client-close.pcap", "anomalies/zero-window.pcap").read_text(encoding="utf-8")
    scripts = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, re.S)
    assert [name for name, _ in scripts] == ["hp-data", "hp-d0"]
    head = json.loads(scripts[0][1])
    assert [s["name"] for s in head["sources"]] == [str(ROOT / "captures/echo-client-close.pcap"),
                                                    str(ROOT / "captures/anomalies/zero-window.pcap")]
    details = json.loads(scripts[1][1])
    expected = {(k, r["flow"]): r for k, name in enumerate(["echo-client-close.pcap", "anomalies/zero-window.pcap"])
                for r in flows_of(ROOT / "captures" / name)[0]}
    flows = head["flows"]
    # Flows are packed as they end (a streamed analysis); every one exactly once, with all its segments.
    keys = list(zip(flows["src"], flows["n"]))
    assert sorted(keys) == sorted(expected) and len(details) == len(keys)
    assert flows["pk"] == [expected[k]["packets"] for k in keys]
    assert [len(d["rows"]) for d in details] == [expected[k]["packets"] for k in keys]
    assert [len(d["tr"]) for d in details] == [len(expected[k]["transitions"]) for k in keys]
    # No record is written twice: the flow table's columns live in the head only.
    assert page.count('"127.0.0.1:34556"') == 1


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    done = cli("report", "captures/no-such.pcap", "-o", str(tmp_path / "r.html"))
    assert done.returncode == 2
    assert done.stderr == "handshake-probe: error: cannot open captures/no-such.pcap: No such file or directory\n"
    assert not (tmp_path / "r.html").exists()
    done = cli("report", "captures/closed-port.pcap", "-o", str(tmp_path / "no-dir" / "r.html"))
    assert done.returncode == 2
    assert done.stderr.startswith("handshake-probe: error: cannot write ") and done.stderr.count("\n") == 1


# ------------------------------------------------------------------------------------ in Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _skip_reason() -> Optional[str]:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not CHROMIUM or not CHROMEDRIVER:
        return "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(120)
    yield driver
    driver.quit()


def open_page(browser: Any, path: Path) -> None:
    browser.get(path.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    assert browser.execute_script("return document.documentElement.dataset.ready") == "1"


def js(browser: Any, script: str, *args: Any) -> Any:
    return browser.execute_script(script, *args)


def body_rows(browser: Any) -> List[List[str]]:
    return js(browser, "return [...document.querySelectorAll('#flow-body tr')].map(tr => [...tr.cells].map(td => td.textContent))")


def header_index(browser: Any, title: str) -> int:
    heads = js(browser, "return [...document.querySelectorAll('#flow-head th')].map(th => th.textContent)")
    return heads.index(title)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_every_bundled_capture_opens_with_its_flows(browser: Any, tmp_path: Path, capture: Path) -> None:
    records, rows = flows_of(capture)
    out = tmp_path / "r.html"
    assert cli("report", str(capture), "-o", str(out)).returncode == 0
    open_page(browser, out)
    count = js(browser, "return document.getElementById('count').textContent")
    assert count == f"{len(records):,} flow{'' if len(records) == 1 else 's'}"
    shown = body_rows(browser)
    assert [int(r[0]) for r in shown] == [r["flow"] for r in records[:100]]
    # Nothing was fetched: the page and its pictures come from the one file.
    assert js(browser, "return performance.getEntriesByType('resource').length") == 0
    # Every flow's ladder: open it as a click does, then its arrows and state boxes against the records.
    for rec in records[:3] + records[-2:]:
        js(browser, "window.hpReport.open(window.hpReport.indexOf(0, arguments[0]))", rec["flow"])
        check_flow_view(browser, rec, rows[rec["flow"]])


def check_flow_view(browser: Any, rec: Dict[str, Any], rows: List[Dict[str, Any]]) -> None:
    view = js(browser, """
        const svg = document.querySelector('#fv-ladder svg');
        return {hidden: document.getElementById('flow-view').hidden,
                arrows: [...svg.querySelectorAll('g.segment')].map(g => [Number(g.dataset.frame), g.dataset.kind,
                          g.querySelector('tspan').textContent, g.querySelector('line').getAttribute('x1') < g.querySelector('line').getAttribute('x2') ? 'right' : 'left',
                          g.querySelector('line').getAttribute('x1'), g.querySelector('line').getAttribute('x2')]),
                client: [...svg.querySelectorAll('g.state[data-endpoint=client] text')].map(t => t.textContent),
                server: [...svg.querySelectorAll('g.state[data-endpoint=server] text')].map(t => t.textContent),
                segs: [...document.querySelectorAll('#fv-segments tbody tr')].map(tr => [...tr.cells].map(td => td.textContent)),
                trans: [...document.querySelectorAll('#fv-transitions tbody tr')].map(tr => [...tr.cells].map(td => td.textContent)),
                gaps: svg.querySelectorAll('.gap').length};""")
    assert view["hidden"] is False
    if not view["gaps"]:
        assert [a[0] for a in view["arrows"]] == [r["frame"] for r in rows]
        assert [a[2] for a in view["arrows"]] == [f"[{r['tcpdump_flags']}]" for r in rows]
        # Arrows run from the sender's lifeline to the receiver's: the client's is on the left.
        lefts = {float(min(a[4], a[5], key=float)) for a in view["arrows"]}
        assert len(lefts) == 1
        assert [float(a[4]) == min(lefts) for a in view["arrows"]] == [r["from_client"] for r in rows]
        # The state boxes: the initial state, then every state entered, in order (the record's paths).
        assert view["client"] == rec["client_states"] or _timer_reordered(view["client"], rec["client_states"])
        assert view["server"] == rec["server_states"] or _timer_reordered(view["server"], rec["server_states"])
    # The segment table: the same content as `--flow N`.
    assert len(view["segs"]) == len(rows)
    for cells, row in zip(view["segs"], rows):
        moved = {t["endpoint"] for t in row["transitions"]}
        assert int(cells[0]) == row["frame"]
        assert cells[3:5] == [row["tcpdump_flags"], row["flag_names"]]
        assert cells[7] == str(row["seq"])
        assert cells[10] == window_cell(row)         # the scaled window, as `--flow N` shows it
        assert cells[11] == row["client_state"] + (" *" if "client" in moved else "")
        assert cells[12] == row["server_state"] + (" *" if "server" in moved else "")
        assert cells[13] == "; ".join(row["notes"])
    assert [(c[1], c[2], c[3], c[4], c[5]) for c in view["trans"]] == [
        ("timer" if t["frame"] is None else f"frame {t['frame']}", t["endpoint"], t["from"], t["to"], t["cause"])
        for t in rec["transitions"]]


def _timer_reordered(shown: List[str], path: List[str]) -> bool:
    return sorted(shown) == sorted(path)


def test_ladder_port_equals_the_python_svg(browser: Any, tmp_path: Path) -> None:
    """One layout: the page's JS ladder is byte for byte views/ladder_svg.py's, for every flow of every
    bundled capture (and of the conformance traces when they are there), elided, whole and absolute."""
    sources = [p for p in CAPTURES] + CONFORMANCE_TRACES
    flows: List[Tuple[int, Dict[str, Any], List[Dict[str, Any]]]] = []
    srcs = []
    for k, path in enumerate(sources):
        records, rows = flows_of(path)
        srcs.append(Source(str(path), [(r, rows[r["flow"]]) for r in records], {}))
        # All flows of each, but the 3,000 near-identical ones of echo-port-reuse-3000: its first and last.
        picked = records if len(records) <= 300 else records[:250] + records[-50:]
        flows += [(k, r, rows[r["flow"]]) for r in picked]
    out = tmp_path / "all.html"
    write_report(out, srcs)
    open_page(browser, out)
    variants = [(False, None, None, None), (True, None, None, None), (False, "all", None, None), (False, 5, 3, 2)]
    mismatches: List[str] = []
    compared = 0
    for start in range(0, len(flows), 400):
        batch = flows[start:start + 400]
        got = js(browser, """
            const out = [];
            for (const [src, n] of arguments[0]) {
              const f = window.hpReport.flowOf(window.hpReport.indexOf(src, n));
              for (const [abs, max, head, tail] of arguments[1]) {
                out.push(max === 'all' ? HPLadder.svg(f, window.hpReport.layout, abs, null)
                         : max === null ? HPLadder.svg(f, window.hpReport.layout, abs)
                         : HPLadder.svg(f, window.hpReport.layout, abs, max, head, tail));
              }
            }
            return out;""", [[k, r["flow"]] for k, r, _ in batch], [list(v) for v in variants])
        it = iter(got)
        for k, rec, rows in batch:
            for absolute, max_rows, head, tail in variants:
                if max_rows == "all":
                    want = ladder_svg(rec, rows, absolute, None)
                elif max_rows is None:
                    want = ladder_svg(rec, rows, absolute)
                else:
                    want = ladder_svg(rec, rows, absolute, max_rows, head, tail)
                compared += 1
                if next(it) != want and len(mismatches) < 3:
                    mismatches.append(f"{sources[k].name} flow {rec['flow']} {absolute, max_rows}")
    assert mismatches == []
    assert compared == 4 * len(flows) >= 4 * 400


def test_filter_sort_and_keyboard(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    out = make_report(tmp_path, *SEVERAL)
    records = [r for n in SEVERAL for r in flows_of(ROOT / "captures" / n)[0]]
    open_page(browser, out)
    count = lambda: js(browser, "return document.getElementById('count').textContent")   # noqa: E731
    assert count() == f"{len(records):,} flows"

    Select(browser.find_element(By.ID, "f-close")).select_by_value("rejected")
    rejected = [r for r in records if r["close"] == "rejected"]
    assert count() == f"{len(rejected)} of {len(records):,} flows match the filters"
    assert [r[header_index(browser, "close")] for r in body_rows(browser)] == ["rejected (RST)"] * len(rejected)

    Select(browser.find_element(By.ID, "f-close")).select_by_value("")
    Select(browser.find_element(By.ID, "f-anomaly")).select_by_value("zero_window")
    assert count() == f"{sum(1 for r in records if r['anomalies']['zero_window'])} of {len(records):,} flows match the filters"
    browser.find_element(By.ID, "f-reset").click()

    Select(browser.find_element(By.ID, "f-conn")).select_by_value("SF")
    assert count() == f"{sum(1 for r in records if r['conn_state'] == 'SF'):,} of {len(records):,} flows match the filters"
    browser.find_element(By.ID, "f-reset").click()

    # A click on a chart's bar filters too: the flows with a violation.
    js(browser, "document.querySelector('.bar[data-value=\"!v\"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    assert count() == f"{sum(1 for r in records if r['violation_count'])} of {len(records):,} flows match the filters"
    assert [int(r[header_index(browser, "viol.")]) for r in body_rows(browser)] == [
        r["violation_count"] for r in records if r["violation_count"]]
    browser.find_element(By.ID, "f-reset").click()

    ipv6 = [r for r in records if r["client"].startswith("[")]
    port = ipv6[0]["server"].rsplit(":", 1)[1]
    browser.find_element(By.ID, "f-port").send_keys(port)
    js(browser, "return new Promise(r => setTimeout(r, 300))")
    n = sum(1 for r in records if port in (r["client"].rsplit(":", 1)[1], r["server"].rsplit(":", 1)[1]))
    assert count() == f"{n} of {len(records):,} flows match the filters"
    browser.find_element(By.ID, "f-reset").click()

    path = next(r["server_states"] for r in records if r["close"] == "server-rst" or r["violation_count"])
    option = ">".join(path)
    value = js(browser, "return [...document.querySelectorAll('#f-path option')].find(o => o.value.startsWith('s') && "
                        "o.textContent.startsWith('server: ' + arguments[0] + ' (')).value", option.replace(">", " > "))
    Select(browser.find_element(By.ID, "f-path")).select_by_value(value)
    assert count() == f"{sum(1 for r in records if r['server_states'] == path)} of {len(records):,} flows match the filters"
    browser.find_element(By.ID, "f-reset").click()

    # Sorting: by packets, then the other way.
    head = browser.find_element(By.CSS_SELECTOR, "#flow-head th[data-key=pk] button")
    head.click()
    col = header_index(browser, "pkts")
    assert [int(r[col]) for r in body_rows(browser)] == sorted(r["packets"] for r in records)[:100]
    head.click()
    assert [int(r[col]) for r in body_rows(browser)] == sorted((r["packets"] for r in records), reverse=True)[:100]
    assert browser.find_element(By.CSS_SELECTOR, "#flow-head th[data-key=pk]").get_attribute("aria-sort") == "descending"
    browser.find_element(By.CSS_SELECTOR, "#flow-head th[data-key=n] button").click()

    # The keyboard alone: / to search, Tab to the table, arrows, Enter opens, Esc goes back.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("/")
    assert js(browser, "return document.activeElement.id") == "f-text"
    browser.switch_to.active_element.send_keys("qqq")   # nothing has "qqq" in it: no flow
    js(browser, "return new Promise(r => setTimeout(r, 300))")
    assert count().startswith("0 of")
    browser.switch_to.active_element.send_keys(Keys.BACKSPACE * 3 + "::1")
    js(browser, "return new Promise(r => setTimeout(r, 300))")
    assert count() == f"{len(ipv6)} of {len(records):,} flows match the filters"
    js(browser, "document.querySelector('#flow-body tr').focus()")
    browser.switch_to.active_element.send_keys(Keys.ARROW_DOWN) if len(ipv6) > 1 else None
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert js(browser, "return document.getElementById('flow-view').hidden") is False
    title = js(browser, "return document.getElementById('fv-title').textContent")
    assert title.endswith(f"flow {ipv6[min(1, len(ipv6) - 1)]['flow']}")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert js(browser, "return document.getElementById('flow-view').hidden") is True
    assert js(browser, "return document.activeElement.tagName") == "TR"


def test_a_click_opens_the_flow_and_the_hash_reopens_it(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    out = make_report(tmp_path, "rst-out-of-window.pcap")
    open_page(browser, out)
    browser.find_element(By.CSS_SELECTOR, "#flow-body tr").click()
    assert browser.current_url.endswith("#flow=1")
    records, rows = flows_of(ROOT / "captures/rst-out-of-window.pcap")
    check_flow_view(browser, records[0], rows[1])
    violations = js(browser, "return document.getElementById('fv-violations').textContent")
    assert records[0]["violations"][0]["reason"] in violations
    browser.get(out.as_uri() + "#flow=1")
    browser.refresh()
    assert js(browser, "return document.getElementById('flow-view').hidden") is False


NEGOTIATION = {"syn_seen": True, "synack_seen": True,
               "client": {"isn": 1, "window": 65495, "mss": 65495, "window_scale": 7, "sack_permitted": True,
                          "timestamps": True, "tsval": 5, "tfo": {"cookie_request": False, "cookie": None, "data": 0,
                                                                  "data_acked": None},
                          "mptcp": False, "ecn": {"ece": False, "cwr": False, "ae": False}, "ttl": 64, "df": True,
                          "options": "mss,sok,ts,nop,ws", "p0f": "4:64+0:0:65495:mss*1,7:mss,sok,ts,nop,ws:df,id+:0",
                          "os": None},
               "server": None, "in_effect": None, "warnings": ["window_scale_one_side"]}


def test_negotiation_is_shown_when_the_record_has_it(browser: Any, tmp_path: Path) -> None:
    records, rows = flows_of(ROOT / "captures/echo-client-close.pcap")
    with_it = [dict(records[0], negotiation=NEGOTIATION)]
    out = tmp_path / "n.html"
    write_report_from(out, "live", with_it, rows)
    open_page(browser, out)
    js(browser, "window.hpReport.open(0)")
    text = js(browser, "return document.getElementById('fv-negotiation').textContent")
    assert "mss,sok,ts,nop,ws" in text and "window_scale_one_side" in text and "not seen" not in text.split("server")[0]
    # The capture's own record carries the engine's negotiation: shown with its in-effect values.
    out = make_report(tmp_path, "echo-client-close.pcap")
    open_page(browser, out)
    js(browser, "window.hpReport.open(0)")
    text = js(browser, "return document.getElementById('fv-negotiation').textContent")
    assert records[0]["negotiation"]["client"]["p0f"] in text and "window_scaling=true" in text
    # Without it (records of an older version) the view has no such section and the page works.
    out = tmp_path / "old.html"
    write_report_from(out, "old", [{k: v for k, v in records[0].items() if k != "negotiation"}], rows)
    open_page(browser, out)
    js(browser, "window.hpReport.open(0)")
    assert js(browser, "return document.getElementById('fv-negotiation').textContent") == ""
    assert js(browser, "return document.querySelectorAll('#fv-segments tbody tr').length") == len(rows[records[0]["flow"]])


def test_print_hides_the_controls(browser: Any, tmp_path: Path) -> None:
    out = make_report(tmp_path, "echo-client-close.pcap")
    open_page(browser, out)
    js(browser, "window.hpReport.open(0)")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        shown = js(browser, "return ['filters', 'flow-view', 'summary'].map(id => getComputedStyle(document.getElementById(id)).display)")
        assert shown[0] == "none" and shown[1] != "none" and shown[2] != "none"
        pdf = browser.execute_cdp_cmd("Page.printToPDF", {})
        assert len(pdf["data"]) > 10000
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


# ------------------------------------------------------------------------------------ the hooks
def head_of(page: Path) -> Dict[str, Any]:
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="hp-data">(.*?)</script>', text, re.S).group(1))


def _capture_with_report(page: Path, options: List[str], connections: int) -> str:
    """`capture -q --duration 2 --report PAGE OPTIONS` over `connections` echo exchanges; its stdout."""
    from tests.test_live import CaptureCommand, EchoServer, echo_once, needs_raw
    if needs_raw.args[0]:
        pytest.skip(needs_raw.kwargs["reason"])
    with EchoServer() as address:
        cmd = CaptureCommand(["-q", "--duration", "2", "--report", str(page), *options, f"tcp port {address[1]}"])
        cmd.wait_listening()
        for _ in range(connections):
            echo_once(address)
        rc, out, err = cmd.finish()
    assert rc == 0, err
    assert f"wrote {page}: {connections} flows\n" in out
    return out


def test_capture_report_holds_what_was_captured(tmp_path: Path) -> None:
    pcap, page = tmp_path / "out.pcap", tmp_path / "live.html"
    _capture_with_report(page, ["-w", str(pcap)], 2)
    records, _rows = flows_of(pcap)          # the same frames, read back from the pcap by analyze
    flows = head_of(page)["flows"]
    # In the order the flows ended, as analyze gives them (flows that end together: any order).
    assert flows["n"] == [r["flow"] for r in records] and sorted(flows["n"]) == [1, 2]
    assert flows["pk"] == [r["packets"] for r in records]
    assert flows["cl"] == [r["client"] for r in records]


def test_capture_report_without_w_leaves_no_pcap_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))      # the capture's temporary pcap goes here
    page = tmp_path / "live.html"
    _capture_with_report(page, [], 3)
    assert sorted(head_of(page)["flows"]["n"]) == [1, 2, 3]    # in the order the flows ended
    assert list(scratch.iterdir()) == []             # the temporary pcap is gone


def test_probe_sources_one_per_scenario() -> None:
    from handshake_probe.report.hooks import probe_sources
    from handshake_probe.prober.verdict import Analysis
    records, rows = flows_of(ROOT / "captures/probe-echo.pcap")

    class Outcome:     # the two fields probe_sources reads, as prober.verdict.Outcome has them
        def __init__(self, name: str, ok: bool) -> None:
            self.scenario = type("S", (), {"name": name})()
            self.analysis = Analysis(name, records, rows, 10, 10, [])
            self.ok, self.problems = ok, ([] if ok else ["no echo"])
    sources = probe_sources([Outcome("echo", True), Outcome("handshake", False)])
    assert [s.name for s in sources] == ["probe echo", "probe handshake"]
    assert [s.counters["verdict"] for s in sources] == ["ok", "no echo"]
    assert [[(r["flow"], len(rs)) for r, rs in s.flows] for s in sources] == [[(1, 10)], [(1, 10)]]


def test_a_damaged_capture_keeps_the_flows_read_before_the_fault(browser: Any, tmp_path: Path) -> None:
    data = (ROOT / "captures/echo-port-reuse-3000.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:len(data) // 2 + 7])          # ends inside a record
    out = tmp_path / "cut.html"
    done = cli("report", str(cut), "-o", str(out))
    assert done.returncode == 2
    analysis = handshake_probe.analyze(str(cut), streaming=False)
    records = list(analysis)
    assert analysis.error and done.stderr.startswith(f"handshake-probe: error: {analysis.error}")
    assert done.stderr.count("\n") == 1
    open_page(browser, out)
    assert js(browser, "return document.getElementById('count').textContent") == f"{len(records):,} flows"
    assert analysis.error in js(browser, "return document.getElementById('stats').textContent")


def test_a_capture_without_tcp_gives_an_empty_page_that_works(browser: Any, tmp_path: Path) -> None:
    from handshake_probe.files.pcapwriter import PcapWriter
    empty = tmp_path / "empty.pcap"
    writer = PcapWriter(str(empty), 1)
    writer.close()
    out = tmp_path / "empty.html"
    done = cli("report", str(empty), "-o", str(out))
    assert done.returncode == 0, done.stderr
    open_page(browser, out)
    assert js(browser, "return document.getElementById('count').textContent") == "0 flows"
    assert js(browser, "return document.getElementById('p-where').textContent") == "no flow matches"


def test_take_rows_gives_the_rows_once() -> None:
    path = str(ROOT / "captures/echo-port-reuse-3000.pcap")
    kept = handshake_probe.analyze(path, streaming=False, keep_rows=[1, 2])
    want = {r["flow"]: kept.rows(r["flow"]) for r in kept}
    taking = handshake_probe.analyze(path, streaming=True, keep_rows=True)
    got = {r["flow"]: taking.take_rows(r["flow"]) for r in taking}
    assert len(got) == 3000 and got[1] == want[1] and got[2] == want[2]
    assert taking.take_rows(1) is None and taking.rows(1) is None      # forgotten


def test_a_long_flow_lists_its_first_and_last_segments_then_all(browser: Any, tmp_path: Path) -> None:
    records, rows = flows_of(ROOT / "captures/echo-client-close.pcap")
    many = [dict(rows[1][k % 10], frame=k + 1) for k in range(2500)]
    out = tmp_path / "long.html"
    write_report_from(out, "long", [dict(records[0], packets=2500)], {1: many})
    open_page(browser, out)
    js(browser, "window.hpReport.open(0)")
    frames = lambda: js(browser, "return [...document.querySelectorAll('#fv-segments tbody tr[data-frame]')].map(tr => Number(tr.dataset.frame))")  # noqa: E731
    assert frames() == list(range(1, 1501)) + list(range(2001, 2501))
    assert js(browser, "return document.querySelectorAll('#fv-ladder g.segment').length") == 60   # 40 + 20, elided
    js(browser, "document.getElementById('fv-seg-all').click()")
    assert frames() == list(range(1, 2501))
