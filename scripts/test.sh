#!/usr/bin/env bash
# Runs every Herald test: installs and starts the real peers the tests talk to
# (aiosmtpd, the npm smtp-server, Postfix's smtp-sink), then the unit and
# integration tests, then the console's browser tests (Chromium driven by
# playwright-core against target/debug/herald, built by cargo test). Fails
# when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-peers.sh
bash scripts/ensure-postgres.sh

log="$(mktemp -t herald-test.XXXXXX)"
trap 'rm -f "$log"' EXIT
# Two cores: one test binary at a time keeps the peers' timings sane.
cargo test --locked --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -aEo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
if [ "$status" -ne 0 ]; then
    exit "$status"
fi
# The web console in a real browser, against the binary cargo test built.
clog="$(mktemp -t herald-console-test.XXXXXX)"
trap 'rm -f "$log" "$clog"' EXIT
cstatus=0
node --test --test-reporter=tap tests/console/ >"$clog" 2>&1 || cstatus=$?
cpassed=$(grep -aEo '^# pass [0-9]+' "$clog" | awk '{print $3}' | tail -1)
cfailed=$(grep -aEo '^# fail [0-9]+' "$clog" | awk '{print $3}' | tail -1)
cpassed=${cpassed:-0}
cfailed=${cfailed:-0}
if [ "$cstatus" -ne 0 ] || [ "$cfailed" -ne 0 ] || [ "$cpassed" -eq 0 ]; then
    cat "$clog" >&2
    echo "scripts/test.sh: the console's browser tests failed ($cpassed passed, $cfailed failed)" >&2
    exit 1
fi
echo "console browser tests: $cpassed passed (screenshots in target/console-screenshots/)"
passed=$((passed + cpassed))
if [ "$passed" -eq 0 ]; then
    echo "scripts/test.sh: no test ran — that is a failure, not a pass" >&2
    exit 1
fi
echo "scripts/test.sh: $passed tests passed"
