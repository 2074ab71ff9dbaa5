#!/usr/bin/env bash
# The operator runs a LoadTest with 3 runner pods against a target pod whose /slow
# route makes 10% of requests take 50 ms. Checks: Succeeded, exactly the planned
# request count (the merged total of the 3 runners), p95 at the injected latency,
# start skew under 100 ms, conditions for `kubectl wait`, the report ConfigMap,
# the runner pods cleaned up. Then a failing threshold gives Failed with its
# observed value. (`strict` runs after `ok`, so that its 300 requests are consecutive
# on the target's /slow route and hold 30 slow ones within 3: the target spreads its
# 10% evenly over a route's requests, not over each client's.)
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT
TARGET=$(start_target)
# A start instant 5 s ahead rather than the default 2 s: the skew bound below is
# about the runners starting together, not about how fast this 2-core cluster's
# API server writes the status and answers on a bad second.
start_operator --start-lead-ms 5000

k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: ok}
spec:
  runners: 3
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: concurrency, users: 6, iterations: 3000}
  requests:
    - {name: slow, path: /slow}
  thresholds: ["p(95) >= 45ms", "error_rate < 1%"]
YAML

k -n "$NS" wait loadtest/ok --for=condition=Complete --timeout=180s >/dev/null ||
  fail "LoadTest ok did not complete (phase $(lt_field ok .status.phase))"
PHASE=$(lt_field ok .status.phase)
REQUESTS=$(lt_field ok .status.requests)
P95=$(lt_field ok .status.latencyMs.p95)
SKEW=$(lt_field ok .status.startSkewMs)
echo "ok: phase=$PHASE requests=$REQUESTS p95=${P95}ms skew=${SKEW}ms verdict=$(lt_field ok .status.verdict)"
[[ $PHASE == Succeeded ]] || fail "expected Succeeded, got $PHASE: $(lt_field ok .status.message)"
[[ $REQUESTS == 3000 ]] || fail "expected exactly 3000 requests merged from 3 runners, status says $REQUESTS"
[[ $(lt_field ok .status.errors) == 0 ]] || fail "expected no errors"
check "$P95" '>=' 50 && check "$P95" '<' 100 || fail "p95 ${P95}ms is not at the injected 50 ms"
check "$SKEW" '<' 100 || fail "start skew ${SKEW}ms is not under 100 ms"
[[ $(lt_field ok '.status.conditions[?(@.type=="Passed")].status') == True ]] || fail "Passed condition is not True"
[[ $(lt_field ok .status.runnersFinished) == 3 ]] || fail "expected 3 runners finished"

# The full report: merged histograms from all 3 runners.
REPORT=$(k -n "$NS" get configmap ok-report -o jsonpath='{.data.report\.json}')
jq -e '.snapshot.runners == 3 and (.snapshot.runnerStartsUs | length) == 3 and .summary.total.requests == 3000 and (.snapshot.requests.slow.latency | length) > 20' <<<"$REPORT" >/dev/null ||
  fail "report ConfigMap does not hold the merged results of 3 runners"

# cleanup: Delete (the default) removes the runner pods once results are in.
# (The kubelet may take a while to finish terminating them: deleted is enough.)
live_runners() { k -n "$NS" get pods -l barrage.dev/loadtest=ok -o json | jq '[.items[] | select(.metadata.deletionTimestamp == null)] | length'; }
for _ in $(seq 30); do
  [[ $(live_runners) == 0 ]] && break
  sleep 1
done
[[ $(live_runners) == 0 ]] || fail "runner pods were not deleted after the results were collected"

k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: strict}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: arrival-rate, rate: 100, duration: 3s}
  requests:
    - {name: slow, path: /slow}
  thresholds: ["p(95) < 10ms for slow"]
YAML
k -n "$NS" wait loadtest/strict --for=condition=Complete --timeout=120s >/dev/null || fail "LoadTest strict did not complete"
PHASE=$(lt_field strict .status.phase)
OBSERVED=$(lt_field strict '.status.thresholds[0].observedText')
echo "strict: phase=$PHASE verdict=$(lt_field strict .status.verdict) observed=$OBSERVED"
[[ $PHASE == Failed ]] || fail "a failing threshold should give Failed, got $PHASE"
[[ $(lt_field strict '.status.thresholds[0].passed') == false ]] || fail "threshold not marked failed"
[[ $OBSERVED == *ms ]] && check "${OBSERVED%ms}" '>=' 50 || fail "observed value should be ~50ms, got '$OBSERVED'"
[[ $(lt_field strict .status.message) == *"p(95) < 10ms"* ]] || fail "message does not name the failed threshold"
[[ $(lt_field strict '.status.conditions[?(@.type=="Passed")].status') == False ]] || fail "Passed condition should be False"
k -n "$NS" get events --field-selector involvedObject.name=strict,reason=Failed -o name | grep -q . || fail "no Failed event"
echo "ok: merged results, start skew, verdicts"
