"""handshake-probe: a packet-level TCP handshake inspector."""

__version__ = "0.1.0"
