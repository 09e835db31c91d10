"""The deployment files agree with the code (no Docker engine here, so this is what can be checked statically)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import yaml

from agent_service.settings import AgentSettings
from gateway.settings import GatewaySettings
from parley_shared.topology import shipped_definitions
from tests.shared.test_configuration_docs import env_names

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_rabbitmq_with_ui_and_definitions_postgres_with_both_databases_and_both_services() -> None:
    services = compose()["services"]
    assert set(services) == {"rabbitmq", "postgres", "gateway", "agent-service"}
    rabbit = services["rabbitmq"]
    assert "15672:15672" in rabbit["ports"] and "healthcheck" in rabbit
    mounts = {m.split(":")[1]: m.split(":")[0] for m in rabbit["volumes"] if m.startswith("./")}
    assert (ROOT / mounts["/etc/rabbitmq/definitions.json"]).is_file()
    conf = (ROOT / mounts["/etc/rabbitmq/conf.d/20-parley.conf"]).read_text()
    assert "load_definitions = /etc/rabbitmq/definitions.json" in conf
    init_sql = (ROOT / "deploy/postgres/init-databases.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    users = {u["name"] for u in shipped_definitions()["users"]}
    for name, url_key in (("gateway", "GATEWAY_DATABASE_URL"), ("agent-service", "AGENT_DATABASE_URL")):
        service = services[name]
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        env = service["environment"]
        database = urlparse(env[url_key].replace("${POSTGRES_PASSWORD:-parley}", "x")).path.lstrip("/")
        assert database in created, f"{name} uses a database the init script does not create"
        assert urlparse(env["AMQP_URL"]).username in users, "the AMQP user must come from definitions.json"
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_and_dockerfiles_only_set_real_settings_and_check_health() -> None:
    known = env_names(GatewaySettings) | env_names(AgentSettings)
    for name in ("gateway", "agent-service"):
        unknown = set(compose()["services"][name]["environment"]) - known
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
    for dockerfile in ("deploy/gateway.Dockerfile", "deploy/agent-service.Dockerfile"):
        text = (ROOT / dockerfile).read_text()
        assert "HEALTHCHECK" in text and "/health" in text
        for variable in re.findall(r"ENV ([A-Z_]+=\S+(?: [A-Z_]+=\S+)*)", text):
            for pair in variable.split():
                key = pair.split("=")[0]
                assert key in known or key.startswith(("PYTHON", "PIP_")), f"{dockerfile} sets unknown {key}"


def test_systemd_units_start_the_services() -> None:
    for unit, module in (("parley-gateway.service", "gateway"), ("parley-agent-service.service", "agent_service")):
        text = (ROOT / "deploy/systemd" / unit).read_text()
        assert f"-m {module}\n" in text and "EnvironmentFile=" in text and "KillSignal=SIGTERM" in text
