#!/usr/bin/env bash
# Memory benchmark: peak RSS of `barrage-runner run` in three cases.
#
#   bench/memory.sh [--case all|users|names|names-workers]
#                   [--users N] [--duration SECS] [--goal-mb MB]
#                   [--names N] [--rate RPS] [--names-duration SECS]
#                   [--names-workers N] [--names-goal-mb MB] [--slow-names]
#                   [--port PORT] [--no-build]
#
# users:  10,000 closed-model users against a slow target (every response
#         takes 1 s): `barrage-runner serve --config bench/slow-target.yaml`.
#         Goal < 256 MB. Requests and errors from --summary-json show that
#         all users really ran (~10,000 req/s, 0 errors).
# names:  a plan with 200 request names at a low rate (100 req/s for 30 s,
#         ~15 requests per name) against `barrage-runner serve`'s built-in
#         routes (GET /schemas/N: 1 ms, 5% 20 ms). Goal < 64 MB: memory is
#         bounded by the plan's names, not by the node's core count.
# names-workers: the same plan with --workers 4 (four in-process runners,
#         merged every second like a cluster's). Goal < 64 MB.
# --slow-names runs the names cases against the 1 s target instead.
#
# Each run is under /usr/bin/time -v, whose "Maximum resident set size" is
# compared with the goal; the target's own peak RSS (VmHWM) is printed as a
# reference. The last lines list every case with PASS or FAIL.
# Exits 0 whatever the result; non-zero only when something breaks.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

case_=all
users=10000
duration=20
goal_mb=256
names=200
rate=100
names_duration=30
names_workers=4
names_goal_mb=64
slow_names=0
port=18091
build=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --case) case_=$2; shift 2 ;;
        --users|-u) users=$2; shift 2 ;;
        --duration|-d) duration=${2%s}; shift 2 ;;
        --goal-mb) goal_mb=$2; shift 2 ;;
        --names) names=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --names-duration) names_duration=${2%s}; shift 2 ;;
        --names-workers) names_workers=$2; shift 2 ;;
        --names-goal-mb) names_goal_mb=$2; shift 2 ;;
        --slow-names) slow_names=1; shift ;;
        --port) port=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
case $case_ in
    all|users|names|names-workers) ;;
    *) echo "--case: expected all, users, names or names-workers, got $case_" >&2; exit 2 ;;
esac

log() { printf '[memory] %s\n' "$*" >&2; }

# --- prerequisites (idempotent) ---------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
    log "installing time from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 time >/dev/null
fi
# BARRAGE_BIN=/path/to/barrage-runner measures another build (e.g. a
# before/after comparison; implies --no-build).
bin=${BARRAGE_BIN:-$root/target/release/barrage-runner}
[[ -n ${BARRAGE_BIN:-} ]] && build=0
if [[ $build == 1 ]]; then
    log "building barrage-runner (release)"
    (cd "$root" && cargo build --release -q -p barrage-runner)
fi
[[ -x $bin ]] || { echo "no $bin (build failed?)" >&2; exit 1; }

# Both processes need one descriptor per connection (plus a few). Raise the
# soft limit as far as 65536 allows; the hard limit may be lower (e.g. in a
# container), in which case we go up to it and warn if it is too low.
want_nofile=65536
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $want_nofile ]]; then
    log "hard open-files limit is $hard (< $want_nofile); using $hard"
    want_nofile=$hard
fi
ulimit -n "$want_nofile"
if (( $(ulimit -n) < users + 100 )); then
    log "warning: open-files limit $(ulimit -n) is below $users users + margin; expect connect errors"
fi

