"""Checks: expectations about a capture's flows, judged on flow records (`handshake-probe check`, pytest).

  spec.py      the expectation language: files (TOML/JSON), short forms, keywords; SpecError; the vocabulary
  evaluate.py  judging records against expectations: Failures, Outcomes, the Report
  report.py    the verdict as text: expected vs found, the flow's ladder, the CI report
  plugin.py    the pytest plugin (the `pytest11` entry point): fixtures and `assert_flow`

Nothing is imported here: each user imports only the module it needs.
"""
