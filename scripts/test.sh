#!/usr/bin/env bash
# The whole test suite: every test with the state in memory, then the
# integration suite again with the state in Redis (the shared engine of
# --redis-url), on the same test binary.
#
# The Redis pass uses TQ_TEST_REDIS_URL when it is set (.ci/run starts one),
# else starts its own redis-server on a Unix socket and stops it after. Without
# redis-server it is skipped with a message, except under CI=true, where that
# fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace "$@"

redis_pid=""
redis_dir=""
cleanup() {
    if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
    if [ -n "$redis_dir" ]; then rm -rf "$redis_dir"; fi
}
trap cleanup EXIT

if [ -z "${TQ_TEST_REDIS_URL:-}" ]; then
    if ! command -v redis-server >/dev/null; then
        if [ "${CI:-}" = "true" ]; then
            echo "redis-server is required under CI" >&2
            exit 1
        fi
        echo "SKIPPED the Redis pass: no redis-server here (apt-get install redis-server)" >&2
        exit 0
    fi
    redis_dir=$(mktemp -d)
    redis-server --port 0 --unixsocket "$redis_dir/redis.sock" --save '' --appendonly no \
        --dir "$redis_dir" >/dev/null 2>&1 &
    redis_pid=$!
    for _ in $(seq 1 100); do
        [ -S "$redis_dir/redis.sock" ] && break
        sleep 0.05
    done
    [ -S "$redis_dir/redis.sock" ] || { echo "redis-server did not start" >&2; exit 1; }
    export TQ_TEST_REDIS_URL="redis+unix://$redis_dir/redis.sock"
fi

echo "== the integration suite again, with the state in Redis"
TQ_TEST_ENGINE=redis cargo test --test integration "$@"
