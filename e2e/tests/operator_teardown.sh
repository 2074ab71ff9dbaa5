#!/usr/bin/env bash
# Teardown (issue 14). A LoadTest's setup registers users on the built-in
# target's auth flow, the load uses them, and `spec.teardown` deletes each
# one again (`DELETE /auth/me` per record) in a Job after the load. Checked:
# status.teardown (runs, failed, phase) and the TornDown condition; the
# load's figures hold the load's requests only; the target (its
# /auth/stats, seen from outside) has no users left. Then a teardown that
# fails with `failsTest: true` fails the test, naming the step and status.
source "$(dirname "$0")/../lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT

k -n "$NS" create configmap target-config --from-file=config.yaml="$ROOT/examples/auth-target.yaml" >/dev/null
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: target, labels: {app: target}}
spec:
  containers:
  - name: serve
    image: $(image runner)
    imagePullPolicy: $E2E_PULL_POLICY
    args: [serve, --listen, "0.0.0.0:8080", --config, /cfg/config.yaml]
    volumeMounts: [{name: cfg, mountPath: /cfg}]
    readinessProbe:
      httpGet: {path: /auth/stats, port: 8080}
      periodSeconds: 1
  volumes: [{name: cfg, configMap: {name: target-config}}]
YAML
wait_pod_ready target 120
TARGET_IP=$(k -n "$NS" get pod target -o jsonpath='{.status.podIP}')
assert_local_pod_ip "$TARGET_IP"
TARGET=$(expose target 8080)
start_operator

stat() { # FIELD of /auth/stats
  curl -fsS --max-time 10 "http://$TARGET_IP:8080/auth/stats" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# examples/provisioning.yaml, renamed, pointed at the target, USERS users and
# 40 requests over 2 runners, with a teardown that deletes every user.
manifest() { # NAME USERS EXPECTED_DELETE_STATUS [failsTest]
  sed -e "s/name: accounts-warm/name: $1/" \
    -e "s#baseUrl: http://127.0.0.1:8080#baseUrl: http://$TARGET:8080#" \
    -e "s/users: 100/users: $2/" \
    -e "s/^  load: .*/  load: {users: 4, iterations: 40}/" \
    -e "s/^spec:/spec:\n  runners: 2\n  runner: {imagePullPolicy: $E2E_PULL_POLICY}\n  timeouts: {setup: 2m, teardown: 1m}/" \
    "$ROOT/examples/provisioning.yaml"
  cat <<YAML
  teardown:
    perRecord: true
    concurrency: 5
    failsTest: ${4:-false}
    steps:
      - name: delete
        method: DELETE
        path: /auth/me
        headers: {authorization: "Bearer {{ record.token }}"}
        expect: {status: [$3]}
YAML
}

# --- Every user the setup made is deleted after the load.
manifest clean 20 200 | k -n "$NS" apply -f - >/dev/null
wait_lt_phase clean 180 Succeeded >/dev/null
echo "clean: $(lt_field clean .status.message); $(lt_field clean .status.teardown.message)"
[[ $(lt_field clean .status.teardown.phase) == Succeeded ]] || fail "clean: teardown $(lt_field clean .status.teardown)"
[[ $(lt_field clean .status.teardown.runs) == 20 && $(lt_field clean .status.teardown.failed) == 0 ]] ||
  fail "clean: expected 20 runs, none failed: $(lt_field clean .status.teardown)"
[[ $(lt_field clean '.status.conditions[?(@.type=="TornDown")].status') == True ]] || fail "clean: no TornDown condition"
# The load's figures are the load's: 40 requests, the teardown's 20 apart.
[[ $(lt_field clean .status.requests) == 40 && $(lt_field clean .status.errors) == 0 ]] ||
  fail "clean: the load's status counts $(lt_field clean .status.requests) requests"
[[ $(lt_field clean .status.teardown.requests) == 20 ]] || fail "clean: the teardown made $(lt_field clean .status.teardown.requests) requests"
[[ $(stat registered) == 0 && $(stat deleted) == 20 ]] ||
  fail "the target still has $(stat registered) users ($(stat deleted) deleted)"
[[ $(k -n "$NS" get job clean-teardown -o jsonpath='{.status.succeeded}') == 1 ]] || fail "the teardown Job did not succeed"
[[ $(k -n "$NS" get job clean-teardown -o jsonpath='{.metadata.ownerReferences[0].name}') == clean ]] ||
  fail "the teardown Job is not owned by its LoadTest"
k -n "$NS" get events --field-selector involvedObject.name=clean -o jsonpath='{.items[*].reason}' | grep -q TeardownSucceeded ||
  fail "no TeardownSucceeded event"
echo "ok: the teardown deleted every user; its outcome is in the status"

# --- A teardown that fails (it expects 204; the target answers 200) with
# failsTest: the load passed, the test fails, the message says why.
manifest strict 3 204 true | k -n "$NS" apply -f - >/dev/null
wait_lt_phase strict 180 Failed Succeeded >/dev/null
MSG=$(lt_field strict .status.message)
echo "strict: $MSG"
[[ $(lt_field strict .status.phase) == Failed ]] || fail "strict: a failed teardown with failsTest did not fail the test"
[[ $(lt_field strict '.status.conditions[?(@.type=="Complete")].reason') == TeardownFailed ]] || fail "strict: Complete's reason is not TeardownFailed"
[[ $(lt_field strict .status.teardown.failed) == 3 ]] || fail "strict: $(lt_field strict .status.teardown)"
[[ $MSG == *'3 of 3 runs failed; first failure: step "delete": status, status 200'* ]] || fail "strict: the message lacks the first failure"
[[ $MSG != *Bearer* ]] || fail "strict: the message carries a token"
echo "ok: a failed teardown with failsTest fails the test"
