"""Static checks of the Dockerfile, the compose stack, the NATS config and the Kubernetes example.

There is no container engine or cluster here, so these use what runs without one: hadolint for
the Dockerfile, the Compose Specification's JSON Schema (vendored by check-jsonschema) for
compose.yaml, ``nats-server -t`` for the NATS config, the Kubernetes OpenAPI schemas (via
kubernetes-validate, strict: unknown fields fail) for the manifests, fillstream's own config
loader for every fillstream.toml they carry, and cross-reference checks (mounted files exist,
selectors match, grace periods exceed the shutdown deadline, simulator keys match its seed).
"""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from fillstream.sidecar.config import Config, config_from_dict
from fillstream.sidecar.embedded import nats_server_binary
from fillstream.simulator.accounts import make_account
from fillstream.simulator.cli import parse as parse_sim_args
from tests.deploy.support import DEPLOY, ROOT, run

BIN = Path(sys.executable).parent
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
FILLSTREAM_SERVICES = ("fillstream", "fillstream-sim")


def _seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+)(s|m)", duration)
    assert m, duration
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def _load(text: str, tmp_path: Path, environ: dict[str, str]) -> Config:
    """A fillstream.toml as the service would load it; secret files are stood in by temp files."""
    raw = tomllib.loads(text)
    env = {"FILLSTREAM_DSN": "postgresql://fillstream:pw@postgres:5432/fillstream", **environ}
    for account in raw.get("accounts", []):
        for kind in ("api_key", "api_secret"):
            if f"{kind}_file" in account:
                stand_in = tmp_path / f"{account['name']}-{kind}"
                stand_in.write_text("x" * 64)
                name = account["name"].upper().replace("-", "_")
                env[f"FILLSTREAM_ACCOUNTS__{name}__{kind.upper()}_FILE"] = str(stand_in)
    return config_from_dict(raw, env)


# ------------------------------------------------------------------------------------ Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    done = run(BIN / "hadolint", "--failure-threshold", "style", DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_contract() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", text, re.M), "pinned slim"
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage"
    assert re.search(r"^USER 10001:10001$", text, re.M), "non-root"
    assert "HEALTHCHECK" in text
    assert "FILLSTREAM_HEALTH_URL=http://127.0.0.1:9464/healthz" in text
    assert "FILLSTREAM_HTTP__LISTEN=0.0.0.0:9464" in text
    assert 'ENTRYPOINT ["fillstream"]' in text
    assert 'CMD ["run", "--config", "/etc/fillstream/fillstream.toml"]' in text
    # What the build copies exists, and the entrypoint is the package's console script.
    copied = set()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
            copied.add(path)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["fillstream"] == "fillstream.sidecar.cli:main"
    # The build context is exactly what the build copies: everything else is excluded.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    allowed = ignore[ignore.index("*") :]
    assert allowed[0] == "*"
    assert {p.removeprefix("!").rstrip("/") for p in allowed if p.startswith("!")} == copied


# ----------------------------------------------------------------------------------- NATS config


def test_nats_config_is_valid_and_fsyncs_every_write() -> None:
    conf = DEPLOY / "nats" / "nats.conf"
    done = run(nats_server_binary(), "-t", "-c", conf)
    assert done.returncode == 0, done.stdout + done.stderr
    jetstream = re.search(r"jetstream\s*\{([^}]*)\}", conf.read_text())
    assert jetstream and re.search(r"^\s*sync_interval:\s*always\s*$", jetstream.group(1), re.M)


# ---------------------------------------------------------------------------------------- compose


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_matches_the_compose_specification() -> None:
    done = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_references_resolve() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"fillstream", "sim", "fillstream-sim", "nats", "postgres", "prometheus", "grafana"} <= (
        set(services)
    )
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret} not declared"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert services["fillstream"]["profiles"] == ["live"]
    assert services["sim"]["profiles"] == services["fillstream-sim"]["profiles"] == ["sim"]
    build = services["fillstream"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_nats_has_jetstream_on_a_volume() -> None:
    nats = _compose()["services"]["nats"]
    assert nats["command"] == ["-c", "/etc/nats/nats.conf"]
    assert "./nats/nats.conf:/etc/nats/nats.conf:ro" in nats["volumes"]
    assert "jetstream:/data" in nats["volumes"]
    assert "store_dir: /data" in (DEPLOY / "nats" / "nats.conf").read_text()


def test_compose_prometheus_scrapes_fillstream() -> None:
    compose = _compose()
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "fillstream")
    assert job["static_configs"][0]["targets"] == ["fillstream:9464"]
    # In the sim profile the service is fillstream-sim, reachable under the same name.
    aliases = compose["services"]["fillstream-sim"]["networks"]["default"]["aliases"]
    assert "fillstream" in aliases
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts


@pytest.mark.parametrize(
    ("service", "config"),
    [("fillstream", "fillstream.toml"), ("fillstream-sim", "fillstream.sim.toml")],
)
def test_compose_fillstream_configs_load(service: str, config: str, tmp_path: Path) -> None:
    compose = _compose()
    spec = compose["services"][service]
    assert f"./compose/{config}:/etc/fillstream/fillstream.toml:ro" in spec["volumes"]
    env = {k: str(v) for k, v in spec["environment"].items() if not str(v).startswith("postgres")}
    loaded = _load((DEPLOY / "compose" / config).read_text(), tmp_path, env)
    assert loaded.http.listen == "0.0.0.0:9464"
    assert loaded.nats.servers == ("nats://nats:4222",)
    assert _seconds(spec["stop_grace_period"]) > loaded.service.shutdown_deadline_s
    assert spec["environment"]["FILLSTREAM_DSN"].startswith("postgresql://fillstream:")
    assert "@postgres:5432/fillstream" in spec["environment"]["FILLSTREAM_DSN"]


