"""Exit codes of every command (documented in the README's "Exit codes" table)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    CHECK_FAILED = 1     # `check` / `probe`: an expectation was not met
    BAD_INPUT = 2        # unreadable or damaged input, unknown flow, bad arguments
    UNAVAILABLE = 69     # a peer or service the command needs is not there (server gone, port taken)
    INTERNAL = 70        # a bug: the engine panicked (EX_SOFTWARE); one line names file and frame
    NO_PERMISSION = 77   # a capability is missing (CAP_NET_RAW / CAP_NET_ADMIN)
    INTERRUPTED = 130
