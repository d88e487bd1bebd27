#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 for the postgres-marked tests and print
# the URL to export as LATENTSPACE_TEST_POSTGRES_URL. Installs Debian's postgresql if absent.
# Usage: export LATENTSPACE_TEST_POSTGRES_URL=$(scripts/postgres-test-server.sh)
#        scripts/postgres-test-server.sh stop    # stop it again
set -euo pipefail
PORT=${PGPORT_TEST:-55432}
DATA=${PGDATA_TEST:-/tmp/latentspace-pgdata}
if [ "${1:-}" = stop ]; then
    BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    RUN_AS=(); [ "$(id -u)" = 0 ] && RUN_AS=(runuser -u postgres --)
    if [ -n "$BIN" ] && [ -f "$DATA/PG_VERSION" ]; then
        "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
    fi
    exit 0
fi
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
RUN_AS=(); [ "$(id -u)" = 0 ] && RUN_AS=(runuser -u postgres --)
if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"; [ "$(id -u)" = 0 ] && chown postgres "$DATA"
    "${RUN_AS[@]}" "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2
fi
if ! "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DATA" -w -l "$DATA/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c fsync=off" start >&2
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