# --- cleanup ----------------------------------------------------------------
tmp=$(mktemp -d /tmp/barrage-bench-memory.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_busy "$port"; then
    echo "127.0.0.1:$port is already in use; pick another with --port" >&2
    exit 1
fi

# --- targets, in their own process -----------------------------------------
serve_pid=
# start_target [CONFIG]: barrage-runner serve on $port (built-in routes without CONFIG).
start_target() {
    local args=(serve --listen "127.0.0.1:$port")
    [[ -n ${1:-} ]] && args+=(--config "$1")
    "$bin" "${args[@]}" >"$tmp/serve.log" 2>&1 &
    serve_pid=$!
    pids+=("$serve_pid")
    for _ in $(seq 1 100); do
        port_busy "$port" && break
        sleep 0.1
    done
    port_busy "$port" || { echo "target did not start" >&2; cat "$tmp/serve.log" >&2; exit 1; }
}
stop_target() {
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        port_busy "$port" || break
        sleep 0.1
    done
}

json_field() { grep -oE "\"$2\":[-0-9.eE+]+" "$1" | head -n1 | cut -d: -f2; }
# Kernel counters that reveal accept-queue overflows (connects retried or lost).
listen_drops() { awk '/^TcpExt:/ { if (!h) { split($0, n); h = 1 } else { split($0, v); for (i in n) if (n[i] == "ListenOverflows" || n[i] == "ListenDrops") printf "%s=%s ", n[i], v[i] } }' /proc/net/netstat; }

results=()
# measure LABEL GOAL_MB PLAN [barrage-runner run options...]: runs the plan
# under /usr/bin/time -v against the running target and prints its figures.
measure() {
    local label=$1 goal=$2 plan=$3
    shift 3
    local rc=0
    /usr/bin/time -v -o "$tmp/time.txt" "$bin" run "$plan" -q "$@" \
        --summary-json "$tmp/summary.json" --out "$tmp/report.json" >"$tmp/run.log" 2>&1 || rc=$?
    if [[ $rc != 0 && $rc != 99 ]]; then
        log "barrage-runner exited $rc"
        cat "$tmp/run.log" "$tmp/time.txt" >&2 || true
        exit 1
    fi
    local serve_hwm_kb rss_kb wall cpu_user cpu_sys requests errors rps p95 p99
    serve_hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$serve_pid/status")
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/time.txt")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tmp/time.txt")
    cpu_user=$(awk -F': ' '/User time/ {print $2}' "$tmp/time.txt")
    cpu_sys=$(awk -F': ' '/System time/ {print $2}' "$tmp/time.txt")
    requests=$(json_field "$tmp/summary.json" requests)
    errors=$(json_field "$tmp/summary.json" errors)
    rps=$(json_field "$tmp/summary.json" rps)
    p95=$(json_field "$tmp/summary.json" p95Ms)
    p99=$(json_field "$tmp/summary.json" p99Ms)
    if [[ ${errors:-0} != 0 ]]; then
        # Which kinds (connect, timeout, http, status) from the full report.
        local kinds
        kinds=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r["summary"]["total"].get("errorKinds") or r["summary"]["total"].get("errorsByKind") or ""))' "$tmp/report.json" 2>/dev/null || true)
        log "errors: $errors ${kinds}"
    fi
    local rss_mb serve_mb verdict
    rss_mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
    serve_mb=$(awk -v k="$serve_hwm_kb" 'BEGIN { printf "%.1f", k / 1024 }')
    verdict=$(awk -v m="$rss_mb" -v g="$goal" 'BEGIN { print (m < g ? "PASS" : "FAIL") }')
    echo "barrage-runner run:  wall $wall, cpu user ${cpu_user}s sys ${cpu_sys}s"
    echo "requests $requests, errors $errors, $rps req/s, p95 ${p95} ms, p99 ${p99} ms"
    echo "reference: barrage-runner serve peak RSS (VmHWM) = $serve_mb MB"
    echo "peak RSS barrage-runner run ($label) = $rss_mb MB (goal < $goal MB): $verdict"
    echo
    results+=("peak RSS barrage-runner run ($label) = $rss_mb MB (goal < $goal MB): $verdict")
}

# --- users: 10,000 users against a 1 s target ---------------------------------
if [[ $case_ == all || $case_ == users ]]; then
    start_target "$here/slow-target.yaml"
    cat >"$tmp/users.yaml" <<EOF
target:
  baseUrl: http://127.0.0.1:$port
load:
  executor: concurrency
  users: $users
  duration: ${duration}s
requests:
  - name: slow
    method: GET
    path: /
EOF
    echo "== users: $users users (closed model), ${duration}s, target GET / with 1 s latency on 127.0.0.1:$port"
    echo "limits:   ulimit -n $(ulimit -n); net.core.somaxconn $(cat /proc/sys/net/core/somaxconn); tcp_max_syn_backlog $(cat /proc/sys/net/ipv4/tcp_max_syn_backlog)"
    echo "kernel before: $(listen_drops)"
    measure "$users users" "$goal_mb" "$tmp/users.yaml"
    echo "kernel after:  $(listen_drops)"
    stop_target
fi

# --- names: many request names at a low rate ----------------------------------
if [[ $case_ == all || $case_ == names || $case_ == names-workers ]]; then
    if [[ $slow_names == 1 ]]; then
        start_target "$here/slow-target.yaml"
        what="GET / with 1 s latency"
        path() { echo /; }
    else
        start_target
        what="built-in GET /schemas/N (1 ms, 5% 20 ms)"
        path() { echo "/schemas/$1"; }
    fi
    {
        cat <<EOF
target:
  baseUrl: http://127.0.0.1:$port
load:
  executor: arrival-rate
  rate: $rate
  duration: ${names_duration}s
  maxInFlight: 1000
requests:
EOF
        for i in $(seq 0 $((names - 1))); do
            printf '  - {name: r%03d, method: GET, path: "%s"}\n' "$i" "$(path "$i")"
        done
    } >"$tmp/names.yaml"
    echo "== names: $names request names, $rate req/s for ${names_duration}s, target $what on 127.0.0.1:$port"
    if [[ $case_ != names-workers ]]; then
        measure "$names names, $rate req/s" "$names_goal_mb" "$tmp/names.yaml"
    fi
    if [[ $case_ != names ]]; then
        measure "$names names, $rate req/s, --workers $names_workers" "$names_goal_mb" \
            "$tmp/names.yaml" --workers "$names_workers"
    fi
    stop_target
fi

for r in "${results[@]}"; do
    echo "$r"
done
