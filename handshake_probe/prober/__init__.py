"""The prober: Scapy crafts every segment, the kernel answers, the core analyzer judges the frames.

Modules, in the order a run uses them:
  family.py     IPv4 and IPv6 side by side: loopback, TUN range, the header Scapy crafts, addresses never allowed
  caps.py       which capability each RST guard needs, checked first
  guard.py      the iptables / nft RST guards, and the sweep of leftovers from dead runs
  tun.py        the non-persistent TUN device of the tun guard
  link.py       sending IP packets and recording every frame of a scenario (TUN fd, or raw + AF_PACKET)
  peer.py       the prober's end of a connection: craft with Scapy, decode with the core, check answers
  kernel.py     the kernel's own view (/proc/net/tcp) and kernel sockets the scenarios drive
  context.py    what a scenario script gets; checkpoints
  scenarios.py  the scenarios and what each must produce
  verdict.py    frames -> analyzer -> expectations met or not
  notation.py   the `>S <S. >.` ladder notation, explained once for --help
  report.py     text: ladder, kernel checkpoints, the verdict (cause first, wrapped)
  engine.py     set up, run, tear down on every exit path
"""
