"""The Python core (the engine's predecessor, now replaced by it): no scapy, no sockets, no clock, no
printing. Time arrives with each segment.

LEFT FOR THE LAST USERS, then to be deleted with handshake_probe/analysis.py and pcapio.py's reader:
tests/test_live.py, tests/test_probe.py, tests/test_plugin.py (a core Flow for assert_flow) and
pytest_plugin.assert_flow's Flow branch (flowsource.core_flow_view). Nothing else imports it."""
