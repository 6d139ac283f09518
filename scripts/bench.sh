#!/usr/bin/env bash
# The tutor-queue benchmark: release binaries, a fresh server per run, the
# bundled load-client against it, server CPU and memory read from /proc.
#
#   scripts/bench.sh                 # S1, S1N, S1D, S2 and S3, 3 runs each
#   RUNS=1 SCENARIOS="S1" scripts/bench.sh
#
# S1: 1000 students, 10 teachers, 50 messages (the 2015 default), transcripts on
# S1N: S1 with --no-transcripts (what recording every message costs)
# S1R: S1 with the state in Redis (--redis-url; one node), Redis CPU reported too
# S1D: S1 with tokens, and drops: 10% of the students and of the teachers drop
#      their connection once at a random point and come back 0.1-2 s later
#      (load-client --reconnect --drop-rate 0.1; PROTOCOL 6.3)
# S2: 10000 students, 100 teachers, 50 messages, transcripts on
# S3: 10000 idle users held open (server RSS per connection)
#
# Server and client share the machine. By default the server runs one worker
# thread and the load-client a single-threaded runtime, so each has a core of
# its own on a 2-core machine (SERVER_ARGS / CLIENT_ARGS override this; with
# two workers a relay between sessions on different workers costs a cross-thread
# wake, and the client competes for the same cores).
#
# Each server records transcripts into a fresh temporary data directory
# (SERVER_ARGS=--no-transcripts measures without them).
# Writes bench/results.json (or $OUT) and prints a Markdown table (median (min-max)).
# Loopback only; stops only the processes it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-"S1 S1N S1D S2 S3"}
PORT=${PORT:-4411}
HOLD=${HOLD:-10000}
SERVER_ARGS=${SERVER_ARGS:---workers 1}
CLIENT_ARGS=${CLIENT_ARGS:---threads 1}
# S1D's token secret, shared by its server and its load-client.
BENCH_SECRET=${BENCH_SECRET:-"tutor-queue bench.sh token secret, 32+ bytes"}
DROP_RATE=${DROP_RATE:-0.1}
# Extra load-client arguments of the scenario being run.
SCENARIO_CLIENT_ARGS=()
OUT=${OUT:-bench/results.json}
RAW=$(mktemp -d)
trap 'rm -rf "$RAW"' EXIT

# Many sockets: raise the soft limit of open files up to the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --workspace --quiet
SERVER=target/release/tutor-queue
CLIENT=target/release/load-client
TICKS=$(getconf CLK_TCK)

server_pid=""
start_server() { # extra server args
    rm -rf "$RAW/data"
    # shellcheck disable=SC2086
    "$SERVER" --port "$PORT" --data-dir "$RAW/data" $SERVER_ARGS "$@" >"$RAW/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        grep -q "listening on" "$RAW/server.log" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "server did not start" >&2
    exit 1
}
stop_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
redis_pid=""
start_redis() { # a redis-server of the run's own, persistence off, on a Unix socket
    redis-server --port 0 --unixsocket "$RAW/redis.sock" --save '' --appendonly no \
        --dir "$RAW" >"$RAW/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 1 100); do
        [ -S "$RAW/redis.sock" ] && return 0
        sleep 0.05
    done
    echo "redis-server did not start" >&2
    exit 1
}
stop_redis() {
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        redis_pid=""
        rm -f "$RAW/redis.sock"
    fi
}
trap 'stop_server; stop_redis; rm -rf "$RAW"' EXIT

# CPU seconds (user + system) the server has used so far.
server_cpu_s() {
    awk -v t="$TICKS" '{ print ($14 + $15) / t }' "/proc/$server_pid/stat"
}
# A field of /proc/PID/status, in KiB.
server_status_kib() {
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$server_pid/status"
}
established() {
    ss -Htn state established "( sport = :$PORT )" | wc -l
}

run_chat_scenario() { # name students teachers messages run [server args]
    local name=$1 students=$2 teachers=$3 messages=$4 run=$5
    shift 5
    start_server "$@"
    # shellcheck disable=SC2086
    "$CLIENT" $CLIENT_ARGS "${SCENARIO_CLIENT_ARGS[@]}" --url "ws://127.0.0.1:$PORT/ws" \
        --students "$students" --teachers "$teachers" \
        --messages "$messages" --timeout-s 300 --json >"$RAW/client.out" 2>"$RAW/client.err" || {
        echo "$name run $run: load-client failed (exit $?)" >&2
        tail -5 "$RAW/client.err" >&2
    }
    local cpu hwm redis_cpu=0
    cpu=$(server_cpu_s)
    hwm=$(server_status_kib VmHWM)
    if [ -n "$redis_pid" ]; then
        redis_cpu=$(awk -v t="$TICKS" '{ print ($14 + $15) / t }' "/proc/$redis_pid/stat")
    fi
    stop_server
    tail -n 1 "$RAW/client.out" | python3 -c '
import json, sys
report = json.loads(sys.stdin.read())
cpu, hwm, redis_cpu = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
relayed = max(report["relayed_messages"], 1)
report.update(server_cpu_s=cpu, server_cpu_us_per_msg=cpu * 1e6 / relayed, server_peak_rss_kib=hwm)
if redis_cpu:
    report.update(redis_cpu_s=redis_cpu)
print(json.dumps(report))' "$cpu" "$hwm" "$redis_cpu" >>"$RAW/$name.jsonl"
}

