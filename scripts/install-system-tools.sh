#!/usr/bin/env bash
# Installs the system tools the deploy tests need: promtool and prometheus (Debian's
# `prometheus` package). Called by `make install`; does nothing when promtool is already on PATH.
#
# Only as root with apt-get (CI and fresh project machines run as root); otherwise prints how to
# get it and leaves the tests that need it to skip (or to fail under CI=true). It never installs
# silently: it first says what it installs, why, and how to skip it
# (FILLSTREAM_SKIP_SYSTEM_TOOLS=1); on an interactive terminal it also asks.
# The package's own service must not keep running: we install under a policy-rc.d that forbids
# service starts, and stop the service afterwards should one have started anyway.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if [ "${FILLSTREAM_SKIP_SYSTEM_TOOLS:-0}" = "1" ]; then
    echo "install-system-tools: skipped (FILLSTREAM_SKIP_SYSTEM_TOOLS=1); the deploy tests that" \
        "need promtool/prometheus will skip (or fail under CI=true)" >&2
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-tools: promtool/prometheus missing; install Debian's 'prometheus'" \
        "package (apt-get install prometheus) to run the deploy tests" >&2
    exit 0
fi

cat >&2 <<'NOTICE'
install-system-tools: about to install a SYSTEM package, as root, with apt-get:
    prometheus   (Debian's package: provides promtool and prometheus)
  why: tests/deploy checks the alert rules with promtool and runs them in a real Prometheus.
  how: apt-get update, then apt-get install --no-install-recommends prometheus; its service is
       kept from starting (policy-rc.d) and stopped if it started anyway.
  skip: FILLSTREAM_SKIP_SYSTEM_TOOLS=1 make install  (those tests then skip; they fail under CI=true)
NOTICE
if [ -t 0 ] && [ -z "${CI:-}" ]; then
    printf 'install-system-tools: install it now? [Y/n] ' >&2
    read -r answer || answer=n
    case "$answer" in
        "" | y | Y | yes | YES) ;;
        *)
            echo "install-system-tools: not installed" >&2
            exit 0
            ;;
    esac
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
