"""p0f itself as the oracle: `p0f -r FILE` on every capture in captures/ and ../shared/conformance (traces
and tunnels) prints, for each SYN and SYN-ACK, the raw_sig our record holds for that side, and with p0f's
own database (/etc/p0f/p0f.fp, which p0f loads) the same OS label. scripts/p0f_compare.py does the matching
and prints the figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.p0f_compare import P0F_DB, compare, corpus

pytestmark = pytest.mark.skipif(shutil.which("p0f") is None, reason="p0f not installed (apt-get install p0f)")

FILES = corpus()


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_p0f_prints_our_signatures(path: Path):
    db = P0F_DB.read_text() if P0F_DB.is_file() else None
    c = compare(path, db)
    assert c.error is None, c.error          # p0f (libpcap) reads every pcap and pcapng here
    assert c.differences == []


def test_the_corpus_has_signatures_to_compare():
    compared = {"syn": 0, "syn+ack": 0}
    for path in FILES:
        c = compare(path)
        for mod in compared:
            compared[mod] += c.agreed[mod]
    # the 3000 connections of echo-port-reuse-3000 alone give 3000 of each
    assert compared["syn"] > 3000 and compared["syn+ack"] > 3000
