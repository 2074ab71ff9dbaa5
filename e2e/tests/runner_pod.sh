#!/usr/bin/env bash
# A runner pod loads a target pod (barrage-runner's built-in server) by pod IP with a
# plan from a ConfigMap, and reports its summary as its termination message.
# Checks: exactly 200 requests (2 users x 200 iterations total), 0 errors, passed.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_namespace $?' EXIT
RUNNER_IMAGE=$(image runner)

k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: target, labels: {app: target}}
spec:
  containers:
  - name: serve
    image: $RUNNER_IMAGE
    imagePullPolicy: $E2E_PULL_POLICY
    args: [serve, --listen, "0.0.0.0:8080"]
    ports: [{containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
YAML
wait_pod_ready target 120
pod_ip target >/dev/null
expose target 8080 >/dev/null

# The short form through the pod's search path (NS.svc.cluster.local first): the
# Service `target` of the runner's own namespace.
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: plan}
data:
  plan.yaml: |
    target: {baseUrl: "http://target:8080"}
    load: {executor: concurrency, users: 2, iterations: 200}
    requests:
      - {name: root, method: GET, path: /}
---
apiVersion: v1
kind: Pod
metadata: {name: runner}
spec:
  restartPolicy: Never
  containers:
  - name: run
    image: $RUNNER_IMAGE
    imagePullPolicy: $E2E_PULL_POLICY
    # The summary goes to the termination message (max 4 KiB), read back below.
    args: [run, /plan/plan.yaml, --summary-json, /dev/termination-log]
    volumeMounts: [{name: plan, mountPath: /plan}]
  volumes:
  - name: plan
    configMap: {name: plan}
YAML

PHASE=$(wait_pod_finished runner 180)
STATE=$(k -n "$NS" get pod runner -o jsonpath='{.status.containerStatuses[0].state.terminated}')
EXIT_CODE=$(jq -r '.exitCode // "none"' <<<"$STATE")
SUMMARY=$(jq -r '.message // ""' <<<"$STATE")
echo "runner pod: phase=$PHASE exit=$EXIT_CODE summary=$SUMMARY"

jq -e 'type == "object"' <<<"$SUMMARY" >/dev/null 2>&1 || fail "termination message is not a JSON object: '$SUMMARY'"
[[ $EXIT_CODE == 0 ]] || fail "barrage-runner run exited with $EXIT_CODE (phase $PHASE)"
REQUESTS=$(jq -r '.requests' <<<"$SUMMARY")
ERRORS=$(jq -r '.errors' <<<"$SUMMARY")
PASSED=$(jq -r '.passed' <<<"$SUMMARY")
[[ $REQUESTS == 200 ]] || fail "expected exactly 200 requests, summary says $REQUESTS"
[[ $ERRORS == 0 ]] || fail "expected 0 errors, summary says $ERRORS"
[[ $PASSED == true ]] || fail "expected passed=true, summary says $PASSED"
echo "ok: 200 requests, 0 errors, passed"
