#!/usr/bin/env bash
# Installs the system tools the deploy tests need: promtool and prometheus (Debian's
# `prometheus` package). Called by `make install`; does nothing when promtool is already on PATH.
#
# Only as root (CI and fresh project machines run as root); otherwise prints how to get it and
# leaves the tests that need it to skip (or to fail under CI=true).
# The package's own service must not keep running: we install under a policy-rc.d that forbids
# service starts, and stop the service afterwards should one have started anyway.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-tools: promtool/prometheus missing; install Debian's 'prometheus'" \
        "package (apt-get install prometheus) to run the deploy tests" >&2
    exit 0
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Belt and braces: where an init system ignored policy-rc.d, stop the packaged daemon.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
    systemctl disable prometheus >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

promtool --version | head -n 1
