#!/usr/bin/env bash
# Remote write from the operator in the cluster to a real Prometheus: Debian's
# `prometheus`, started here on the node IP (where pods reach this machine) with its
# remote-write receiver, native histograms and basic auth. The chart's cluster-wide
# default (prometheusRemoteWrite: the url, basic auth with the password from a Secret in
# the release namespace, mounted into the operator's pod) serves LoadTest `dflt`;
# LoadTest `own` names the receiver in its spec.output with the password from a Secret in
# its namespace; `wrong` gives a wrong password: Prometheus answers 401, the test passes
# all the same and its status counts the samples undelivered, with the error. PromQL then
# reads the pushed totals back: requests and native-histogram counts equal the statuses
# exactly, the p95 is the status's within the histogram's precision. The password is in
# no LoadTest, event or operator log.
source "$(dirname "$0")/../lib.sh"

[[ ${E2E_LOCAL_CLUSTER:-0} == 1 ]] || {
  echo "skip: Prometheus runs on this machine, which only the local harness's pods reach"
  exit 77
}
command -v prometheus >/dev/null || { echo "skip: no prometheus (apt-get install prometheus)"; exit 77; }

NODE_IP=198.18.0.10
PORT=$((20000 + RANDOM % 20000))
PROM=http://$NODE_IP:$PORT
PROM_DIR=$(mktemp -d /tmp/barrage-e2e-prometheus-XXXX)
PROM_PID=
NS=$(new_namespace)

cleanup() {
  local rc=$1
  if [[ -n $PROM_PID ]]; then
    kill "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  if ((rc != 0)); then
    echo "--- prometheus log (tail) ---" >&2
    tail -n 20 "$PROM_DIR/log" >&2 || true
    k -n "$NS" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 >&2 || true
  fi
  rm -rf "$PROM_DIR"
  cleanup_helm_test "$rc"
}
trap 'cleanup $?' EXIT

# --- Prometheus with basic auth (a bcrypt hash in its web config) ---------------------------
PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
HASH=$(python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' "$PASSWORD")
[[ $HASH == '$2'* ]] || fail "could not make a bcrypt hash for Prometheus's web config"
printf 'basic_auth_users:\n  barrage: %s\n' "$HASH" >"$PROM_DIR/web.yml"
printf 'global: {scrape_interval: 1m}\n' >"$PROM_DIR/prometheus.yml"
prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
  --web.listen-address="$NODE_IP:$PORT" --web.config.file="$PROM_DIR/web.yml" \
  --web.enable-remote-write-receiver --enable-feature=native-histograms >"$PROM_DIR/log" 2>&1 &
PROM_PID=$!
deadline=$((SECONDS + 60))
until curl -sf -u "barrage:$PASSWORD" "$PROM/-/ready" >/dev/null 2>&1; do
  kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited: $(tail -n 5 "$PROM_DIR/log")"
  ((SECONDS < deadline)) || fail "prometheus not ready on $PROM within 60s"
  sleep 0.5
done
[[ $(curl -s -o /dev/null -w '%{http_code}' "$PROM/-/ready") == 401 ]] || fail "prometheus does not ask for basic auth"
# The operator in the cluster reaches it by name, as users name their receiver: a
# Service without selector whose Endpoints are this machine's node address.
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: prometheus}
spec: {ports: [{port: $PORT, targetPort: $PORT}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: prometheus}
subsets: [{addresses: [{ip: $NODE_IP}], ports: [{port: $PORT}]}]
YAML
wait_service prometheus "$PORT"
PROM_IN=http://$(service_fqdn prometheus):$PORT

# promql QUERY: the first result's value, or nothing.
promql() {
  curl -sf -u "barrage:$PASSWORD" --data-urlencode "query=$1" "$PROM/api/v1/query" |
    jq -r '.data.result[0].value[1] // empty'
}

# --- The operator, in the cluster, with the chart's default receiver ------------------------
secret() { k -n "$NS" create secret generic "$1" --from-literal=password="$2" >/dev/null; }
secret rw-default "$PASSWORD"
secret rw-own "$PASSWORD"
secret rw-wrong "not-the-password"
TARGET=$(start_target)
helm_install_barrage barrage "$NS" "prometheusRemoteWrite:
  url: $PROM_IN/api/v1/write
  basicAuth: {username: barrage, passwordSecret: {name: rw-default, key: password}}
  interval: 1s"
[[ $(k -n "$NS" get deployment barrage -o json | jq -r '.spec.template.spec.containers[0].env[] | select(.name == "BARRAGE_REMOTE_WRITE") | .value' | jq -r .basicAuth.passwordFile) == /etc/barrage/remote-write/password ]] ||
  fail "the operator is not given the default receiver with its password file"

# own_output SECRET: spec.output naming the receiver, the password from SECRET.
own_output() {
  echo "{prometheusRemoteWrite: {url: '$PROM_IN/api/v1/write', basicAuth: {username: barrage, passwordFrom: {secret: $1, key: password}}, interval: 1s, histograms: native}}"
}
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: dflt}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: concurrency, users: 4, iterations: 2000}
  requests: [{name: home, path: /}]
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: own}
spec:
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: concurrency, users: 2, iterations: 600}
  requests: [{name: slow, path: /slow}]
  output: $(own_output rw-own)
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: wrong}
spec:
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: concurrency, users: 1, iterations: 100}
  requests: [{name: home, path: /}]
  output: $(own_output rw-wrong)
