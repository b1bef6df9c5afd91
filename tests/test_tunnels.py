"""TCP inside tunnels: the engine against ../shared/conformance/tunnels (tshark's streams computed on the
innermost headers, with the encapsulation each segment came in, and Zeek's conn.log/tunnel.log rows).

Per trace: every tshark stream is one of our flows (same inner endpoints, same packets and payload bytes
each way; where our split rules cut a 4-tuple in more flows, theirs are summed), each with the tunnels
tshark saw (kind, outer addresses, UDP ports, packets per tunnel); Zeek's tunnels (type and outer
addresses) are among ours. Flow counts and conn_state/history against both references:
tests/test_conformance_split.py. Decoding of every tunnel kind from hex frames: src/decode.rs tests.
"""

from __future__ import annotations

import csv
import json
import re
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Tuple

import pytest

import handshake_probe

TUNNELS = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "tunnels"
MANIFEST = json.loads((TUNNELS / "manifest.json").read_text()) if TUNNELS.is_dir() else []
IDS = [e["name"] for e in MANIFEST]
needs_corpus = pytest.mark.skipif(not TUNNELS.is_dir(), reason=f"{TUNNELS} is absent")

# tshark's tunnel stack names (the tsv's `tunnels`) and Zeek's tunnel types -> our kinds
TSHARK_KIND = {"gre(ipv4)": "gre", "gre(teb)": "gre", "gre(aruba-wlan)": "gre", "gre-in-udp(ipv4)": "gre-in-udp",
               "vxlan": "vxlan", "geneve": "geneve", "gtp-u": "gtp-u", "teredo": "teredo", "ayiya": "ayiya"}
ZEEK_KINDS = {"Tunnel::GRE": {"gre", "gre-in-udp", "erspan"}, "Tunnel::VXLAN": {"vxlan"},
              "Tunnel::GENEVE": {"geneve"}, "Tunnel::GTPv1": {"gtp-u"}, "Tunnel::TEREDO": {"teredo"},
              "Tunnel::AYIYA": {"ayiya"}, "Tunnel::IP": {"ip-in-ip"}}
# Zeek names GRE-in-UDP's endpoints without ports: compare addresses only for these.
NO_PORTS = {"ip-in-ip", "gre", "erspan", "gre-in-udp"}

End = Tuple[str, int]


def _end(label: str) -> End:
    """'10.0.0.1' -> ('10.0.0.1', 0); '10.0.0.1:4789' / '[2001:db8::1]:3544' -> (address, port)."""
    m = re.fullmatch(r"\[(.*)\]:(\d+)|([^:]+):(\d+)|(.*)", label)
    assert m is not None
    if m.group(1) is not None:
        return m.group(1), int(m.group(2))
    if m.group(3) is not None:
        return m.group(3), int(m.group(4))
    return m.group(5), 0


def _pair(a: End, b: End, ports: bool = True) -> FrozenSet[End]:
    return frozenset((a, b) if ports else ((a[0], 0), (b[0], 0)))


