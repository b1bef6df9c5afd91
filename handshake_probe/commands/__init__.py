"""One module per subcommand, each with `add_arguments(parser)` and `run(args) -> int`.

The registry maps the command name to (module path, one-line help); modules are imported only when their
command runs, so `analyze` never pays for scapy or sockets."""

COMMANDS = {
    "analyze": ("handshake_probe.commands.analyze", "analyze a pcap or pcapng file"),
    "check": ("handshake_probe.commands.check", "check a capture's flows against expectations (CI verdict)"),
    "ladder": ("handshake_probe.commands.ladder", "draw flows as client/server ladder diagrams (text or SVG)"),
    "report": ("handshake_probe.commands.report", "write one self-contained HTML report of captures"),
    "serve": ("handshake_probe.commands.serve", "run the echo server (uppercases by default)"),
    "client": ("handshake_probe.commands.client", "the socket lesson's interactive echo client"),
    "capture": ("handshake_probe.commands.capture", "capture live traffic, show flows and transitions"),
    "probe": ("handshake_probe.commands.probe", "craft raw SYN/SYN-ACK/ACK/FIN segments and check replies"),
}
