#!/usr/bin/env bash
# What `make demo` runs once the module and the launcher are built: starts,
# in a fresh run directory, Redis (the registry), a second nginx as the
# object store, the launcher and the gateway nginx with the container
# module, then runs the archive job end to end through the gateway:
#
#   1. put sample files in the store
#   2. POST /archive/alice/zip            (cold: alice's container is started)
#   3. check the zip (sha256, unzip -t, contents)
#   4. put a training run's tar in the store
#   5. POST /archive/alice/extract-model  (warm: the same container answers)
#   6. check the model that came back against the original
#   7. GET /counter/bob/hit three times: 1, 2, 3 from one instance
#
# Every check that fails makes it exit non-zero.  Whatever happens (failure,
# Ctrl-C), it stops what it started, by PID, and removes the run directory;
# on failure it keeps the run directory (logs) and prints its path.
#
# Ports: Redis 6391, gateway 8090, store 8091, containers 21000-21999
# (examples/launcher.json).
set -euo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

redis_port=6391
gw=http://127.0.0.1:8090
store=http://127.0.0.1:8091/store
module=$top/build/ngx_http_container_module.so
launcher=$top/build/ngx-container-launcher

run=
launcher_pid=
failed=0
checks=0
declare -a summary=()

if [ -t 1 ]; then
    bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'
else
    bold='' green='' red='' off=''
fi

say()  { printf '%s\n' "$*"; }
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
ok()   { checks=$((checks + 1)); printf '   %sok%s    %s\n' "$green" "$off" "$*"; }
fail() {
    failed=1
    printf '   %sFAIL%s  %s\n' "$red" "$off" "$*" >&2
    exit 1
}

# ---- stopping what we started ----------------------------------------------

alive() {   # a live (not zombie) process
    [ -n "${1:-}" ] && [ -e "/proc/$1" ] &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop_pid() {    # name pid grace_seconds: TERM, wait, then KILL
    local name=$1 pid=$2 grace=$3 i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < grace * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    say "   $name (pid $pid) did not stop in ${grace}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do alive "$pid" || return 0; sleep 0.1; done
}

stop_pidfile() {    # name pidfile grace
    local pid
    [ -s "$2" ] || return 0
    pid=$(head -n1 "$2" 2>/dev/null) || return 0
    [[ $pid =~ ^[0-9]+$ ]] && stop_pid "$1" "$pid" "$3"
}

cleanup() {
    local rc=$? pid children
    set +e
    trap - EXIT INT TERM HUP
    [ -n "$run" ] || exit "$rc"
    [ "$rc" -ne 0 ] && failed=1

    step "stopping"
    stop_pidfile "gateway nginx" "$run/logs/nginx.pid" 10
    stop_pidfile "store nginx" "$run/store/logs/nginx.pid" 10
    if [ -n "$launcher_pid" ]; then
        # the containers are the launcher's children: note them, so that
        # none outlives it
        children=$(ps -o pid= --ppid "$launcher_pid" 2>/dev/null)
        stop_pid "launcher" "$launcher_pid" 15
        wait "$launcher_pid" 2>/dev/null
        for pid in $children; do
            if alive "$pid"; then
                say "   container pid $pid outlived the launcher: stopping it"
                stop_pid "container" "$pid" 6
            fi
        done
    fi
    stop_pidfile "redis" "$run/redis.pid" 10
    say "   stopped everything this run started"

    if [ "$failed" -eq 0 ]; then
        rm -rf "$run"
    else
        say ""
        say "${red}${bold}demo FAILED${off}; the run directory is kept: $run"
        say "   logs: $run/launcher.log $run/logs/error.log $run/logs/access.log"
        say "         $run/store/logs/error.log $run/redis.log"
        if [ -s "$run/launcher.log" ]; then
            say "   last lines of the launcher's log:"
            tail -n 15 "$run/launcher.log" | sed 's/^/     | /'
        fi
        if [ -s "$run/logs/error.log" ]; then
            say "   last lines of the gateway's error log:"
            tail -n 10 "$run/logs/error.log" | sed 's/^/     | /'
        fi
        [ "$rc" -eq 0 ] && rc=1
    fi
    exit "$rc"
}

trap cleanup EXIT
trap 'say ""; say "interrupted"; failed=1; exit 130' INT
trap 'failed=1; exit 143' TERM HUP

# ---- helpers -----------------------------------------------------------------

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {    # what seconds command...: run command until it succeeds
    local what=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "$what did not come up within ${secs}s"
}

http_up() {     # any HTTP answer at all
    local code
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1") || true
    [ "$code" != "000" ] && [ -n "$code" ]
}

json() {        # file key: the value of a top-level key of a JSON object
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2], "")
print(v if not isinstance(v, list) else "\n".join(map(str, v)))' "$1" "$2"
}

