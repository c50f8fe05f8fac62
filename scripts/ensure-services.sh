#!/usr/bin/env bash
# Start PostgreSQL and RabbitMQ when they are not answering on their default ports (the machine's own
# service commands), then wait until both accept connections.
set -u

port_open() { timeout 1 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }

if ! port_open 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! port_open 5672; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
fi
for _ in $(seq 1 90); do
  if port_open 5432 && port_open 5672; then exit 0; fi
  sleep 1
done
echo "PostgreSQL (5432) or RabbitMQ (5672) did not come up" >&2
exit 1
