#!/usr/bin/env bash
# Make sure a Redis server answers at 127.0.0.1:6379 (the Celery broker of the distributed run,
# tests/e2e/test_distributed.py). Idempotent: returns at once when one already answers. Otherwise
# it starts one that keeps nothing on disk, installing redis-server with apt-get when missing
# (as root).
set -euo pipefail

answers() {
  if command -v redis-cli >/dev/null; then
    [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]
  else
    (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c5 <&3 | grep -q PONG) \
      2>/dev/null
  fi
}

answers && exit 0
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "ensure_redis: no Redis at 127.0.0.1:6379 and none installed (needs root and apt-get)" >&2
    exit 1
  fi
  echo "ensure_redis: installing redis-server with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
  answers && exit 0   # the package may start its own service
fi
mkdir -p /var/tmp/review-ingest-redis
redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
  --dir /var/tmp/review-ingest-redis --logfile /var/tmp/review-ingest-redis/redis.log
for _ in $(seq 1 60); do
  answers && exit 0
  sleep 0.5
done
echo "ensure_redis: redis-server did not answer at 127.0.0.1:6379 (log: /var/tmp/review-ingest-redis/redis.log)" >&2
exit 1
