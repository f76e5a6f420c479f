#!/usr/bin/env bash
# Herald's throughput benchmark: run by hand, never as a timed test.
#
#     bash scripts/bench.sh           # (a) drain, (b) accept, (c) end to end, (d) RSS
#     bash scripts/bench.sh --big     # also 1,000,000 queued (long: enqueues ~2.3 GB)
#
# In one go and on one Postfix smtp-sink on loopback, it runs smtp-source as
# the reference (reused connections, -d, and one connection per message), then
# Herald (release build), and prints a table: each figure, the reference, the
# ratio, the goal, and the machine.
#
# How each figure is measured (printed again with the results):
#   (a) drain: DRAIN_COUNT messages are queued (batches over HTTP) while the
#       account points at a "tarpit" — a TCP listener that accepts and never
#       answers — so the worker's 32 sends hang and nothing is delivered; then
#       the account is pointed at the sink, Herald is killed (-9) and started
#       again on the same data directory (the start releases the 32 claims).
#       Drain = messages delivered from the first to the last, over that time,
#       read from /metrics (herald_messages{status="sent"}) every 0.25 s and
#       cross-checked with smtp-sink's own message counter.
#   (b) accept: each mode on a fresh Herald whose account points at the
#       tarpit (worker parked, so HTTP + validation + the durable insert only,
#       with a real account route); loadgen posts 2 KB messages.
#   (c) end to end: a fresh Herald with the account at the sink; E2E_COUNT
#       single POSTs at concurrency 32; time from the first POST until
#       /metrics says all are sent. Then the same with batches of
#       E2E_BATCH_SIZE at concurrency BATCH_CONCURRENCY (a bulk sender).
#   (d) VmHWM (peak RSS) of each Herald process; every phase runs on its own
#       process, so each figure is that phase's peak.
#
# Knobs (environment): DRAIN_COUNT=100000 SINGLE_COUNT=20000 BATCH_COUNT=100000
# E2E_COUNT=20000 E2E_BATCH_SIZE=100 REF_COUNT=20000 CONCURRENCY=32 BATCH_SIZE=1000
# BATCH_CONCURRENCY=4 BODY_BYTES=2048 BIG_COUNT=1000000 BIG_SAMPLE=100000
# PHASE_TIMEOUT=1200 (seconds, per wait) SKIP_BUILD=1 (use the built binaries)
# BENCH_KEEP=1 (keep the work directory: logs, loadgen output) BENCH_LABEL=text
# (names the code under test in the header instead of git's HEAD).
# Needs: postfix's smtp-sink/smtp-source, python3, curl, jq; root or not.
set -euo pipefail

BIG=0
for arg in "$@"; do
    case "$arg" in
        --big) BIG=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

DRAIN_COUNT=${DRAIN_COUNT:-100000}
SINGLE_COUNT=${SINGLE_COUNT:-20000}
BATCH_COUNT=${BATCH_COUNT:-100000}
E2E_COUNT=${E2E_COUNT:-20000}
E2E_BATCH_SIZE=${E2E_BATCH_SIZE:-100}
REF_COUNT=${REF_COUNT:-20000}
CONCURRENCY=${CONCURRENCY:-32}
BATCH_SIZE=${BATCH_SIZE:-1000}
BATCH_CONCURRENCY=${BATCH_CONCURRENCY:-4}
BODY_BYTES=${BODY_BYTES:-2048}
BIG_COUNT=${BIG_COUNT:-1000000}
BIG_SAMPLE=${BIG_SAMPLE:-100000}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-1200}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
HERALD="$TARGET/release/herald"
LOADGEN="$TARGET/release/examples/loadgen"
TOKEN="bench-admin-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

# No setting of the caller's environment may leak into the Herald under test.
for v in $(compgen -e | grep '^HERALD_' || true); do unset "$v"; done

