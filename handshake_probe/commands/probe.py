"""`handshake-probe probe`: Scapy crafts every segment, the kernel answers, the analyzer judges.

Each scenario prints the analyzer's ladder of the exchange (the same decode + FlowTable + flow_detail as
`analyze --flow N`), the kernel's own state at checkpoints, and a verdict line. Exit 0 when every scenario
went as expected, 1 otherwise, 2 for bad arguments, 69 when a tool is missing, 77 without the privilege.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import List, Tuple

from handshake_probe.exitcodes import ExitStatus
from handshake_probe.messages import PROG, error, plural

MAX_MESSAGE = 1000      # one segment, well under the MSS we announce (1460)


def _scenario_names() -> List[str]:
    # Imported here so that `handshake-probe analyze` never pays for scapy (commands/__init__.py).
    from handshake_probe.prober.scenarios import SCENARIOS
    return list(SCENARIOS)


def _target(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port 1-65535, not {text!r}")
    bracketed = host.startswith("[") and host.endswith("]")
    if ":" in host and not bracketed:
        # `::1:80` is itself an IPv6 address: where its port begins is a guess we do not make.
        raise argparse.ArgumentTypeError(f"an IPv6 target is written [ADDRESS]:PORT (e.g. [::1]:8000), not {text!r}")
    if bracketed and ":" not in host[1:-1]:
        raise argparse.ArgumentTypeError(f"brackets are for an IPv6 address, not {host!r}")
    return (host[1:-1] if bracketed else host), int(port)


def _isn(text: str) -> int:
    value = int(text, 0)
    if not 0 <= value < 1 << 32:
        raise argparse.ArgumentTypeError(f"an ISN is 32 bits (0 .. {(1 << 32) - 1}), not {text}")
    return value


def _timeout(text: str) -> float:
    value = float(text)
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 60 seconds, not {text}")
    return value


def _message(text: str) -> bytes:
    data = text.encode()
    if not 0 < len(data) <= MAX_MESSAGE:
        raise argparse.ArgumentTypeError(f"1 to {MAX_MESSAGE} bytes, not {len(data)}")
    return data


def add_arguments(p: argparse.ArgumentParser) -> None:
    names = _scenario_names()
    p.description = ("Craft TCP segments with Scapy against this host's kernel and check its answers: "
                     "each scenario's ladder, both endpoints' RFC 9293 states, the kernel's own state, "
                     "and a verdict.")
    from handshake_probe.prober.notation import LADDER_NOTATION
    p.epilog = (LADDER_NOTATION + " A failing verdict says its cause first, on its own line, then what was "
                "expected beside what happened, wrapped to the terminal ($COLUMNS; 100 columns into a pipe).")
    p.add_argument("--scenario", required=True, action="append", metavar="NAME|all",
                   help=f"scenario to run (repeatable, or comma-separated): all, {', '.join(names)}")
    p.add_argument("-w", dest="write", metavar="FILE",
                   help="write every frame sent and received as a pcap (raw IP on the TUN, Ethernet on lo)")
    p.add_argument("--target", type=_target, metavar="HOST:PORT",
                   help="probe this server instead of the in-process echo servers "
                        "(loopback 127.0.0.0/8 or [::1], or this run's own TUN peer; anything else needs "
                        "--allow-remote); an IPv6 address in brackets, [::1]:8000, probes over IPv6")
    p.add_argument("-6", "--ipv6", action="store_true",
                   help="probe over IPv6 (the kernel at ::1 or at 2001:db8:6870:X::1 on the TUN device); "
                        "without it IPv4, unless --target is an IPv6 address")
    p.add_argument("--message", type=_message, default=b"python", metavar="TEXT",
                   help="what to send in the data scenarios; the server echoes it uppercased (default python)")
    p.add_argument("--ladder", action="store_true",
                   help="draw each exchange as a client/server ladder diagram instead of the segment table")
    p.add_argument("--isn", type=_isn, metavar="N", help="our initial sequence number (default: random)")
    p.add_argument("--timeout", type=_timeout, default=2.0, metavar="S",
                   help="seconds to wait for each expected answer (default 2)")
    p.add_argument("--rst-guard", dest="guard", choices=("tun", "iptables", "nft"), default="tun",
                   help="how the kernel is kept from resetting our connections: play a non-local address "
                        "behind a TUN device (default), or drop this run's RSTs with an iptables/nft rule "
                        "(ip6tables, nft ip6 for IPv6)")
    p.add_argument("--report", metavar="REPORT.html",
                   help="also write the HTML report of every scenario's exchange (one capture each)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --target that is not on this host (needs --rst-guard iptables or nft)")


def _selected(values: List[str], parser_names: List[str]) -> List[str]:
    chosen: List[str] = []
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            if name == "all":
                chosen += [n for n in parser_names if n not in chosen]
            elif name not in parser_names:
                raise ValueError(f"unknown scenario {name!r} (choose from all, {', '.join(parser_names)})")
            elif name not in chosen:
                chosen.append(name)
    if not chosen:
        raise ValueError("no scenario named")
    return chosen


def run(args: argparse.Namespace) -> int:
    from handshake_probe.prober import caps, guard
    from handshake_probe.prober.engine import ProbeOptions, Terminated, check_options, check_target, run_probe
    from handshake_probe.prober.scenarios import LOCAL_ONLY

    def fail(status: int, message: str) -> int:
        error(message)
        return status

    try:
        names = _selected(args.scenario, _scenario_names())
        if args.target is not None and not check_target(args.target[0], args.guard, args.allow_remote):
            if any(v.strip() == "all" for value in args.scenario for v in value.split(",")):
                names = [n for n in names if n not in LOCAL_ONLY]   # `all` = what a remote target allows
        opts = ProbeOptions(names, args.write, args.target, args.message, args.isn, args.timeout,
                            args.guard, args.allow_remote, args.ipv6)
        check_options(opts)         # arguments first: bad ones exit 2 for every user, root or not
        caps.require(args.guard)    # then the privilege, before anything is touched: one line, exit 77
        from handshake_probe.prober import report
        from handshake_probe.views.table import table_width
        outcomes = run_probe(opts, emit=lambda line: print(line, flush=True),
                             on_outcome=lambda o: print(report.render(o, args.ladder, table_width(sys.stdout)),
                                                        end="\n\n", flush=True))
    except ValueError as err:
        return fail(ExitStatus.BAD_INPUT, str(err))
    except caps.MissingCapability as err:
        return fail(ExitStatus.NO_PERMISSION, str(err))
    except guard.GuardError as err:
        return fail(ExitStatus.UNAVAILABLE, str(err))
    except FileNotFoundError as err:
        return fail(ExitStatus.UNAVAILABLE, f"{err.filename or err}: not found "
                                            "(the tun guard needs /dev/net/tun: modprobe tun)")
    except PermissionError as err:
        return fail(ExitStatus.NO_PERMISSION, f"{err.strerror or err}: run as root (sudo handshake-probe probe ...)")
    except Terminated as err:
        print(f"{PROG}: stopped by {signal.Signals(err.signum).name}; "
              "everything the probe added (TUN device, firewall rule) was removed", file=sys.stderr)
        return 128 + err.signum
    print(report.summary(outcomes))
    if args.write:
        print(f"probe: wrote {plural(sum(len(o.frames) for o in outcomes), 'frame')} to {args.write}")
    if args.report:
        from handshake_probe.report.hooks import probe_sources, report_sources
        if not report_sources(args.report, probe_sources(outcomes), "handshake-probe: probe"):
            return ExitStatus.BAD_INPUT
    return ExitStatus.OK if all(o.ok for o in outcomes) else ExitStatus.CHECK_FAILED