put_object() {  # file name
    local code
    code=$(curl -sS -o /dev/null -m 60 -w '%{http_code}' -T "$1" \
        "$store/$2") || fail "PUT $2 to the store: curl failed"
    [ "$code" = 201 ] || [ "$code" = 204 ] ||
        fail "PUT $2 to the store answered $code"
}

get_object() {  # name file
    local code
    code=$(curl -sS -o "$2" -m 60 -w '%{http_code}' "$store/$1") ||
        fail "GET $1 from the store: curl failed"
    [ "$code" = 200 ] || fail "GET $1 from the store answered $code"
}

# gateway METHOD PATH [JSON]: one request through the gateway; sets
# code, secs, cache, ipid and leaves the body in $run/body
gateway() {
    local method=$1 path=$2 data=${3:-} out
    local args=(-sS -X "$method" -o "$run/body" -D "$run/headers" -m 120
                -w '%{http_code} %{time_total}')
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
    out=$(curl "${args[@]}" "$gw$path") || fail "$method $path: curl failed"
    code=${out% *}
    secs=${out#* }
    cache=$(tr -d '\r' <"$run/headers" |
        awk 'tolower($1) == "x-container-cache:" { print $2 }')
    if [ -z "$cache" ] && [ -s "$run/logs/access.log" ]; then
        cache=$(tail -n 1 "$run/logs/access.log" | awk '{ print $(NF-1) }')
    fi
    cache=${cache:-?}
    ipid=$(tr -d '\r' <"$run/headers" |
        awk 'tolower($1) == "x-instance-pid:" { print $2 }')
    printf '   %-36s %s  %6.3fs  %-5s' "$method $path" "$code" "$secs" "$cache"
    summary+=("$(printf '%-36s %s %6.3fs %s' "$method $path" "$code" "$secs" "$cache")")
}

expect_cache() {    # cold | not-cold
    case "$1:$cache" in
        cold:cold) ;;
        not-cold:hit | not-cold:warm) ;;
        *:\?) say "   (the gateway did not report \$container_cache)" ;;
        cold:*) fail "expected a cold start, the gateway says: $cache" ;;
        *) fail "expected the instance to be running already (hit or warm), the gateway says: $cache" ;;
    esac
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- prerequisites -------------------------------------------------------------

step "ngx_container demo"
for f in "$module" "$launcher"; do
    [ -e "$f" ] || fail "$f is missing: 'make demo' builds it first"
done
for c in redis-server redis-cli nginx curl unzip python3 tar sha256sum ps; do
    command -v "$c" >/dev/null || fail "$c not found: 'make deps' installs it"
done
for p in "$redis_port" 8090 8091; do
    port_busy "$p" && fail "127.0.0.1:$p is in use (another demo still running?)"
done

run=$(mktemp -d "${NGXC_DEMO_TMP:-/tmp}/ngxc-demo.XXXXXX")
# nginx's workers run as nobody when nginx is started by root: let them in
chmod 755 "$run"
say "   run directory $run"

# ---- start everything ------------------------------------------------------------

step "starting"

redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --daemonize yes --pidfile "$run/redis.pid" --logfile "$run/redis.log" \
    --dir "$run" >/dev/null
wait_for "redis on 127.0.0.1:$redis_port" 10 \
    sh -c "redis-cli -p $redis_port ping | grep -q PONG"
wait_for "redis's pid file" 5 test -s "$run/redis.pid"
say "   redis      127.0.0.1:$redis_port   pid $(cat "$run/redis.pid")"

