"""The shape of compose.yaml, checked with a YAML parser where no Docker engine can validate it.

Compose resolves anchors and merge keys as YAML does, so PyYAML's view is the one Compose
starts from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.infra.deploy import compose_nodes

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
NODES = ("nats-1", "nats-2", "nats-3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml, parsed."""
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    """The services of compose.yaml by name."""
    return compose["services"]


def test_three_nats_nodes_run_the_configuration_deploy_init_writes(
    services: dict[str, Any],
) -> None:
    # The cluster, its routes and users are in the generated files; the security tests run
    # them (tests/security/test_deployment_auth.py).
    assert [node.name for node in compose_nodes()] == list(NODES)
    for node in NODES:
        service = services[node]
        assert service["image"].startswith("nats:2.")
        assert service["command"] == ["--config", "/etc/nats/nats-server.conf"]
        assert service["volumes"] == [
            f"{node}-data:/data",
            f"./deploy/{node}.conf:/etc/nats/nats-server.conf:ro",
        ]
        assert "/healthz" in " ".join(service["healthcheck"]["test"])


def test_every_nats_store_is_a_named_volume(compose: dict[str, Any]) -> None:
    assert {f"{node}-data" for node in NODES} <= set(compose["volumes"])


def test_services_reach_all_three_nodes_with_three_replicas(services: dict[str, Any]) -> None:
    url = "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"
    for name in ("stream", "intake", "projector", "api"):
        environment = services[name]["environment"]
        assert {k: environment[k] for k in ("LEDGER_NATS_URL", "LEDGER_REPLICAS")} == {
            "LEDGER_NATS_URL": url,
            "LEDGER_REPLICAS": "3",
        }
    for name in ("intake", "projector"):
        assert services[name]["command"][:2] == ["--nats-url", url]


def test_stream_is_created_before_anything_writes(services: dict[str, Any]) -> None:
    assert services["stream"]["command"] == ["status"]
    assert set(services["stream"]["depends_on"]) == set(NODES)
    for name in ("intake", "projector", "api"):
        assert services[name]["depends_on"] == {
            "stream": {"condition": "service_completed_successfully"}
        }


@pytest.mark.parametrize(
    ("name", "entrypoint", "replicas"),
    [
        ("intake", ["python", "-m", "services.intake"], 2),
        ("projector", ["python", "-m", "services.projector"], 1),
        ("api", None, 2),
    ],
)
def test_ledger_services_run_from_the_one_image_with_health_checks(
    services: dict[str, Any], name: str, entrypoint: list[str] | None, replicas: int
) -> None:
    service = services[name]
    # The image's user takes the uid of the credentials files' owner (Dockerfile).
    assert service["build"] == {"context": ".", "args": {"LEDGER_UID": "${LEDGER_UID:-10001}"}}
    assert service.get("entrypoint") == entrypoint
    assert service.get("deploy", {}).get("replicas", 1) == replicas
    assert service["healthcheck"]["test"][0] == "CMD"


def test_projector_keeps_its_file_on_a_named_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    assert services["projector"]["volumes"] == ["projections:/data"]
    assert "projections" in compose["volumes"]


def test_api_replicas_build_their_own_projection_and_publish_a_port(
    services: dict[str, Any],
) -> None:
    api = services["api"]
    # Each replica's projection file lives in its own container: the one shared volume is the
    # notary's tree, which they read to serve proofs, mounted beside the data, not on it.
    assert api["volumes"] == ["tree:/data/tree"]
    assert services["notary"]["volumes"] == ["tree:/data/tree"]
    assert api["command"] == ["up", "--host", "0.0.0.0", "--port", "8000", "--public"]
    # Replicas that shared a durable consumer would split the events between their files.
    assert api["environment"]["LEDGER_PROJECTOR_DURABLE"] == "reader-{hostname}"
    # One host port per replica.
    assert api["ports"] == ["8000-8001:8000"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_dockerfile_installs_the_project_with_ledger_as_entrypoint() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    assert [line for line in dockerfile if line.startswith("FROM")] == ["FROM python:3.11-slim"]
    assert any(line.startswith("RUN pip install .") for line in dockerfile)
    assert 'ENTRYPOINT ["ledger"]' in dockerfile
    assert "ARG LEDGER_UID=10001" in dockerfile
    assert "USER ledger" in dockerfile
