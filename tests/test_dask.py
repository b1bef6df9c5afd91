"""The Dask runs on a real `distributed.LocalCluster` (2 worker processes on this machine) give the local
run's records, file for file, and the local run's messages for broken captures."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

pa = pytest.importorskip("pyarrow")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
import pyarrow.parquet as pq  # noqa: E402

import handshake_probe.dask as hp_dask  # noqa: E402
from handshake_probe.cli import main  # noqa: E402
from tests.test_parquet import assert_same_records  # noqa: E402
from tests.ttyrun import run_with_tty_stderr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
CONFORMANCE = ROOT.parent / "shared" / "conformance"
GOOD = CAPTURES / "echo-client-close.pcap"
TIMEOUT = 180


@pytest.fixture(autouse=True)
def _bounded_time() -> Iterator[None]:
    """No test here waits on the cluster for ever: SIGALRM ends it with a failure after TIMEOUT seconds."""
    import signal

    def expire(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"the test took more than {TIMEOUT} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def captures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled captures and, when present, the conformance traces (read in place: symlinks)."""
    d = tmp_path_factory.mktemp("captures")
    sources = [("cap", p) for p in sorted(CAPTURES.glob("*.pcap*"))]
    sources += [("anomaly", p) for p in sorted((CAPTURES / "anomalies").glob("*.pcap*"))]
    if CONFORMANCE.is_dir():
        sources += [("conf", p) for p in sorted((CONFORMANCE / "traces").glob("*.pcap*"))]
        sources += [("tun", p) for p in sorted((CONFORMANCE / "tunnels" / "traces").glob("*.pcap*"))]
    for prefix, p in sources:
        (d / f"{prefix}-{p.name}").symlink_to(p)
    return d


@pytest.fixture(scope="module")
def broken_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("broken")
    shutil.copy(GOOD, d / "a-good.pcap")
    (d / "b-truncated.pcap").write_bytes(GOOD.read_bytes()[:-7])
    (d / "c-notes.pcap").write_text("not a capture\n")
    shutil.copy(CAPTURES / "closed-port.pcap", d / "d-good.pcap")
    return d


