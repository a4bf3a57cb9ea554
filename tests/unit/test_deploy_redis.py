"""The deploy files for Redis, read as their tools would: every YAML parses, the
compose overrides merged onto the base point botgw at the Redis they run, the
Kubernetes manifests name pods their StatefulSets make, the Redis settings the
docs promise are set, and the ConfigMaps carry the files they copy.

The compose merge below follows the Compose Specification's rules for the keys
these files use (mappings merge; ``command`` and ``healthcheck.test`` are
replaced; ``environment`` and ``depends_on`` merge by name; ``volumes`` by
target), so a check of the merged services is a check of what ``docker compose
-f compose.yaml -f compose.<kind>.yaml`` runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML, installed with the dev tools

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BOTGW_SERVICES = ("rest", "gateway-1", "gateway-2", "webhooks")
BOTGW_DEPLOYMENTS = ("botgw-rest", "botgw-gateway", "botgw-webhooks")
YAML_FILES = sorted(DEPLOY.glob("*.yaml")) + sorted((DEPLOY / "k8s").glob("*.yaml"))


def _load(path: Path) -> list[Any]:
    with path.open() as stream:
        return list(yaml.safe_load_all(stream))


def _compose(path: Path) -> dict[str, Any]:
    (document,) = _load(path)
    assert isinstance(document, dict)
    return document


# -- compose: the merge ---------------------------------------------------------------


def _as_mapping(value: Any, default: Any = None) -> dict[str, Any]:
    """``environment``/``depends_on`` in either form, as a mapping."""
    if isinstance(value, dict):
        return dict(value)
    found: dict[str, Any] = {}
    for item in value or []:
        name, sep, rest = str(item).partition("=")
        found[name] = rest if sep else default
    return found


def _volume_target(volume: Any) -> str:
    return str(volume["target"] if isinstance(volume, dict) else volume.split(":")[1])


def _merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if key not in merged:
            merged[key] = value
        elif key == "environment":
            merged[key] = {**_as_mapping(merged[key]), **_as_mapping(value)}
        elif key == "depends_on":
            started = {"condition": "service_started"}
            merged[key] = {**_as_mapping(merged[key], started), **_as_mapping(value, started)}
        elif key == "volumes":
            by_target = {_volume_target(v): v for v in merged[key]}
            by_target.update({_volume_target(v): v for v in value})
            merged[key] = list(by_target.values())
        elif key == "healthcheck":
            merged[key] = {**merged[key], **value}
        elif isinstance(value, list) and key not in ("command", "entrypoint"):
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _merged(override: str) -> dict[str, Any]:
    """deploy/compose.yaml with ``override`` layered on it."""
    base, top = _compose(DEPLOY / "compose.yaml"), _compose(DEPLOY / override)
    services = dict(base["services"])
    for name, service in top["services"].items():
        services[name] = _merge_service(services.get(name, {}), service)
    volumes = {**(base.get("volumes") or {}), **(top.get("volumes") or {})}
    return {"services": services, "volumes": volumes}


def _url(service: dict[str, Any]) -> tuple[str, list[tuple[str, int]], str]:
    """(scheme, [(host, port)], path) of a service's BOTGW_REDIS_URL."""
    return _parse_url(str(_as_mapping(service["environment"])["BOTGW_REDIS_URL"]))


def _parse_url(url: str) -> tuple[str, list[tuple[str, int]], str]:
    split = urlsplit(url)
    hosts = []
    for part in split.netloc.rpartition("@")[2].split(","):
        host, _, port = part.rpartition(":")
        hosts.append((host, int(port)))
    return split.scheme, hosts, split.path.strip("/")