mkdir -p "$run/store/logs" "$run/store/data/store"
chmod 777 "$run/store/data" "$run/store/data/store"
nginx -p "$run/store/" -c "$top/examples/store/store.conf"
wait_for "the store nginx on 127.0.0.1:8091" 10 http_up "$store/"
wait_for "the store's pid file" 5 test -s "$run/store/logs/nginx.pid"
say "   store      127.0.0.1:8091   pid $(cat "$run/store/logs/nginx.pid")   (nginx, WebDAV PUT)"

"$launcher" -c "$top/examples/launcher.json" >"$run/launcher.log" 2>&1 &
launcher_pid=$!
echo "$launcher_pid" >"$run/launcher.pid"
# up when it has a connection to the registry (beyond redis-cli's own)
registry_clients() {
    [ "$(redis-cli -p "$redis_port" client list | grep -vc 'cmd=client')" -gt 0 ]
}
for ((i = 0; i < 100; i++)); do
    alive "$launcher_pid" || fail "the launcher exited: see $run/launcher.log"
    registry_clients && break
    sleep 0.1
done
registry_clients ||
    say "   (the launcher has not connected to the registry yet; going on)"
sleep 0.2
alive "$launcher_pid" || fail "the launcher exited: see $run/launcher.log"
say "   launcher   pid $launcher_pid   classes: archive, counter (examples/launcher.json)"

mkdir -p "$run/logs"
ln -s "$top/build" "$run/modules"
nginx -p "$run/" -c "$top/examples/nginx.conf"
wait_for "the gateway nginx on 127.0.0.1:8090" 10 http_up "$gw/"
wait_for "the gateway's pid file" 5 test -s "$run/logs/nginx.pid"
say "   gateway    127.0.0.1:8090   pid $(cat "$run/logs/nginx.pid")   (nginx + ngx_http_container_module)"

# ---- the archive job -------------------------------------------------------------

step "the archive job of user alice"

s=$run/samples
mkdir -p "$s/docs" "$s/data" "$s/photos"
printf 'Training notes\n\n- lr 3e-4\n- batch 64\n- 3 epochs\n' >"$s/docs/notes.txt"
printf '# dataset\n\nPhotos and metrics for the run.\n' >"$s/docs/readme.md"
{ echo "step,loss"; for ((i = 1; i <= 500; i++)); do echo "$i,$((10000 / i))"; done; } \
    >"$s/data/metrics.csv"
head -c 262144 /dev/urandom >"$s/photos/cat.jpg"
objects=(docs/notes.txt docs/readme.md data/metrics.csv photos/cat.jpg)
for o in "${objects[@]}"; do put_object "$s/$o" "$o"; done
ok "put ${#objects[@]} sample objects in the store: ${objects[*]}"

list=$(printf '"%s",' "${objects[@]}")
gateway POST /archive/alice/zip \
    "{\"objects\": [${list%,}], \"output\": \"bundles/training.zip\"}"
say ""
[ "$code" = 200 ] || fail "POST /archive/alice/zip answered $code: $(head -c 500 "$run/body")"
expect_cache cold
zip_pid=$ipid
cp "$run/body" "$run/zip.json"
zip_bytes=$(json "$run/zip.json" bytes)
zip_sha=$(json "$run/zip.json" sha256)
ok "the zip job answered: bundles/training.zip, $zip_bytes bytes, sha256 ${zip_sha:0:16}..."

get_object bundles/training.zip "$run/training.zip"
[ "$(sha "$run/training.zip")" = "$zip_sha" ] ||
    fail "the zip in the store does not have the sha256 the job reported"
unzip -tq "$run/training.zip" >"$run/unzip.log" 2>&1 ||
    fail "unzip -t: $(cat "$run/unzip.log")"
for o in "${objects[@]}"; do
    unzip -p "$run/training.zip" "$o" | cmp -s - "$s/$o" ||
        fail "$o in the zip differs from the original"
done
ok "got the zip back: sha256 matches, unzip -t passes, all ${#objects[@]} entries identical"

