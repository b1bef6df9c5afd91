"""Seed corpus for the cargo-fuzz targets: every capture of the repo (captures/, recursively) and of
the conformance suite (traces, tunnels/traces), plus format variants of a few small ones (pcap
big-endian, nanosecond, "modified" pcap, a small snaplen; pcapng with if_tsresol, big-endian, two
interfaces, simple and obsolete packet blocks; raw IP, NULL, LOOP, Linux SLL/SLL2, VLAN link types),
so that the fuzzer starts with every container and link type the reader and decoder know.

    python3 fuzz/make_seeds.py /tmp/fuzz-corpus/seeds [--conformance /work/shared/conformance]
"""
import argparse
import os
import shutil
import struct


def read_pcap(path):
    d = open(path, 'rb').read()
    magic, = struct.unpack('<I', d[:4])
    assert magic == 0xa1b2c3d4, path
    _, _, _, _, snap, lt = struct.unpack('<HHiIII', d[4:24])
    off, recs = 24, []
    while off + 16 <= len(d):
        s, us, incl, orig = struct.unpack('<IIII', d[off:off+16])
        recs.append((s, us, d[off+16:off+16+incl], orig))
        off += 16 + incl
    return lt, snap, recs


def pcap(recs, lt, endian='<', nano=False, modified=False, snap=65535):
    magic = 0xa1b23c4d if nano else (0xa1b2cd34 if modified else 0xa1b2c3d4)
    out = struct.pack(endian + 'IHHiIII', magic, 2, 4, 0, 0, snap, lt)
    for s, us, data, orig in recs:
        frac = us * 1000 if nano else us
        out += struct.pack(endian + 'IIII', s, frac, len(data), orig)
        if modified:
            out += struct.pack(endian + 'IHBB', 0, 0, 0, 0)
        out += data
    return out


def block(t, body, e='<'):
    body += b'\0' * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(e + 'II', t, n) + body + struct.pack(e + 'I', n)


def opt(code, val, e='<'):
    return struct.pack(e + 'HH', code, len(val)) + val + b'\0' * (-len(val) % 4)


def pcapng(recs, lt, e='<', tsresol=None, spb=False, two_if=False, obsolete=False):
    out = block(0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1) + opt(1, b'fuzz seed', e) + struct.pack(e+'HH', 0, 0), e)
    opts = b''
    if tsresol is not None:
        opts = opt(9, bytes([tsresol]), e) + struct.pack(e+'HH', 0, 0)
    out += block(1, struct.pack(e + 'HHI', lt, 0, 65535) + opts, e)
    if two_if:
        out += block(1, struct.pack(e + 'HHI', 1 if lt != 1 else 101, 0, 65535), e)
    for i, (s, us, data, orig) in enumerate(recs):
        if tsresol is None:
            ticks = s * 10**6 + us
        elif tsresol & 0x80:
            ticks = (s * 10**6 + us) * (1 << (tsresol & 0x7f)) // 10**6
        else:
            ticks = (s * 10**6 + us) * 10**tsresol // 10**6
        hi, lo = ticks >> 32, ticks & 0xffffffff
        if spb and i % 3 == 2:
            out += block(3, struct.pack(e + 'I', orig) + data, e)
        elif obsolete and i % 2:
            out += block(2, struct.pack(e + 'HHIIII', 0, 0, hi, lo, len(data), orig) + data, e)
        else:
            out += block(6, struct.pack(e + 'IIIII', 0, hi, lo, len(data), orig) + data
                         + opt(2, struct.pack(e+'I', 1), e) + struct.pack(e+'HH', 0, 0), e)
    return out


def strip_eth(recs):
    """Ethernet frames -> the IP packet (EtherType IPv4/IPv6 only)."""
    out = []
    for s, us, data, orig in recs:
        et = data[12:14]
        if et in (b'\x08\x00', b'\x86\xdd'):
            out.append((s, us, data[14:], orig - 14, et))
    return out


repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("dst", help="directory to fill (created)")
ap.add_argument("--conformance", default="/work/shared/conformance",
                help="conformance suite with traces/ and tunnels/traces/ (skipped if absent)")
args = ap.parse_args()
dst = args.dst
os.makedirs(dst, exist_ok=True)
roots = [(os.path.join(repo, "captures"), "main_captures"),
         (os.path.join(args.conformance, "traces"), "shared_conformance_traces"),
         (os.path.join(args.conformance, "tunnels", "traces"), "shared_conformance_tunnels_traces")]
for root, prefix in roots:
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith((".pcap", ".pcapng")):
                rel = os.path.relpath(os.path.join(d, f), root).replace(os.sep, "_")
                shutil.copyfile(os.path.join(d, f), os.path.join(dst, prefix + "_" + rel))

# format variants of a few small captures
names = ['main_captures_echo-client-close.pcap', 'main_captures_simultaneous-close.pcap',
         'main_captures_anomalies_retransmission-data.pcap', 'main_captures_probe-simultaneous-open.pcap']
for name in names:
    lt, snap, recs = read_pcap(os.path.join(dst, name))
    base = os.path.join(dst, 'variant_' + name.rsplit('.', 1)[0])
    open(base + '.be.pcap', 'wb').write(pcap(recs, lt, '>'))
    open(base + '.ns.pcap', 'wb').write(pcap(recs, lt, nano=True))
    open(base + '.mod.pcap', 'wb').write(pcap(recs, lt, modified=True))
    open(base + '.snap64.pcap', 'wb').write(pcap(recs, lt, snap=64))
    open(base + '.pcapng', 'wb').write(pcapng(recs, lt))
    open(base + '.be.pcapng', 'wb').write(pcapng(recs, lt, '>', tsresol=9, two_if=True))
    open(base + '.res2.pcapng', 'wb').write(pcapng(recs, lt, tsresol=0x80 | 20, spb=True, obsolete=True))
    if lt == 1:
        ip = strip_eth(recs)
        plain = [(s, us, d, o) for s, us, d, o, _ in ip]
        open(base + '.raw.pcap', 'wb').write(pcap(plain, 101))
        open(base + '.ipv4.pcap', 'wb').write(pcap(plain, 228))
        open(base + '.raw12.pcap', 'wb').write(pcap(plain, 12))
        null = [(s, us, struct.pack('<I', 2 if et == b'\x08\x00' else 24) + d, o + 4) for s, us, d, o, et in ip]
        open(base + '.null.pcap', 'wb').write(pcap(null, 0))
        loop = [(s, us, struct.pack('>I', 2 if et == b'\x08\x00' else 24) + d, o + 4) for s, us, d, o, et in ip]
        open(base + '.loop.pcap', 'wb').write(pcap(loop, 108))
        sll = [(s, us, struct.pack('>HHH8sH', 0, 1, 6, b'\0' * 8, int.from_bytes(et, 'big')) + d, o + 16) for s, us, d, o, et in ip]
        open(base + '.sll.pcap', 'wb').write(pcap(sll, 113))
        sll2 = [(s, us, struct.pack('>HHIHBB8s', int.from_bytes(et, 'big'), 0, 1, 1, 0, 6, b'\0' * 8) + d, o + 20) for s, us, d, o, et in ip]
        open(base + '.sll2.pcap', 'wb').write(pcap(sll2, 276))
        vlan = [(s, us, d[:12] + b'\x81\x00\x00\x05' + d[12:], o + 4) for s, us, d, o in recs]
        open(base + '.vlan.pcap', 'wb').write(pcap(vlan, 1))
