"""Running the checks: selection, one result per check, the report and the exit code.

A check is a plain :class:`~gateway.conformance.world.Check` (id, spec section,
title, coroutine); the check modules list theirs in ``CHECKS``, joined here in the
order of the spec. A check passes when its coroutine returns, fails when it raises
:class:`~gateway.conformance.wire.Failure` (or anything else: a crash is a
failure too, with the exception in the message), and is skipped when it raises
:class:`~gateway.conformance.wire.Skip`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import websockets

from gateway.conformance.auth import CHECKS as AUTH
from gateway.conformance.delivery import CHECKS as DELIVERY
from gateway.conformance.gaps import CHECKS as GAPS
from gateway.conformance.handshake import CHECKS as HANDSHAKE
from gateway.conformance.limits import CHECKS as LIMITS
from gateway.conformance.malformed import CHECKS as MALFORMED
from gateway.conformance.sharding import CHECKS as SHARDING
from gateway.conformance.socket_requests import CHECKS as SOCKET_REQUESTS
from gateway.conformance.wire import Failure, Rest, Skip
from gateway.conformance.world import Check, Context, Options

__all__ = ["Check", "Result", "main", "parse_args", "run_suite", "selected"]


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one check: ``PASS``, ``FAIL`` or ``SKIP``, and why."""

    id: str
    section: str
    title: str
    status: str
    message: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        """``PASS §6.2 ready fields`` / ``FAIL §7.2 ack commits: <expected vs seen>``."""
        text = f"{self.status} {self.section} {self.title}"
        return f"{text}: {self.message}" if self.message else text


def _all_checks() -> tuple[Check, ...]:
    return (*AUTH, *HANDSHAKE, *MALFORMED, *DELIVERY, *GAPS, *SHARDING, *SOCKET_REQUESTS, *LIMITS)


def _matches(check: Check, pattern: str) -> bool:
    """A check id, an id prefix (``ack`` or ``ack.``) or a section (``§7.2``, ``7``)."""
    pattern = pattern.strip()
    if not pattern:
        return False
    if pattern == check.id or check.id.startswith(pattern.rstrip(".") + "."):
        return True
    section = pattern.lstrip("§")
    own = check.section.lstrip("§")
    return bool(section) and (own == section or own.startswith(section + "."))


def selected(checks: Sequence[Check], only: Sequence[str], skip: Sequence[str]) -> list[Check]:
    """``checks`` matching any of ``only`` (all when empty) and none of ``skip``."""
    return [
        check
        for check in checks
        if (not only or any(_matches(check, p) for p in only))
        and not any(_matches(check, p) for p in skip)
    ]


async def _run_one(check: Check, ctx: Context) -> Result:
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, message = "PASS", ""
    # a check that hangs must not hang the suite: a generous bound
    bound = max(60.0, 6 * ctx.timeout + 2 * ctx.options.max_wait)
    try:
        async with asyncio.timeout(bound):
            await check.run(ctx)
    except Skip as exc:
        status, message = "SKIP", str(exc)
    except Failure as exc:
        status, message = "FAIL", str(exc)
    except TimeoutError:
        status, message = "FAIL", f"the check did not finish within {bound:g} s"
    except (OSError, websockets.exceptions.WebSocketException) as exc:
        status, message = "FAIL", f"network error: {exc!r}"
    except Exception as exc:  # a crash of the check is reported, never hidden
        status, message = "FAIL", f"unexpected error: {exc!r}"
    finally:
        await ctx.release()
    seconds = loop.time() - started
    return Result(check.id, check.section, check.title, status, message, round(seconds, 3))


async def run_suite(
    options: Options,
    *,
    checks: Sequence[Check] | None = None,
    report: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run the selected checks one after the other; ``report`` sees each result."""
    chosen = selected(checks if checks is not None else _all_checks(), options.only, options.skip)
    rest = Rest(options.rest, options.user_token, options.timeout)
    ctx = Context(options, rest)
    results: list[Result] = []
    try:
        for check in chosen:
            result = await _run_one(check, ctx)
            results.append(result)
            if report is not None:
                report(result)
    finally:
        await ctx.close()
        await rest.close()
    return results


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """The command line's options; ``--list`` prints the checks and exits."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.conformance",
        description="Check a botgw gateway deployment against docs/protocol.md from outside.",
    )
    parser.add_argument("--rest", help="REST base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--gateway",
        action="append",
        help="gateway socket URL, e.g. ws://127.0.0.1:8081/bot/ws; give it twice for two "
        "workers (takeover across workers)",
    )
    parser.add_argument("--user-token", help="a user's token (usr_<id>:<secret>)")
    parser.add_argument(
        "--bot-token", help="the bot most checks use (default: a bot created for the run)"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="check ids, id prefixes or sections (§7.2)"
    )
    parser.add_argument("--skip", action="append", default=[], help="as --only, to leave out")
    parser.add_argument("--json", action="store_true", help="one JSON report instead of lines")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for one expected frame"
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=8.0,
        help="checks that must idle longer than this to provoke a timeout are skipped",
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    args = parser.parse_args(argv)

    def split(values: list[str]) -> tuple[str, ...]:
        return tuple(part for value in values for part in value.split(",") if part.strip())

    if args.list:
        for check in _all_checks():
            print(f"{check.id:32} {check.section:6} {check.title}")
        raise SystemExit(0)
    missing = [name for name in ("rest", "gateway", "user_token") if not getattr(args, name)]
    if missing:
        names = ", ".join("--" + name.replace("_", "-") for name in missing)
        parser.error(f"the following arguments are required: {names}")
    return Options(
        rest=args.rest,
        gateways=tuple(args.gateway),
        user_token=args.user_token,
        bot_token=args.bot_token,
        only=split(args.only),
        skip=split(args.skip),
        json=args.json,
        timeout=args.timeout,
        max_wait=args.max_wait,
    )


def summary(results: Sequence[Result]) -> dict[str, int]:
    return {status: sum(r.status == status for r in results) for status in ("PASS", "FAIL", "SKIP")}


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: 0 when no check failed, 1 otherwise."""
    options = parse_args(argv)

    def line(result: Result) -> None:
        if not options.json:
            print(result.line(), flush=True)

    results = asyncio.run(run_suite(options, report=line))
    counts = summary(results)
    if options.json:
        report = {"results": [asdict(r) for r in results], "counts": counts}
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] or not results else 0