def test_compose_sim_profile_is_keyless_and_consistent() -> None:
    compose = _compose()
    command = compose["services"]["sim"]["command"]
    assert command[0] == "sim"
    sim_config, _ = parse_sim_args(command[1:])  # the simulator's own argument parser
    assert (sim_config.host, sim_config.port) == ("0.0.0.0", 8000)
    seed = int(command[command.index("--seed") + 1])
    accounts = command[command.index("--accounts") + 1].split(",")
    config = tomllib.loads((DEPLOY / "compose" / "fillstream.sim.toml").read_text())
    env = compose["services"]["fillstream-sim"]["environment"]
    port = command[command.index("--port") + 1]
    assert [a["name"] for a in config["accounts"]] == accounts
    for account in config["accounts"]:
        expected = make_account(seed, account["name"])
        assert env[account["api_key_env"]] == expected.api_key
        assert env[account["api_secret_env"]] == expected.api_secret
        assert account["rest_url"] == f"http://sim:{port}"
        assert account["ws_url"] == f"ws://sim:{port}"


# ------------------------------------------------------------------------------------- Kubernetes


def _k8s(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return data


CORE_MANIFESTS = [
    "namespace.yaml",
    "secret.yaml",
    "configmap.yaml",
    "deployment.yaml",
    "pdb.yaml",
    "service.yaml",
]


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_k8s_manifests_match_the_kubernetes_schemas(version: str) -> None:
    files = [K8S / name for name in CORE_MANIFESTS]
    done = run(BIN / "kubernetes-validate", "--strict", "-k", version, *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(files), done.stdout + done.stderr


def test_k8s_kustomization_renders(tmp_path: Path) -> None:
    """``kubectl kustomize`` (offline) renders the set, and the result is schema-valid."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:  # not part of the project's set-up; the image of its machines has it
        pytest.skip("kubectl is not installed")
    done = run(kubectl, "kustomize", K8S)
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {
        "trading"
    }
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all([d for d in documents if d["kind"] != "ServiceMonitor"]))
    done = run(BIN / "kubernetes-validate", "--strict", rendered)
    assert done.returncode == 0, done.stdout + done.stderr


def test_k8s_kustomization_lists_every_manifest() -> None:
    kustomization = _k8s("kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_k8s_sidecar_contract(tmp_path: Path) -> None:
    deployment = _k8s("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["initContainers"] if c["name"] == "fillstream")
    assert sidecar["restartPolicy"] == "Always", "a native sidecar"
    assert [c["name"] for c in pod["containers"]] == ["trading-app"]
    assert sidecar["args"] == ["run", "--config", "/etc/fillstream/fillstream.toml"]
    port = next(p for p in sidecar["ports"] if p["name"] == "metrics")["containerPort"]
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["resources"]["requests"] and sidecar["resources"]["limits"]["memory"]
    assert sidecar["securityContext"]["runAsUser"] == 10001
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)

    # The config the sidecar mounts loads, listens on the probed port, and shuts down in time.
    configmap = _k8s("configmap.yaml")
    config = _load(configmap["data"]["fillstream.toml"], tmp_path, {})
    assert config.http.port == port and config.http.host == "0.0.0.0"
    assert pod["terminationGracePeriodSeconds"] > config.service.shutdown_deadline_s
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert volumes["fillstream-config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert mounts["fillstream-config"] == "/etc/fillstream"

    # Every secret key the pod uses exists; the key files are where the config reads them.
    secret = _k8s("secret.yaml")
    secret_volume = volumes["fillstream-credentials"]["secret"]
    assert secret_volume["secretName"] == secret["metadata"]["name"]
    for item in secret_volume["items"]:
        assert item["key"] in secret["stringData"]
    raw = tomllib.loads(configmap["data"]["fillstream.toml"])
    files = {f"{mounts['fillstream-credentials']}/{i['path']}" for i in secret_volume["items"]}
    for account in raw["accounts"]:
        assert {account["api_key_file"], account["api_secret_file"]} <= files
    for env in sidecar["env"]:
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert raw["database"]["dsn_env"] in {e["name"] for e in sidecar["env"]}


def test_k8s_two_replicas_share_the_accounts(tmp_path: Path) -> None:
    """Two pods, spread over nodes, one always up, sharing the accounts through leases."""
    deployment = _k8s("deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod_labels = spec["template"]["metadata"]["labels"]
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    pdb = _k8s("pdb.yaml")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    config = _load(_k8s("configmap.yaml")["data"]["fillstream.toml"], tmp_path, {})
    assert config.replicas.enabled
    # A pod that cannot renew stands down before its lease can expire, within the grace period.
    assert config.replicas.stop_margin_s < config.replicas.lease_ttl_s


def test_k8s_service_and_servicemonitor_select_the_sidecar() -> None:
    pod_labels = _k8s("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    service = _k8s("service.yaml")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    monitor = _k8s("servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    # The alert rules select job="fillstream": the ServiceMonitor's jobLabel yields exactly that.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "fillstream"
