#!/usr/bin/env bash
# Soak checks through the operator: windowed thresholds judged on the merged
# per-interval series of 2 runner pods (every 2s window's rps and error rate, the
# last window against the first), a windowed threshold that fails and names its
# window, a live `each` window with abortOnFail that stops the runners once it has
# settled, and a window that is not whole reportIntervals refused at validation.
# Then the pipeline gates of docs/argocd.md (kubectl wait on Complete, then on
# Passed with --timeout=0s) and, when lua5.1 is installed, the Argo CD health
# check run on the real statuses.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT
TARGET=$(start_target)
start_operator

k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: soak}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: arrival-rate, rate: 40, duration: 6s}
  reportInterval: 1s
  requests:
    - {name: slow, path: /slow}
  thresholds:
    - "rps[each 2s] >= 30"
    - "error_rate[each 2s] == 0"
    - "p(95)[last 2s] <= 3 * p(95)[first 2s]"
    - "p(99)[from 2s to 4s] < 1s"
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: strict}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: arrival-rate, rate: 40, duration: 6s}
  reportInterval: 1s
  requests:
    - {name: home, path: /}
  thresholds: ["error_rate < 1%", "rps[each 2s] > 1000"]
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: abort}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 2, duration: 60s, thinkTime: 20ms}
  reportInterval: 1s
  collectInterval: 1s
  requests:
    - {name: error, path: /error}
  thresholds: ["error_rate[each 2s] < 50% abortOnFail"]
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: invalid}
spec:
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 1, duration: 5m}
  reportInterval: 20s
  requests:
    - {name: r, path: /}
  thresholds: ["error_rate[each 45s] < 1%"]
YAML

# A window that is not whole intervals: refused before any pod exists.
wait_lt_phase invalid 30 Failed >/dev/null
MSG=$(lt_field invalid '.status.conditions[?(@.type=="Validated")].message')
echo "invalid: $MSG"
[[ $MSG == *"spec.thresholds[0]: column 17: 45s is not a whole number of reportInterval (20s)"* ]] ||
  fail "the invalid window's message does not name the field, column and reportInterval: $MSG"

# Every window passes: judged on the merged series of both runners.
k -n "$NS" wait loadtest/soak --for=condition=Complete --timeout=180s >/dev/null ||
  fail "LoadTest soak did not complete (phase $(lt_field soak .status.phase))"
PHASE=$(lt_field soak .status.phase)
echo "soak: phase=$PHASE requests=$(lt_field soak .status.requests)"
for i in 0 1 2 3; do
  echo "  $(lt_field soak ".status.thresholds[$i].source"): $(lt_field soak ".status.thresholds[$i].observedText")"
done
[[ $PHASE == Succeeded ]] || fail "expected Succeeded, got $PHASE: $(lt_field soak .status.message)"
RPS_TEXT=$(lt_field soak '.status.thresholds[0].observedText')
[[ $RPS_TEXT == "worst window "*": rps "*"limit >= 30; 3 window(s) of 2s passed" ]] ||
  fail "rps[each 2s] should judge the 3 full windows of the 6s run: '$RPS_TEXT'"
[[ $(lt_field soak '.status.thresholds[2].observedText') == "window 4s-6s: p(95) "*" in 0s-2s)" ]] ||
  fail "the last window should be compared with the first: $(lt_field soak '.status.thresholds[2].observedText')"
REPORT=$(k -n "$NS" get configmap soak-report -o jsonpath='{.data.report\.json}')
jq -e '.snapshot.intervalUs == 1000000 and (.snapshot.intervals | length) >= 6
       and ([.snapshot.intervals[].requests] | add) == .summary.total.requests
       and .recordedIntervalUs == null and .summary.total.requests + .summary.dropped == 240
       and .summary.dropped <= 2' <<<"$REPORT" >/dev/null ||
  fail "the report should keep the 1s series of all 240 arrivals (sent, or at most 2 dropped at the end): $(jq -c '{intervalUs: .snapshot.intervalUs, n: (.snapshot.intervals | length), total: .summary.total.requests, dropped: .summary.dropped, recorded: .recordedIntervalUs}' <<<"$REPORT")"