def local_run(directory: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, List[Dict[str, Any]], str]:
    code = main(["analyze", str(directory), "--format", "jsonl", "--jobs", "2"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def by_file(records: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    out: Dict[str, List[Dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["file"], []).append(r)
    return out


def test_cli_on_the_cluster_writes_the_local_records(cluster: Any, captures_dir: Path, tmp_path: Path,
                                                     capsys) -> None:
    code, records, err = local_run(captures_dir, capsys)
    out = tmp_path / "flows"
    assert main(["analyze", str(captures_dir), "--dask-scheduler", cluster.scheduler_address, "-o", str(out)]) == code
    assert capsys.readouterr().err == err            # the same messages (none but the warnings, if any)
    expected = by_file(records)
    files = sorted(out.glob("*.parquet"))
    assert len(files) == len(list(captures_dir.iterdir())) >= 23
    for f in files:
        rows = pq.read_table(f).to_pylist()
        source = str(captures_dir / f.name[:-len(".parquet")])
        assert_same_records(rows, expected.pop(source, []))
    assert expected == {}
    if CONFORMANCE.is_dir():
        assert len(files) >= 23 + 21 + 11


def test_dataframe_api_on_the_cluster_gives_the_local_records(cluster: Any, captures_dir: Path, capsys) -> None:
    _code, records, _err = local_run(captures_dir, capsys)
    with distributed.Client(cluster) as client:
        flows = hp_dask.analyze(str(captures_dir))
        assert flows.npartitions == len(list(captures_dir.iterdir()))
        frame = client.compute(flows).result(timeout=TIMEOUT)
    rows = pa.Table.from_pandas(frame, preserve_index=False).to_pylist()
    assert_same_records(rows, records)
    # a glob: the same captures in the same order
    assert hp_dask.capture_paths(str(captures_dir / "*.pcap*")) == sorted(str(p) for p in captures_dir.iterdir())


def test_dataframe_queries_run_on_the_workers(cluster: Any, captures_dir: Path, capsys) -> None:
    _code, records, _err = local_run(captures_dir, capsys)
    with distributed.Client(cluster) as client:
        flows = hp_dask.analyze(str(captures_dir))
        resets = flows[flows.close == "server-rst"].groupby("file").size()
        got = client.compute(resets).result(timeout=TIMEOUT).to_dict()
    expected: Dict[str, int] = {}
    for r in records:
        if r["close"] == "server-rst":
            expected[r["file"]] = expected.get(r["file"], 0) + 1
    assert got == expected and sum(expected.values()) >= 1


def test_a_broken_capture_is_named_and_the_others_kept(cluster: Any, broken_dir: Path, tmp_path: Path,
                                                       capsys) -> None:
    code, records, err = local_run(broken_dir, capsys)
    assert code == 2 and f"{broken_dir / 'b-truncated.pcap'}: frame 10 at byte offset" in err
    assert f"{broken_dir / 'c-notes.pcap'}: not a pcap or pcapng file" in err
    out = tmp_path / "flows"
    assert main(["analyze", str(broken_dir), "--dask-scheduler", cluster.scheduler_address, "-o", str(out)]) == 2
    assert capsys.readouterr().err == err            # the same lines, in the same order
    assert sorted(p.name for p in out.iterdir()) == ["a-good.pcap.parquet", "b-truncated.pcap.parquet",
                                                     "d-good.pcap.parquet"]
    expected = by_file(records)
    for name in ("a-good.pcap", "b-truncated.pcap", "d-good.pcap"):
        assert_same_records(pq.read_table(out / f"{name}.parquet").to_pylist(), expected[str(broken_dir / name)])
    assert len(expected[str(broken_dir / "b-truncated.pcap")]) == 1     # the flow before the fault


def test_api_errors_raise_naming_the_file_or_keep(cluster: Any, broken_dir: Path, capsys) -> None:
    _code, records, _err = local_run(broken_dir, capsys)
    with distributed.Client(cluster) as client:
        with pytest.raises(hp_dask.CaptureError, match="b-truncated.pcap: frame 10 at byte offset"):
            client.compute(hp_dask.analyze([str(broken_dir / "a-good.pcap"), str(broken_dir / "b-truncated.pcap")])
                           ).result(timeout=TIMEOUT)
        kept = client.compute(hp_dask.analyze(str(broken_dir), errors="keep")).result(timeout=TIMEOUT)
    assert_same_records(pa.Table.from_pandas(kept, preserve_index=False).to_pylist(), records)


def test_workers_read_fsspec_urls(cluster: Any, broken_dir: Path, capsys) -> None:
    """A URL instead of a path: the workers open it with fsspec (here its in-memory filesystem, which the
    worker processes do not share with us, so the test uses `file://`, a URL every worker can open)."""
    url = f"file://{broken_dir / 'a-good.pcap'}"
    with distributed.Client(cluster) as client:
        frame = client.compute(hp_dask.analyze(url)).result(timeout=TIMEOUT)
    _code, records, _err = local_run(broken_dir / "a-good.pcap", capsys)
    rows = pa.Table.from_pandas(frame, preserve_index=False).to_pylist()
    assert [r.pop("file") for r in rows] == [url] and len(rows) == len(records) == 1
    assert_same_records(rows, records)


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["analyze", str(GOOD), "--dask-scheduler", "tcp://127.0.0.1:9", "-o", str(tmp_path / "o")]) == 69
    err = capsys.readouterr().err
    assert err.startswith("handshake-probe: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert len(err.splitlines()) == 1


def test_dask_progress_bar_on_a_terminal_only(cluster: Any, broken_dir: Path, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "handshake_probe", "analyze", str(broken_dir / "a-good.pcap"),
            str(broken_dir / "d-good.pcap"), "--dask-scheduler", cluster.scheduler_address]
    code, out, tty = run_with_tty_stderr(argv + ["-o", str(tmp_path / "tty")], ROOT)
    assert code == 0 and out == b"" and "100% Completed" in tty
    import subprocess
    piped = subprocess.run(argv + ["-o", str(tmp_path / "pipe")], capture_output=True, cwd=ROOT, timeout=TIMEOUT)
    assert piped.returncode == 0 and piped.stderr == b"" and piped.stdout == b""
    assert sorted(p.name for p in (tmp_path / "pipe").iterdir()) == ["a-good.pcap.parquet", "d-good.pcap.parquet"]


def test_output_must_be_a_writable_directory(tmp_path: Path, capsys) -> None:
    """Checked before the scheduler is asked: one line each, exit 2."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main(["analyze", str(GOOD), "--dask-scheduler", "tcp://127.0.0.1:9", "-o", str(a_file)]) == 2
    assert capsys.readouterr().err == (f"handshake-probe: error: -o {a_file}: not a directory (--dask-scheduler "
                                       "writes one Parquet file per capture in it)\n")
    assert main(["analyze", str(GOOD), "--dask-scheduler", "tcp://127.0.0.1:9", "-o", str(a_file / "sub")]) == 2
    assert capsys.readouterr().err.startswith(f"handshake-probe: error: cannot write {a_file / 'sub'}: ")
    assert main(["analyze", str(GOOD), "--dask-scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "--dask-scheduler needs -o DIR" in capsys.readouterr().err
