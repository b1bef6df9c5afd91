"""RST guards: keep the kernel from resetting connections it does not know the prober is playing.

The prober's SYN from 127.0.0.1:P gets a SYN-ACK that the kernel itself also receives; it has no socket
for port P, so it answers with RST (RFC 9293 §3.10.7.1), killing the handshake we are driving. The
`iptables` and `nft` guards drop exactly those RSTs: outgoing on the interface, TCP source port one of
this run's ports, RST flag set, and not carrying PROBE_MARK (the prober's own RSTs carry it and pass).

Each rule carries the comment `handshake-probe:<pid>:<start>` (nft: in a table named
`handshake_probe_<pid>_<start>`), where <start> is the process's start time (field 22 of
/proc/<pid>/stat, clock ticks since boot). It is removed on every exit path the process lives
through, and rules left by a process that no longer exists (SIGKILL) are found and removed by `sweep`
at the next start. "No longer exists" means no process with that pid *and* that start time: pids are
reused, and judged by the pid alone a dead run's rule stayed as long as some unrelated process
happened to get its pid. (Rules of older versions carry only the pid and are judged by it.) iptables-nft creates the filter
table and its OUTPUT chain on demand; when it did so for us, the comment says `:made-chain` or
`:made-table`, so that even after a SIGKILL the next start can take those away again too.
(The `tun` guard needs no rule: see tun.py.)

IPv6 runs use ip6tables (its own filter table; iptables-nft makes `table ip6 filter` on demand) and an nft
table of family `ip6`; the rule is the same. The sweep looks at both families.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from typing import Iterable, List, Optional, Sequence

from handshake_probe.prober.family import FAMILIES, IPV4, Family

__all__ = ["GuardError", "Guard", "IptablesGuard", "NftGuard", "sweep", "comment_for", "GUARDS", "PROBE_MARK"]

GUARDS = ("tun", "iptables", "nft")
# The prober's own segments leave its raw socket with this SO_MARK. On lo it steers nothing: routing
# consults the local table first, whatever the mark.
PROBE_MARK = 0x68707262          # "hprb"
TAG = "handshake-probe"
NFT_TABLE_PREFIX = "handshake_probe_"
_MADE_CHAIN, _MADE_TABLE = "made-chain", "made-table"
_IPT_COMMENT = re.compile(r'--comment "?' + TAG + r':(\d+)(?::(\d+))?(?::(made-chain|made-table))?"?')
_NFT_TABLE = re.compile(r"^table (ip6?) (" + NFT_TABLE_PREFIX + r"(\d+)(?:_(\d+))?)\b", re.M)


class GuardError(Exception):
    """A firewall tool is missing or refused; the message names it and how to get it."""


def start_time(pid: int) -> Optional[int]:
    """When the process started (clock ticks since boot, /proc/<pid>/stat field 22), None if it is gone.
    With the pid it names one process for good: a reused pid comes with a later start time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': count from the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def comment_for(pid: int, made: str = "", start: Optional[int] = None) -> str:
    start = start_time(pid) if start is None else start
    return f"{TAG}:{pid}" + (f":{start}" if start is not None else "") + (f":{made}" if made else "")


