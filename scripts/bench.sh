#!/usr/bin/env bash
# The tutor-queue benchmark: release binaries, a fresh server per run, the
# bundled load-client against it, server CPU and memory read from /proc.
#
#   scripts/bench.sh                 # S1, S1N, S1D, S2 and S3, 3 runs each
#   RUNS=1 SCENARIOS="S1" scripts/bench.sh
#   SCENARIOS="S1 S1R S1x2 S1K" scripts/bench.sh   # one node vs two on one Redis, kill test
#   SCENARIOS="WL WL0" scripts/bench.sh              # the waiting list watched by 100 teachers
#
# S1: 1000 students, 10 teachers, 50 messages (the 2015 default), transcripts on
# S1N: S1 with --no-transcripts (what recording every message costs)
# S1R: S1 with the state in Redis (--redis-url; one node), Redis CPU reported too
# S1x2: S1 on two nodes (two server processes on one redis-server, one deployment,
#      ports PORT and PORT+1), the load-client's connections spread over both
#      (--url twice, round robin): server CPU summed and per node, Redis CPU
# S1K: the kill test: K_STUDENTS (2000) students, 10 teachers, 50 messages on two
#      nodes with tokens and --reconnect; once half the chats are completed (the
#      nodes' /metrics; at the latest K_KILL_BY_S, 60 s, after the start) the second
#      node is killed with SIGKILL (no goodbye), and its users reconnect to the
#      first. Passes when every student finished with 0 violations
#      (K_TIMEOUT_S, 120 s, bounds the run: twice the 60 s reconnect grace)
# S1D: S1 with tokens, and drops: 10% of the students and of the teachers drop
#      their connection once at a random point and come back 0.1-2 s later
#      (load-client --reconnect --drop-rate 0.1; PROTOCOL 6.3)
# S2: 10000 students, 100 teachers, 50 messages, transcripts on
# S3: 10000 idle users held open (server RSS per connection)
# WL: the waiting list (issue 14, PROTOCOL 6.4) under churn: WL_STUDENTS (10000)
#     students connecting at WL_CONNECT_RATE (2000/s) and getting in line with a
#     question, WL_TEACHERS (5) claiming teachers with WL_MESSAGES (10) messages per
#     chat, so the line grows to thousands and moves the whole time, and
#     WL_WATCHERS (100) teachers that only watch the list (load-client
#     --waiting-watchers): queue:waiting frames and bytes per second per watcher
#     (bounded by the 250 ms coalescing: a watcher that reads more than 4/s + 2
#     fails the run), the largest total seen, the user:status frames each watcher
#     gets meanwhile (every teacher does), server CPU. WL_TIMEOUT_S (150) bounds it
# WL0: WL without the watchers (what they cost the server, by difference)
#
# Server and client share the machine. By default the server runs one worker
# thread and the load-client a single-threaded runtime, so each has a core of
# its own on a 2-core machine (SERVER_ARGS / CLIENT_ARGS override this; with
# two workers a relay between sessions on different workers costs a cross-thread
# wake, and the client competes for the same cores).
#
# Each server records transcripts into a fresh temporary data directory
# (SERVER_ARGS=--no-transcripts measures without them).
# Writes bench/results.json (or $OUT; the scenarios run replace theirs, the others'
# stay) and prints a Markdown table (median (min-max)).
# Loopback only; stops only the processes it started, by pid (a server that does not
# stop within 15 s of SIGTERM gets SIGKILL).
#
# Claims/s is the load-client's: claim:student replies that carried a chat, per
# second of the run. S1R, S1x2 and S1K report each node's CPU and relayed messages
# (its tutor_queue_relayed_messages_total, read from /metrics before it stops) and
# Redis's CPU.
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
# Server processes (nodes) of the scenario being run, on ports PORT, PORT+1, ...
SCENARIO_NODES=1
# The load-client's --timeout-s of the scenario being run.
CHAT_TIMEOUT_S=${CHAT_TIMEOUT_S:-300}
SCENARIO_TIMEOUT_S=$CHAT_TIMEOUT_S
# S1K: the node to kill (1-based; empty: none), its size and bounds.
SCENARIO_KILL=""
K_STUDENTS=${K_STUDENTS:-2000}
K_KILL_BY_S=${K_KILL_BY_S:-60}
K_TIMEOUT_S=${K_TIMEOUT_S:-120}
# WL: the waiting list watched while the line churns.
WL_STUDENTS=${WL_STUDENTS:-10000}
WL_TEACHERS=${WL_TEACHERS:-5}
WL_MESSAGES=${WL_MESSAGES:-10}
WL_WATCHERS=${WL_WATCHERS:-100}
WL_CONNECT_RATE=${WL_CONNECT_RATE:-2000}
WL_TIMEOUT_S=${WL_TIMEOUT_S:-150}
OUT=${OUT:-bench/results.json}
# A directory to copy the load-client's output and the server logs of a failed run to.
FAILED_LOGS=${FAILED_LOGS:-}
RAW=$(mktemp -d)
trap 'rm -rf "$RAW"' EXIT