mkdir -p "$s/tar/run1/weights" "$s/tar/run1/logs"
printf '{"model": "demo", "layers": 4, "hidden": 256}\n' >"$s/tar/run1/config.json"
printf 'epoch 1 loss 2.31\nepoch 2 loss 1.12\nepoch 3 loss 0.87\n' >"$s/tar/run1/logs/train.log"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$s/tar/run1/weights/model.safetensors"
model_sha=$(sha "$s/tar/run1/weights/model.safetensors")
tar -C "$s/tar" -cf "$s/run1.tar" run1
put_object "$s/run1.tar" runs/run1.tar
ok "put runs/run1.tar in the store ($(($(stat -c %s "$s/run1.tar") / 1024)) KiB: config, log, 4 MiB of weights)"

gateway POST /archive/alice/extract-model \
    '{"tar": "runs/run1.tar", "output": "models/run1.safetensors"}'
say ""
[ "$code" = 200 ] || fail "POST /archive/alice/extract-model answered $code: $(head -c 500 "$run/body")"
expect_cache not-cold
[ -z "$zip_pid" ] || [ -z "$ipid" ] || [ "$zip_pid" = "$ipid" ] ||
    fail "another instance (pid $ipid, not $zip_pid) answered for alice"
cp "$run/body" "$run/extract.json"
[ "$(json "$run/extract.json" member)" = run1/weights/model.safetensors ] ||
    fail "the job extracted $(json "$run/extract.json" member)"
[ "$(json "$run/extract.json" sha256)" = "$model_sha" ] ||
    fail "the job reports a sha256 that is not the model's"
ok "the extract job found run1/weights/model.safetensors and put it at models/run1.safetensors"

get_object models/run1.safetensors "$run/model.safetensors"
[ "$(sha "$run/model.safetensors")" = "$model_sha" ] ||
    fail "the model in the store differs from the original"
ok "got the model back: sha256 ${model_sha:0:16}... same as the original"

# ---- the counter -------------------------------------------------------------------

step "the counter: one instance per ID, its count in memory"

first_pid=
for n in 1 2 3; do
    gateway GET /counter/bob/hit
    say "-> $(tr -d '\n' <"$run/body")   (pid ${ipid:-?})"
    [ "$code" = 200 ] || fail "GET /counter/bob/hit answered $code"
    [ "$(tr -d '\n' <"$run/body")" = "$n" ] ||
        fail "expected the count $n, got $(head -c 100 "$run/body")"
    if [ "$n" = 1 ]; then
        expect_cache cold
        first_pid=$ipid
    else
        expect_cache not-cold
        [ "$ipid" = "$first_pid" ] ||
            fail "another instance answered (pid $ipid, not $first_pid)"
    fi
done
ok "bob's counter went 1, 2, 3 in one instance"

gateway GET /counter/carol/hit
say "-> $(tr -d '\n' <"$run/body")   (pid ${ipid:-?})"
if [ "$code" != 200 ] || [ "$(tr -d '\n' <"$run/body")" != 1 ]; then
    fail "carol's counter did not start at 1"
fi
[ "$ipid" != "$first_pid" ] || fail "carol got bob's instance"
expect_cache cold
ok "carol has her own instance, starting at 1"

# an ID is only ever data: quotes and a shell substitution in it reach the
# container as the ID's bytes, and nothing runs them
gateway GET "/counter/x%27%3B%24%28id%29/hit"
say "-> $(tr -d '\n' <"$run/body")   (pid ${ipid:-?})"
if [ "$code" != 200 ] || [ "$(tr -d '\n' <"$run/body")" != 1 ]; then
    fail "the ID x';\$(id) did not get its own counter"
fi
hid=$(tr -d '\r' <"$run/headers" | sed -n 's/^[Xx]-[Cc]ontainer-[Ii]d: //p')
[ "$hid" = "x';\$(id)" ] || fail "the container saw the ID as '$hid'"
ok "the ID x';\$(id) reached its container as plain bytes"

# ---- summary -------------------------------------------------------------------------

step "summary"
say "   request through the gateway           status   time  instance"
for line in "${summary[@]}"; do say "   $line"; done
say ""
say "   gateway access log (\$container_cache is the next to last field):"
sed 's/^/     /' "$run/logs/access.log"
say ""
say "   ${green}${bold}all $checks checks passed${off}"