run_hold_scenario() { # name users run
    local name=$1 users=$2 run=$3
    start_server
    local before
    before=$(server_status_kib VmRSS)
    # Split over several client processes to stay under per-process limits.
    local per=$(((users + 4) / 5)) pids=() left=$users id=0
    while [ "$left" -gt 0 ]; do
        local n=$((left < per ? left : per))
        "$CLIENT" --url "ws://127.0.0.1:$PORT/ws" --hold "$n" --id-start "$id" --timeout-s 120 \
            >"$RAW/hold.$id.out" 2>&1 &
        pids+=($!)
        id=$((id + n))
        left=$((left - n))
    done
    local open=0
    for _ in $(seq 1 1200); do
        open=$(established)
        [ "$open" -ge "$users" ] && break
        sleep 0.1
    done
    sleep 1 # let the joins settle
    local rss hwm
    rss=$(server_status_kib VmRSS)
    hwm=$(server_status_kib VmHWM)
    kill -INT "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    stop_server
    python3 -c '
import json, sys
users, open_, before, rss, hwm = map(int, sys.argv[1:6])
print(json.dumps(dict(users=users, open=open_, server_rss_before_kib=before, server_rss_kib=rss,
    server_peak_rss_kib=hwm, rss_per_connection_kib=(rss - before) / max(open_, 1))))' \
        "$users" "$open" "$before" "$rss" "$hwm" >>"$RAW/$name.jsonl"
}

for scenario in $SCENARIOS; do
    for run in $(seq 1 "$RUNS"); do
        echo "== $scenario run $run/$RUNS" >&2
        case $scenario in
        S1) run_chat_scenario S1 1000 10 50 "$run" ;;
        S1N) run_chat_scenario S1N 1000 10 50 "$run" --no-transcripts ;;
        S1R)
            start_redis
            run_chat_scenario S1R 1000 10 50 "$run" \
                --redis-url "redis+unix://$RAW/redis.sock" --redis-deployment "bench-$run"
            stop_redis
            ;;
        S1D)
            SCENARIO_CLIENT_ARGS=(--token-secret "$BENCH_SECRET" --reconnect --drop-rate "$DROP_RATE")
            run_chat_scenario S1D 1000 10 50 "$run" --token-secret "$BENCH_SECRET"
            SCENARIO_CLIENT_ARGS=()
            ;;
        S2) run_chat_scenario S2 10000 100 50 "$run" ;;
        S3) run_hold_scenario S3 "$HOLD" "$run" ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
        esac
    done
done

python3 - "$RAW" "$OUT" $SCENARIOS <<'PY'
import json, os, statistics, sys
raw, out, scenarios = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {s: [json.loads(l) for l in open(os.path.join(raw, s + ".jsonl"))] for s in scenarios
        if os.path.exists(os.path.join(raw, s + ".jsonl"))}

def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}

result = {}
for s, reports in runs.items():
    keys = [k for k, v in reports[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    result[s] = {"runs": reports, "summary": {k: summary([r[k] for r in reports]) for k in keys}}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(result, open(out, "w"), indent=1)

def cell(s, k, fmt="{:,.0f}"):
    m = result[s]["summary"].get(k)
    if m is None:
        return "-"
    return f"{fmt.format(m['median'])} ({fmt.format(m['min'])}–{fmt.format(m['max'])})"

print("| Scenario | msgs/s | RTT p50 / p99 / max (µs) | queue wait p99 (ms) | server CPU (s) | CPU µs / msg | peak RSS (MiB) | violations |")
print("|---|---|---|---|---|---|---|---|")
for s in ("S1", "S1N", "S1R", "S1D", "S2"):
    if s in result:
        sm = result[s]["summary"]
        rtt = " / ".join(f"{sm[k]['median']:,.0f}" for k in ("rtt_p50_us", "rtt_p99_us", "rtt_max_us"))
        print(f"| {s} | {cell(s, 'msgs_per_s')} | {rtt} | {cell(s, 'queue_wait_p99_ms')} | "
              f"{cell(s, 'server_cpu_s', '{:.2f}')} | {cell(s, 'server_cpu_us_per_msg', '{:.1f}')} | "
              f"{sm['server_peak_rss_kib']['median'] / 1024:.1f} | {cell(s, 'violations')} |")
if "S1D" in result:
    print()
    print("| Scenario | drops | resumes | places kept | chats resumed | held delivered | recovered in transit | resent | violations |")
    print("|---|---|---|---|---|---|---|---|---|")
    keys = ("drops", "resumes", "places_kept", "chats_resumed", "held_delivered",
            "recovered_in_transit", "resent", "violations")
    print("| S1D | " + " | ".join(cell("S1D", k) for k in keys) + " |")
if "S1R" in result:
    print()
    print(f"S1R: Redis used {cell('S1R', 'redis_cpu_s', '{:.2f}')} s of CPU "
          f"(the server {cell('S1R', 'server_cpu_s', '{:.2f}')} s).")
if "S3" in result:
    print()
    print("| Scenario | idle connections open | server RSS per connection (KiB) | server RSS (MiB) |")
    print("|---|---|---|---|")
    sm = result["S3"]["summary"]
    print(f"| S3 | {cell('S3', 'open')} | {cell('S3', 'rss_per_connection_kib', '{:.1f}')} | "
          f"{sm['server_rss_kib']['median'] / 1024:.1f} |")
PY
