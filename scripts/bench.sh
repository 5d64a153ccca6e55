#!/usr/bin/env bash
# The warm path against plain nginx, measured in the same run with wrk:
#
#   plain     proxy_pass to an upstream with keepalive
#   gateway   "container" + container_balancer with keepalive, to the same
#             backend, the ID's address cached in the worker (the warm path)
#
# Both go to one backend nginx answering a small body. The registry record
# is written the way a launcher would (README.md, "The registry protocol"), so no
# container process is involved: the figure is the module's own cost.
# Rounds alternate plain and gateway; the ratio of the medians is printed.
#
# Then a 1 GiB answer goes through each, and the worker's peak resident
# memory is sampled during the transfer: it must stay flat, not grow with
# the size of the answer.
#
#   ROUNDS=5 DURATION=10s CONNECTIONS=50 STREAM_MB=1024 scripts/bench.sh
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
connections=${CONNECTIONS:-50}
redis_port=${BENCH_REDIS_PORT:-6392}
stream_mb=${STREAM_MB:-1024}

run=$(mktemp -d /tmp/ngxc-bench.XXXXXX)
chmod 755 "$run"
mkdir -p "$run/logs" "$run/modules"
ln -s "$top/build/ngx_http_container_module.so" "$run/modules/"

stop() {
    for f in "$run/logs/nginx.pid" "$run/redis.pid"; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.3
    rm -rf "$run"
}
trap stop EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize yes --dir "$run" \
    --pidfile "$run/redis.pid" --logfile "$run/redis.log"

for _ in $(seq 1 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done

# the launcher's part: the instance of class "bench", ID "b1", is ready
redis-cli -p "$redis_port" hset 'ngxc:inst:{bench:b1}' state ready \
    gen 1 addr 127.0.0.1:18091 owner bench >/dev/null

cat >"$run/nginx.conf" <<CONF
load_module modules/ngx_http_container_module.so;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $run/body;
    proxy_temp_path $run/proxy;
    container_registry 127.0.0.1:$redis_port;

    upstream plain {
        server 127.0.0.1:18091;
        keepalive 64;
    }

    upstream containers {
        container_balancer;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:18091;
        keepalive_requests 100000;
        location / { return 200 "hello from the backend\n"; }
        location ~ /big\$ { alias $run/big; }
    }

    server {
        listen 127.0.0.1:18090;
        keepalive_requests 100000;
        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /plain/ {
            proxy_pass http://plain;
        }

        location /gateway/ {
            container bench b1;
            proxy_pass http://containers;
        }
    }
}
CONF

# a sparse file: the backend sends it from the page cache, cheaply
truncate -s "${stream_mb}M" "$run/big"

nginx -p "$run" -c "$run/nginx.conf"
sleep 0.5

for path in plain gateway; do
    out=$(curl -s "http://127.0.0.1:18090/$path/x")
    [ "$out" = "hello from the backend" ] || {
        echo "error: /$path/ answered \"$out\""; cat "$run/logs/error.log"
        exit 1; }
done

rps() {
    wrk -t1 -c"$connections" -d"$duration" "http://127.0.0.1:18090/$1/x" \
        | awk '/^Requests\/sec/ { print $2 }'
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "warm path: $rounds rounds of wrk -c$connections -d$duration each"
plain=()
gateway=()
for i in $(seq 1 "$rounds"); do
    p=$(rps plain)
    g=$(rps gateway)
    plain+=("$p")
    gateway+=("$g")
    printf '  round %d: plain %s req/s, gateway %s req/s\n' "$i" "$p" "$g"
done

pm=$(printf '%s\n' "${plain[@]}" | median)
gm=$(printf '%s\n' "${gateway[@]}" | median)
awk -v p="$pm" -v g="$gm" 'BEGIN {
    printf "median: plain %.0f req/s, gateway %.0f req/s, ratio %.3f\n",
           p, g, g / p }'

# the worker's resident memory, sampled while the answer streams
stream() {
    local worker peak rss kb start
    worker=$(pgrep -P "$(cat "$run/logs/nginx.pid")" | head -n 1)
    start=$(awk '/^VmRSS/ { print $2 }' "/proc/$worker/status")
    curl -s -o /dev/null -w '%{size_download} %{time_total}\n' \
        "http://127.0.0.1:18090/$1/big" >"$run/stream.out" &
    peak=$start
    while kill -0 $! 2>/dev/null; do
        rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$worker/status")
        [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.05
    done
    read -r kb _ <"$run/stream.out"
    [ "$kb" -eq $((stream_mb * 1048576)) ] || {
        echo "error: /$1/big sent $kb bytes"; exit 1; }
    awk -v p="$1" -v s="$start" -v m="$peak" -v t="$(cut -d' ' -f2 \
        "$run/stream.out")" -v mb="$stream_mb" 'BEGIN {
        printf "  %-8s %d MiB in %.2f s, worker RSS %d KiB -> peak %d KiB " \
               "(+%d KiB)\n", p, mb, t, s, m, m - s }'
}

echo "stream: $stream_mb MiB answer, worker memory during the transfer"
stream plain
stream gateway

if grep -q '\[\(error\|crit\|alert\)\]' "$run/logs/error.log"; then
    echo "errors in the gateway's log:"; grep '\[\(error\|crit\|alert\)\]' \
        "$run/logs/error.log" | head
    exit 1
fi
