#!/usr/bin/env bash
# Memory benchmark: peak RSS of barrage-runner running 10,000 closed-model
# users against a slow target (every response takes 1 s).
#
#   bench/memory.sh [--users N] [--duration SECS] [--port PORT]
#                   [--goal-mb MB] [--no-build]
#
# The target is `barrage-runner serve --config bench/slow-target.yaml` in a
# separate process on 127.0.0.1; the load is `barrage-runner run` under
# /usr/bin/time -v, whose "Maximum resident set size" is the figure compared
# with the goal (< 256 MB). Requests and errors from --summary-json show that
# all users really ran (10,000 users x 1 s latency ~ 10,000 req/s, 0 errors).
# The target's own peak RSS (VmHWM) is printed as a reference.
# Exits 0 whatever the result; non-zero only when something breaks.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

users=10000
duration=20
port=18091
goal_mb=256
build=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --users|-u) users=$2; shift 2 ;;
        --duration|-d) duration=${2%s}; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --goal-mb) goal_mb=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

log() { printf '[memory] %s\n' "$*" >&2; }

# --- prerequisites (idempotent) ---------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
    log "installing time from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 time >/dev/null
fi
bin=$root/target/release/barrage-runner
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

# --- the slow target, in its own process ------------------------------------
"$bin" serve --listen "127.0.0.1:$port" --config "$here/slow-target.yaml" >"$tmp/serve.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
for _ in $(seq 1 100); do
    port_busy "$port" && break
    sleep 0.1
done
port_busy "$port" || { echo "target did not start" >&2; cat "$tmp/serve.log" >&2; exit 1; }

cat >"$tmp/plan.yaml" <<EOF
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

json_field() { grep -oE "\"$2\":[-0-9.eE+]+" "$1" | head -n1 | cut -d: -f2; }
# Kernel counters that reveal accept-queue overflows (connects retried or lost).
listen_drops() { awk '/^TcpExt:/ { if (!h) { split($0, n); h = 1 } else { split($0, v); for (i in n) if (n[i] == "ListenOverflows" || n[i] == "ListenDrops") printf "%s=%s ", n[i], v[i] } }' /proc/net/netstat; }

echo "load:     $users users (closed model), ${duration}s, target GET / with 1 s latency on 127.0.0.1:$port"
echo "limits:   ulimit -n $(ulimit -n); net.core.somaxconn $(cat /proc/sys/net/core/somaxconn); tcp_max_syn_backlog $(cat /proc/sys/net/ipv4/tcp_max_syn_backlog)"
echo "kernel before: $(listen_drops)"

rc=0
/usr/bin/time -v -o "$tmp/time.txt" "$bin" run "$tmp/plan.yaml" -q \
    --summary-json "$tmp/summary.json" --out "$tmp/report.json" >"$tmp/run.log" 2>&1 || rc=$?
if [[ $rc != 0 && $rc != 99 ]]; then
    log "barrage-runner exited $rc"
    cat "$tmp/run.log" "$tmp/time.txt" >&2 || true
    exit 1
fi
echo "kernel after:  $(listen_drops)"

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
    kinds=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r["summary"]["total"].get("errorKinds") or r["summary"]["total"].get("errorsByKind") or ""))' "$tmp/report.json" 2>/dev/null || true)
    log "errors: $errors ${kinds}"
fi

rss_mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
serve_mb=$(awk -v k="$serve_hwm_kb" 'BEGIN { printf "%.1f", k / 1024 }')
verdict=$(awk -v m="$rss_mb" -v g="$goal_mb" 'BEGIN { print (m < g ? "PASS" : "FAIL") }')

echo
echo "barrage-runner run:  wall $wall, cpu user ${cpu_user}s sys ${cpu_sys}s"
echo "requests $requests, errors $errors, $rps req/s, p95 ${p95} ms, p99 ${p99} ms"
echo "reference: barrage-runner serve peak RSS (VmHWM) = $serve_mb MB"
echo "peak RSS barrage-runner run ($users users) = $rss_mb MB (goal < $goal_mb MB): $verdict"
