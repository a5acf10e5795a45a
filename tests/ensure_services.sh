#!/usr/bin/env bash
# Make sure the services the integration tests talk to are up: PostgreSQL and RabbitMQ.
# Starts them when installed but stopped, installs them (Debian packages) when missing.
# Also the tools some tests run: promtool (tests/ensure_promtool.sh).
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {  # port name seconds
  for _ in $(seq "$3"); do listening "$1" && { echo "$2 is up on :$1"; return 0; }; sleep 1; done
  echo "$2 did not come up on :$1" >&2; return 1
}
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
}

if ! listening 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for 5432 PostgreSQL 60
  # Local trust authentication for the test database, as on the development machines.
  psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1 \
    || su postgres -c "createdb test" || true
else
  echo "PostgreSQL is up on :5432"
fi

if ! listening 5672; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  rabbitmq-server -detached || true
  wait_for 5672 RabbitMQ 120
else
  echo "RabbitMQ is up on :5672"
fi

bash "$(dirname "$0")/ensure_promtool.sh"
