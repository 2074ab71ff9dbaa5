#!/usr/bin/env bash
# Throughput benchmark: barrage-runner vs wrk against the same local target.
#
#   bench/throughput.sh [--target nginx|barrage] [--connections N]
#                       [--duration SECS] [--rounds N] [--threads N]
#                       [--nginx-workers N|auto] [--port PORT]
#                       [--barrage-workers N] [--goal RATIO] [--no-build]
#                       [--scheme http|https] [--http 1.1|2] [--streams N]
#                       [--scenarios N] [--compare BIN]
#
# Runs a reference client and barrage-runner alternately (ref, barrage, ref,
# barrage, ...) against one target on 127.0.0.1, with the same connections,
# duration and thread count, then prints each run's req/s, the medians and
# the ratio barrage/reference against the goal (0.9). It is a benchmark, not
# a test: it exits 0 whatever the ratio, and non-zero only when something
# breaks.
#
# The reference is wrk for HTTP/1.1 (over TLS too with --scheme https) and
# h2load (Debian's nghttp2-client) for --http 2: N connections x --streams
# concurrent streams each (h2load -c N -m STREAMS), and barrage with
# users = N x STREAMS over `target.connections: N`. Over https both clients
# use a fresh ECDSA P-256 certificate for 127.0.0.1 from a private CA made
# with openssl; barrage trusts the CA through target.tls.caFile (caMode:
# replace), wrk and h2load do not verify.
#
# --scenarios N (N > 1): each round also runs the same load split over N
# weighted scenarios (weight 1 each, the same request), and the last lines
# compare its client CPU per request with the one-scenario plan's (goal:
# within 5%).
#
# --compare BIN: each round also runs another barrage-runner binary (BIN,
# e.g. main's build saved aside) with the same plan right after this one,
# and the last lines compare the two (CPU per request and req/s): a
# before/after measured in one invocation, under the same load.
#
# Thread counts: wrk gets `-t THREADS`; barrage-runner's tokio runtime uses
# one worker thread per core by default, and this script pins it to THREADS
# too through TOKIO_WORKER_THREADS (read by tokio's runtime builder).
#
# Target: nginx by default (a C server that is cheap per request, so the
# client's own cost shows), with worker_processes auto. On a small machine
# the load generator and the target share the cores; with `auto`, nginx can
# use whatever CPU the client leaves, so a client that spends less CPU per
# request gets more req/s: the comparison measures client efficiency. With
# worker_processes 1, nginx caps at one core and both clients may simply
# saturate it, hiding a difference between them. `--nginx-workers 1` is
# there to check that case.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

target=nginx
conns=50
duration=10
rounds=3
threads=2
nginx_workers=auto
port=18089
barrage_workers=1
goal=0.9
build=1
scheme=http
http=1.1
streams=10
scenarios=1
compare=

usage() { sed -n '2,42p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --target) target=$2; shift 2 ;;
        --connections|-c) conns=$2; shift 2 ;;
        --duration|-d) duration=${2%s}; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --threads|-t) threads=$2; shift 2 ;;
        --nginx-workers) nginx_workers=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --barrage-workers) barrage_workers=$2; shift 2 ;;
        --goal) goal=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --scheme) scheme=$2; shift 2 ;;
        --http) http=$2; shift 2 ;;
        --streams|-m) streams=$2; shift 2 ;;
        --scenarios) scenarios=$2; shift 2 ;;
        --compare) compare=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$target" in nginx|barrage) ;; *) echo "--target must be nginx or barrage" >&2; exit 2 ;; esac
case "$scheme" in http|https) ;; *) echo "--scheme must be http or https" >&2; exit 2 ;; esac
case "$http" in 1.1|2) ;; *) echo "--http must be 1.1 or 2" >&2; exit 2 ;; esac
if [[ $http == 2 ]]; then ref=h2load; else ref=wrk; fi

log() { printf '[throughput] %s\n' "$*" >&2; }

# --- prerequisites (idempotent) ---------------------------------------------
need_pkgs=()
command -v wrk >/dev/null || need_pkgs+=(wrk)
[[ $ref == h2load ]] && ! command -v h2load >/dev/null && need_pkgs+=(nghttp2-client)
[[ $scheme == https ]] && ! command -v openssl >/dev/null && need_pkgs+=(openssl)
if [[ $target == nginx ]] && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    need_pkgs+=(nginx-light)
fi
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
    log "installing ${need_pkgs[*]} from Debian"
    apt-get update -qq
    # Packages must not start a system nginx on port 80 (policy-rc.d usually
    # prevents it in containers; we stop nothing we did not start).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
        "${need_pkgs[@]}" >/dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