def streams(entry: Dict[str, Any]) -> List[Dict[str, str]]:
    with open(TUNNELS / entry["tshark_summary"], newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def encaps(text: str) -> List[Tuple[str, FrozenSet[End], int]]:
    """tshark's `encaps` column: (direction, unordered outer endpoints, segments) per encapsulation
    that has outer endpoints (a bare `eth/ip` has none)."""
    out = []
    for part in text.split(" ; "):
        m = re.fullmatch(r"([<>])(\S+) x(\d+)", part.strip())
        assert m is not None, part
        ip = re.search(r"/ipv?6?\[([^\]>]+)>([^\]]+)\]", m.group(2))
        if ip is None:
            continue
        udp = re.search(r"/udp\[(\d+)>(\d+)\]", m.group(2))
        ports = (int(udp.group(1)), int(udp.group(2))) if udp else (0, 0)
        out.append((m.group(1), frozenset(((ip.group(1), ports[0]), (ip.group(2), ports[1]))), int(m.group(3))))
    return out


@pytest.fixture(scope="module")
def flows() -> Dict[str, List[Dict[str, Any]]]:
    return {e["name"]: list(handshake_probe.analyze(str(TUNNELS / e["file"]), streaming=False)) for e in MANIFEST}


def _by_endpoints(recs: List[Dict[str, Any]]) -> Dict[FrozenSet[End], List[Dict[str, Any]]]:
    out: Dict[FrozenSet[End], List[Dict[str, Any]]] = defaultdict(list)
    for r in recs:
        out[frozenset((_end(r["client"]), _end(r["server"])))].append(r)
    return out


@needs_corpus
@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_every_tshark_stream_is_a_flow_with_its_tunnels(entry: Dict[str, Any], flows):
    ours = _by_endpoints(flows[entry["name"]])
    for row in streams(entry):
        a, b = (row["A_addr"], int(row["A_port"])), (row["B_addr"], int(row["B_port"]))
        mine = ours.get(frozenset((a, b)))
        assert mine, f"stream {row['stream']}: no flow for the inner 5-tuple {a} {b}"
        # packets and payload each way (summed where our split rules made several flows)
        def each_way(key_c: str, key_s: str) -> Tuple[int, int]:
            return (sum(r[key_c] if _end(r["client"]) == a else r[key_s] for r in mine),
                    sum(r[key_s] if _end(r["client"]) == a else r[key_c] for r in mine))
        assert each_way("client_packets", "server_packets") == (int(row["pkts_A2B"]), int(row["pkts_B2A"]))
        assert each_way("client_bytes", "server_bytes") == (int(row["payload_bytes_A2B"]),
                                                            int(row["payload_bytes_B2A"]))
        # the tunnels: kinds, outer endpoints and packets per tunnel as tshark saw them
        listed = [t for r in mine for t in r["tunnels"]]
        expected_kinds = {TSHARK_KIND[k] for k in row["tunnels"].split(";") if k != "none"}
        assert {t["kind"] for t in listed} == expected_kinds, row["tunnels"]
        theirs: Dict[FrozenSet[End], int] = defaultdict(int)
        for _direction, ends, count in encaps(row["encaps"]):
            theirs[ends] += count
        mine_ends = {_pair(_end(t["outer_client"]), _end(t["outer_server"])): t["packets"] for t in listed}
        assert mine_ends == dict(theirs), (row["stream"], row["encaps"])
        untunnelled = sum(c for part in row["encaps"].split(" ; ") if "[" not in part
                          for c in [int(part.rsplit(" x", 1)[1])])
        packets = sum(r["packets"] for r in mine)
        assert packets - sum(t["packets"] for t in listed) == untunnelled


@needs_corpus
@pytest.mark.parametrize("entry", [e for e in MANIFEST if e["expected"]], ids=[e["name"] for e in MANIFEST
                                                                                 if e["expected"]])
def test_zeek_tunnels_are_among_ours(entry: Dict[str, Any], flows):
    ours = _by_endpoints(flows[entry["name"]])
    for row in entry["expected"]:
        mine = ours[frozenset(((row["orig_h"], int(row["orig_p"])), (row["resp_h"], int(row["resp_p"]))))]
        assert mine, row
        listed = [t for r in mine for t in r["tunnels"]]
        assert bool(listed) == bool(row["tunnels"]), row
        for tunnel in row["tunnels"]:
            m = re.fullmatch(r"(\S+):(\d+) -> (\S+):(\d+)(?:/udp)?", tunnel["outer"])
            assert m is not None, tunnel
            a, b = (m.group(1), int(m.group(2))), (m.group(3), int(m.group(4)))
            kinds = ZEEK_KINDS[tunnel["tunnel_type"]]
            found = [t for t in listed if t["kind"] in kinds and _pair(_end(t["outer_client"]),
                                                                       _end(t["outer_server"]),
                                                                       t["kind"] not in NO_PORTS)
                     == _pair(a, b, t["kind"] not in NO_PORTS)]
            assert found, (tunnel, listed)


@needs_corpus
def test_vocabulary_and_skips_name_the_tunnels(flows):
    engine = handshake_probe._load_engine()
    assert set(engine.TUNNEL_KINDS) >= {t["kind"] for recs in flows.values() for r in recs for t in r["tunnels"]}
    assert "tunnel-depth-exceeded" in engine.SKIP_REASONS
    # an untunnelled flow lists none
    assert all(r["tunnels"] == [] for r in flows["zeek-tunnel-teredo"] if r["client"].startswith("192.168."))


def _frame(proto: int, payload: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                     bytes([10, 9, 9, 1]), bytes([10, 9, 9, 2])) + payload
    return bytes.fromhex("020000000002020000000001 0800") + ip


def test_engine_feed_counts_a_loop_of_nested_headers_and_decodes_the_rest():
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
    inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([192, 0, 2, 1]),
                        bytes([192, 0, 2, 2])) + tcp
    engine = handshake_probe._load_engine().Engine(1)
    deep = inner
    for _ in range(40):                             # IP-in-IP in IP-in-IP ..., 40 deep
        deep = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(deep), 1, 0, 64, 4, 0, bytes(4), bytes(4)) + deep
    engine.feed(_frame(4, deep[20:]), 1.0)
    engine.feed(_frame(47, b"\x00\x00\x08\x00" + inner), 2.0)    # GRE
    records = engine.finish()
    assert dict(engine.skipped) == {"tunnel-depth-exceeded": 1}
    assert [(r["client"], r["packets"]) for r in records] == [("192.0.2.1:40000", 1)]
    assert records[0]["tunnels"] == [{"kind": "gre", "outer_client": "10.9.9.1", "outer_server": "10.9.9.2",
                                      "packets": 1}]
    seg = handshake_probe._load_engine().decode(_frame(47, b"\x00\x00\x08\x00" + inner), 1)
    assert seg["tunnels"] == [{"kind": "gre", "src": "10.9.9.1", "dst": "10.9.9.2"}]


@needs_corpus
def test_table_and_flow_header_name_the_tunnels(flows):
    from handshake_probe.views.table import flow_detail, flow_table

    gre = flows["zeek-tunnel-gre-sample"]
    table = flow_table(gre)
    assert table.splitlines()[0].rstrip().endswith("tunnels")
    assert "gre 172.27.1.66>66.59.109.137" in table
    # a capture without tunnels keeps the table it always had
    plain = [r for r in flows["zeek-tunnel-teredo"] if not r["tunnels"]]
    assert "tunnels" not in flow_table(plain).splitlines()[0]
    head = flow_detail(gre[0], []).splitlines()
    assert head[1] == "tunnels: gre 172.27.1.66 <-> 66.59.109.137 (22 packets)"
    assert not any(line.startswith("tunnels:") for line in flow_detail(plain[0], []).splitlines())
