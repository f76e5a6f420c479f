#!/usr/bin/env bash
# Runs every Herald test: installs and starts the real peers the tests talk to
# (aiosmtpd, the npm smtp-server, Postfix's smtp-sink), then the unit and
# integration tests. Fails when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-peers.sh
bash scripts/ensure-postgres.sh

log="$(mktemp -t herald-test.XXXXXX)"
trap 'rm -f "$log"' EXIT
# Two cores: one test binary at a time keeps the peers' timings sane.
cargo test --locked --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
if [ "$status" -ne 0 ]; then
    exit "$status"
fi
if [ "$passed" -eq 0 ]; then
    echo "scripts/test.sh: no test ran — that is a failure, not a pass" >&2
    exit 1
fi
echo "scripts/test.sh: $passed tests passed"
