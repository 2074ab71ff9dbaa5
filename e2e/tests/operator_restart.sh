#!/usr/bin/env bash
# The operator is killed in the middle of a run and started again: it picks the run
# up from the cluster (no second start: the same start instant) and the final total
# is exactly the planned count, neither lost nor double-counted.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT
TARGET=$(start_target)
start_operator

k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: restart}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 4, iterations: 2000, thinkTime: 10ms}
  requests:
    - {name: root, path: /}
YAML
wait_lt_phase restart 120 Running >/dev/null
START_AT=$(lt_field restart .status.startAtUs)
sleep 2
stop_operator KILL
MID=$(lt_field restart .status.requests)
echo "operator killed at ${MID} requests; restarting in 3 s"
sleep 3
start_operator
k -n "$NS" wait loadtest/restart --for=condition=Complete --timeout=120s >/dev/null || fail "did not complete after the restart"
PHASE=$(lt_field restart .status.phase)
REQUESTS=$(lt_field restart .status.requests)
echo "after restart: phase=$PHASE requests=$REQUESTS"
[[ $PHASE == Succeeded ]] || fail "expected Succeeded, got $PHASE: $(lt_field restart .status.message)"
[[ $REQUESTS == 2000 ]] || fail "expected exactly 2000 requests, got $REQUESTS"
((MID < 2000)) || fail "the run had already finished before the operator was killed ($MID)"
[[ $(lt_field restart .status.startAtUs) == "$START_AT" ]] || fail "the start instant changed: a second start"
STARTS=$(k -n "$NS" get events --field-selector involvedObject.name=restart,reason=Started -o name | wc -l)
[[ $STARTS == 1 ]] || fail "expected one Started event, found $STARTS"
echo "ok: restart mid-run kept exact totals and one start"