bin=$root/target/release/barrage-runner
if [[ $build == 1 ]]; then
    log "building barrage-runner (release)"
    (cd "$root" && cargo build --release -q -p barrage-runner)
fi
[[ -x $bin ]] || { echo "no $bin (build failed?)" >&2; exit 1; }
[[ -z $compare || -x $compare ]] || { echo "--compare: no executable $compare" >&2; exit 1; }

# --- cleanup ----------------------------------------------------------------
tmp=$(mktemp -d /tmp/barrage-bench-throughput.XXXXXX)
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

# --- certificate (https) ----------------------------------------------------
listen_opts=""
tls_conf=""
if [[ $scheme == https ]]; then
    mkdir -p "$tmp/tls"
    # A private CA and a server certificate it signs (a self-signed leaf
    # carries CA:TRUE, which webpki refuses as an end entity, as browsers do).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=bench ca" -addext basicConstraints=critical,CA:TRUE \
        -keyout "$tmp/tls/ca.key" -out "$tmp/tls/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tmp/tls/key.pem" -out "$tmp/tls/cert.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$tmp/tls/ext"
    openssl x509 -req -in "$tmp/tls/cert.csr" -CA "$tmp/tls/ca.pem" -CAkey "$tmp/tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$tmp/tls/ext" -out "$tmp/tls/cert.pem" 2>/dev/null
    listen_opts=" ssl"
    # Session tickets and a shared cache as a production nginx would have;
    # neither client reconnects during a keep-alive run anyway.
    tls_conf="ssl_certificate $tmp/tls/cert.pem;
        ssl_certificate_key $tmp/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench:1m;"
fi
[[ $http == 2 ]] && listen_opts="$listen_opts http2"

# --- target -----------------------------------------------------------------
if [[ $target == nginx ]]; then
    mkdir -p "$tmp/nginx/logs"
    cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes $nginx_workers;
worker_rlimit_nofile 65536;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path $tmp/nginx/client_body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    # Measure keep-alive throughput: never close a connection after N
    # requests (nginx's default is 1000), which would make both clients
    # reconnect every few milliseconds.
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$port$listen_opts backlog=4096;
        $tls_conf
        location / {
            return 200 "ok";
        }
    }
}
EOF
    "$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' \
        2>"$tmp/nginx/stderr" &
    pids+=($!)
    target_desc="nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'), worker_processes $nginx_workers"
else
    serve_tls=()
    [[ $scheme == https ]] && serve_tls=(--tls-cert "$tmp/tls/cert.pem" --tls-key "$tmp/tls/key.pem")
    "$bin" serve --listen "127.0.0.1:$port" "${serve_tls[@]}" >"$tmp/serve.log" 2>&1 &
    pids+=($!)
    target_desc="barrage-runner serve (built-in routes)"
fi
url="$scheme://127.0.0.1:$port/"
for _ in $(seq 1 100); do
    port_busy "$port" && break
    sleep 0.1
done
port_busy "$port" || { echo "target did not start on $url" >&2; cat "$tmp"/nginx/stderr "$tmp"/serve.log 2>/dev/null >&2; exit 1; }
body=$(curl -fsSk "$url" 2>/dev/null || true)
[[ -z $body || $body == ok ]] || log "warning: GET / answered '$body', expected 'ok'"

# --- the plan ----------------------------------------------------------------
users=$conns
target_extra=""
if [[ $scheme == https ]]; then
    target_extra+="
  tls: {caFile: $tmp/tls/ca.pem, caMode: replace}"
fi
if [[ $http == 2 ]]; then
    users=$((conns * streams))
    target_extra+="
  http: \"2\"
  connections: $conns"
fi
cat >"$tmp/plan.yaml" <<EOF
target:
  baseUrl: $scheme://127.0.0.1:$port$target_extra
load:
  executor: concurrency
  users: $users
  duration: ${duration}s
requests:
  - name: get-root
    method: GET
    path: /
EOF

