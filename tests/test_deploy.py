"""The deployment recipes in deploy/, rendered and checked with the real tools.

Kubernetes: each overlay is rendered by `kubectl kustomize` and every resource is validated strictly (unknown
fields fail) against the Kubernetes API schemas by kubernetes-validate; then what matters to a running stack:
probes on the service's real, open paths, resources and a locked-down securityContext on every container,
writable volumes where the service writes, every Secret/ConfigMap/PVC reference resolving, settings that are
real fields of salespulse/config.py, database and MLflow URLs that point at the recipe's own Services with
the recipe's own passwords, and HPA/PDB/Service selectors that hit the right pods.

Compose: `docker compose config` (Docker's Compose v2 CLI plugin; it needs no engine) renders
deploy/compose/compose.yaml with its example .env, and the test reads the facts back from its output.

Run for real on loopback: Postgres runs the init script both recipes mount, an MLflow server starts with
the exact arguments of the Kubernetes Deployment on the database it made, and nginx runs the compose load
balancer's config in front of two small backends (round-robin, and failover when one stops).

The tools come from scripts/deploy_tools.sh (kubectl into .venv/bin, the compose plugin, Debian's nginx).
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import kubernetes_validate
import pytest
import yaml
from service_support import REPO_ROOT, VENV_BIN, free_port

DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose"
OVERLAYS = ("dev", "production")
# The oldest Kubernetes minor still in wide support and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.31", "1.37")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
API, MLFLOW, POSTGRES = "api", "mlflow", "postgres"  # app.kubernetes.io/component of each workload
COMPONENT = "app.kubernetes.io/component"
# The probe paths each HTTP component must use: BentoML's own probes for the service, MLflow's /health.
PROBE_PATHS = {API: {"livenessProbe": "/livez", "readinessProbe": "/readyz"},
               MLFLOW: {"livenessProbe": "/health", "readinessProbe": "/health"}}  # fmt: skip
Doc = dict[str, Any]


# ------------------------------------------------------------------------------------------ tools


def require(tool: str | None, what: str) -> str:
    """The tool's path; a missing tool skips the test on a developer's machine and fails it in CI."""
    if tool:
        return tool
    message = f"{what} is missing: run scripts/deploy_tools.sh (as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def kubectl() -> str:
    pinned = VENV_BIN / "kubectl"
    return require(str(pinned) if pinned.exists() else shutil.which("kubectl"), "kubectl (kustomize)")


def docker_compose() -> list[str]:
    docker = shutil.which("docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True) if docker else None
    found = docker if probe and probe.returncode == 0 and "version v" in probe.stdout else None
    return [require(found, "docker compose (the Compose v2 CLI plugin)"), "compose"]


def nginx() -> str:
    return require(shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin"), "nginx")


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )


# ------------------------------------------------------------------------------------------ rendering


def fill_production_secrets(overlay: Path) -> None:
    """secrets.env as an operator writes it: every placeholder replaced (consistently, so the passwords in
    the URLs still match theirs)."""
    example = (overlay / "secrets.env.example").read_text()
    (overlay / "secrets.env").write_text(example.replace("REPLACE-", "t3st-"))


@pytest.fixture(scope="module")
def kubernetes_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/kubernetes copied, without any secrets.env a developer may keep in the checkout."""
    target = tmp_path_factory.mktemp("deploy") / "kubernetes"
    shutil.copytree(KUBERNETES, target, ignore=shutil.ignore_patterns("secrets.env"))
    return target


@pytest.fixture(scope="module")
def rendered(kubernetes_copy: Path) -> dict[str, list[Doc]]:
    fill_production_secrets(kubernetes_copy / "overlays" / "production")
    out: dict[str, list[Doc]] = {}
    for overlay in OVERLAYS:
        result = kustomize(kubernetes_copy / "overlays" / overlay)
        assert result.returncode == 0, f"kustomize {overlay}: {result.stderr}"
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(docs: list[Doc]) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def workload(docs: list[Doc], component: str) -> Doc:
    found = [
        w for w in workloads(docs) if w["spec"]["template"]["metadata"]["labels"].get(COMPONENT) == component
    ]
    assert len(found) == 1, f"expected one workload of component {component}, found {len(found)}"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]