def _is_redis(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("redis:")


def test_every_yaml_file_parses() -> None:
    assert len(YAML_FILES) >= 6
    for path in YAML_FILES:
        documents = _load(path)
        assert documents, path
        assert all(isinstance(document, dict) for document in documents), path


@pytest.mark.parametrize("override", ["compose.sentinel.yaml", "compose.cluster.yaml"])
def test_compose_references_resolve(override: str) -> None:
    stack = _merged(override)
    services = stack["services"]
    for name, service in services.items():
        for needed in _as_mapping(service.get("depends_on"), {}):
            assert needed in services, f"{name} depends on an unknown {needed}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts a missing {source}"
            else:
                assert source in stack["volumes"], f"{name} uses an undeclared {source}"
        if _is_redis(service) and service.get("restart") != "no":
            assert service.get("restart") == "unless-stopped", name
            assert "redis-cli" in " ".join(service["healthcheck"]["test"]), name


def test_compose_base_is_one_node() -> None:
    services = _compose(DEPLOY / "compose.yaml")["services"]
    for name in BOTGW_SERVICES:
        scheme, hosts, _ = _url(services[name])
        assert (scheme, hosts) == ("redis", [("redis", 6379)]), name


def test_compose_sentinel_points_botgw_at_the_sentinels() -> None:
    services = _merged("compose.sentinel.yaml")["services"]
    sentinels = {name for name, s in services.items() if "sentinel.sh" in str(s.get("command"))}
    nodes = {name for name, s in services.items() if "node.sh" in str(s.get("command"))}
    assert len(sentinels) == 3 and nodes == {"redis", "redis-replica"}
    master = _as_mapping(services["redis"]["environment"])["MASTER_NAME"]
    for name in BOTGW_SERVICES:
        service = services[name]
        scheme, hosts, path = _url(service)
        assert scheme == "redis+sentinel", name
        assert sorted(hosts) == [(s, 26379) for s in sorted(sentinels)], name
        assert path == master == "botgw"
        assert _as_mapping(service["environment"])["BOTGW_REDIS_WAIT_REPLICAS"] == "1"
        for sentinel in sentinels:
            assert service["depends_on"][sentinel]["condition"] == "service_healthy"
    for name in nodes | sentinels:
        env = _as_mapping(services[name]["environment"])
        assert env["SENTINELS"].split() == [f"{s}:26379" for s in sorted(sentinels)]
        assert env["FIRST_PRIMARY"] == "redis:6379"
        assert env.get("NODE_HOST", env.get("SENTINEL_HOST")) == name


def test_compose_cluster_points_botgw_at_the_nodes() -> None:
    services = _merged("compose.cluster.yaml")["services"]
    nodes = {
        name
        for name, s in services.items()
        if "/etc/botgw-redis/redis.conf" in s.get("command", [])
    }
    assert len(nodes) == 6 and "redis" in nodes
    for name in nodes:
        command = services[name]["command"]
        assert command[command.index("--cluster-announce-hostname") + 1] == name
    init = services["redis-cluster-init"]
    assert init["command"][-2:] == ["/etc/botgw-redis/cluster.sh", "create"]
    assert sorted(_as_mapping(init["environment"])["NODES"].split()) == sorted(
        f"{n}:6379" for n in nodes
    )
    assert all(init["depends_on"][n]["condition"] == "service_healthy" for n in nodes)
    for name in BOTGW_SERVICES:
        scheme, hosts, path = _url(services[name])
        assert scheme == "redis+cluster" and not path, name
        assert {host for host, _ in hosts} <= nodes and all(port == 6379 for _, port in hosts)
        condition = services[name]["depends_on"]["redis-cluster-init"]["condition"]
        assert condition == "service_completed_successfully"


# -- Redis settings -----------------------------------------------------------------


def _directives(text: str) -> dict[str, str]:
    """``name value`` lines of a redis.conf (the last one of a name wins, as in Redis)."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")
        if name and not name.startswith("#"):
            found[name.lower()] = value.strip()
    return found


@pytest.mark.parametrize(
    "config", ["redis.conf", "redis-sentinel/redis.conf", "redis-cluster/redis.conf"]
)
def test_redis_keeps_every_update(config: str) -> None:
    settings = _directives((DEPLOY / config).read_text())
    assert settings["maxmemory-policy"] == "noeviction"
    assert settings["maxmemory"]
    assert settings["appendonly"] == "yes"
    assert settings["appendfsync"] == "everysec"


def test_sentinel_primary_refuses_writes_when_isolated() -> None:
    settings = _directives((DEPLOY / "redis-sentinel/redis.conf").read_text())
    assert settings["min-replicas-to-write"] == "1"
    assert settings["min-replicas-max-lag"] == "10"
    assert "replicaof" not in settings  # node.sh decides the role at each start


def test_cluster_nodes_are_cluster_nodes() -> None:
    settings = _directives((DEPLOY / "redis-cluster/redis.conf").read_text())
    assert settings["cluster-enabled"] == "yes"
    assert settings["cluster-config-file"] == "nodes.conf"
    assert int(settings["cluster-node-timeout"]) > 0


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
@pytest.mark.parametrize(
    "script", ["redis-sentinel/node.sh", "redis-sentinel/sentinel.sh", "redis-cluster/cluster.sh"]
)
def test_start_scripts_parse(script: str) -> None:
    done = subprocess.run(["sh", "-n", str(DEPLOY / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- Kubernetes -----------------------------------------------------------------------


def _manifest(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> resource of deploy/k8s/<name>."""
    return {(d["kind"], d["metadata"]["name"]): d for d in _load(DEPLOY / "k8s" / name)}


def _pod_names(resources: dict[tuple[str, str], dict[str, Any]], port: int) -> set[str]:
    """``<pod>.<service>`` of every pod of a StatefulSet whose headless Service has ``port``."""
    names = set()
    for (kind, name), resource in resources.items():
        if kind != "StatefulSet":
            continue
        service = resources["Service", resource["spec"]["serviceName"]]["spec"]
        assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"]
        if port in {p["port"] for p in service["ports"]}:
            for index in range(resource["spec"]["replicas"]):
                names.add(f"{name}-{index}.{resource['spec']['serviceName']}")
    return names


@pytest.mark.parametrize(
    ("manifest", "scheme", "port"),
    [
        ("redis-sentinel.yaml", "redis+sentinel", 26379),
        ("redis-cluster.yaml", "redis+cluster", 6379),
    ],
)
def test_k8s_secret_names_the_pods(manifest: str, scheme: str, port: int) -> None:
    resources = _manifest(manifest)
    secret = resources["Secret", "botgw-redis"]["stringData"]
    found_scheme, hosts, path = _parse_url(secret["BOTGW_REDIS_URL"])
    assert found_scheme == scheme
    assert {host for host, _ in hosts} == _pod_names(resources, port)
    assert all(p == port for _, p in hosts)
    assert path == ("botgw" if scheme == "redis+sentinel" else "")
    assert secret["BOTGW_REDIS_WAIT_REPLICAS"] == "1"


def test_k8s_botgw_reads_the_redis_secret_last() -> None:
    resources = _manifest("botgw.yaml")
    for name in BOTGW_DEPLOYMENTS:
        (container,) = resources["Deployment", name]["spec"]["template"]["spec"]["containers"]
        sources = [source.get("secretRef") for source in container["envFrom"]]
        # REST's file store sources (a ConfigMap, a Secret) come between the two
        assert sources[0] == {"name": "botgw"}, name
        assert sources[-1] == {"name": "botgw-redis", "optional": True}, name


@pytest.mark.parametrize(
    ("manifest", "config_dir"),
    [("redis-sentinel.yaml", "redis-sentinel"), ("redis-cluster.yaml", "redis-cluster")],
)
def test_k8s_configmap_copies_the_deploy_files(manifest: str, config_dir: str) -> None:
    resources = _manifest(manifest)
    (data,) = [r["data"] for (kind, _), r in resources.items() if kind == "ConfigMap"]
    files = {path.name: path.read_text() for path in sorted((DEPLOY / config_dir).iterdir())}
    assert set(data) == set(files)
    for name, text in files.items():
        assert data[name] == text, f"the ConfigMap's {name} differs from deploy/{config_dir}/"


@pytest.mark.parametrize("manifest", ["redis-sentinel.yaml", "redis-cluster.yaml"])
def test_k8s_statefulsets_are_guarded(manifest: str) -> None:
    resources = _manifest(manifest)
    budgets = [r["spec"] for (kind, _), r in resources.items() if kind == "PodDisruptionBudget"]
    sets = [r for (kind, _), r in resources.items() if kind == "StatefulSet"]
    assert sets
    for resource in sets:
        labels = resource["spec"]["template"]["metadata"]["labels"]
        assert resource["spec"]["selector"]["matchLabels"] == labels
        assert any(
            b["selector"]["matchLabels"] == labels and b["maxUnavailable"] == 1 for b in budgets
        )
        pod = resource["spec"]["template"]["spec"]
        assert pod["affinity"]["podAntiAffinity"] and pod["topologySpreadConstraints"]
        (container,) = pod["containers"]
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        for probe in ("livenessProbe", "readinessProbe"):
            assert "redis-cli" in " ".join(container[probe]["exec"]["command"])
        mounted = {volume["name"] for volume in container["volumeMounts"]}
        declared = {volume["name"] for volume in pod["volumes"]}
        declared |= {
            c["metadata"]["name"] for c in resource["spec"].get("volumeClaimTemplates", [])
        }
        assert mounted <= declared
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in resources
