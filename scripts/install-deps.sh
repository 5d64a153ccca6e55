#!/usr/bin/env bash
# Installs, from Debian 12's packages, what building, the demo and the tests
# need; does nothing when everything is already there.
set -euo pipefail

pkgs=(
    nginx nginx-dev             # the packaged nginx and the headers it was built with
    libhiredis-dev libcjson-dev # the registry client and JSON, for module and launcher
    libevent-dev                # the launcher's event loop
    redis-server                # the registry
    libtest-base-perl           # the t/ runner
    build-essential pkg-config
    python3 curl zip unzip wrk procps
)

# what the real Test::Nginx needs, when the suite is to run under it
if [ -n "${TEST_NGINX_LIB:-}" ]; then
    pkgs+=(libhttp-message-perl liblist-moreutils-perl libtest-longstring-perl
           liburi-perl libtext-diff-perl)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null \
        || { echo "error: installing needs root: run as root or install sudo"
             exit 1; }
    sudo=sudo
else
    sudo=
fi

# The packaged services are not wanted: the project starts its own on
# loopback ports. Debian's policy layer (invoke-rc.d, deb-systemd-invoke)
# asks /usr/sbin/policy-rc.d whether a package may start its service; one
# that answers 101 ("forbidden") keeps nginx and redis off ports 80 and
# 6379 while they are installed. It is put there only when there is none,
# and removed again however the install ends.
policy=/usr/sbin/policy-rc.d
if [ ! -e $policy ]; then
    trap '$sudo rm -f $policy' EXIT
    printf '#!/bin/sh\n# ngx_container install-deps.sh, while it runs\nexit 101\n' \
        | $sudo tee $policy >/dev/null
    $sudo chmod 755 $policy
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