# --scenarios N: the same load and request as N weighted scenarios.
if [[ $scenarios -gt 1 ]]; then
    sed '/^requests:/,$d' "$tmp/plan.yaml" >"$tmp/plan-scenarios.yaml"
    echo "scenarios:" >>"$tmp/plan-scenarios.yaml"
    for i in $(seq 1 "$scenarios"); do
        echo "  s$i: {weight: 1, requests: [{name: get-root, method: GET, path: /}]}" >>"$tmp/plan-scenarios.yaml"
    done
fi

run_wrk() {
    local out rps
    out=$(cpu_time "$tmp/wrk.cpu" wrk -t"$threads" -c"$conns" -d"${duration}s" "$url" 2>&1) || { echo "$out" >&2; return 1; }
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    cpu_per_req "$tmp/wrk.cpu" "$(awk '/ requests in / {print $1}' <<<"$out")" >"$tmp/last.cpu"
    local errs
    errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr '\n' ' ' || true)
    [[ -n $errs ]] && log "wrk: $errs"
    printf '%s\n' "$rps"
}

# Client CPU (user + system seconds) of a command, into file $1, so that each
# run also reports CPU microseconds per request: less sensitive than req/s to
# other load on a shared machine.
cpu_time() {
    local f=$1; shift
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%U %S' -o "$f" "$@"
    else
        echo "0 0" >"$f"; "$@"
    fi
}
cpu_per_req() { awk -v n="${2:-0}" '{ if (n > 0 && $1 + $2 > 0) printf "%.2f", ($1 + $2) * 1e6 / n; else print "n/a" }' "$1"; }

# A top-level number from barrage's one-line --summary-json.
json_field() { grep -oE "\"$2\":[-0-9.eE+]+" "$1" | head -n1 | cut -d: -f2; }

run_barrage() {
    local rc=0
    TOKIO_WORKER_THREADS=$threads cpu_time "$tmp/barrage.cpu" "${run_bin:-$bin}" run "${1:-$tmp/plan.yaml}" --workers "$barrage_workers" \
        -q --summary-json "$tmp/summary.json" >"$tmp/barrage.out" 2>&1 || rc=$?
    # 99 = a threshold failed; the plan has none, so anything non-zero is a failure.
    if [[ $rc != 0 ]]; then
        cat "$tmp/barrage.out" >&2
        return 1
    fi
    local requests errors rps
    requests=$(json_field "$tmp/summary.json" requests)
    errors=$(json_field "$tmp/summary.json" errors)
    rps=$(json_field "$tmp/summary.json" rps)
    [[ $errors != 0 ]] && log "barrage: $errors errors out of $requests requests"
    cpu_per_req "$tmp/barrage.cpu" "$requests" >"$tmp/last.cpu"
    printf '%s\n' "$rps"
}

# h2load: N clients (connections) with M streams each; "finished in 10.00s,
# 45000.12 req/s" and "requests: T total, T started, D done, S succeeded".
run_h2load() {
    local out rps
    out=$(cpu_time "$tmp/ref.cpu" h2load -t"$threads" -c"$conns" -m"$streams" -D"$duration" "$url" 2>&1) || { echo "$out" >&2; return 1; }
    rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out")
    local done failed
    done=$(awk '/^requests:/ {print $8}' <<<"$out")
    failed=$(awk '/^requests:/ {print $12}' <<<"$out")
    [[ ${failed:-0} != 0 ]] && log "h2load: $failed failed"
    cpu_per_req "$tmp/ref.cpu" "$done" >"$tmp/last.cpu"
    printf '%s\n' "$rps"
}

run_ref() { if [[ $ref == h2load ]]; then run_h2load; else run_wrk; fi; }