YAML

for lt in dflt own wrong; do
  k -n "$NS" wait "loadtest/$lt" --for=condition=Complete --timeout=240s >/dev/null ||
    fail "LoadTest $lt did not complete (phase $(lt_field "$lt" .status.phase): $(lt_field "$lt" .status.message))"
  [[ $(lt_field "$lt" .status.phase) == Succeeded ]] || fail "$lt: $(lt_field "$lt" .status.phase): $(lt_field "$lt" .status.message)"
done

# check_pushed LT: its status says every push was delivered, and what Prometheus holds
# for it equals the status: requests and histogram counts exactly, p95 within 1%.
check_pushed() {
  local lt=$1 rw sel requests pushed counted p95 p95_prom
  rw=$(k -n "$NS" get loadtest "$lt" -o json | jq -c .status.output.prometheusRemoteWrite)
  echo "$lt: status.output.prometheusRemoteWrite = $rw"
  jq -e --arg url "$PROM_IN/api/v1/write" '.url == $url and .pushes >= 1 and .samples > 0 and .undelivered == 0 and .lastError == null' <<<"$rw" >/dev/null ||
    fail "$lt: expected every push delivered to $PROM_IN/api/v1/write, status says $rw"
  sel="namespace=\"$NS\", loadtest=\"$lt\""
  requests=$(lt_field "$lt" .status.requests)
  pushed=$(promql "sum(barrage_requests_total{$sel})")
  counted=$(promql "sum(histogram_count(barrage_request_duration_seconds{$sel}))")
  p95=$(lt_field "$lt" .status.latencyMs.p95)
  p95_prom=$(promql "histogram_quantile(0.95, sum(barrage_request_duration_seconds{$sel})) * 1000")
  echo "$lt: requests status=$requests prometheus=$pushed histogram_count=$counted; p95 status=${p95}ms prometheus=${p95_prom}ms"
  [[ -n $pushed && $pushed == "$requests" ]] || fail "$lt: Prometheus holds ${pushed:-no} requests, the status $requests"
  [[ $counted == "$requests" ]] || fail "$lt: the native histograms count ${counted:-nothing}, the status $requests requests"
  [[ $(promql "sum(barrage_errors_total{$sel}) or vector(0)") == "$(lt_field "$lt" .status.errors)" ]] ||
    fail "$lt: errors in Prometheus differ from the status"
  # Within the native bucket (0.27%) and the status's rounding to the microsecond.
  awk -v a="$p95_prom" -v b="$p95" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= b * 0.01 + 0.002) }' ||
    fail "$lt: p95 from the native histograms ${p95_prom}ms is not the status's ${p95}ms"
  [[ $(promql "barrage_runners_active{$sel}") == 0 ]] || fail "$lt: the final push does not say 0 runners active"
}
check_pushed dflt
check_pushed own

# A receiver that refuses: the test is unharmed, the status says what was lost and why.
RW=$(k -n "$NS" get loadtest wrong -o json | jq -c .status.output.prometheusRemoteWrite)
echo "wrong: verdict=$(lt_field wrong .status.verdict) status.output.prometheusRemoteWrite = $RW"
[[ $(lt_field wrong .status.verdict) == Passed ]] || fail "a refusing receiver changed the verdict"
jq -e '.pushes == 0 and .undelivered > 0 and (.lastError | test("401"))' <<<"$RW" >/dev/null ||
  fail "wrong: expected undelivered samples and a 401 in the status, got $RW"
[[ -z $(promql "count(barrage_requests_total{namespace=\"$NS\", loadtest=\"wrong\"})") ]] ||
  fail "Prometheus took series with a wrong password"

# The password went into the pushes only.
for what in "get loadtests -o json" "get events -o json"; do
  # shellcheck disable=SC2086
  ! k -n "$NS" $what | grep -qF "$PASSWORD" || fail "the password is in: kubectl $what"
done
! k -n "$NS" logs "$OPERATOR_POD" | grep -qF "$PASSWORD" || fail "the password is in the operator's log"
echo "ok: the operator's pushes reached Prometheus; totals equal the statuses; refusals counted"
