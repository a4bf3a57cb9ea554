"""The benchmark run: every workload, its repetitions, the table at the end.

Repetitions of the fan-out and latency workloads alternate between botgw, the
ceiling and the peer (all three running), so that a change in the machine's load
during the run touches all of them alike.

The cluster variants (``latency-cluster``, ``rest-cluster``) run the same
workload code against botgw whose store is a local 3-primary Redis Cluster. The
run starts the cluster and the server on it just before the workload (after
fan-out; before sendMessage), alternates their repetitions with botgw's on one
node, and stops both before the next single-node workload (idle memory, the write
path's ceiling, long-poll). They have no budget: the table gives each figure's
ratio to the same figure on one node, and a wrong run (lost, duplicated or
reordered updates, errors) fails as everywhere. Without Redis 7 they are skipped,
with the reason printed under the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import sys
import time
from collections.abc import Awaitable
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from bench import rest_workloads as rw
from bench import ws_workloads as ww
from bench.cluster import cluster_missing
from bench.config import Scale
from bench.control import Remote
from bench.harness import Run, Server
from bench.procs import loadavg
from bench.profiling import Profiler
from bench.report import Row, Table, problems_of
from bench.stats import Summary

__all__ = ["WORKLOADS", "run_bench"]

WORKLOADS = (
    "fanout",
    "latency",
    "latency-cluster",
    "memory",
    "storm",
    "rest",
    "rest-cluster",
    "poll",
)
TARGETS = ("botgw", "ceiling", "peer")
CLUSTER = "3-primary cluster"

Results = dict[str, Any]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "websockets",
        "redis",
        "hiredis",
        "orjson",
        "uvicorn",
        "starlette",
        "python-socketio",
        "aiohttp",
        "uvloop",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    mem = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "memory_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


class Bench:
    def __init__(
        self, run: Run, wanted: set[str], profiler: Profiler, targets: tuple[str, ...]
    ) -> None:
        self.run = run
        self.targets = targets
        self.scale: Scale = run.scale
        self.wanted = wanted
        self.profiler = profiler
        self.results: Results = {"loadavg": {}}
        self.skipped: list[str] = []

    def on_cluster(self, workload: str) -> bool:
        """``workload`` (a cluster variant) is wanted and a cluster can run here."""
        if workload not in self.wanted:
            return False
        missing = cluster_missing()
        if missing is not None:
            self.skipped.append(f"{workload}: {missing}")
            say(f"  {workload} skipped: {missing}")
            return False
        return True

    def note_load(self, workload: str) -> None:
        self.results["loadavg"].setdefault(workload, []).append(round(loadavg(), 2))

    def _gc(self, server: Server, before: int) -> dict[str, Any]:
        if not self.run.gc_log:
            return {}
        pauses = self.run.gc_pauses(server)[before:]
        return {"gc_pauses": len(pauses), "gc_max_ms": max(pauses, default=0.0)}

    async def _measure(
        self,
        label: str,
        server: Server,
        rep: int,
        body: Awaitable[dict[str, Any]],
    ) -> dict[str, Any]:
        before = len(self.run.gc_pauses(server)) if self.run.gc_log else 0
        profiled = False
        if rep == 0 and server.kind in ("botgw", "rest"):
            async with self.profiler.record(server.child, label) as profiled:
                result = await body
        else:
            result = await body
        result.update(self._gc(server, before))
        if profiled:
            result["profiled"] = True
        return result

    # -- gateway: fan-out and latency against botgw, the ceiling and the peer ------------

    async def gateway_figures(self) -> None:
        run = self.run
        await run.ensure_load()
        on_node = self.targets if self.wanted & {"fanout", "latency"} else ()
        sio: list[Remote] = []
        if "peer" in on_node:
            sio = await run.workers("sio_agents", self.scale.agent_procs, "sio")
            for appender in run.appenders:
                await appender.call("setup", redis_url=run.redis_url, sio=True)
        starts = {"botgw": run.gateway, "ceiling": run.ceiling, "peer": run.peer}
        servers = {target: await starts[target]() for target in on_node}
        try:
            for workload, fn in (("fanout", ww.fanout), ("latency", ww.latency)):
                targets = list(on_node) if workload in self.wanted else []
                if workload == "latency" and self.on_cluster("latency-cluster"):
                    say(f"  starting a {CLUSTER} and a gateway on it")
                    await run.start_cluster()
                    servers["cluster"] = await run.gateway(store="cluster")
                    targets.append("cluster")
                if not targets:
                    continue
                out: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
                if workload in self.wanted:
                    out = self.results.setdefault(workload, out)
                for rep in range(self.scale.reps):
                    for target in targets:
                        server = servers[target]
                        remotes = sio if target == "peer" else run.agents
                        label = f"{workload}-cluster" if target == "cluster" else workload
                        self.note_load(label)
                        say(f"  {workload} {target} rep {rep + 1}/{self.scale.reps}")
                        body = fn(run, server, remotes, rep)
                        measured = await self._measure(label, server, rep, body)
                        if target == "cluster":
                            self.results.setdefault("latency_cluster", []).append(measured)
                        else:
                            out[target].append(measured)
        finally:
            for server in servers.values():
                run.stop(server)
            await run.stop_cluster()
            await run.stop_workers(sio)

    # -- idle memory and the reconnect storm --------------------------------------------

    async def memory_figures(self) -> None:
        run = self.run
        await run.ensure_load()
        bots = await run.bots(self.scale.idle_bots)
        memory = self.results.setdefault("memory", {})
        storms = self.results.setdefault("storm", [])
        for target in ("botgw", "ceiling"):
            if target not in self.targets:
                continue
            for compression in (False, True):
                if target == "ceiling" and "memory" not in self.wanted:
                    continue
                if compression and "memory" not in self.wanted:
                    continue
                start = run.gateway if target == "botgw" else run.ceiling
                server = await start(compression=compression)
                try:
                    self.note_load("memory")
                    label = f"{target}-{'on' if compression else 'off'}"
                    say(f"  idle memory {label}: {self.scale.idle_conns} connections")
                    tag = f"m{target[0]}{int(compression)}"
                    memory[label] = await ww.idle_memory(run, server, run.agents, bots, tag)
                    if target == "botgw" and not compression and "storm" in self.wanted:
                        for rep in range(self.scale.reps):
                            self.note_load("storm")
                            say(f"  reconnect storm rep {rep + 1}/{self.scale.reps}")
                            body = ww.storm(run, server, run.agents, bots)
                            storms.append(await self._measure("storm", server, rep, body))
                finally:
                    await asyncio.gather(*(a.call("close") for a in run.agents))
                    run.stop(server)

    # -- REST ingress and long-poll -------------------------------------------------------

    async def rest_figures(self) -> None:
        run = self.run
        await run.ensure_load()
        loaders = await run.workers("http_load", self.scale.http_procs, "http")
        servers = {}
        if self.wanted & {"rest", "poll"}:
            servers["node"] = await run.rest()
        try:
            stores = ["node"] if "rest" in self.wanted else []
            if self.on_cluster("rest-cluster"):
                say(f"  starting a {CLUSTER} and a REST worker on it")
                await run.start_cluster()
                servers["cluster"] = await run.rest(store="cluster")
                stores.append("cluster")
            chats = {}
            for store in stores:
                chats[store] = await rw.make_chats(run, 20, self.scale.rest_chats, store)
                # warm the worker up (imports, pools) before measuring
                await loaders[0].call(
                    "requests",
                    base=servers[store].http_url,
                    items=chats[store].client_items[:10],
                    concurrency=4,
                    seconds=0.5,
                )
            for which in ("client", "bot"):
                for rep in range(self.scale.reps):
                    for store in stores:
                        cluster = "" if store == "node" else "-cluster"
                        on = "" if store == "node" else f", {CLUSTER}"
                        label = f"rest-{which}{cluster}"
                        out = self.results.setdefault(label.replace("-", "_"), [])
                        self.note_load(f"rest{cluster}")
                        say(f"  REST {which} sendMessage{on} rep {rep + 1}/{self.scale.reps}")
                        server = servers[store]
                        body = rw.rest_ingress(run, server, loaders, chats[store], which)
                        out.append(await self._measure(label, server, rep, body))
            if "cluster" in servers:
                run.stop(servers.pop("cluster"))
                await run.stop_cluster()
            if "rest" in self.wanted:
                self.results["write_ceiling"] = [
                    await rw.write_ceiling(run, chats["node"]) for _ in range(self.scale.reps)
                ]
            if "poll" in self.wanted:
                for name, fn in (("poll", rw.long_poll), ("wake", rw.wake_up)):
                    out = self.results.setdefault(name, [])
                    for rep in range(self.scale.reps):
                        self.note_load("poll")
                        say(f"  long-poll {name} rep {rep + 1}/{self.scale.reps}")
                        body = fn(run, servers["node"], loaders)
                        out.append(await self._measure(name, servers["node"], rep, body))
        finally:
            for server in servers.values():
                run.stop(server)
            await run.stop_cluster()
            await run.stop_workers(loaders)


def _values(results: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in results if key in r]


def build_table(results: Results, scale: Scale) -> Table:
    table = Table()

    def row(
        name: str,
        unit: str,
        key: str,
        data: Any,
        budget: str | None,
        *,
        check: bool = True,
        **kw: Any,
    ) -> None:
        """``check``: this row carries the workload's correctness verdict."""
        mine = data["botgw"] if isinstance(data, dict) else data
        problems = problems_of(mine) if check else []
        if isinstance(data, dict) and check:
            problems += [
                f"{t}: {p}" for t in ("ceiling", "peer") for p in problems_of(data.get(t, []))
            ]
        table.add(
            Row(
                name=name,
                unit=unit,
                values=_values(mine, key),
                budget=budget,
                ceiling=_values(data["ceiling"], key) if isinstance(data, dict) else [],
                peer=_values(data["peer"], key) if isinstance(data, dict) else [],
                correct=not (check and problems_of(mine)),
                problems=problems,
                **kw,
            )
        )

    fan = results.get("fanout")
    if fan:
        burst = fan["botgw"][0]["burst"] if fan["botgw"] else 0
        row(
            f"fan-out {scale.fanout_conns} conns, burst of {burst}",
            "/s",
            "deliveries_per_s",
            fan,
            "fanout",
        )
        row(
            "  fan-out deliveries per server CPU-s",
            "/s",
            "deliveries_per_cpu_s",
            fan,
            None,
            check=False,
        )
        row("  fan-out server CPU", "%", "server_cpu_pct", fan, None, check=False)
        row("  fan-out load generators' CPU", "%", "load_cpus_pct", fan, None, check=False)
    lat = results.get("latency")
    if lat:
        title = f"latency {scale.latency_bots} bots @ {scale.latency_rate}/s"
        row(f"{title} p50", "ms", "p50_ms", lat, "latency_p50", lower_is_better=True)
        row(f"{title} p99", "ms", "p99_ms", lat, "latency_p99", lower_is_better=True)
        row(f"{title} p99.9", "ms", "p999_ms", lat, None, lower_is_better=True)
        row("  latency server CPU", "%", "server_cpu_pct", lat, None, check=False)
        row("  latency load generators' CPU", "%", "load_cpus_pct", lat, None, check=False)
    on_cluster = results.get("latency_cluster")
    if on_cluster:
        node = lat["botgw"] if lat else []
        title = f"latency {scale.latency_bots} bots @ {scale.latency_rate}/s, {CLUSTER}"
        for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms")):
            cluster_row(table, f"{title} {name}", "ms", key, on_cluster, node, check=name == "p50")
        cluster_row(
            table, "  latency (cluster) server CPU", "%", "server_cpu_pct", on_cluster, node
        )
        cluster_row(table, "  latency (cluster) Redis CPU", "s", "redis_cpu_s", on_cluster, node)
    mem = results.get("memory")
    if mem:
        for mode, budget in (("off", "idle_memory"), ("on", None)):
            mine = mem.get(f"botgw-{mode}")
            theirs = mem.get(f"ceiling-{mode}")
            if mine is None:
                continue
            table.add(
                Row(
                    name=f"idle memory, {mine['connections']} conns, compression {mode}",
                    unit="KiB",
                    values=[mine["kib_per_conn"]],
                    budget=budget,
                    ceiling=[theirs["kib_per_conn"]] if theirs else [],
                    lower_is_better=True,
                )
            )
    storm = results.get("storm")
    if storm:
        n = storm[0]["connections"]
        row(
            f"reconnect storm {n} conns: all resumed",
            "s",
            "resumed_s",
            storm,
            "storm_resumed",
            lower_is_better=True,
        )
        sub = {"check": False, "lower_is_better": True}
        row("  storm: lost updates", "", "lost", storm, "storm_lost", **sub)
        row("  storm: out of order", "", "out_of_order", storm, "storm_out_of_order", **sub)
        row("  storm: duplicates", "", "duplicates", storm, None, **sub)
        row("  storm: half resumed", "s", "resumed_p50_s", storm, None, **sub)
        row("  storm: 99 % resumed", "s", "resumed_p99_s", storm, None, **sub)
        row("  storm: all caught up", "s", "caught_up_s", storm, None, **sub)
        row("  storm: failed connects (retried)", "", "connect_failures", storm, None, **sub)
    ceiling = results.get("write_ceiling", [])
    for which, budget in (("client", "rest_client"), ("bot", "rest_bot")):
        data = results.get(f"rest_{which}")
        if not data:
            continue
        table.add(
            Row(
                name=f"REST {which} sendMessage, 1 worker",
                unit="/s",
                values=_values(data, "requests_per_s"),
                budget=budget,
                ceiling=_values(ceiling, "appends_per_s"),
                correct=not problems_of(data),
                problems=problems_of(data),
            )
        )
    for which in ("client", "bot"):
        data = results.get(f"rest_{which}_cluster")
        if not data:
            continue
        node = results.get(f"rest_{which}", [])
        title = f"REST {which} sendMessage, 1 worker, {CLUSTER}"
        cluster_row(table, title, "/s", "requests_per_s", data, node, check=True)
        cluster_row(
            table,
            f"  REST {which} (cluster) Redis commands per request",
            "",
            "redis_commands_per_request",
            data,
            node,
        )
    poll = results.get("poll")
    if poll:
        row("long-poll getUpdates (1 update per call)", "/s", "calls_per_s", poll, "poll_rate")
    wake = results.get("wake")
    if wake:
        row(
            f"long-poll wake-up p99 ({scale.wake_bots} waiting)",
            "ms",
            "p99_ms",
            wake,
            "poll_wakeup_p99",
            lower_is_better=True,
        )
        row(
            "  long-poll wake-up p50", "ms", "p50_ms", wake, None, check=False, lower_is_better=True
        )
    return table


