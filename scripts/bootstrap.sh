#!/usr/bin/env bash
# Installs everything railpulse needs on a fresh Debian machine, and nothing twice:
# Debian packages (mosquitto, PostgreSQL 15, Java 17, Chromium, poppler-utils), uv, and the locked Python environment
# (which brings the KCL 2.5.8 jars inside the amazon-kclpy wheel).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v initdb >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The local broker's identity plugin (devstack/.../broker_plugin; mosquitto and OpenSSL headers) is compiled at stack start.
[ -f /usr/include/mosquitto_broker.h ] || need_apt+=(mosquitto-dev)
[ -f /usr/include/mosquitto.h ] || need_apt+=(libmosquitto-dev)
[ -f /usr/include/openssl/x509.h ] || need_apt+=(libssl-dev)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v runuser >/dev/null 2>&1 || need_apt+=(util-linux)
# Headless browser for the console's tests (driven by Playwright, never `playwright install`).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# `railpulse report` prints its PDF with that Chromium; its test renders the PDF with pdftoppm.
command -v pdftoppm >/dev/null 2>&1 || need_apt+=(poppler-utils)
for pkg in "$@"; do need_apt+=("$pkg"); done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

UV=(uv)
if ! command -v uv >/dev/null 2>&1; then
    if ! python3 -m uv --version >/dev/null 2>&1; then
        echo "bootstrap: installing uv" >&2
        python3 -m pip install --quiet uv >&2
    fi
    UV=(python3 -m uv)
fi
"${UV[@]}" sync --frozen --quiet >&2