def all_containers(doc: Doc) -> list[Doc]:
    spec = pod_spec(doc)
    return spec.get("initContainers", []) + spec["containers"]


def main_container(doc: Doc) -> Doc:
    return pod_spec(doc)["containers"][0]


def secret_data(docs: list[Doc]) -> dict[str, dict[str, str]]:
    """Every Secret's keys and decoded values, by name."""
    out = {}
    for secret in of_kind(docs, "Secret"):
        values = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        out[secret["metadata"]["name"]] = values | secret.get("stringData", {})
    return out


def config_data(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {c["metadata"]["name"]: c.get("data", {}) for c in of_kind(docs, "ConfigMap")}


def container_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """What the container's process sees: envFrom ConfigMaps, then env (literal values and Secret keys)."""
    configs, secrets = config_data(docs), secret_data(docs)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= configs[source["configMapRef"]["name"]]
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if ref["key"] in secrets[ref["name"]]:
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def expand(argument: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of a container argument."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], argument)


def flag(arguments: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in arguments if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times in {arguments}"
    return values[0]


def container_port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"container {container['name']} has no port named {port}"
    return numbers[0]


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (500m, 2, 1536Mi, 3Gi) as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    text = str(value)
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def dockerfile_facts() -> tuple[int, dict[str, str]]:
    """The image's user id and the settings of its ENV instruction, read from ./Dockerfile."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\d+)", text, re.M)
    instruction = re.search(r"^ENV ((?:.*\\\n)*.*)$", text, re.M)
    assert user and instruction, "the Dockerfile sets no numeric USER or no ENV"
    pairs = shlex.split(instruction.group(1).replace("\\\n", " "))
    return int(user.group(1)), dict(pair.split("=", 1) for pair in pairs)


def assert_real_settings(env: dict[str, str], where: str) -> None:
    """Every SALESPULSE_ variable is a field of salespulse/config.py (pydantic-settings ignores unknown
    names: a typo would be silently dropped), and the values validate as that field's type."""
    from salespulse.config import Settings

    fields = {name: value for name, value in env.items() if name.startswith("SALESPULSE_")}
    names = {name.removeprefix("SALESPULSE_").lower() for name in fields}
    unknown = names - set(Settings.model_fields)
    assert not unknown, f"{where}: not settings of salespulse/config.py: {sorted(unknown)}"
    known = {name.removeprefix("SALESPULSE_").lower(): value for name, value in fields.items()}
    Settings(_env_file=None, **{k: v for k, v in known.items() if k in Settings.model_fields})  # type: ignore[call-arg]


# ------------------------------------------------------------------------------------------ kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_validates_strictly(rendered: dict[str, list[Doc]], overlay: str, version: str):
    docs = rendered[overlay]
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ConfigMap", "Secret", "PersistentVolumeClaim", "Namespace"} <= kinds  # fmt: skip
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{overlay}: {name} is invalid for Kubernetes {version}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:  # an unknown kind/apiVersion is a failure
            pytest.fail(f"{overlay}: {name}: {error.message}")


def test_strict_validation_catches_a_misspelt_field(rendered: dict[str, list[Doc]]):
    """The validation above would catch a typo: an unknown probe field fails."""
    deployment = copy.deepcopy(workload(rendered["dev"], API))
    main_container(deployment)["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError, match="httpGett"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_use_the_real_open_paths(rendered: dict[str, list[Doc]], overlay: str):
    from service.auth import OPEN_PATHS

    docs = rendered[overlay]
    for doc in workloads(docs):
        for container in pod_spec(doc)["containers"]:
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert probe in container, f"{doc['metadata']['name']}/{container['name']} has no {probe}"
    for component, paths in PROBE_PATHS.items():
        container = main_container(workload(docs, component))
        if component == API:
            port = int(container_env(docs, container)["SALESPULSE_SERVICE_PORT"])
        else:
            port = int(flag(container["command"] + container["args"], "port"))
        for probe, path in paths.items():
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{overlay}: {component} {probe} on {get['path']}"
            assert container_port(container, get["port"]) == port, f"{overlay}: {component} {probe} port"
            if component == API:
                assert path in OPEN_PATHS  # a keyed read access must not lock the kubelet out of its probes
    assert main_container(workload(docs, API))["startupProbe"]["httpGet"]["path"] == "/readyz"
    database = main_container(workload(docs, POSTGRES))
    assert "pg_isready" in " ".join(database["readinessProbe"]["exec"]["command"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_sized_and_locked_down(rendered: dict[str, list[Doc]], overlay: str):
    for doc in workloads(rendered[overlay]):
        pod = pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod.get("automountServiceAccountToken") is False
        for container in all_containers(doc):
            where = f"{overlay}: {doc['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                assert request and limit, f"{where}: {resource} request and limit must be set"
                assert quantity(request) <= quantity(limit), f"{where}: {resource} request above its limit"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_runs_as_the_image_user_with_writable_volumes(
    rendered: dict[str, list[Doc]], overlay: str
):
    """Read-only root: every folder the service writes is a mounted volume, and the pod runs as the image's
    own non-root user (so the files the image carries are its own)."""
    docs = rendered[overlay]
    deployment = workload(docs, API)
    image_uid, image_env = dockerfile_facts()
    assert pod_spec(deployment)["securityContext"]["runAsUser"] == image_uid
    container = main_container(deployment)
    env = image_env | container_env(docs, container)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    warehouse_folder = str(Path(env["SALESPULSE_WAREHOUSE_PATH"]).parent)
    for folder in (warehouse_folder, env["BENTOML_HOME"], env["HOME"], "/tmp"):
        assert folder in mounts, f"{overlay}: {folder} is not writable (no volume mounted there)"
        # this replica's own copy: an emptyDir, never shared between pods
        assert "emptyDir" in volumes[mounts[folder]], f"{overlay}: {folder} is not an emptyDir"
    # the BentoML store the image carries is copied onto its emptyDir before the service starts
    seed = pod_spec(deployment)["initContainers"][0]
    seed_mount = seed["volumeMounts"][0]
    assert seed_mount["name"] == mounts[env["BENTOML_HOME"]]
    assert f"{env['BENTOML_HOME']}/. {seed_mount['mountPath']}" in " ".join(seed["command"])
    # one image for the service, its seed step and the MLflow server (which uses its MLflow and psycopg)
    images = {c["image"] for c in [*all_containers(deployment), main_container(workload(docs, MLFLOW))]}
    assert len(images) == 1, images


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_resolve(rendered: dict[str, list[Doc]], overlay: str):
    docs = rendered[overlay]
    secrets, configs = secret_data(docs), config_data(docs)
    claims = {c["metadata"]["name"] for c in of_kind(docs, "PersistentVolumeClaim")}
    namespace = {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"}
    assert namespace == {one(docs, "Namespace", next(iter(namespace)))["metadata"]["name"]}
    for doc in workloads(docs):
        for container in all_containers(doc):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                assert ref["name"] in secrets, f"{overlay}: no Secret {ref['name']}"
                if not ref.get("optional"):
                    assert ref["key"] in secrets[ref["name"]], f"{overlay}: Secret has no key {ref['key']}"
                assert secrets[ref["name"]].get(ref["key"], "x"), f"{overlay}: {ref['key']} is empty"
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configs
        for volume in pod_spec(doc).get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configs, f"{overlay}: no ConfigMap for {volume['name']}"
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_fields_of_the_config(rendered: dict[str, list[Doc]], overlay: str):
    docs = rendered[overlay]
    env = container_env(docs, main_container(workload(docs, API)))
    assert {"SALESPULSE_API_KEY", "SALESPULSE_DATABASE_URL", "SALESPULSE_MLFLOW_TRACKING_URI"} <= set(env)
    assert_real_settings(env, overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_database_and_mlflow_urls_point_at_the_recipe(rendered: dict[str, list[Doc]], overlay: str):
    from mlflow.server.security_utils import is_allowed_host_header
    from sqlalchemy.engine import make_url

    docs = rendered[overlay]
    namespace = of_kind(docs, "Namespace")[0]["metadata"]["name"]
    api = container_env(docs, main_container(workload(docs, API)))
    database = workload(docs, POSTGRES)
    db_env = container_env(docs, main_container(database))
    db_service = one(docs, "Service", database["spec"]["serviceName"])
    db_port = db_service["spec"]["ports"][0]["port"]

    url = make_url(api["SALESPULSE_DATABASE_URL"])
    assert (url.host, url.port) == (db_service["metadata"]["name"], db_port)
    assert (url.username, url.password, url.database) == (
        db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"], db_env["POSTGRES_DB"]
    )  # fmt: skip

    mlflow = main_container(workload(docs, MLFLOW))
    mlflow_env = container_env(docs, mlflow)
    arguments = mlflow["command"] + [expand(a, mlflow_env) for a in mlflow["args"]]
    store = make_url(flag(arguments, "backend-store-uri"))
    # the driver SQLAlchemy will load is one the image has (psycopg 3; psycopg2 is not installed)
    assert store.get_dialect().driver == "psycopg"
    assert (store.host, store.port) == (db_service["metadata"]["name"], db_port)
    assert (store.username, store.password, store.database) == (
        "mlflow",
        db_env["MLFLOW_DB_PASSWORD"],
        "mlflow",
    )

    tracking = urlsplit(api["SALESPULSE_MLFLOW_TRACKING_URI"])
    mlflow_service = one(docs, "Service", tracking.hostname)
    assert tracking.port == mlflow_service["spec"]["ports"][0]["port"] == int(flag(arguments, "port"))
    allowed = flag(arguments, "allowed-hosts").split(",")
    for host in (tracking.netloc, f"{tracking.hostname}.{namespace}.svc.cluster.local:{tracking.port}"):
        assert is_allowed_host_header(allowed, host), f"MLflow would refuse Host {host}"
    assert not is_allowed_host_header(allowed, "attacker.example:5000")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_hit_the_right_pods(rendered: dict[str, list[Doc]], overlay: str):
    docs = rendered[overlay]

    def selected(selector: dict[str, str]) -> list[Doc]:
        return [
            w
            for w in workloads(docs)
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]

    for w in workloads(docs):
        assert (
            w["spec"]["selector"]["matchLabels"].items()
            <= w["spec"]["template"]["metadata"]["labels"].items()
        )
    for service in of_kind(docs, "Service"):
        targets = selected(service["spec"]["selector"])
        assert len(targets) == 1, f"{overlay}: Service {service['metadata']['name']} selects {len(targets)}"
        for port in service["spec"]["ports"]:
            container_port(main_container(targets[0]), port["targetPort"])
    statefulset = workload(docs, POSTGRES)
    assert one(docs, "Service", statefulset["spec"]["serviceName"])["spec"]["clusterIP"] == "None"

    deployment = workload(docs, API)
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1", "Deployment", deployment["metadata"]["name"]
    )  # fmt: skip
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert main_container(deployment)["resources"]["requests"]["cpu"]  # utilization is measured against it

    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert selected(pdb["spec"]["selector"]["matchLabels"]) == [deployment]
    if "minAvailable" in pdb["spec"]:
        assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "a PDB that blocks every drain"


def test_overlays_differ_where_they_should(rendered: dict[str, list[Doc]]):
    def facts(overlay: str) -> dict[str, Any]:
        docs = rendered[overlay]
        deployment = workload(docs, API)
        env = container_env(docs, main_container(deployment))
        (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
        return {
            "replicas": deployment["spec"]["replicas"],
            "hpa": (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]),
            "memory": quantity(main_container(deployment)["resources"]["limits"]["memory"]),
            "read_access": env["SALESPULSE_READ_ACCESS"],
            "image": main_container(deployment)["image"],
            "api_key": env["SALESPULSE_API_KEY"],
        }

    dev, production = facts("dev"), facts("production")
    assert dev["replicas"] == 1 and production["replicas"] >= 3
    assert dev["hpa"][1] < production["hpa"][1]
    assert dev["memory"] < production["memory"]
    assert (dev["read_access"], production["read_access"]) == ("open", "keyed")
    assert dev["image"] == "salespulse:latest"
    assert production["image"].endswith("/salespulse:0.1.0")  # a pushed, versioned image
    assert "REPLACE" not in production["api_key"] and production["api_key"] != dev["api_key"]


def test_production_needs_its_own_secrets(kubernetes_copy: Path, tmp_path: Path):
    """Without secrets.env the production overlay does not render, so placeholders never reach it."""
    bare = tmp_path / "kubernetes"
    shutil.copytree(kubernetes_copy, bare, ignore=shutil.ignore_patterns("secrets.env"))
    result = kustomize(bare / "overlays" / "production")
    assert result.returncode != 0
    assert "secrets.env" in result.stderr


def test_real_secrets_are_git_ignored():
    for path in ("deploy/kubernetes/overlays/production/secrets.env", "deploy/compose/.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT, check=False)
        assert ignored.returncode == 0, f"{path} would be committed"


# ------------------------------------------------------------------------------------------ compose


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment: variables of the test process must not fill in the file's ${...}.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    command = [*docker_compose(), "-f", str(COMPOSE / "compose.yaml"), "--env-file", str(env_file)]
    return subprocess.run(
        [*command, "config", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> Doc:
    result = compose_config(COMPOSE / ".env.example")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def upstream_servers() -> list[str]:
    text = (COMPOSE / "nginx.conf").read_text()
    block = re.search(r"upstream\s+salespulse\s*\{(.*?)\}", text, re.S)
    assert block, "nginx.conf has no upstream salespulse"
    return re.findall(r"^\s*server\s+(\S+)", block.group(1), re.M)


def warehouse_volume(service: Doc) -> Doc:
    """The named volume that holds the replica's DuckDB copy. Docker fills a new volume with what the image
    has at the mount point: never the image's own warehouse folder (a snapshot there would be refused as
    data of its own by a copy of the system of record), unless the volume says nocopy."""
    path = Path(service["environment"]["SALESPULSE_WAREHOUSE_PATH"])
    (volume,) = [v for v in service["volumes"] if path.is_relative_to(v["target"])]
    assert volume["type"] == "volume", f"the warehouse copy is on a {volume['type']}, not a named volume"
    image_warehouse = Path(dockerfile_facts()[1]["SALESPULSE_WAREHOUSE_PATH"]).parent
    seeded = image_warehouse.is_relative_to(volume["target"]) and not volume.get("volume", {}).get("nocopy")
    assert not seeded, f"{volume['source']} would be filled with the image's {image_warehouse}"
    return volume


def test_compose_two_replicas_share_postgres_and_mlflow(compose: Doc):
    services = compose["services"]
    replicas = {
        name: s for name, s in services.items() if s.get("environment", {}).get("SALESPULSE_DATABASE_URL")
    }
    assert len(replicas) == 2, sorted(replicas)
    envs = [s["environment"] for s in replicas.values()]
    for key in ("SALESPULSE_DATABASE_URL", "SALESPULSE_MLFLOW_TRACKING_URI", "SALESPULSE_API_KEY"):
        assert envs[0][key] == envs[1][key], key
    assert len({s["image"] for s in replicas.values()}) == 1
    for env in envs:
        assert_real_settings(env, "compose")

    database = urlsplit(envs[0]["SALESPULSE_DATABASE_URL"])
    postgres = services[database.hostname]["environment"]
    assert (database.username, database.password, database.path) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], f"/{postgres['POSTGRES_DB']}"
    )  # fmt: skip
    tracking = urlsplit(envs[0]["SALESPULSE_MLFLOW_TRACKING_URI"])
    mlflow = services[tracking.hostname]["command"]
    assert int(flag(mlflow, "port")) == tracking.port
    store = urlsplit(flag(mlflow, "backend-store-uri"))
    assert (store.scheme, store.hostname, store.password) == (
        "postgresql+psycopg", database.hostname, postgres["MLFLOW_DB_PASSWORD"]
    )  # fmt: skip

    # each replica its own warehouse volume; both wait for a healthy database and MLflow
    sources = [warehouse_volume(service)["source"] for service in replicas.values()]
    assert len(set(sources)) == 2, sources
    for service in replicas.values():
        assert service["read_only"] is True and service["user"].startswith("10001")
        assert {name: d["condition"] for name, d in service["depends_on"].items()} == {
            database.hostname: "service_healthy", tracking.hostname: "service_healthy"
        }  # fmt: skip


def test_compose_load_balancer_fronts_both_replicas(compose: Doc):
    services = compose["services"]
    replicas = sorted(
        n for n, s in services.items() if s.get("environment", {}).get("SALESPULSE_DATABASE_URL")
    )
    (lb,) = [
        s
        for s in services.values()
        if any(v["target"].startswith("/etc/nginx") for v in s.get("volumes", []))
    ]
    assert {name: d["condition"] for name, d in lb["depends_on"].items()} == dict.fromkeys(
        replicas, "service_healthy"
    )
    port = services[replicas[0]]["environment"]["SALESPULSE_SERVICE_PORT"]
    assert sorted(upstream_servers()) == [f"{name}:{port}" for name in replicas]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert {k: lb["ports"][0][k] for k in ("published", "target")} == {"published": "8080", "target": 80}


def test_compose_refuses_to_start_without_secrets(tmp_path: Path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose_config(empty)
    assert result.returncode != 0
    assert "SALESPULSE_API_KEY" in result.stderr or "POSTGRES_PASSWORD" in result.stderr


# ------------------------------------------------------------------------------------------ run for real


def mlflow_server_command(docs: list[Doc], store_uri: str, artifacts: Path, port: int) -> list[str]:
    """The Kubernetes Deployment's own command line, with only what must differ on this machine swapped:
    the database URL, the artifact folder, the address and port (and one worker, to spare the CPU)."""
    container = main_container(workload(docs, MLFLOW))
    swaps = {"backend-store-uri": store_uri, "artifacts-destination": str(artifacts), "host": "127.0.0.1",
             "port": str(port), "workers": "1"}  # fmt: skip
    arguments = []
    for argument in container["args"]:
        name = argument[2:].split("=", 1)[0]
        arguments.append(f"--{name}={swaps[name]}" if name in swaps and "=" in argument else argument)
    assert set(swaps) <= {a[2:].split("=", 1)[0] for a in arguments}, "an argument the test swaps has gone"
    return [str(VENV_BIN / container["command"][0]), *container["command"][1:], *arguments]


@pytest.fixture
def initdb_database(postgres_server: Any) -> Iterator[tuple[str, str]]:
    """The init script both recipes mount, run by psql as the Postgres image runs it: it creates MLflow's
    role and database. Yields (role, database), dropped afterwards (the server is shared by the session)."""
    suffix = f"{os.getpid()}_{free_port()}"
    role, database = f"mlflow_{suffix}", f"mlflow_db_{suffix}"
    env = dict(os.environ) | {
        "PGHOST": "127.0.0.1", "PGPORT": str(postgres_server.port), "POSTGRES_USER": "salespulse",
        "POSTGRES_DB": "postgres", "MLFLOW_DB_USER": role, "MLFLOW_DB_NAME": database,
        "MLFLOW_DB_PASSWORD": "a-test-password",
    }  # fmt: skip
    script = KUBERNETES / "base" / "postgres-initdb" / "10-mlflow.sh"
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    yield role, database
    import psycopg

    with psycopg.connect(postgres_server.url(), autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        con.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_initdb_script_creates_the_mlflow_database(initdb_database: tuple[str, str], postgres_server: Any):
    import psycopg

    role, database = initdb_database
    with psycopg.connect(postgres_server.url(database)) as con:
        owner = con.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        can_login = con.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    assert owner == (role,) and can_login == (True,)


@pytest.mark.slow
def test_mlflow_server_runs_with_the_manifest_arguments(
    rendered: dict[str, list[Doc]], initdb_database: tuple[str, str], postgres_server: Any, tmp_path: Path
):
    role, database = initdb_database
    store = f"postgresql+psycopg://{role}:a-test-password@127.0.0.1:{postgres_server.port}/{database}"
    port, artifacts = free_port(), tmp_path / "artifacts"
    command = mlflow_server_command(rendered["production"], store, artifacts, port)
    env = dict(os.environ) | {"HOME": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    with (tmp_path / "mlflow.log").open("w") as log:
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{base}/health", server, tmp_path / "mlflow.log")
        in_cluster = {"Host": "salespulse-mlflow:5000"}  # as the service calls it
        created = httpx.post(f"{base}/api/2.0/mlflow/experiments/create", json={"name": "deploy-test"},
                             headers=in_cluster, timeout=30)  # fmt: skip
        assert created.status_code == 200, created.text
        experiment = created.json()["experiment_id"]
        run = httpx.post(f"{base}/api/2.0/mlflow/runs/create", json={"experiment_id": experiment},
                         headers=in_cluster, timeout=30).json()["run"]  # fmt: skip
        # artifacts are proxied by the server into --artifacts-destination
        assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:")
        upload = (
            f"{base}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run['info']['run_id']}/artifacts/a.txt"
        )
        assert httpx.put(upload, content=b"hello", headers=in_cluster, timeout=30).status_code == 200
        assert next(iter(artifacts.rglob("a.txt"))).read_bytes() == b"hello"
        refused = httpx.get(f"{base}/api/2.0/mlflow/experiments/search?max_results=1",
                            headers={"Host": "attacker.example:5000"}, timeout=30)  # fmt: skip
        assert refused.status_code == 403
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def wait_until_answers(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: the process exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


class Backend:
    """A stand-in replica on loopback: answers every GET with its name (nginx is what is under test)."""

    def __init__(self, name: str) -> None:
        self.hits = 0

        # HTTP/1.0, one request per connection: once stopped, the backend is really gone for nginx.
        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:
                self.hits += 1
                body = name.encode()
                handler.send_response(200)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_nginx_balances_round_robin_and_fails_over(tmp_path: Path):
    """deploy/compose/nginx.conf as is, but for the replicas' addresses and the listening port."""
    binary = nginx()
    backends = {"salespulse-a": Backend("a"), "salespulse-b": Backend("b")}
    port = free_port()
    site = (COMPOSE / "nginx.conf").read_text().replace("listen 80;", f"listen 127.0.0.1:{port};")
    for name, backend in backends.items():
        site = site.replace(f"{name}:3000", f"127.0.0.1:{backend.port}")
    (tmp_path / "site.conf").write_text(site)
    for folder in ("logs", "temp"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder).chmod(0o777)  # nginx's workers drop root
    # The official image's nginx.conf around the site: one worker, so round-robin is one sequence.
    (tmp_path / "nginx.conf").write_text(f"""
        worker_processes 1;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/logs/error.log;
        events {{ worker_connections 64; }}
        http {{
            access_log off;
            client_body_temp_path {tmp_path}/temp/body;
            proxy_temp_path {tmp_path}/temp/proxy;
            fastcgi_temp_path {tmp_path}/temp/fastcgi;
            uwsgi_temp_path {tmp_path}/temp/uwsgi;
            scgi_temp_path {tmp_path}/temp/scgi;
            include {tmp_path}/site.conf;
        }}
    """)
    command = [
        binary,
        "-p",
        str(tmp_path),
        "-e",
        str(tmp_path / "logs" / "error.log"),
        "-c",
        str(tmp_path / "nginx.conf"),
    ]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    server = subprocess.Popen([*command, "-g", "daemon off;"])
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        wait_until_answers(url, server, tmp_path / "logs" / "error.log", timeout=30)
        first = backends["salespulse-a"].hits + backends["salespulse-b"].hits
        with httpx.Client(timeout=5) as client:
            answers = [client.get(url).text for _ in range(10)]
            assert answers.count("a") == answers.count("b") == 5  # round-robin
            assert all(x != y for x, y in itertools.pairwise(answers))
            backends["salespulse-b"].stop()
            after = [client.get(url) for _ in range(6)]
        assert [r.status_code for r in after] == [200] * 6  # the other replica answers every one
        assert {r.text for r in after} == {"a"}
        assert backends["salespulse-a"].hits + backends["salespulse-b"].hits == first + 16
    finally:
        server.terminate()
        server.wait(timeout=30)
        backends["salespulse-a"].stop()
