#!/usr/bin/env bash
# compose.yaml, run with what it needs: the images (scripts/images.sh, idempotent, on `up`; set
# RAILPULSE_COMPOSE_BUILD=0 to skip) and the stack's secrets, generated once into an env file
# (.local/compose/env, owner-only: the IoT stand-in's signing secret and the PostgreSQL service
# role's password). Debian's docker-compose 1.29 or `docker compose` v2, whichever is installed.
#
#   scripts/compose.sh up -d       # the stack and the four services, in the background
#   scripts/compose.sh ps          # what runs;  logs -f ingest;  down -v (also drops the state)
#
# RAILPULSE_MOTO_PORT, _MQTT_PORT, _PG_PORT, _IOT_DATA_PORT move the published ports;
# COMPOSE_PROJECT_NAME (default railpulse) names the containers, network and volume.
set -euo pipefail
cd "$(dirname "$0")/.."

ENV_FILE=${RAILPULSE_COMPOSE_ENV:-$PWD/.local/compose/env}
if [ ! -s "$ENV_FILE" ]; then
    mkdir -p "$(dirname "$ENV_FILE")"
    secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
    (umask 077 && printf 'RAILPULSE_AWS_SECRET=%s\nRAILPULSE_PG_PASSWORD=%s\n' "$(secret)" "$(secret)" >"$ENV_FILE.tmp")
    mv "$ENV_FILE.tmp" "$ENV_FILE"
fi

if [ "${1:-}" = up ] && [ "${RAILPULSE_COMPOSE_BUILD:-1}" != 0 ]; then
    bash scripts/images.sh
fi
if command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    compose=(docker compose)
fi
exec "${compose[@]}" --env-file "$ENV_FILE" -f compose.yaml -p "${COMPOSE_PROJECT_NAME:-railpulse}" "$@"