# Many sockets: raise the soft limit of open files up to the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --workspace --quiet
SERVER=target/release/tutor-queue
CLIENT=target/release/load-client
TICKS=$(getconf CLK_TCK)

# One pid per node (index 0 = node 1, port PORT); "" once stopped or killed.
server_pids=()
start_servers() { # extra server args; starts SCENARIO_NODES nodes
    local i
    for i in $(seq 0 $((SCENARIO_NODES - 1))); do
        rm -rf "$RAW/data.$i"
        # shellcheck disable=SC2086
        "$SERVER" --port $((PORT + i)) --data-dir "$RAW/data.$i" $SERVER_ARGS "$@" \
            >"$RAW/server.$i.log" 2>&1 &
        server_pids[i]=$!
        local up=""
        for _ in $(seq 1 200); do
            grep -q "listening on" "$RAW/server.$i.log" 2>/dev/null && { up=1; break; }
            sleep 0.05
        done
        if [ -z "$up" ]; then
            echo "server $((i + 1)) did not start" >&2
            tail -5 "$RAW/server.$i.log" >&2
            exit 1
        fi
    done
}
stop_server() { # node index
    local pid=${server_pids[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "server $(($1 + 1)) (pid $pid) still running 15 s after SIGTERM: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    server_pids[$1]=""
}
stop_servers() {
    local i
    for i in "${!server_pids[@]}"; do
        stop_server "$i"
    done
    server_pids=()
}
# SIGKILL to node index $1: no goodbye, as a crash.
kill_server() {
    local pid=${server_pids[$1]:-}
    [ -n "$pid" ] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    server_pids[$1]=""
}
client_pid=""
stop_client() {
    if [ -n "$client_pid" ]; then
        kill -INT "$client_pid" 2>/dev/null || true
        wait "$client_pid" 2>/dev/null || true
        client_pid=""
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
trap 'stop_client; stop_servers; stop_redis; rm -rf "$RAW"' EXIT

# CPU seconds (user + system) process $1 has used so far.
cpu_s() {
    awk -v t="$TICKS" '{ print ($14 + $15) / t }' "/proc/$1/stat"
}
# CPU seconds of node index $1 (default: node 1).
server_cpu_s() {
    cpu_s "${server_pids[${1:-0}]}"
}
# A field ($1) of node $2's (default: node 1) /proc/PID/status, in KiB.
server_status_kib() {
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/${server_pids[${2:-0}]}/status"
}
# A counter of node index $2's /metrics (0 if it cannot be read).
server_metric() { # metric node
    { curl -fsS --max-time 2 "http://127.0.0.1:$((PORT + $2))/metrics" 2>/dev/null || true; } |
        awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}
# Node index $1's figures so far, as JSON: CPU, peak RSS, messages it relayed.
node_json() {
    printf '{"cpu_s": %s, "peak_rss_kib": %s, "relayed": %s}' "$(server_cpu_s "$1")" \
        "$(server_status_kib VmHWM "$1")" "$(server_metric tutor_queue_relayed_messages_total "$1")"
}
established() {
    ss -Htn state established "( sport = :$PORT )" | wc -l
}

run_chat_scenario() { # name students teachers messages run [server args]
    local name=$1 students=$2 teachers=$3 messages=$4 run=$5
    shift 5
    start_servers "$@"
    local urls=() i
    for i in $(seq 0 $((SCENARIO_NODES - 1))); do
        urls+=(--url "ws://127.0.0.1:$((PORT + i))/ws")
    done
    # shellcheck disable=SC2086
    "$CLIENT" $CLIENT_ARGS "${SCENARIO_CLIENT_ARGS[@]}" "${urls[@]}" \
        --students "$students" --teachers "$teachers" --messages "$messages" \
        --timeout-s "$SCENARIO_TIMEOUT_S" --json >"$RAW/client.out" 2>"$RAW/client.err" &
    client_pid=$!
    local nodes=() killed='null' started=$SECONDS
    if [ -n "$SCENARIO_KILL" ]; then
        # Half the chats completed (over every node's /metrics), or K_KILL_BY_S.
        local victim=$((SCENARIO_KILL - 1)) completed=0
        while kill -0 "$client_pid" 2>/dev/null && [ $((SECONDS - started)) -lt "$K_KILL_BY_S" ]; do
            completed=0
            for i in "${!server_pids[@]}"; do
                completed=$((completed + $(server_metric tutor_queue_chats_completed_total "$i")))
            done
            [ "$completed" -ge $((students / 2)) ] && break
            sleep 0.1
        done
        if kill -0 "$client_pid" 2>/dev/null; then
            # Its figures up to the kill, then SIGKILL.
            nodes[victim]=$(node_json "$victim")
            kill_server "$victim"
            killed=$(printf '{"node": %d, "at_s": %d, "chats_completed": %d}' \
                "$SCENARIO_KILL" $((SECONDS - started)) "$completed")
            echo "$name run $run: node $SCENARIO_KILL killed (SIGKILL) after $((SECONDS - started)) s, $completed chats completed" >&2
        else
            echo "$name run $run: the load-client ended before the kill" >&2
        fi
    fi
    local status=0
    wait "$client_pid" || status=$?
    client_pid=""
    if [ "$status" -ne 0 ]; then
        echo "$name run $run: load-client failed (exit $status)" >&2
        tail -5 "$RAW/client.err" >&2
        grep -v '^{' "$RAW/client.out" >&2 || true
        if [ -n "$FAILED_LOGS" ]; then
            mkdir -p "$FAILED_LOGS/$name.$run"
            cp "$RAW"/client.* "$RAW"/server.*.log "$FAILED_LOGS/$name.$run/" 2>/dev/null || true
            echo "$name run $run: logs in $FAILED_LOGS/$name.$run" >&2
        fi
    fi
    for i in "${!server_pids[@]}"; do
        [ -n "${server_pids[i]}" ] && nodes[i]=$(node_json "$i")
    done
    local redis_cpu=0
    if [ -n "$redis_pid" ]; then
        redis_cpu=$(cpu_s "$redis_pid")
    fi
    stop_servers
    local nodes_json
    nodes_json="[$(IFS=,; echo "${nodes[*]}")]"
    tail -n 1 "$RAW/client.out" | python3 -c '
import json, sys
report = json.loads(sys.stdin.read())
nodes, redis_cpu, killed = json.loads(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
relayed = max(report["relayed_messages"], 1)
cpu = sum(n["cpu_s"] for n in nodes)
report.update(nodes=len(nodes), server_cpu_s=cpu, server_cpu_us_per_msg=cpu * 1e6 / relayed,
              server_peak_rss_kib=max(n["peak_rss_kib"] for n in nodes))
if len(nodes) > 1 or redis_cpu:
    for i, n in enumerate(nodes, 1):
        # CPU per message this node relayed (its own counter).
        report.update({f"node{i}_cpu_s": n["cpu_s"], f"node{i}_relayed": n["relayed"],
                       f"node{i}_peak_rss_kib": n["peak_rss_kib"]})
        if n["relayed"]:
            report[f"node{i}_cpu_us_per_msg"] = n["cpu_s"] * 1e6 / n["relayed"]
if redis_cpu:
    # Per chat: every step of the visit of one student (join, ready, claims, enter, finish,
    # leave) and, across nodes, the relays of its messages.
    report.update(redis_cpu_s=redis_cpu, redis_cpu_us_per_msg=redis_cpu * 1e6 / relayed,
                  redis_cpu_us_per_chat=redis_cpu * 1e6 / max(report["chats_completed"], 1))
if killed:
    report.update(killed_node=killed["node"], killed_at_s=killed["at_s"],
                  killed_after_chats=killed["chats_completed"])
waiting = report.get("waiting_list")
if waiting:
    # Flat, so the summary gives each a median (min-max).
    report.update({f"wl_{k}": v for k, v in waiting.items()})
report["passed"] = (report["students_finished"] == report["students"]
                    and report["violations"] == 0 and not report["timed_out"]
                    and (not waiting or waiting["watching"] == waiting["watchers"]))
print(json.dumps(report))' "$nodes_json" "$redis_cpu" "$killed" >>"$RAW/$name.jsonl"
}

run_hold_scenario() { # name users run
    local name=$1 users=$2 run=$3
    start_servers
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
    stop_servers
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
        S1x2)
            start_redis
            SCENARIO_NODES=2
            run_chat_scenario S1x2 1000 10 50 "$run" \
                --redis-url "redis+unix://$RAW/redis.sock" --redis-deployment "bench-$run"
            SCENARIO_NODES=1
            stop_redis
            ;;
        S1K)
            start_redis
            SCENARIO_NODES=2 SCENARIO_KILL=2 SCENARIO_TIMEOUT_S=$K_TIMEOUT_S
            SCENARIO_CLIENT_ARGS=(--token-secret "$BENCH_SECRET" --reconnect)
            run_chat_scenario S1K "$K_STUDENTS" 10 50 "$run" --token-secret "$BENCH_SECRET" \
                --redis-url "redis+unix://$RAW/redis.sock" --redis-deployment "bench-$run"
            SCENARIO_NODES=1 SCENARIO_KILL="" SCENARIO_TIMEOUT_S=$CHAT_TIMEOUT_S
            SCENARIO_CLIENT_ARGS=()
            stop_redis
            ;;
        S1D)
            SCENARIO_CLIENT_ARGS=(--token-secret "$BENCH_SECRET" --reconnect --drop-rate "$DROP_RATE")
            run_chat_scenario S1D 1000 10 50 "$run" --token-secret "$BENCH_SECRET"
            SCENARIO_CLIENT_ARGS=()
            ;;
        S2) run_chat_scenario S2 10000 100 50 "$run" ;;
        WL | WL0)
            SCENARIO_TIMEOUT_S=$WL_TIMEOUT_S
            SCENARIO_CLIENT_ARGS=(--question --connect-rate "$WL_CONNECT_RATE")
            if [ "$scenario" = WL ]; then
                SCENARIO_CLIENT_ARGS+=(--waiting-watchers "$WL_WATCHERS")
            fi
            run_chat_scenario "$scenario" "$WL_STUDENTS" "$WL_TEACHERS" "$WL_MESSAGES" "$run"
            SCENARIO_TIMEOUT_S=$CHAT_TIMEOUT_S
            SCENARIO_CLIENT_ARGS=()
            ;;
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