def _alive(pid: int, start: Optional[int] = None) -> bool:
    """Is the process that made a rule still running? With its start time known: a process with that pid
    and that start time; without (a rule of an older version): any process with that pid."""
    if start is not None:
        return start_time(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # it exists, it is just not ours
    return True


def _run(argv: Sequence[str], stdin: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=20)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        # ip6tables comes with the iptables package.
        raise GuardError(f"{tool} not found: install it (apt-get install {'nftables' if tool == 'nft' else 'iptables'})")
    return path


class Guard:
    """The `tun` guard: nothing to install (the prober's address is not local to the kernel)."""

    name = "tun"

    def install(self) -> None:
        pass

    def remove(self) -> None:
        pass


# ----------------------------------------------------------------------------------------- iptables
def _nft_has(*what: str) -> bool:
    nft = shutil.which("nft")
    return nft is None or _run([nft, "list", *what]).returncode == 0


def _delete_empty_nft_table(family: str, table: str) -> None:
    """Delete a table only while it holds nothing (`nft delete table` would take its contents too)."""
    nft = shutil.which("nft")
    if nft is None:
        return
    listing = _run([nft, "-j", "list", "table", family, table])
    if listing.returncode:
        return
    try:
        items = json.loads(listing.stdout).get("nftables", [])
    except ValueError:
        return
    if any(k in item for item in items for k in ("chain", "rule", "set", "map", "flowtable", "counter")):
        return
    _run([nft, "delete", "table", family, table])


def _undo_made(tool: str, made: str, nft_family: str = "ip") -> None:
    """Take away the OUTPUT chain (and filter table) iptables-nft made for our rule, while empty and
    still accepting: deleting a chain whose policy someone set to DROP would open the firewall."""
    if not made:
        return
    listing = _run([tool + "-save", "-t", "filter"]).stdout
    if ":OUTPUT ACCEPT" not in listing or re.search(r"^-A OUTPUT ", listing, re.M):
        return
    _run([tool, "-w", "5", "-t", "filter", "-X", "OUTPUT"])      # refuses a chain with rules anyway
    if made == _MADE_TABLE:
        _delete_empty_nft_table(nft_family, "filter")


class IptablesGuard(Guard):
    name = "iptables"

    def __init__(self, ports: Iterable[int], iface: str = "lo", pid: Optional[int] = None,
                 family: Family = IPV4) -> None:
        self.family = family
        self.tool = _need(family.firewall)
        self.pid = os.getpid() if pid is None else pid
        self.start = start_time(self.pid)
        self.ports = sorted(ports)
        if not 1 <= len(self.ports) <= 15:            # the multiport match takes at most 15 ports
            raise GuardError(f"the iptables guard covers 1 to 15 ports, not {len(self.ports)}")
        self.iface = iface
        self.made = ""
        self.spec: List[str] = []
        self._installed = False

    def _spec(self) -> List[str]:
        return ["OUTPUT", "-o", self.iface, "-p", "tcp", "-m", "multiport",
                "--sports", ",".join(map(str, self.ports)), "--tcp-flags", "RST", "RST",
                "-m", "mark", "!", "--mark", f"0x{PROBE_MARK:x}",
                "-m", "comment", "--comment", comment_for(self.pid, self.made, self.start), "-j", "DROP"]

    def install(self) -> None:
        if "nf_tables" in _run([self.tool, "--version"]).stdout:   # legacy tables are never created or removed
            if not _nft_has("table", self.family.nft_family, "filter"):
                self.made = _MADE_TABLE
            elif not _nft_has("chain", self.family.nft_family, "filter", "OUTPUT"):
                self.made = _MADE_CHAIN
        self.spec = self._spec()
        # Marked before it runs: if a signal lands in between, removal is still attempted.
        self._installed = True
        done = _run([self.tool, "-w", "5", "-t", "filter", "-I", *self.spec])
        if done.returncode:
            raise GuardError(f"{self.family.firewall} refused the RST guard rule: {done.stderr.strip()}")

    def remove(self) -> None:
        if not self._installed:
            return
        self._installed = False
        _run([self.tool, "-w", "5", "-t", "filter", "-D", *self.spec])
        _undo_made(self.tool, self.made, self.family.nft_family)


# ----------------------------------------------------------------------------------------- nft
class NftGuard(Guard):
    name = "nft"

    def __init__(self, ports: Iterable[int], iface: str = "lo", pid: Optional[int] = None,
                 family: Family = IPV4) -> None:
        self.family = family
        self.tool = _need("nft")
        self.pid = os.getpid() if pid is None else pid
        self.start = start_time(self.pid)
        self.table = f"{NFT_TABLE_PREFIX}{self.pid}" + (f"_{self.start}" if self.start is not None else "")
        port_set = ", ".join(map(str, sorted(ports)))
        # Our own table: removing it removes the chain and rule in one step, whatever else is loaded.
        self.ruleset = (
            f"table {family.nft_family} {self.table} {{\n"
            f"  chain output {{\n"
            f"    type filter hook output priority 0; policy accept;\n"
            f"    oifname \"{iface}\" tcp sport {{ {port_set} }} tcp flags & rst == rst "
            f"meta mark != 0x{PROBE_MARK:x} drop comment \"{comment_for(self.pid, start=self.start)}\"\n"
            f"  }}\n"
            f"}}\n")
        self._installed = False

    def install(self) -> None:
        self._installed = True
        done = _run([self.tool, "-f", "-"], stdin=self.ruleset)
        if done.returncode:
            raise GuardError(f"nft refused the RST guard table: {done.stderr.strip()}")

    def remove(self) -> None:
        if not self._installed:
            return
        self._installed = False
        _run([self.tool, "delete", "table", self.family.nft_family, self.table])


# ----------------------------------------------------------------------------------------- leftovers
def _start(text: Optional[str]) -> Optional[int]:
    return int(text) if text is not None else None


def sweep() -> List[str]:
    """Remove guard rules and tables whose process is gone; return one line per removal."""
    removed: List[str] = []
    for family in FAMILIES.values():
        ipt, save = shutil.which(family.firewall), shutil.which(family.firewall + "-save")
        if not (ipt and save):
            continue
        for line in _run([save, "-t", "filter"]).stdout.splitlines():
            m = _IPT_COMMENT.search(line)
            if line.startswith("-A ") and m and not _alive(int(m.group(1)), _start(m.group(2))):
                if not _run([ipt, "-w", "5", "-t", "filter", "-D", *shlex.split(line)[1:]]).returncode:
                    removed.append(f"{family.firewall} rule of dead pid {m.group(1)}: {line}")
                    _undo_made(ipt, m.group(3) or "", family.nft_family)
    nft = shutil.which("nft")
    if nft:
        for m in _NFT_TABLE.finditer(_run([nft, "list", "tables"]).stdout):
            kind, table, pid, start = m.group(1), m.group(2), m.group(3), _start(m.group(4))
            if not _alive(int(pid), start):
                if not _run([nft, "delete", "table", kind, table]).returncode:
                    removed.append(f"nft table {kind} {table} of dead pid {pid}")
    return removed
