"""`python -m handshake_probe` is the same program as `handshake-probe`."""

from handshake_probe.cli import run

run()
