"""The echo edge: a TCP server to capture and probe against (the socket lesson's server, done right).

  server.py  the threaded echo server, its log and its modes (`serve` and `client` are in commands/)
"""
