#!/usr/bin/env bash
# Builds ngx_http_container_module.so against Debian's packaged nginx: the
# nginx-dev package ships that binary's sources of configure and headers
# (/usr/share/nginx/src) and its configure flags (conf_flags), so the module
# is binary compatible with /usr/sbin/nginx.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
src=/usr/share/nginx/src
out=$top/build
work=$out/nginx-src

[ -f $src/conf_flags ] || { echo "error: $src missing: install nginx-dev"; exit 1; }
. $src/conf_flags

mkdir -p "$out"
if [ ! -f "$work/objs/Makefile" ] || [ "$top/config" -nt "$work/objs/Makefile" ]
then
    rm -rf "$work"
    cp -r $src "$work"
    (cd "$work" && ./configure "${NGX_CONF_FLAGS[@]}" \
        --with-cc-opt="-g -O2 -fPIC -Wall -Werror" \
        --add-dynamic-module="$top" >"$out/configure.log" 2>&1) \
        || { tail -n 20 "$out/configure.log"; exit 1; }
fi

make -s -C "$work" -f objs/Makefile modules
# a new file, renamed into place: a running nginx keeps the old mapping
cp "$work/objs/ngx_http_container_module.so" "$out/.module.so.tmp"
mv -f "$out/.module.so.tmp" "$out/ngx_http_container_module.so"
