"""Fuzzing in the suite (hypothesis, a small budget): random bytes and mutated real captures.

The property, for any file: the engine's reader (`_engine.Frames`) raises nothing but CaptureError,
`_engine.decode` nothing but DecodeError (both reported inside the analysis), so
`handshake_probe.analyze` (reader + decoder + flow table with every observer) and the rendering never
raise, and the command line never prints a traceback. And no hang: every input must finish within a
few seconds (SIGALRM guard).

The seeds are captures/*.pcap and a pcapng built in bench/fuzz.py with one interface per supported
link type (see there); the mutations are bit flips, truncations, tweaks of the length fields found by
walking the file (record and block lengths, IP lengths, TCP data offset), insertions and deletions.
`bench/fuzz.py` runs the same property for minutes, coverage-guided by atheris.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import List

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from bench.fuzz import (KINDS, Hang, Mutation, apply, exercise, length_fields, same_through_a_pipe,
                        seed_corpus, time_limit)
import handshake_probe
from handshake_probe.cli import main

SEEDS = seed_corpus()
NAMES = sorted(SEEDS)
PER_INPUT_LIMIT = 5.0  # seconds; the inputs here take milliseconds


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


mutation = st.tuples(st.sampled_from(KINDS), st.integers(0, 2**20), st.integers(0, 2**16), st.integers(0, 255))
mutations = st.lists(mutation, min_size=1, max_size=6)
PCAPNG = SEEDS["built:all-link-types.pcapng"]
PCAP = next(blob for name, blob in SEEDS.items() if name.endswith(".pcap"))
HEADS = [b"", PCAP[:24], PCAPNG[:28], PCAPNG[:28 + 20],
         bytes.fromhex("a1b2c3d4 0002 0004 00000000 00000000 0000ffff 00000065"),  # big-endian, raw IP
         bytes.fromhex("4d3cb2a1 0200 0400 00000000 00000000 ffff0000 71000000")]  # nanoseconds, SLL


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "input.cap"


def survive(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    with time_limit(PER_INPUT_LIMIT):
        exercise(str(path))


def test_the_time_guard_fires() -> None:
    start = time.monotonic()
    with pytest.raises(Hang):
        with time_limit(0.05):
            while True:
                pass
    assert time.monotonic() - start < 1


def test_seeds_are_clean(scratch: Path) -> None:
    # Unmutated, every seed is read to the end without a fault: the mutations start from valid files.
    for name in NAMES:
        scratch.write_bytes(SEEDS[name])
        analysis = handshake_probe.analyze(str(scratch))
        list(analysis)
        assert (analysis.error, analysis.warnings, analysis.skipped.get("malformed", 0)) == (None, [], 0), name
        assert analysis.flow_count > 0 and length_fields(SEEDS[name]), name
    scratch.write_bytes(PCAPNG)  # the built pcapng: every frame, under every link type, is a segment
    ng = handshake_probe.analyze(str(scratch))
    list(ng)
    assert ng.frames == 20 + 2 + 4 and ng.segments == ng.frames and not ng.skipped


@fuzz(800)
@given(head=st.sampled_from(HEADS), tail=st.binary(max_size=600))
def test_random_bytes(scratch: Path, head: bytes, tail: bytes) -> None:
    survive(scratch, head + tail)


@fuzz(1500)
@given(name=st.sampled_from(NAMES), ops=mutations)
def test_mutated_captures(scratch: Path, name: str, ops: List[Mutation]) -> None:
    note(f"seed {name}, mutations {ops}")
    survive(scratch, apply(SEEDS[name], ops))


@fuzz(400)
@given(name=st.sampled_from(NAMES), ops=mutations,
       options=st.sampled_from([["--format", "table"], ["--format", "jsonl"], ["--format", "csv"],
                                ["--format", "json"], ["--flow", "1"], ["--flow", "1", "--ladder"],
                                ["--flow", "2", "--format", "jsonl"], ["--check-checksums"],
                                ["--format", "jsonl", "--max-open", "1", "--idle-timeout", "0.01"]]))
def test_command_line_never_shows_a_traceback(scratch: Path, name: str, ops: List[Mutation],
                                              options: List[str]) -> None:
    # The real entry point: any exception would escape main() (it catches only ^C and a closed pipe).
    scratch.write_bytes(apply(SEEDS[name], ops))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(PER_INPUT_LIMIT):
        code = main(["analyze", str(scratch), *options])
    lines = err.getvalue().splitlines()
    assert code in (0, 2)
    assert all(line.startswith("handshake-probe: ") for line in lines), lines
    assert sum(line.startswith("handshake-probe: error: ") for line in lines) <= 1
    assert (code == 0) == (not any(" error: " in line or "frame skipped" in line for line in lines))


@fuzz(200)
@given(name=st.sampled_from(NAMES), ops=mutations)
def test_a_pipe_reads_like_the_file(scratch: Path, name: str, ops: List[Mutation]) -> None:
    # On a pipe no length can be checked against the file size first: the same frames and the
    # same fault must come out anyway (and no buffer sized by a corrupt length: see test_broken_files).
    scratch.write_bytes(apply(SEEDS[name], ops))
    with time_limit(PER_INPUT_LIMIT):
        same_through_a_pipe(str(scratch))
