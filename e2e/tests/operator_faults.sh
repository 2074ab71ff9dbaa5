#!/usr/bin/env bash
# Faults and bad input: an invalid spec ends Failed with a condition and an event
# naming the field (no pods, no retry loop); a runner pod killed mid-run fails the
# test with that reason and keeps the results collected so far; a spec changed
# mid-run is not applied (condition + event); deleting a running LoadTest removes
# its runners and everything it owned.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT
TARGET=$(start_target)
start_operator

lt() { # lt NAME RUNNERS LOAD [THRESHOLDS-YAML]
  k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: $1}
spec:
  runners: $2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: $3
  requests:
    - {name: root, path: /}
  thresholds: ${4:-[]}
YAML
}

# --- invalid specs ---
lt zero 0 "{users: 1, duration: 2s}"
lt badthreshold 1 "{users: 1, duration: 2s}" "['p(95) << 10ms']"
for name in zero badthreshold; do
  wait_lt_phase "$name" 30 Failed >/dev/null
done
MSG=$(lt_field zero '.status.conditions[?(@.type=="Validated")].message')
[[ $MSG == *spec.runners* ]] || fail "invalid runners: condition does not name spec.runners: $MSG"
MSG=$(lt_field badthreshold .status.message)
[[ $MSG == *"spec.thresholds[0]"*column* ]] || fail "bad threshold: message does not name the field and column: $MSG"
k -n "$NS" get events --field-selector involvedObject.name=zero,reason=InvalidSpec -o name | grep -q . || fail "no InvalidSpec event"
[[ -z $(k -n "$NS" get pods -l barrage.dev/loadtest=zero -o name) ]] || fail "pods were created for an invalid spec"
echo "ok: invalid specs rejected with the field named"

# --- what the CRD schema refuses at apply time, and what only our types refuse ---
OUT=$(k -n "$NS" apply -f - 2>&1 <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: parsecs}
spec:
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 1, duration: "10 parsecs"}
  requests: [{name: root, path: /}]
YAML
) && fail "a bad duration was accepted by the apiserver"
[[ $OUT == *spec.load.duration* ]] || fail "the apiserver's refusal does not name spec.load.duration: $OUT"
lt huge 1 "{users: 1, duration: 2s, maxInFlight: 5000000000}"
wait_lt_phase huge 30 Failed >/dev/null
[[ $(lt_field huge .status.message) == *spec.load.maxInFlight* ]] || fail "unconvertible spec: message does not name the field: $(lt_field huge .status.message)"
k -n "$NS" get events --field-selector involvedObject.name=huge,reason=InvalidSpec -o name | grep -q . || fail "no InvalidSpec event for the unconvertible spec"
# It must not stall the others, even when the operator starts with it present.
stop_operator
start_operator
lt after 1 "{users: 1, iterations: 5}"
wait_lt_phase after 90 Succeeded >/dev/null
echo "ok: bad duration refused by the apiserver; unconvertible spec failed by name; others unaffected"

# --- a runner image that cannot be pulled ---
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: noimage}
spec:
  runner: {image: "$E2E_IMAGE_REPO/does-not-exist:0", imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 1, duration: 2s}
  requests: [{name: root, path: /}]
YAML
wait_lt_phase noimage 120 Failed >/dev/null
MSG=$(lt_field noimage .status.message)
[[ $MSG == *noimage-runner-0*Err* || $MSG == *noimage-runner-0*ImagePull* ]] || fail "an unpullable image should fail with the pull reason: $MSG"
echo "ok: unpullable image: $MSG"

# --- a runner pod killed mid-run ---
lt killed 2 "{users: 4, duration: 60s, thinkTime: 5ms}"
wait_lt_phase killed 120 Running >/dev/null
sleep 4
k -n "$NS" delete pod killed-runner-1 --grace-period=0 --force >/dev/null 2>&1
START=$SECONDS
wait_lt_phase killed 30 Failed >/dev/null
echo "killed: failed $((SECONDS - START))s after the kill: $(lt_field killed .status.message)"
[[ $(lt_field killed .status.message) == *killed-runner-1* ]] || fail "the failure does not name the killed runner"
REQUESTS=$(lt_field killed .status.requests)
((REQUESTS > 100)) || fail "results collected before the kill were lost (requests=$REQUESTS)"
k -n "$NS" get configmap killed-report >/dev/null || fail "no report kept for the failed test"

# --- spec changed mid-run, then the LoadTest deleted mid-run ---
lt changed 2 "{users: 2, duration: 60s, thinkTime: 10ms}"
wait_lt_phase changed 120 Running >/dev/null
k -n "$NS" patch loadtest changed --type merge -p '{"spec":{"load":{"users":50}}}' >/dev/null
for _ in $(seq 20); do
  [[ $(lt_field changed '.status.conditions[?(@.type=="SpecChangeIgnored")].status') == True ]] && break
  sleep 1
done
[[ $(lt_field changed '.status.conditions[?(@.type=="SpecChangeIgnored")].status') == True ]] || fail "no SpecChangeIgnored condition"
k -n "$NS" get events --field-selector involvedObject.name=changed,reason=SpecChangeIgnored -o name | grep -q . || fail "no SpecChangeIgnored event"
[[ $(lt_field changed .status.phase) == Running ]] || fail "the change disturbed the running test"
[[ $(lt_field changed .status.observedGeneration) == 1 ]] || fail "observedGeneration should stay at the running generation"

k -n "$NS" delete loadtest changed --wait=true --timeout=60s >/dev/null
for _ in $(seq 60); do
  left=$(k -n "$NS" get pods,configmaps,secrets -l barrage.dev/loadtest=changed -o json | jq '[.items[] | select(.metadata.deletionTimestamp == null)] | length')
  [[ $left == 0 ]] && break
  sleep 1
done
[[ $left == 0 ]] || fail "deleting the LoadTest left $left objects behind"
echo "ok: killed runner, spec change and deletion handled"
