"""The deployment files: Kubernetes manifests valid against the API's schemas, and every
file consistent with the code and with the others (names, ports, paths, settings).

Offline: kubernetes-validate ships the API's JSON schemas (strict: no unknown field).
What no schema checks is checked here: the probes' paths are routes of the authority,
the selectors select the pods, the settings load, the issuer is the URL served.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from authority.cli import build_parser
from authority.endpoints.health import routes as health_routes
from authority.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
#: The oldest Kubernetes release the manifests are for, and the newest schemas shipped.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())


@pytest.fixture(autouse=True)
def _no_settings_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUTHORITY_"):
            monkeypatch.delenv(name)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return data


def _resources() -> dict[str, dict[str, Any]]:
    """The kustomization's resources by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for name in _kustomization()["resources"]:
        for doc in _documents(KUBERNETES / name):
            assert doc["kind"] not in found, doc["kind"]
            found[doc["kind"]] = doc
    return found


def _example_secret() -> dict[str, Any]:
    (secret,) = _documents(KUBERNETES / "secret.example.yaml")
    return secret


def _pod(kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = _resources()[kind]["spec"]["template"]["spec"]
    return spec


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _dockerfile_env(name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", DOCKERFILE.read_text())
    assert match, name
    return match.group(1)


# --- Kubernetes: schemas ------------------------------------------------------------------
def test_every_manifest_is_listed_in_the_kustomization() -> None:
    listed = set(_kustomization()["resources"])
    present = {
        p.name
        for p in KUBERNETES.glob("*.yaml")
        if p.name != "kustomization.yaml" and not p.name.endswith(".example.yaml")
    }
    assert listed == present


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    documents = [*_resources().values(), _example_secret()]
    for doc in documents:
        kubernetes_validate.validate(doc, version, strict=True)
    assert {doc["kind"] for doc in documents} == {
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }


def test_the_validator_refuses_what_the_api_would() -> None:
    deployment = _resources()["Deployment"]
    bad = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)
    unknown = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSIONS[0], strict=True)


def test_the_image_tag_is_the_packages_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _kustomization()["images"] == [{"name": "authority", "newTag": version}]


# --- Kubernetes: what the schemas do not see ------------------------------------------------
def test_the_probes_are_the_authoritys_health_routes() -> None:
    paths = {route.path for route in health_routes}
    (server,) = _pod("Deployment")["containers"]
    ports = {port["name"]: port["containerPort"] for port in server["ports"]}
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert server[probe]["httpGet"]["path"] in paths
        assert server[probe]["httpGet"]["port"] in ports


def test_the_selectors_select_the_servers_pods() -> None:
    resources = _resources()
    deployment = resources["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        resources["Service"]["spec"]["selector"],
        resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    job_labels = resources["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not resources["Service"]["spec"]["selector"].items() <= job_labels.items()


def test_the_service_reaches_the_servers_port() -> None:
    (server,) = _pod("Deployment")["containers"]
    names = {port["name"] for port in server["ports"]}
    for port in _resources()["Service"]["spec"]["ports"]:
        assert port["targetPort"] in names


def test_one_job_migrates_and_the_servers_wait_for_it() -> None:
    (migrate,) = _pod("Job")["containers"]
    assert migrate["command"] == ["authority", "migrate"]
    pod = _pod("Deployment")
    (server,) = pod["containers"]
    # Not the image's CMD, which migrates before serving.
    assert server["command"] == ["authority", "serve"]
    (wait,) = pod["initContainers"]
    assert wait["command"][:1] == ["authority"]
    args = build_parser().parse_args(wait["command"][1:])
    assert (args.command, args.check, args.wait > 0) == ("migrate", True, True)


def test_the_config_map_loads_and_the_server_does_not_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _resources()["ConfigMap"]["data"]["authority.toml"]
    path = tmp_path / "authority.toml"
    path.write_text(config)
    monkeypatch.setenv("AUTHORITY_CONFIG_FILE", str(path))
    monkeypatch.setenv("AUTHORITY_DATABASE_URL", "postgresql://authority@db/authority")
    monkeypatch.setenv("AUTHORITY_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("AUTHORITY_SECRET_KEY", "k" * 32)
    settings = load_settings()
    assert settings.issuer.startswith("https://")
    assert settings.should_auto_migrate is False
    (server,) = _pod("Deployment")["containers"]
    assert [port["containerPort"] for port in server["ports"]] == [settings.port]
    assert str(settings.data_dir) == _dockerfile_env("AUTHORITY_DATA_DIR")
    mounts = {mount["name"]: mount["mountPath"] for mount in server["volumeMounts"]}
    assert mounts["data"] == str(settings.data_dir)


def test_every_container_is_configured_the_same_way() -> None:
    config_map = _resources()["ConfigMap"]
    secret = _example_secret()
    known = {f"AUTHORITY_{name.upper()}" for name in Settings.model_fields}
    for kind in ("Deployment", "Job"):
        pod = _pod(kind)
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        uid = pod["securityContext"]["runAsUser"]
        assert f"--uid {uid}" in DOCKERFILE.read_text()
        for container in _containers(pod):
            env = {item["name"]: item for item in container["env"]}
            config_file = Path(env.pop("AUTHORITY_CONFIG_FILE")["value"])
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volume = volumes[mounts[str(config_file.parent)]]
            assert volume["configMap"]["name"] == config_map["metadata"]["name"]
            assert config_file.name in config_map["data"]
            for name, item in env.items():
                assert name in known, name
                ref = item["valueFrom"]["secretKeyRef"]  # the rest comes from the Secret
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in secret["stringData"] or ref.get("optional"), ref["key"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_example_secret_cannot_be_deployed_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    (server,) = _pod("Deployment")["containers"]
    values = _example_secret()["stringData"]
    for item in server["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["key"] in values:
            monkeypatch.setenv(item["name"], values[ref["key"]])
    monkeypatch.chdir(ROOT / "deploy")  # no config file
    with pytest.raises(ConfigError) as refused:
        load_settings()
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        assert f"AUTHORITY_{name}:" in str(refused.value)


# --- docker compose -----------------------------------------------------------------------
def test_the_compose_issuer_is_the_url_it_publishes() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"]["authority"]
    issuer = service["environment"]["AUTHORITY_ISSUER"]
    match = re.fullmatch(r"\$\{AUTHORITY_ISSUER:-(.+)\}", issuer)
    assert match, issuer
    default = match.group(1)
    (published,) = service["ports"]
    address, host_port, container_port = published.split(":")
    # http is for loopback only: published on loopback, its issuer a loopback URL.
    assert address == "127.0.0.1"
    assert default == f"http://localhost:{host_port}"
    assert container_port == _dockerfile_env("AUTHORITY_PORT")
    assert Settings(issuer=default).issuer == default


def test_compose_migrates_once_before_serving() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["migrate"]["command"] == ["authority", "migrate"]
    assert services["authority"]["command"] == ["authority", "serve"]
    assert services["authority"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    known = {f"AUTHORITY_{name.upper()}" for name in Settings.model_fields}
    for name in ("migrate", "authority"):
        environment = services[name]["environment"]
        assert set(environment) <= known, name
        assert environment["AUTHORITY_AUTO_MIGRATE"] == "false"


def test_the_dockerfile_health_check_is_a_route() -> None:
    paths = {route.path for route in health_routes}
    (checked,) = re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", DOCKERFILE.read_text())
    assert checked in paths
