"""Static checks of the container files (Dockerfile, .dockerignore, deploy/compose.yaml,
deploy/prometheus.yml) that need no Docker engine. hadolint is run by hand (deploy/README.md)."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.ops.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
DOCKERIGNORE = ROOT / ".dockerignore"

SETTING_FIELDS = {f.name for f in fields(Settings)}
SECRET_WORDS = ("keyring", "master_key", "master.key", "secret", ".key")
EXACT_PYTHON_TAG = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = f"{pending} {stripped}" if pending else stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def _env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in steps:
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return env


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith("pseudostream")
    }


# -- Dockerfile -----------------------------------------------------------------------------


def test_every_base_image_is_python_311_slim_bookworm_pinned_to_an_exact_patch_tag() -> None:
    bases = [rest.split()[0] for word, rest in _instructions() if word == "FROM"]
    assert len(bases) == 2, "multi-stage: builder + runtime"
    for base in bases:
        assert EXACT_PYTHON_TAG.match(base), f"not pinned to an exact tag or digest: {base}"
    assert len(set(bases)) == 1, "both stages on the same base"


def test_builder_builds_a_wheel_and_runtime_installs_it_into_a_venv_offline() -> None:
    steps = _instructions()
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "pip wheel" in runs
    final_runs = " ".join(rest for word, rest in _final_stage() if word == "RUN")
    assert "python -m venv" in final_runs
    assert "--no-index" in final_runs


def test_runtime_runs_as_a_fixed_non_root_uid() -> None:
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER should be a fixed numeric UID, got {uid!r}"
    assert int(uid) >= 1000


def test_healthcheck_fetches_the_worker_health_url_with_python_not_curl() -> None:
    checks = [rest for word, rest in _final_stage() if word == "HEALTHCHECK"]
    assert len(checks) == 1
    command = checks[0][checks[0].index("CMD") + 3 :].strip()
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "curl" not in command and "wget" not in command
    assert "http://127.0.0.1:%s/health" in argv[2]
    assert "PSEUDOSTREAM_WEB_PORT" in argv[2]
    assert int(_env_of(_final_stage())["PSEUDOSTREAM_WEB_PORT"]) > 0


def test_entrypoint_is_pseudostream_and_the_default_command_is_worker() -> None:
    final = dict(_final_stage())
    assert json.loads(final["ENTRYPOINT"]) == ["pseudostream"]
    assert json.loads(final["CMD"]) == ["worker"]


def test_no_keyring_or_master_key_is_copied_into_the_image() -> None:
    for word, rest in _instructions():
        if word in ("COPY", "ADD"):
            sources = [part for part in rest.split()[:-1] if not part.startswith("--")]
            for source in sources:
                assert not any(w in source.lower() for w in SECRET_WORDS), f"{word} {rest}"


def test_image_points_at_mounted_secret_files_and_holds_no_key_value() -> None:
    env = _env_of(_final_stage())
    assert env["PSEUDOSTREAM_KEYRING"] == "/run/secrets/keyring"
    assert env["PSEUDOSTREAM_MASTER_KEY_FILE"] == "/run/secrets/master_key"
    assert "PSEUDOSTREAM_MASTER_KEY" not in env
    assert not [rest for word, rest in _instructions() if word == "ARG" and "KEY" in rest.upper()]


def test_image_env_names_are_settings_fields() -> None:
    for name in _env_of(_final_stage()):
        if name.startswith(ENV_PREFIX):
            assert name[len(ENV_PREFIX) :].lower() in SETTING_FIELDS, name


def test_dockerignore_keeps_keyrings_master_keys_and_deploy_out_of_the_context() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: ignore everything first"
    assert "!deploy/" not in lines
    assert "**/*.keyring" in lines
    assert "**/master_key*" in lines


# -- compose --------------------------------------------------------------------------------


def test_compose_runs_two_workers_in_one_consumer_group(compose: dict[str, Any]) -> None:
    workers = _workers(compose)
    assert sorted(workers) == ["worker-1", "worker-2"]
    app_ids = {svc["environment"]["PSEUDOSTREAM_APP_ID"] for svc in workers.values()}
    assert len(app_ids) == 1


def test_kafka_runs_in_kraft_mode_without_zookeeper(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert not [name for name in services if "zookeeper" in name.lower()]
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"])
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert not [key for key in env if "ZOOKEEPER" in key.upper()]
    for svc in services.values():
        assert "zookeeper" not in str(svc.get("image", "")).lower()


def test_workers_get_keyring_and_master_key_as_mounted_secrets(compose: dict[str, Any]) -> None:
    for name, svc in _workers(compose).items():
        env = svc["environment"]
        assert set(svc["secrets"]) == {"keyring", "master_key"}, name
        assert env["PSEUDOSTREAM_KEYRING"] == "/run/secrets/keyring"
        assert env["PSEUDOSTREAM_MASTER_KEY_FILE"] == "/run/secrets/master_key"
        assert "PSEUDOSTREAM_MASTER_KEY" not in env, "the key itself never in the environment"
        assert not svc.get("volumes"), f"{name}: secrets are not bind-mounted volumes"
    for secret in compose["secrets"].values():
        assert set(secret) == {"file"}, "secrets are host files, not inline values"


def test_worker_env_names_are_settings_fields_and_load(compose: dict[str, Any]) -> None:
    for name, svc in _workers(compose).items():
        env = {k: str(v) for k, v in svc["environment"].items()}
        for key in env:
            assert key.startswith(ENV_PREFIX), f"{name}: {key}"
            assert key[len(ENV_PREFIX) :].lower() in SETTING_FIELDS, f"{name}: {key}"
        settings = Settings.load(environ=env)  # validates every value
        assert settings.web_port > 0, "the health check and Prometheus need the web port"


def test_workers_wait_for_a_healthy_kafka_and_have_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert "healthcheck" in services["kafka"]
    for name, svc in _workers(compose).items():
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert "/health" in " ".join(svc["healthcheck"]["test"]), name
    for dependency in services["prometheus"]["depends_on"].values():
        assert dependency["condition"] in ("service_started", "service_healthy")


def test_prometheus_scrapes_both_workers_on_their_web_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, svc in _workers(compose).items():
        assert f"{name}:{svc['environment']['PSEUDOSTREAM_WEB_PORT']}" in targets
    mounts = compose["services"]["prometheus"]["volumes"]
    assert any(m.startswith("./prometheus.yml:") for m in mounts)