# A windowed threshold that fails names its window.
k -n "$NS" wait loadtest/strict --for=condition=Complete --timeout=180s >/dev/null || fail "LoadTest strict did not complete"
TEXT=$(lt_field strict '.status.thresholds[1].observedText')
echo "strict: phase=$(lt_field strict .status.phase) rps[each 2s] > 1000: $TEXT"
[[ $(lt_field strict .status.phase) == Failed ]] || fail "a failed windowed threshold should give Failed"
[[ $(lt_field strict '.status.thresholds[0].passed') == true ]] || fail "error_rate < 1% should pass"
[[ $TEXT == "window "*"s: rps "*"/s, limit > 1000; 3 of 3 window(s) of 2s failed" ]] || fail "unexpected observedText '$TEXT'"
[[ $(lt_field strict .status.message) == *"rps[each 2s] > 1000 (observed window "* ]] || fail "the message does not name the window"

# The pipeline gates: Complete, then Passed checked once.
k -n "$NS" wait loadtest/soak --for=condition=Passed --timeout=0s >/dev/null || fail "kubectl wait --for=condition=Passed should pass for soak"
if k -n "$NS" wait loadtest/strict --for=condition=Passed --timeout=0s >/dev/null 2>&1; then
  fail "kubectl wait --for=condition=Passed --timeout=0s should fail at once for a failed test"
fi

# Live: the first 2s window is all errors; it settles a second after 2s and aborts.
wait_lt_phase abort 150 Aborted Failed Succeeded >/dev/null
PHASE=$(lt_field abort .status.phase)
MSG=$(lt_field abort .status.message)
REQUESTS=$(lt_field abort .status.requests)
echo "abort: phase=$PHASE requests=$REQUESTS message=$MSG"
[[ $PHASE == Aborted ]] || fail "the live window should abort the test, got $PHASE: $MSG"
[[ $MSG == 'aborted: threshold "error_rate[each 2s] < 50% abortOnFail" failed (observed window 0s-2s: error_rate 100.00%'* ]] ||
  fail "the abort does not name the window: $MSG"
STARTED=$(lt_field abort .status.startedAt)
FINISHED=$(lt_field abort .status.finishedAt)
RAN=$(($(date -d "$FINISHED" +%s) - $(date -d "$STARTED" +%s)))
((RAN < 30)) || fail "aborted only after ${RAN}s of a 60s test"

# The Argo CD health check on these real statuses (docs/argocd/).
if command -v lua5.1 >/dev/null; then
  OBJECTS=$(mktemp /tmp/barrage-soak-lts-XXXX.json)
  k -n "$NS" get loadtests -o json >"$OBJECTS"
  python3 - "$(cd "$(dirname "$0")/../.." && pwd)/docs/argocd" "$OBJECTS" <<'PY' || fail "the Argo CD health check disagrees with the statuses"
import json, os, sys
sys.path.insert(0, sys.argv[1])
import test_health as th
script = os.path.join(sys.argv[1], "barrage.dev", "LoadTest", "health.lua")
want = {"soak": "Healthy", "strict": "Degraded", "abort": "Degraded", "invalid": "Degraded"}
lua = th.find_lua()
bad = 0
with open(sys.argv[2]) as f:
    items = json.load(f)["items"]
for obj in items:
    name = obj["metadata"]["name"]
    status, message = th.run_check(lua, script, obj)
    print(f"health {name}: {status}: {message}")
    if status != want[name]:
        bad += 1
sys.exit(1 if bad else 0)
PY
  rm -f "$OBJECTS"
else
  echo "SKIP the Argo CD health check on live statuses: no lua5.1 (apt-get install -y lua5.1)"
fi
echo "ok: windowed thresholds, live window abort, validation, gates"
