#!/usr/bin/env bash
# The lifecycle's other paths: a provisioning Job that succeeds runs before the
# runners (Provisioning → Starting → Succeeded); one that fails fails the test with
# the Job's reason; an abortOnFail threshold stops a run early as Aborted; a target
# name that does not resolve ends the test with every request counted as `dns`.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT
TARGET=$(start_target)
start_operator

# The runner image holds only barrage-runner: its --version stands in for a
# setup that succeeds, validating a missing file for one that fails.
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: provisioned}
spec:
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  setup: {image: "$(image runner)", args: ["--version"]}
  # NAME.NS, through the runner pods' search path (svc.cluster.local)
  target: {baseUrl: "http://target.$NS:8080"}
  load: {users: 1, iterations: 20}
  requests: [{name: root, path: /}]
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: badsetup}
spec:
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  setup: {image: "$(image runner)", args: ["validate", "/no/such/plan.yaml"]}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 1, iterations: 20}
  requests: [{name: root, path: /}]
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: aborted}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 2, duration: 60s, thinkTime: 20ms}
  requests: [{name: broken, path: /error}]
  thresholds: ["error_rate < 1% abortOnFail"]
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: nxname}
spec:
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://no-such-service.$NS.svc.cluster.local:8080"}
  load: {users: 2, iterations: 30}
  requests: [{name: root, path: /}]
YAML

START=$SECONDS
wait_lt_phase aborted 60 Aborted >/dev/null
echo "aborted after $((SECONDS - START))s: $(lt_field aborted .status.message)"
((SECONDS - START < 45)) || fail "the abort did not stop the 60 s run early"
[[ $(lt_field aborted .status.message) == *error_rate* ]] || fail "the abort does not name the threshold"
[[ $(lt_field aborted '.status.conditions[?(@.type=="Complete")].status') == True ]] || fail "Complete should be True after an abort"
((  $(lt_field aborted .status.requests) > 0 )) || fail "results before the abort were lost"

wait_lt_phase provisioned 120 Succeeded >/dev/null
[[ $(lt_field provisioned '.status.conditions[?(@.type=="Provisioned")].status') == True ]] || fail "no Provisioned condition"
[[ $(k -n "$NS" get job provisioned-setup -o jsonpath='{.status.succeeded}') == 1 ]] || fail "the setup job did not run to success"
[[ $(lt_field provisioned .status.requests) == 20 ]] || fail "expected 20 requests after provisioning"
echo "ok: provisioning job ran before the runners"

wait_lt_phase badsetup 120 Failed >/dev/null
MSG=$(lt_field badsetup .status.message)
echo "badsetup: $MSG"
[[ $MSG == *"setup job failed"* ]] || fail "a failed setup job should fail the test with its reason: $MSG"
[[ -z $(k -n "$NS" get pods -l barrage.dev/loadtest=badsetup,barrage.dev/role=runner -o name) ]] || fail "runners were started after a failed setup"
echo "ok: setup failure and abort"

# A name that does not resolve: every request is counted, as `dns` (not `connect`).
PHASE=$(wait_lt_phase nxname 120 Failed Succeeded)
MSG=$(lt_field nxname .status.message)
echo "nxname: $PHASE: $MSG"
[[ $PHASE == Failed ]] || fail "a target that does not resolve should fail the test: $PHASE"
[[ $(lt_field nxname .status.requests) == 30 && $(lt_field nxname .status.errorKinds.dns) == 30 ]] ||
  fail "expected 30 requests, all dns errors: $(lt_field nxname .status.errorKinds)"
[[ -z $(lt_field nxname .status.errorKinds.connect) ]] || fail "an unresolvable name counted as connect"
[[ $MSG == *"dns 30"* ]] || fail "the message does not name the dns errors: $MSG"
echo "ok: an unresolvable target name is the dns error kind"