def cluster_row(
    table: Table,
    name: str,
    unit: str,
    key: str,
    data: list[dict[str, Any]],
    node: list[dict[str, Any]],
    *,
    check: bool = False,
) -> None:
    """A figure measured on the cluster, beside the same figure on one node; no
    budget, but a wrong run (lost, duplicated, reordered, errors) fails the row.
    ``unit`` "ms", "s" and "" (counts) are lower-is-better."""
    problems = problems_of(data) if check else []
    table.add(
        Row(
            name=name,
            unit=unit,
            values=_values(data, key),
            node=_values(node, key),
            lower_is_better=unit != "/s",
            correct=not problems,
            problems=problems,
        )
    )


async def run_bench(
    scale: Scale,
    wanted: set[str],
    *,
    pin: bool = True,
    keep: bool = False,
    gc_log: bool = False,
    profile_dir: Path | None = None,
    json_path: Path | None = None,
    targets: tuple[str, ...] = TARGETS,
) -> int:
    info = machine()
    load_before = loadavg()
    started = time.monotonic()
    say(
        f"botgw bench --{scale.name}: {info['cpus']} CPUs ({info['cpu']}), python "
        f"{info['python']}, load average {loadavg():.2f}"
    )
    async with Run(scale, pin=pin, keep=keep, gc_log=gc_log) as run:
        say(f"  {run.pinning_note()}")
        profiler = Profiler(run.procs, profile_dir)
        if profile_dir is not None and not profiler.enabled:
            say("  --profile: py-spy not found (pip install py-spy); running without it")
        bench = Bench(run, wanted, profiler, targets)
        if wanted & {"fanout", "latency", "latency-cluster"}:
            await bench.gateway_figures()
        if wanted & {"memory", "storm"}:
            await bench.memory_figures()
        if wanted & {"rest", "rest-cluster", "poll"}:
            await bench.rest_figures()
        pinning = run.pinning_note()
    results = bench.results
    elapsed = time.monotonic() - started
    table = build_table(results, scale)
    loads = [x for xs in results["loadavg"].values() for x in xs]
    print()
    print(f"botgw benchmarks ({scale.name}, {scale.reps} repetition(s), {elapsed:.0f} s)")
    print(
        f"machine: {info['cpus']} x {info['cpu']}, {info['memory_mib']} MiB, "
        f"Python {info['python']}; {pinning}"
    )
    during = f"; during it {min(loads):.2f}-{max(loads):.2f}" if loads else ""
    print(
        f"load average before the run: {load_before:.2f}{during} (the bench's own processes "
        "count too: before the run is what tells whether others were using the machine)"
    )
    print()
    print(table.text())
    print()
    print("ratio = botgw / ceiling (or / peer); for latency and memory lower is better.")
    if any(r.node is not None for r in table.rows):
        print(
            f"one node (ratio) = botgw on the {CLUSTER} / botgw on one Redis node, same run; "
            "no budget (informational)."
        )
    for skipped in bench.skipped:
        print(f"not run: {skipped}")
    if json_path is not None:
        document = {
            "scale": scale.__dict__,
            "machine": info,
            "pinning": pinning,
            "loadavg_before": load_before,
            "seconds": elapsed,
            "results": results,
            "skipped": bench.skipped,
            "table": [
                {
                    "figure": r.name,
                    "values": r.values,
                    "median": r.summary.median,
                    "spread_pct": r.summary.spread_pct,
                    "ceiling": r.ceiling,
                    "peer": r.peer,
                    "ceiling_ratio": None if math.isnan(r.ceiling_ratio) else r.ceiling_ratio,
                    "peer_ratio": None if math.isnan(r.peer_ratio) else r.peer_ratio,
                    "node": r.node,
                    "node_ratio": None if math.isnan(r.node_ratio) else r.node_ratio,
                    "passed": r.passed(),
                }
                for r in table.rows
            ],
        }
        json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2, default=_jsonable))
    return 1 if table.failed() else 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, Summary):
        return value.values
    raise TypeError(type(value).__name__)