# The scenarios run now replace theirs in $OUT; the others' results stay.
result = {}
if os.path.exists(out):
    try:
        result = json.load(open(out))
    except ValueError:
        result = {}
for s, reports in runs.items():
    # Numeric figures, in the order of their first run that has them (a run may lack
    # some: a node that relayed nothing, a kill that did not happen).
    keys = list(dict.fromkeys(k for r in reports for k, v in r.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)))
    result[s] = {"runs": reports,
                 "summary": {k: summary([r[k] for r in reports if k in r]) for k in keys}}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(result, open(out, "w"), indent=1)

def cell(s, k, fmt="{:,.0f}"):
    m = result[s]["summary"].get(k)
    if m is None:
        return "-"
    return f"{fmt.format(m['median'])} ({fmt.format(m['min'])}–{fmt.format(m['max'])})"

print("| Scenario | msgs/s | RTT p50 / p99 / max (µs) | queue wait p99 (ms) | server CPU (s) | CPU µs / msg | peak RSS (MiB) | violations |")
print("|---|---|---|---|---|---|---|---|")
for s in ("S1", "S1N", "S1R", "S1x2", "S1K", "S1D", "S2"):
    if s in runs:
        sm = result[s]["summary"]
        rtt = " / ".join(f"{sm[k]['median']:,.0f}" for k in ("rtt_p50_us", "rtt_p99_us", "rtt_max_us"))
        print(f"| {s} | {cell(s, 'msgs_per_s')} | {rtt} | {cell(s, 'queue_wait_p99_ms')} | "
              f"{cell(s, 'server_cpu_s', '{:.2f}')} | {cell(s, 'server_cpu_us_per_msg', '{:.1f}')} | "
              f"{sm['server_peak_rss_kib']['median'] / 1024:.1f} | {cell(s, 'violations')} |")
