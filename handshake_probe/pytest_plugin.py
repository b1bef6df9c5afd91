"""The pytest plugin's old name: `handshake_probe.pytest_plugin` is `handshake_probe.checks.plugin`.

Kept for `from handshake_probe.pytest_plugin import assert_flow` (the README's form before the checks
moved to checks/) and for installs whose `pytest11` entry point still names this module. It is the same
module object, not a copy, so its fixtures and hooks are registered once either way.
"""

import sys

from handshake_probe.checks import plugin

sys.modules[__name__] = plugin
