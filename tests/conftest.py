"""Suite-wide check: every ``ssformer ...`` command that an error message of the package names
(in backquotes) parses as written. Messages are recorded from every ``SSFormerError`` the tests
raise in this process; at the end of the session each quoted command goes through the CLI's
parser, and one that does not parse fails the session with the message it came from."""

from __future__ import annotations

import re
import shlex

import pytest

from ssformer.errors import SSFormerError

_MESSAGES: list[str] = []
_COMMAND = re.compile(r"`ssformer ([^`]+)`")


@pytest.fixture(autouse=True, scope="session")
def _record_error_messages():
    original = SSFormerError.__init__

    def recording_init(self: SSFormerError, *args: object) -> None:
        _MESSAGES.append(" ".join(str(arg) for arg in args))
        original(self, *args)

    SSFormerError.__init__ = recording_init  # type: ignore[method-assign]
    yield
    SSFormerError.__init__ = original  # type: ignore[method-assign]


def unparsable_commands(messages: list[str]) -> list[str]:
    """``command (from: message)`` for each quoted command the CLI's parser refuses."""
    from ssformer.cli import build_parser

    parser = build_parser()
    bad = []
    for message in dict.fromkeys(messages):
        for command in _COMMAND.findall(message):
            try:
                parser.parse_args(shlex.split(command))
            except SystemExit:
                bad.append(f"`ssformer {command}` (from: {message[:200]})")
    return bad


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    bad = unparsable_commands(_MESSAGES)
    if bad:
        print("\nerror messages name commands that do not parse:\n  " + "\n  ".join(bad))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