median() {
    sort -g | awk '{v[NR]=$1} END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}

echo "target:      $target_desc on $url"
if [[ $http == 2 ]]; then
    echo "load:        HTTP/2, $conns connections x $streams streams, ${duration}s per run, $rounds rounds ($ref, barrage alternating)"
else
    echo "load:        HTTP/1.1, $conns connections, ${duration}s per run, $rounds rounds ($ref, barrage alternating)"
fi
echo "threads:     $ref -t$threads; barrage-runner TOKIO_WORKER_THREADS=$threads, --workers $barrage_workers"
echo "machine:     $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

wrk_all=(); wrk_cpu=()
barrage_all=(); barrage_cpu=()
split_all=(); split_cpu=()
cmp_all=(); cmp_cpu=()
for r in $(seq 1 "$rounds"); do
    w=$(run_ref)
    wc=$(cat "$tmp/last.cpu")
    printf 'round %d  %-15s %10.1f req/s   client CPU %6s us/req\n' "$r" "$ref" "$w" "$wc"
    wrk_all+=("$w"); wrk_cpu+=("$wc")
    sleep 1
    b=$(run_barrage)
    bc=$(cat "$tmp/last.cpu")
    printf 'round %d  barrage-runner  %10.1f req/s   client CPU %6s us/req\n' "$r" "$b" "$bc"
    barrage_all+=("$b"); barrage_cpu+=("$bc")
    sleep 1
    if [[ $scenarios -gt 1 ]]; then
        b=$(run_barrage "$tmp/plan-scenarios.yaml")
        bc=$(cat "$tmp/last.cpu")
        printf 'round %d  barrage x%-7s %10.1f req/s   client CPU %6s us/req\n' "$r" "$scenarios" "$b" "$bc"
        split_all+=("$b"); split_cpu+=("$bc")
        sleep 1
    fi
    if [[ -n $compare ]]; then
        b=$(run_bin=$compare run_barrage)
        bc=$(cat "$tmp/last.cpu")
        printf 'round %d  compare (BIN)   %10.1f req/s   client CPU %6s us/req\n' "$r" "$b" "$bc"
        cmp_all+=("$b"); cmp_cpu+=("$bc")
        sleep 1
    fi
done

wrk_med=$(printf '%s\n' "${wrk_all[@]}" | median)
barrage_med=$(printf '%s\n' "${barrage_all[@]}" | median)
ratio=$(awk -v b="$barrage_med" -v w="$wrk_med" 'BEGIN { printf "%.3f", (w > 0 ? b / w : 0) }')
verdict=$(awk -v r="$ratio" -v g="$goal" 'BEGIN { print (r >= g ? "PASS" : "FAIL") }')

echo
printf 'median   %-15s %10.1f req/s   client CPU %6s us/req\n' "$ref" "$wrk_med" "$(printf '%s\n' "${wrk_cpu[@]}" | median)"
printf 'median   barrage-runner  %10.1f req/s   client CPU %6s us/req\n' "$barrage_med" "$(printf '%s\n' "${barrage_cpu[@]}" | median)"
cpu_ratio=$(awk -v b="$(printf '%s\n' "${barrage_cpu[@]}" | median)" -v w="$(printf '%s\n' "${wrk_cpu[@]}" | median)" \
    'BEGIN { if (w > 0 && b > 0) printf "%.3f", b / w; else print "n/a" }')
echo "client CPU per request barrage/$ref = $cpu_ratio"
echo "throughput ratio barrage/$ref = $ratio (goal >= $goal): $verdict"
if [[ $scenarios -gt 1 ]]; then
    one=$(printf '%s\n' "${barrage_cpu[@]}" | median)
    many=$(printf '%s\n' "${split_cpu[@]}" | median)
    printf 'median   barrage x%-7s %10.1f req/s   client CPU %6s us/req\n' "$scenarios" \
        "$(printf '%s\n' "${split_all[@]}" | median)" "$many"
    awk -v m="$many" -v o="$one" -v n="$scenarios" 'BEGIN {
        if (o > 0 && m > 0) printf "client CPU per request %d scenarios/1 = %.3f (goal <= 1.05): %s\n", n, m / o, (m / o <= 1.05 ? "PASS" : "FAIL");
        else print "client CPU per request: n/a" }'
fi
if [[ -n $compare ]]; then
    this=$(printf '%s\n' "${barrage_cpu[@]}" | median)
    other=$(printf '%s\n' "${cmp_cpu[@]}" | median)
    other_rps=$(printf '%s\n' "${cmp_all[@]}" | median)
    printf 'median   compare (BIN)   %10.1f req/s   client CPU %6s us/req   (%s)\n' "$other_rps" "$other" "$compare"
    awk -v t="$this" -v o="$other" -v tr="$barrage_med" -v or="$other_rps" -v w="$wrk_med" -v ref="$ref" 'BEGIN {
        if (t > 0 && o > 0) printf "client CPU per request this/compare = %.3f; req/s this/compare = %.3f; compare/%s = %.3f\n", t / o, tr / or, ref, or / w;
        else print "compare: n/a" }'
fi
