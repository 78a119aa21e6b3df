#!/usr/bin/env bash
# Start the local servers the integration tests talk to (PostgreSQL, Redis, RabbitMQ) when one is installed but
# stopped. A server that is not installed is left alone: its tests skip and say why.
set -uo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
    local port=$1
    for _ in $(seq 1 60); do
        listening "$port" && return 0
        sleep 0.5
    done
    echo "start_services: nothing is listening on port $port yet; its tests will skip" >&2
}

if ! listening 5432 && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start && wait_for 5432
fi
if ! listening 6379 && command -v redis-server >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /tmp --logfile /tmp/redis-ci.log && wait_for 6379
fi
if ! listening 5672 && command -v rabbitmq-server >/dev/null 2>&1; then
    rabbitmq-server -detached && wait_for 5672
fi
exit 0
