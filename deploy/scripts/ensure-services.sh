#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ answer on 127.0.0.1 (used by `make test`, `make demo` and CI).
# Starts them when installed but stopped; installs them with apt-get when missing and we are root.
# Skip everything with PARLEY_SKIP_SERVICES=1 (e.g. when they run elsewhere, as in docker compose).
set -euo pipefail
[ "${PARLEY_SKIP_SERVICES:-0}" = "1" ] && exit 0
need_pg="${1:-all}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }
wait_port() { for _ in $(seq 1 "${2:-60}"); do port_open "$1" && return 0; sleep 1; done; return 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }
apt_install() {
  echo "installing $* with apt-get" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  if ! command -v rabbitmq-server >/dev/null && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    echo "starting RabbitMQ with docker compose" >&2
    docker compose up -d rabbitmq && wait_port 5672 120 && return 0
  fi
  if ! command -v rabbitmq-server >/dev/null; then
    apt_install rabbitmq-server || { echo "RabbitMQ is missing and cannot be installed here" >&2; return 1; }
  fi
  echo "starting RabbitMQ" >&2
  as_root rabbitmq-server -detached || true
  wait_port 5672 90 || { echo "RabbitMQ did not come up on 127.0.0.1:5672" >&2; return 1; }
  command -v rabbitmqctl >/dev/null && as_root rabbitmqctl -q await_startup >/dev/null 2>&1 || true
}

ensure_postgres() {
  port_open 5432 && return 0
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql || { echo "PostgreSQL is missing and cannot be installed here" >&2; return 1; }
  fi
  echo "starting PostgreSQL" >&2
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 60 || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; return 1; }
}

ensure_rabbitmq
[ "$need_pg" = "rabbitmq" ] || ensure_postgres
# Tests connect as postgres without a password (trust on 127.0.0.1, as on the CI machines).
if [ "$need_pg" != "rabbitmq" ] && ! psql -h 127.0.0.1 -U postgres -tAc 'select 1' >/dev/null 2>&1; then
  echo "note: PostgreSQL does not accept user postgres without a password on 127.0.0.1; set PARLEY_TEST_PG" >&2
fi
exit 0
