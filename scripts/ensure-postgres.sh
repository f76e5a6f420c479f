#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at HERALD_TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/test, trust auth): starts the local
# cluster if it is stopped, installs Debian's postgresql if it is absent, and
# drops databases left behind by earlier test runs.
set -euo pipefail
url="${HERALD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    if ! ready 2>/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q postgresql >/dev/null
    fi
fi
if ! ready; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    conf="/etc/postgresql/$version/main"
    # Trust local connections over TCP, as the tests expect (loopback only).
    if ! grep -q "herald-tests" "$conf/pg_hba.conf"; then
        sed -i '1i host all all 127.0.0.1/32 trust # herald-tests\nhost all all ::1/128 trust # herald-tests' "$conf/pg_hba.conf"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 100); do ready && break; sleep 0.1; done
fi
ready || { echo "ensure-postgres: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }

db="${url##*/}"
if ! psql "$url" -qtAc 'SELECT 1' >/dev/null 2>&1; then
    psql "${url%/*}/postgres" -qc "CREATE DATABASE \"$db\"" >/dev/null
fi
# Databases of earlier runs (each test makes its own).
for old in $(psql "$url" -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'herald_test_%'"); do
    psql "$url" -qc "DROP DATABASE IF EXISTS \"$old\"" >/dev/null || true
done
