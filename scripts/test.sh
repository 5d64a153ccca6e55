#!/usr/bin/env bash
# What "make test" runs once everything is built: starts the registry and
# the launcher that the suite needs, on loopback, runs t/ with the project's
# runner (or with the real Test::Nginx when TEST_NGINX_LIB names its lib/
# directory), then runs the demo as the examples' end-to-end check, and
# stops everything it started.
#
#   TEST_NGINX_LIB=/path/to/test-nginx/lib make test
#   TEST_FILES="t/010-route.t" make test        # a part of the suite
#   TEST_NGINX_USE_VALGRIND=1 make test         # nginx under memcheck
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

export TEST_NGINX_REDIS_PORT=${TEST_NGINX_REDIS_PORT:-6390}
export TEST_NGINX_SERVER_PORT=${TEST_NGINX_SERVER_PORT:-1984}
export TEST_NGINX_LOAD_MODULES=$top/build/ngx_http_container_module.so
export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}

run=$(mktemp -d /tmp/ngxc-test.XXXXXX)
export TEST_NGINX_LAUNCHER_LOG=$run/launcher.log
launcher_pid=

stop() {
    status=$?
    # launchers that tests started themselves (t/097-launcher-restart.t)
    for f in "$run"/*.orphan.pid; do
        [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
    done
    if [ -n "$launcher_pid" ] && kill -0 "$launcher_pid" 2>/dev/null; then
        kill -TERM "$launcher_pid"
        for _ in $(seq 1 100); do
            kill -0 "$launcher_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$launcher_pid" 2>/dev/null || true
    fi
    if [ -f "$run/redis.pid" ]; then
        redis_pid=$(cat "$run/redis.pid")
        kill "$redis_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if [ "$status" -ne 0 ]; then
        echo "--- the launcher's log, last lines ($run/launcher.log):"
        tail -n 40 "$run/launcher.log" 2>/dev/null || true
    else
        rm -rf "$run"
    fi
    exit "$status"
}
trap stop EXIT INT TERM

if redis-cli -p "$TEST_NGINX_REDIS_PORT" ping >/dev/null 2>&1; then
    echo "error: port $TEST_NGINX_REDIS_PORT is taken; set TEST_NGINX_REDIS_PORT"
    exit 1
fi

redis-server --port "$TEST_NGINX_REDIS_PORT" --bind 127.0.0.1 \
    --save '' --appendonly no --daemonize yes --dir "$run" \
    --pidfile "$run/redis.pid" --logfile "$run/redis.log"

for _ in $(seq 1 50); do
    redis-cli -p "$TEST_NGINX_REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$TEST_NGINX_REDIS_PORT" ping >/dev/null
kill -0 "$(cat "$run/redis.pid")"

build/ngx-container-launcher -c t/launcher.json \
    -r "127.0.0.1:$TEST_NGINX_REDIS_PORT" >"$run/launcher.log" 2>&1 &
launcher_pid=$!

if [ -n "${TEST_NGINX_LIB:-}" ]; then
    export PERL5LIB=$TEST_NGINX_LIB${PERL5LIB:+:$PERL5LIB}
else
    export PERL5LIB=$top/t/lib${PERL5LIB:+:$PERL5LIB}
fi

# shellcheck disable=SC2086
prove -r ${TEST_FILES:-t/}

if [ -z "${TEST_FILES:-}" ]; then
    scripts/demo.sh
fi
