"""A conformance suite for the gateway protocol (``docs/protocol.md``), run from outside.

``python -m gateway.conformance --rest URL --gateway WS_URL --user-token TOKEN``
creates what it needs through the public APIs (a bot, a private chat, groups, one
update of every type), drives the gateway with raw frames and prints one line per
check, ``PASS §6.2 ready fields`` or ``FAIL §7.2 ...: <expected vs seen>``; it
exits 1 if any check failed. ``docs/conformance.md`` lists the checks.

It uses nothing of the server's code: frames are JSON and msgpack as the spec
describes them, so a server change that breaks the spec breaks a check.

Modules: :mod:`~gateway.conformance.wire` (sockets, refusals, REST, the
``Failure``/``Skip`` exceptions), :mod:`~gateway.conformance.world` (the bots,
chats and recorded scenario), :mod:`~gateway.conformance.runner` (selection,
results, the command line) and one module of checks per part of the spec.
"""

from __future__ import annotations

from gateway.conformance.runner import Result, main, run_suite
from gateway.conformance.wire import Failure, Skip
from gateway.conformance.world import Check, Options

__all__ = ["Check", "Failure", "Options", "Result", "Skip", "main", "run_suite"]
