#!/usr/bin/env bash
# The chart with replicas: 2 and leader election: both operator pods become Ready (the
# probes do not depend on leadership), exactly one holds the Lease barrage-operator in
# the release namespace (through the chart's lease Role), a LoadTest is run once; after
# the leader pod is deleted another pod takes the Lease and runs the next LoadTest. The
# leader labels its pod barrage.dev/leader=true (the standby does not), the metrics
# Service's endpoints are the leader only, and the figures scraped THROUGH the Service
# (its ClusterIP, via kube-proxy) equal the LoadTest's status, before and after failover.
source "$(dirname "$0")/../lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NS=$(new_namespace)
trap 'cleanup_helm_test $?' EXIT

REL=barrage-e2e-$RANDOM
helm_install_barrage "$REL" "$NS" "replicas: 2"
k -n "$NS" wait --for=condition=Ready pod -l "app.kubernetes.io/instance=$REL" --timeout=120s >/dev/null ||
  fail "both operator pods should be Ready"
mapfile -t PODS < <(k -n "$NS" get pods -l "app.kubernetes.io/instance=$REL" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
((${#PODS[@]} == 2)) || fail "expected 2 operator pods, got ${#PODS[@]}"

holder() { k -n "$NS" get lease barrage-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true; }
# wait_holder NOT_THIS: until a live operator pod other than NOT_THIS holds the Lease; prints it.
wait_holder() {
  local deadline=$((SECONDS + 60)) h
  while :; do
    h=$(holder)
    # a live pod: it exists and is not being deleted
    if [[ -n $h && $h != "${1:-}" ]] && [[ $(k -n "$NS" get pod "$h" -o jsonpath='{.metadata.name}/{.metadata.deletionTimestamp}' 2>/dev/null) == "$h/" ]]; then
      echo "$h"
      return 0
    fi
    ((SECONDS < deadline)) || fail "no operator pod (other than '${1:-}') holds the Lease after 60s (holder: '${h}')"
    sleep 1
  done
}
LEADER=$(wait_holder)
[[ " ${PODS[*]} " == *" $LEADER "* ]] || fail "Lease holder $LEADER is not one of the operator pods"
echo "leader: $LEADER of ${PODS[*]}"

TARGET=$(start_target)
run_example() {
  sed "s|http://TARGET_IP:8080|http://$TARGET:8080|; s|name: incluster|name: $1|" "$ROOT/examples/loadtest-incluster.yaml" |
    k -n "$NS" apply -f - >/dev/null
  k -n "$NS" wait "loadtest/$1" --for=condition=Complete --timeout=240s >/dev/null ||
    fail "LoadTest $1 did not complete (phase $(lt_field "$1" .status.phase): $(lt_field "$1" .status.message))"
  [[ $(lt_field "$1" .status.phase) == Succeeded ]] || fail "LoadTest $1: $(lt_field "$1" .status.phase): $(lt_field "$1" .status.message)"
  # One operator ran it: one Started event (a second reconciler would start it again).
  local started
  started=$(k -n "$NS" get events --field-selector "involvedObject.kind=LoadTest,involvedObject.name=$1" -o json |
    jq '[.items[] | select(.reason == "Started") | (.count // 1)] | add // 0')
  echo "$1: requests=$(lt_field "$1" .status.requests) p95=$(lt_field "$1" .status.latencyMs.p95)ms, Started events: $started"
  [[ $started == 1 ]] || fail "LoadTest $1 was started $started times (expected once, by the leader)"
}
run_example first

# leader_endpoint LEADER: the leader's pod alone carries the label and is the metrics
# Service's one endpoint.
leader_endpoint() {
  local ip deadline=$((SECONDS + 30)) got labelled
  ip=$(k -n "$NS" get pod "$1" -o jsonpath='{.status.podIP}')
  while :; do
    labelled=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$REL,barrage.dev/leader=true" -o jsonpath='{.items[*].metadata.name}')
    got=$(k -n "$NS" get endpoints "$REL-metrics" -o jsonpath='{.subsets[*].addresses[*].ip}')
    [[ $labelled == "$1" && $got == "$ip" ]] && return 0
    ((SECONDS < deadline)) || fail "metrics Service: endpoints '$got' and labelled pods '$labelled', expected only the leader $1 ($ip)"
    sleep 1
  done
}
# scraped_equals_status LT: barrage_loadtest_requests_total scraped through the Service's
# ClusterIP equals status.requests, on every one of 6 scrapes (kube-proxy picks an
# endpoint per connection: a standby among them would answer without the gauge).
scraped_equals_status() {
  local svc want got i
  svc=$(k -n "$NS" get service "$REL-metrics" -o jsonpath='{.spec.clusterIP}')
  want=$(lt_field "$1" .status.requests)
  for i in 1 2 3 4 5 6; do
    got=$(curl -sf --max-time 5 "http://$svc:8080/metrics" | grep '^barrage_loadtest_requests_total{' |
      grep -F "namespace=\"$NS\"" | grep -F "name=\"$1\"" | awk '{print $NF}' || true)
    [[ $got == "$want" ]] || fail "scrape $i through the metrics Service ($svc): requests_total for $1 is '$got', status.requests is $want"
  done
  echo "metrics Service $svc: requests_total{name=$1} == status.requests == $want on 6 scrapes"
}
leader_endpoint "$LEADER"
scraped_equals_status first

# The follower never started its controller.
for p in "${PODS[@]}"; do
  [[ $p == "$LEADER" ]] && continue
  ! k -n "$NS" logs "$p" | grep -q "barrage-operator starting" || fail "the follower $p started reconciling without the Lease"
done

k -n "$NS" delete pod "$LEADER" --wait=false >/dev/null
START=$SECONDS
NEW=$(wait_holder "$LEADER")
echo "failover: $NEW took the Lease $((SECONDS - START))s after $LEADER was deleted"
# A leader stopped gracefully releases the Lease: no wait for it to expire (15 s).
((SECONDS - START < 12)) || fail "failover took $((SECONDS - START))s: the Lease was not released on shutdown"
run_example second
leader_endpoint "$NEW"
scraped_equals_status second
helm_uninstall_barrage "$REL"
echo "ok: 2 replicas, one leader, failover, the metrics Service follows the leader"
