"""The deployment files agree with the code (no Docker engine here, so this is what can be checked statically)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import yaml

from agent_service.settings import AgentSettings
from gateway.settings import GatewaySettings
from tests.shared.test_configuration_docs import env_names

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def rabbitmq_conf() -> dict[str, str]:
    mounts = {
        m.split(":")[1]: m.split(":")[0] for m in compose()["services"]["rabbitmq"]["volumes"] if m.startswith("./")
    }
    text = (ROOT / mounts["/etc/rabbitmq/conf.d/20-parley.conf"]).read_text()
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


REQUIRED = re.compile(r"\$\{([A-Z_]+):\?[^}]*\}")  # ${NAME:?message}: from .env, no default


def required(value: str) -> str:
    """A compose value with each required variable written ``env-NAME`` (parseable as part of a URL)."""
    return REQUIRED.sub(lambda m: f"env-{m.group(1)}", value)


def test_compose_runs_rabbitmq_postgres_with_both_databases_and_both_services() -> None:
    services = compose()["services"]
    assert set(services) == {"rabbitmq", "postgres", "gateway", "agent-service"}
    assert "healthcheck" in services["rabbitmq"] and "healthcheck" in services["postgres"]
    init_sql = (ROOT / "deploy/postgres/init-databases.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    for name, url_key in (("gateway", "GATEWAY_DATABASE_URL"), ("agent-service", "AGENT_DATABASE_URL")):
        service = services[name]
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        database = urlparse(required(service["environment"][url_key])).path.lstrip("/")
        assert database in created, f"{name} uses a database the init script does not create"
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_publishes_only_the_two_http_ports_and_the_management_ui_on_loopback() -> None:
    published = {}
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            *host, container = str(port).split(":")
            published[(name, int(container))] = host[0] if len(host) == 2 else "0.0.0.0"
    assert published == {
        ("gateway", 8080): "0.0.0.0",
        ("agent-service", 8081): "0.0.0.0",
        ("rabbitmq", 15672): "127.0.0.1",
    }, "AMQP (5672) and PostgreSQL (5432) must not be published; the management UI only on 127.0.0.1"


def test_compose_takes_every_password_from_env_without_a_default() -> None:
    services = compose()["services"]
    rabbit = services["rabbitmq"]["environment"]
    postgres = services["postgres"]["environment"]
    assert required(rabbit["RABBITMQ_DEFAULT_PASS"]) == "env-RABBITMQ_PASSWORD"
    assert required(postgres["POSTGRES_PASSWORD"]) == "env-POSTGRES_PASSWORD"
    for name, url_key in (("gateway", "GATEWAY_DATABASE_URL"), ("agent-service", "AGENT_DATABASE_URL")):
        env = services[name]["environment"]
        amqp, database = urlparse(required(env["AMQP_URL"])), urlparse(required(env[url_key]))
        # The services log in with the very passwords the broker and the database were seeded with.
        assert (amqp.username, amqp.password) == (rabbit["RABBITMQ_DEFAULT_USER"], "env-RABBITMQ_PASSWORD")
        assert (database.username, database.password) == (postgres["POSTGRES_USER"], "env-POSTGRES_PASSWORD")
        assert required(env["ERASURE_KEY"]) == "env-ERASURE_KEY"  # the same key in both services
    text = (ROOT / "docker-compose.yml").read_text()
    with_default = [v for v in re.findall(r"\$\{([A-Z_]+):-", text) if any(s in v for s in ("PASS", "TOKEN", "KEY"))]
    assert with_default == [], f"secrets with a default: {with_default}"


def test_the_broker_user_is_no_administrator_and_limited_to_the_services_vhost() -> None:
    services = compose()["services"]
    rabbit_env = services["rabbitmq"]["environment"]
    conf = rabbitmq_conf()
    tags = {
        key.split(".", 1)[1] for key, value in conf.items() if key.startswith("default_user_tags.") and value == "true"
    }
    assert "administrator" not in tags and conf.get("default_user_tags.administrator") == "false"
    # RabbitMQ seeds no user at all when it has definitions to load: loading them would leave the
    # services without their user (or with one whose password sits in git).
    assert not any("load_definitions" in key for key in conf)
    assert "default_user" not in conf and "default_pass" not in conf, "the user comes from .env"
    vhost = rabbit_env["RABBITMQ_DEFAULT_VHOST"]
    assert vhost not in ("", "/")
    for name in ("gateway", "agent-service"):
        assert urlparse(required(services[name]["environment"]["AMQP_URL"])).path.lstrip("/") == vhost
    definitions = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    assert definitions["users"] == [] and definitions["permissions"] == [], "no password hash in git"
    assert [v["name"] for v in definitions["vhosts"]] == [vhost]
    assert {q["vhost"] for q in definitions["queues"]} == {vhost}


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