if "S1D" in runs:
    print()
    print("| Scenario | drops | resumes | places kept | chats resumed | held delivered | recovered in transit | resent | violations |")
    print("|---|---|---|---|---|---|---|---|---|")
    keys = ("drops", "resumes", "places_kept", "chats_resumed", "held_delivered",
            "recovered_in_transit", "resent", "violations")
    print("| S1D | " + " | ".join(cell("S1D", k) for k in keys) + " |")
nodes = [s for s in ("S1", "S1R", "S1x2", "S1K") if s in runs]
if any(s in runs for s in ("S1R", "S1x2", "S1K")):
    print()
    print("| Scenario | nodes | students finished | msgs/s | claims/s | claim replies/s | CPU µs / msg, all nodes | "
          "node 1: CPU (s), µs / msg it relayed | node 2: CPU (s), µs / msg it relayed | "
          "Redis CPU (s) | Redis µs / chat |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in nodes:
        node = lambda i: (f"{cell(s, f'node{i}_cpu_s', '{:.2f}')}, "
                          f"{cell(s, f'node{i}_cpu_us_per_msg', '{:.1f}')}"
                          if f"node{i}_cpu_s" in result[s]["summary"] else "-")
        print(f"| {s} | {cell(s, 'nodes')} | {cell(s, 'students_finished')} | {cell(s, 'msgs_per_s')} | {cell(s, 'claims_per_s')} | "
              f"{cell(s, 'claim_replies_per_s')} | {cell(s, 'server_cpu_us_per_msg', '{:.1f}')} | "
              f"{node(1)} | {node(2)} | {cell(s, 'redis_cpu_s', '{:.2f}')} | "
              f"{cell(s, 'redis_cpu_us_per_chat', '{:.0f}')} |")
if "S1K" in runs:
    print()
    for i, r in enumerate(result["S1K"]["runs"], 1):
        kill = (f"node {r['killed_node']} killed (SIGKILL) {r['killed_at_s']} s in, after "
                f"{r['killed_after_chats']} chats" if "killed_node" in r else "no node killed (the run ended first)")
        print(f"S1K run {i}: {'PASS' if r['passed'] else 'FAIL'}: {kill}; "
              f"{r['students_finished']}/{r['students']} students finished, "
              f"{r['violations']} violations{' ' + str({k: v for k, v in r['violations_by_kind'].items() if v}) if r['violations'] else ''}"
              f"{', ' + str(r['errors']) + ' errors' if r['errors'] else ''}"
              f"{', timed out' if r['timed_out'] else ''}; resumes {r['resumes']}, "
              f"chats resumed {r['chats_resumed']}")
wl = [s for s in ("WL", "WL0") if s in runs]
if wl:
    print()
    print("| Scenario | students | largest total | watchers | queue:waiting frames/s per watcher, mean (max) | bytes/s per watcher, mean (max) | over the bound | user:status frames/s per watcher | server CPU (s) | wall (s) | students finished | violations |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in wl:
        sm = result[s]["summary"]
        if "wl_watchers" in sm:
            watch = (f"{cell(s, 'wl_max_total')} | {cell(s, 'wl_watching')} | "
                     f"{cell(s, 'wl_frames_per_s_mean', '{:.2f}')} ({sm['wl_frames_per_s_max']['max']:.2f}) | "
                     f"{cell(s, 'wl_bytes_per_s_mean')} ({sm['wl_bytes_per_s_max']['max']:,.0f}) | "
                     f"{cell(s, 'wl_over_bound')} | {cell(s, 'wl_status_frames_per_s_mean')}")
        else:
            watch = "- | 0 | - | - | - | -"
        print(f"| {s} | {cell(s, 'students')} | {watch} | {cell(s, 'server_cpu_s', '{:.2f}')} | "
              f"{cell(s, 'wall_s', '{:.1f}')} | {cell(s, 'students_finished')} | {cell(s, 'violations')} |")
if "S3" in runs:
    print()
    print("| Scenario | idle connections open | server RSS per connection (KiB) | server RSS (MiB) |")
    print("|---|---|---|---|")
    sm = result["S3"]["summary"]
    print(f"| S3 | {cell('S3', 'open')} | {cell('S3', 'rss_per_connection_kib', '{:.1f}')} | "
          f"{sm['server_rss_kib']['median'] / 1024:.1f} |")
PY