die() {
    echo "bench: $*" >&2
    exit 1
}
note() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for tool in smtp-sink smtp-source python3 curl jq awk; do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (smtp-sink/smtp-source: Debian's postfix package; scripts/install-test-peers.sh)"
done

WORK="$(mktemp -d -t herald-bench.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        # only our own children that are still alive
        if [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$$" ]; then
            kill -9 "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# wait_port PORT: until something accepts TCP on 127.0.0.1:PORT (10 s).
wait_port() {
    local deadline=$((SECONDS + 10))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "nothing listens on 127.0.0.1:$1 after 10 s"
        sleep 0.05
    done
}

# ------------------------------------------------------------------ peers
start_sink() {
    SINK_PORT=$(free_port)
    local user=()
    [ "$(id -u)" -eq 0 ] && user=(-u postfix)
    smtp-sink "${user[@]}" -c "127.0.0.1:$SINK_PORT" 1000 >"$WORK/sink.counters" 2>"$WORK/sink.log" &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    wait_port "$SINK_PORT"
}
# Messages the sink has received so far (its -c counters: "sess=N quit=N mesg=N\r").
sink_count() { tail -c 200 "$WORK/sink.counters" | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2; }

# A TCP listener that accepts connections and never says a word: an SMTP
# server that hangs, which parks Herald's worker (its sends wait).
start_tarpit() {
    python3 -u -c '
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1024)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
' >"$WORK/tarpit.port" 2>"$WORK/tarpit.log" &
    TARPIT_PID=$!
    PIDS+=("$TARPIT_PID")
    local deadline=$((SECONDS + 10))
    until [ -s "$WORK/tarpit.port" ]; do
        [ $SECONDS -lt $deadline ] || die "the tarpit did not start"
        sleep 0.05
    done
    TARPIT_PORT=$(head -1 "$WORK/tarpit.port")
}

# ------------------------------------------------------------------ Herald
# start_herald NAME DATA_DIR: sets HPID and BASE.
start_herald() {
    local name=$1 dir=$2
    mkdir -p "$dir"
    (cd "$WORK" && HERALD_ADMIN_TOKEN="$TOKEN" NO_COLOR=1 exec "$HERALD" --data-dir "$dir" serve --listen 127.0.0.1:0 \
        >"$WORK/$name.out" 2>"$WORK/$name.log") &
    HPID=$!
    PIDS+=("$HPID")
    local deadline=$((SECONDS + 60))
    BASE=""
    while [ -z "$BASE" ]; do
        BASE=$(grep -ao 'listening on http://127\.0\.0\.1:[0-9]*' "$WORK/$name.log" 2>/dev/null | head -1 | sed 's/listening on //' || true)
        if [ -z "$BASE" ]; then
            kill -0 "$HPID" 2>/dev/null || die "herald ($name) exited: $(tail -5 "$WORK/$name.log")"
            [ $SECONDS -lt $deadline ] || die "herald ($name) did not log its address within 60 s"
            sleep 0.05
        fi
    done
}
# stop_herald [-9]: SIGTERM (graceful, up to 70 s) or SIGKILL.
stop_herald() {
    if [ "${1:-}" = -9 ]; then
        kill -9 "$HPID" 2>/dev/null || true
    else
        kill -TERM "$HPID" 2>/dev/null || true
        local deadline=$((SECONDS + 70))
        while kill -0 "$HPID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        kill -9 "$HPID" 2>/dev/null || true
    fi
    wait "$HPID" 2>/dev/null || true
}
# Peak RSS of the running Herald, MB.
hwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$HPID/status"; }
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$HPID/status"; }

api() { # api METHOD PATH [JSON] -> body on stdout; fails on HTTP >= 400
    local out code
    out=$(curl -sS --max-time 30 -X "$1" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        ${3:+--data "$3"} -w '\n%{http_code}' "$BASE$2") || die "$1 $2: curl failed"
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    [ "$code" -lt 400 ] || die "$1 $2: HTTP $code: $out"
    printf '%s' "$out"
}
# create_account PORT TIMEOUT_SECS: the "bench" account, made the default.
create_account() {
    api POST /api/v1/accounts "$(jq -nc --argjson port "$1" --argjson t "$2" --argjson c "$CONCURRENCY" '{
        name: "bench", provider: "custom", host: "127.0.0.1", port: $port, security: "none",
        auth: {method: "none"}, from: {address: "noreply@bench.test", name: "Bench"},
        timeout_secs: $t, limits: {connections: $c}}')" >/dev/null
    api PUT /api/v1/settings '{"default_account": "bench"}' >/dev/null
}
# counts -> "sent queued sending deferred held failed" from /metrics
counts() {
    curl -sS --max-time 30 "$BASE/metrics" | awk '
        /^herald_messages\{/ { split($1, a, "\""); n[a[2]] = $2 }
        END { printf "%d %d %d %d %d %d\n", n["sent"], n["queued"], n["sending"], n["deferred"], n["held"], n["failed"] }'
}
# wait_sent N INTERVAL: until N messages are sent; sets T_FIRST, S_FIRST
# (first poll that saw a sent message, and how many it saw) and T_LAST.
wait_sent() {
    local want=$1 interval=$2 deadline=$((SECONDS + PHASE_TIMEOUT)) c sent queued sending deferred held failed
    local next_note=$((SECONDS + 30)) last_sent=0 last_t
    last_t=$(now)
    T_FIRST=""
    S_FIRST=0
    while :; do
        c=$(counts) || die "reading /metrics failed"
        read -r sent queued sending deferred held failed <<<"$c"
        if [ -z "$T_FIRST" ] && [ "$sent" -gt 0 ]; then
            T_FIRST=$(now)
            S_FIRST=$sent
        fi
        if [ $SECONDS -ge $next_note ]; then # progress, and the rate at this depth of the queue
            note "  sent $sent of $want, queued $queued: $(calc "($sent - $last_sent) / ($(now) - $last_t)")/s over the last 30 s, RSS $(rss_mb) MB"
            last_sent=$sent
            last_t=$(now)
            next_note=$((SECONDS + 30))
        fi
        if [ "$sent" -ge "$want" ]; then
            T_LAST=$(now)
            return 0
        fi
        if [ "$failed" -gt 0 ] || [ "$deferred" -gt 0 ] || [ "$held" -gt 0 ]; then
            api GET '/api/v1/messages?limit=1&status='"$([ "$failed" -gt 0 ] && echo failed || { [ "$deferred" -gt 0 ] && echo deferred || echo held; })" >"$WORK/bad.json"
            die "deliveries went wrong (sent $sent, deferred $deferred, held $held, failed $failed): $(jq -r '.[0].last_error' "$WORK/bad.json")"
        fi
        [ $SECONDS -lt $deadline ] || die "only $sent of $want sent after ${PHASE_TIMEOUT}s (queued $queued, sending $sending)"
        sleep "$interval"
    done
}
# loadgen NAME MODE COUNT CONCURRENCY BATCH_SIZE: JSON result in $WORK/NAME.json
loadgen() {
    if ! timeout "$PHASE_TIMEOUT" "$LOADGEN" --base "$BASE" --token "$TOKEN" --mode "$2" --count "$3" \
        --concurrency "$4" --batch-size "$5" --body-bytes "$BODY_BYTES" --subject "$1" \
        >"$WORK/$1.json" 2>"$WORK/$1.err"; then
        die "loadgen ($1) failed: $(head -c 600 "$WORK/$1.err") $(cat "$WORK/$1.json" 2>/dev/null)"
    fi
}
lg() { jq -r ".$2" "$WORK/$1.json"; }

# ------------------------------------------------------------------ build
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    note "building (release): herald, loadgen"
    (cd "$ROOT" && cargo build --release --example loadgen --bin herald) >&2
fi
[ -x "$HERALD" ] && [ -x "$LOADGEN" ] || die "missing $HERALD or $LOADGEN (build them, or unset SKIP_BUILD)"

LOAD_START=$(loadavg)
start_sink
note "smtp-sink on 127.0.0.1:$SINK_PORT (pid $SINK_PID)"

# ------------------------------------------------------------------ reference
# smtp-source -d: "Don't disconnect after sending a message; send the next
# message over the same connection" (reused connections); without -d, one
# connection per message (Herald keeps its connections open, like -d).
ref() { # ref NAME FLAGS...
    local name=$1 s e before after
    shift
    before=$(sink_count)
    s=$(now)
    timeout "$PHASE_TIMEOUT" smtp-source "$@" -s "$CONCURRENCY" -m "$REF_COUNT" -l "$BODY_BYTES" \
        -f noreply@bench.test -t user@bench.test "127.0.0.1:$SINK_PORT" || die "smtp-source $* failed"
    e=$(now)
    sleep 0.2
    after=$(sink_count)
    [ $((after - before)) -ge "$REF_COUNT" ] || die "the sink counted $((after - before)) of $REF_COUNT from smtp-source"
    eval "REF_$name=$(calc "$REF_COUNT / ($e - $s)")"
}
note "reference: smtp-source -d -s $CONCURRENCY -m $REF_COUNT -l $BODY_BYTES (reused connections)"
ref REUSE -d
note "reference: smtp-source -s $CONCURRENCY -m $REF_COUNT -l $BODY_BYTES (one connection per message)"
ref PERMSG
note "reference: $REF_REUSE msgs/s reused, $REF_PERMSG msgs/s one connection per message"

start_tarpit
note "tarpit on 127.0.0.1:$TARPIT_PORT"

# ------------------------------------------------------------------ (b) accept
note "(b) accept, single: $SINGLE_COUNT POSTs, concurrency $CONCURRENCY (worker parked)"
start_herald accept-single "$WORK/accept-single"
create_account "$TARPIT_PORT" 600
loadgen accept-single single "$SINGLE_COUNT" "$CONCURRENCY" 1
HWM_SINGLE=$(hwm_mb)
stop_herald -9

note "(b) accept, batch: $BATCH_COUNT in batches of $BATCH_SIZE, concurrency $BATCH_CONCURRENCY (worker parked)"
start_herald accept-batch "$WORK/accept-batch"
create_account "$TARPIT_PORT" 600
# One batch first: a batch of BATCH_SIZE × BODY_BYTES may be over the
# request body limit; then the largest multiple of 100 that fits is used.
BATCH_NOTE=""
if ! timeout 60 "$LOADGEN" --base "$BASE" --token "$TOKEN" --mode batch --count "$BATCH_SIZE" --concurrency 1 \
    --batch-size "$BATCH_SIZE" --body-bytes "$BODY_BYTES" --subject probe >"$WORK/probe.json" 2>"$WORK/probe.err"; then
    refused="$(head -1 "$WORK/probe.err" | cut -c1-160)"
    size=$BATCH_SIZE
    while [ "$size" -gt 100 ]; do
        size=$((size - 100))
        if timeout 60 "$LOADGEN" --base "$BASE" --token "$TOKEN" --mode batch --count "$size" --concurrency 1 \
            --batch-size "$size" --body-bytes "$BODY_BYTES" --subject probe >/dev/null 2>&1; then
            break
        fi
    done
    BATCH_NOTE="a batch of $BATCH_SIZE × $BODY_BYTES B was refused ($refused); batches of $size used"
    note "$BATCH_NOTE"
    BATCH_SIZE=$size
fi
loadgen accept-batch batch "$BATCH_COUNT" "$BATCH_CONCURRENCY" "$BATCH_SIZE"
HWM_BATCH=$(hwm_mb)
stop_herald -9

# ------------------------------------------------------------------ (a) drain
note "(a) drain: queueing $DRAIN_COUNT with the worker parked"
DRAIN_DIR="$WORK/drain"
start_herald drain-fill "$DRAIN_DIR"
create_account "$TARPIT_PORT" 600
loadgen drain-fill batch "$DRAIN_COUNT" "$BATCH_CONCURRENCY" "$BATCH_SIZE"
HWM_FILL=$(hwm_mb)
api PATCH /api/v1/accounts/bench "{\"port\": $SINK_PORT, \"timeout_secs\": 30}" >/dev/null
read -r _ q s _ _ _ <<<"$(counts)"
[ $((q + s)) -eq "$DRAIN_COUNT" ] || die "expected $DRAIN_COUNT queued before the drain, found queued $q + sending $s"
stop_herald -9
DRAIN_DB_SIZE=$(du -sh "$DRAIN_DIR" | cut -f1)
note "(a) drain: $DRAIN_COUNT queued ($DRAIN_DB_SIZE on disk); restarting Herald with the account at the sink"
SINK_BEFORE=$(sink_count)
T_START=$(now)
start_herald drain "$DRAIN_DIR"
wait_sent "$DRAIN_COUNT" 0.25
sleep 0.3
SINK_DRAIN=$(($(sink_count) - SINK_BEFORE))
[ "$SINK_DRAIN" -ge "$DRAIN_COUNT" ] || die "the sink counted $SINK_DRAIN messages, Herald says $DRAIN_COUNT sent"
DRAIN_RATE=$(calc "($DRAIN_COUNT - $S_FIRST) / ($T_LAST - $T_FIRST)")
DRAIN_RATE_ALL=$(calc "$DRAIN_COUNT / ($T_LAST - $T_START)")
DRAIN_SECS=$(calc "$T_LAST - $T_START" 2)
HWM_DRAIN=$(hwm_mb)
stop_herald

# ------------------------------------------------------------------ (c) end to end
note "(c) end to end: $E2E_COUNT single POSTs at concurrency $CONCURRENCY while delivering"
start_herald e2e "$WORK/e2e"
create_account "$SINK_PORT" 30
SINK_BEFORE=$(sink_count)
T_START=$(now)
loadgen e2e single "$E2E_COUNT" "$CONCURRENCY" 1
T_POSTED=$(now)
wait_sent "$E2E_COUNT" 0.25
sleep 0.3
[ $(($(sink_count) - SINK_BEFORE)) -ge "$E2E_COUNT" ] || die "the sink did not count all $E2E_COUNT end-to-end messages"
E2E_RATE=$(calc "$E2E_COUNT / ($T_LAST - $T_START)")
E2E_SECS=$(calc "$T_LAST - $T_START" 2)
E2E_POST_SECS=$(calc "$T_POSTED - $T_START" 2)
HWM_E2E=$(hwm_mb)
stop_herald

note "(c) end to end: $E2E_COUNT in batches of $E2E_BATCH_SIZE at concurrency $BATCH_CONCURRENCY while delivering"
start_herald e2e-batch "$WORK/e2e-batch"
create_account "$SINK_PORT" 30
SINK_BEFORE=$(sink_count)
T_START=$(now)
loadgen e2e-batch batch "$E2E_COUNT" "$BATCH_CONCURRENCY" "$E2E_BATCH_SIZE"
wait_sent "$E2E_COUNT" 0.25
sleep 0.3
[ $(($(sink_count) - SINK_BEFORE)) -ge "$E2E_COUNT" ] || die "the sink did not count all $E2E_COUNT batched end-to-end messages"
E2E_BATCH_RATE=$(calc "$E2E_COUNT / ($T_LAST - $T_START)")
HWM_E2E_BATCH=$(hwm_mb)
stop_herald

# ------------------------------------------------------------------ (d) 1,000,000 queued
if [ "$BIG" = 1 ]; then
    note "(d) big: queueing $BIG_COUNT with the worker parked (long)"
    BIG_DIR="$WORK/big"
    start_herald big-fill "$BIG_DIR"
    create_account "$TARPIT_PORT" 600
    loadgen big-fill batch "$BIG_COUNT" "$BATCH_CONCURRENCY" "$BATCH_SIZE"
    HWM_BIG_FILL=$(hwm_mb)
    api PATCH /api/v1/accounts/bench "{\"port\": $SINK_PORT, \"timeout_secs\": 30}" >/dev/null
    stop_herald -9
    BIG_DB_SIZE=$(du -sh "$BIG_DIR" | cut -f1)
    note "(d) big: $BIG_COUNT queued ($BIG_DB_SIZE on disk); draining the first $BIG_SAMPLE"
    start_herald big "$BIG_DIR"
    wait_sent "$BIG_SAMPLE" 1
    BIG_RATE=$(calc "($BIG_SAMPLE - $S_FIRST) / ($T_LAST - $T_FIRST)")
    HWM_BIG=$(hwm_mb)
    stop_herald -9
fi

# ------------------------------------------------------------------ report
LOAD_END=$(loadavg)
ratio() { calc "$1 / $2" 2; }
verdict() { awk "BEGIN { print ($1) ? \"yes\" : \"NO\" }"; }
PEAK=$(printf '%s\n' "$HWM_SINGLE" "$HWM_BATCH" "$HWM_FILL" "$HWM_DRAIN" "$HWM_E2E" "$HWM_E2E_BATCH" | sort -n | tail -1)
row() { printf '%-46s %16s %14s %7s %-22s %s\n' "$@"; }

echo
echo "Herald throughput benchmark — $(date -Is)"
echo "machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "data dir: $(df -T "$WORK" | awk 'NR==2 {print $2}') on $(df "$WORK" | awk 'NR==2 {print $1}') (SQLite WAL, synchronous=FULL); load average at start $LOAD_START, at end $LOAD_END"
echo "herald: ${BENCH_LABEL:-$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [ -n "$(git status --porcelain -- src Cargo.toml 2>/dev/null)" ] && echo ' + uncommitted changes in src/' || true)}, $HERALD"
echo "messages: ${BODY_BYTES}-byte text bodies, one recipient; Herald concurrency: $CONCURRENCY sends in flight, account limits.connections $CONCURRENCY"
echo
row "figure" "Herald" "reference" "ratio" "goal" "met"
row "reference: smtp-source -d (reused conns), s=$CONCURRENCY" "-" "$REF_REUSE/s" "" "" ""
row "reference: smtp-source (1 conn/message), s=$CONCURRENCY" "-" "$REF_PERMSG/s" "" "" ""
row "(a) drain $DRAIN_COUNT queued" "$DRAIN_RATE/s" "$REF_REUSE/s" "$(ratio "$DRAIN_RATE" "$REF_REUSE")" ">= 0.7 of reference" "$(verdict "$DRAIN_RATE / $REF_REUSE >= 0.7")"
row "    same, vs 1 conn/message smtp-source" "$DRAIN_RATE/s" "$REF_PERMSG/s" "$(ratio "$DRAIN_RATE" "$REF_PERMSG")" "" ""
row "    same, from process start (${DRAIN_SECS}s)" "$DRAIN_RATE_ALL/s" "" "" "" ""
row "(b) accept single, c=$CONCURRENCY ($SINGLE_COUNT)" "$(lg accept-single rate)/s" "" "" ">= 5000/s" "$(verdict "$(lg accept-single rate) >= 5000")"
row "    latency p50 / p99 per request" "$(lg accept-single p50_ms) / $(lg accept-single p99_ms) ms" "" "" "" ""
row "(b) accept batch $BATCH_SIZE, c=$BATCH_CONCURRENCY ($BATCH_COUNT)" "$(lg accept-batch rate)/s" "" "" ">= 10000/s" "$(verdict "$(lg accept-batch rate) >= 10000")"
row "    latency p50 / p99 per batch request" "$(lg accept-batch p50_ms) / $(lg accept-batch p99_ms) ms" "" "" "" ""
row "    batch accept while filling (a)'s queue" "$(lg drain-fill rate)/s" "" "" "" ""
row "(c) end to end $E2E_COUNT singles, c=$CONCURRENCY" "$E2E_RATE/s" "$REF_REUSE/s" "$(ratio "$E2E_RATE" "$REF_REUSE")" ">= 0.4 of reference" "$(verdict "$E2E_RATE / $REF_REUSE >= 0.4")"
row "    posting took ${E2E_POST_SECS}s, all sent at ${E2E_SECS}s" "$(lg e2e rate)/s" "" "" "" ""
row "    POST latency p50 / p99 while delivering" "$(lg e2e p50_ms) / $(lg e2e p99_ms) ms" "" "" "" ""
row "(c) end to end $E2E_COUNT in batches of $E2E_BATCH_SIZE, c=$BATCH_CONCURRENCY" "$E2E_BATCH_RATE/s" "$REF_REUSE/s" "$(ratio "$E2E_BATCH_RATE" "$REF_REUSE")" ">= 0.4 of reference" "$(verdict "$E2E_BATCH_RATE / $REF_REUSE >= 0.4")"
row "(d) peak RSS under load (max of phases)" "$PEAK MB" "" "" "<= 50 MB" "$(verdict "$PEAK <= 50")"
row "    accept single / batch / fill" "$HWM_SINGLE / $HWM_BATCH / $HWM_FILL MB" "" "" "" ""
row "    drain / end to end / end to end batches" "$HWM_DRAIN / $HWM_E2E / $HWM_E2E_BATCH MB" "" "" "" ""
if [ "$BIG" = 1 ]; then
    row "(d) peak RSS, $BIG_COUNT queued, draining" "$HWM_BIG MB" "" "" "<= 100 MB" "$(verdict "$HWM_BIG <= 100")"
    row "    drain rate, first $BIG_SAMPLE of $BIG_COUNT" "$BIG_RATE/s" "$DRAIN_RATE/s" "$(ratio "$BIG_RATE" "$DRAIN_RATE")" ">= 0.8 of (a)" "$(verdict "$BIG_RATE / $DRAIN_RATE >= 0.8")"
    row "    RSS while queueing $BIG_COUNT ($BIG_DB_SIZE)" "$HWM_BIG_FILL MB" "" "" "" ""
else
    row "(d) 1,000,000 queued" "not run" "" "" "<= 100 MB" "(--big)"
fi
echo
echo "method:"
echo "  reference: smtp-source -s $CONCURRENCY -m $REF_COUNT -l $BODY_BYTES [-d] into the same smtp-sink (-c counts every message)."
echo "  (a) $DRAIN_COUNT queued by batches while the account pointed at a silent TCP listener (worker parked, nothing sent);"
echo "      account re-pointed at the sink, Herald killed and restarted on the same data; rate from the first sent message"
echo "      to the last (polling /metrics every 0.25 s); the sink counted $SINK_DRAIN messages."
echo "  (b) each mode on a fresh Herald with the worker parked the same way: HTTP + validation + route + durable insert only."
echo "  (c) a fresh Herald delivering to the sink while loadgen posts (singles; then batches of $E2E_BATCH_SIZE);"
echo "      time from the first POST to the last sent."
echo "  (d) VmHWM of each phase's own Herald process."
[ -n "$BATCH_NOTE" ] && echo "  note: $BATCH_NOTE."
true
