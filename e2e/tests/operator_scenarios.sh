#!/usr/bin/env bash
# Two scenarios in one LoadTest across 3 runner pods: a closed-model "browse" scenario with a
# fixed iteration count, and an arrival-rate "spike" scenario starting 1 s later with a known
# number of arrivals. Checks: each scenario's total is exact (merged from 3 runners), the
# per-scenario thresholds are judged in the status (one passes, one fails with its observed
# value), and a journey's whole passes are a figure of their own.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT
TARGET=$(start_target)
start_operator

k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: two}
spec:
  runners: 3
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  scenarios:
    browse:
      load: {executor: concurrency, users: 6, iterations: 600}
      requests:
        - name: visit
          steps:
            - {name: home, path: /, expect: {body: {contains: ok}}}
            - {name: schema, path: "/schemas/{{ randInt(1, 100) }}"}
    spike:
      startTime: 1s
      load: {executor: arrival-rate, rate: 50, duration: 2s}
      requests:
        - {name: slow, path: /slow}
  thresholds:
    - "error_rate < 1% for scenario browse"
    - "p(95) < 10ms for scenario spike"
YAML

k -n "$NS" wait loadtest/two --for=condition=Complete --timeout=180s >/dev/null ||
  fail "LoadTest two did not complete (phase $(lt_field two .status.phase): $(lt_field two .status.message))"
BROWSE=$(lt_field two .status.byScenario.browse.requests)
SPIKE=$(lt_field two .status.byScenario.spike.requests)
# Only the spike (arrival-rate) can drop.
DROPPED=$(lt_field two .status.dropped)
PASSES=$(k -n "$NS" get loadtest two -o json | jq '.status.byJourney["browse/visit"].passes')
echo "two: phase=$(lt_field two .status.phase) browse=$BROWSE spike=$SPIKE dropped=$DROPPED passes=$PASSES total=$(lt_field two .status.requests)"
[[ $BROWSE == 1200 ]] || fail "browse: expected exactly 600 iterations x 2 steps = 1200 requests, status says $BROWSE"
check_arrivals "spike (50/s x 2s)" "$SPIKE" "$DROPPED" 100
[[ $PASSES == 600 ]] || fail "journey browse/visit: expected 600 passes, status says $PASSES"
[[ $(lt_field two .status.requests) == $((BROWSE + SPIKE)) ]] || fail "the total is not the scenarios' sum"
[[ $(lt_field two .status.runnersFinished) == 3 ]] || fail "expected 3 runners finished"
# The per-scenario thresholds: browse passes, spike fails: it alone calls the target's
# /slow, which makes 10% of any run of its requests take 50 ms (spread evenly, not drawn
# at random: 8 to 12 of 100), so its p95 is 50 ms every time.
[[ $(lt_field two '.status.thresholds[0].passed') == true ]] || fail "error_rate for scenario browse should pass"
[[ $(lt_field two '.status.thresholds[1].passed') == false ]] || fail "p(95) < 10ms for scenario spike should fail"
OBSERVED=$(lt_field two '.status.thresholds[1].observedText')
[[ $OBSERVED == *ms ]] && check "${OBSERVED%ms}" '>=' 45 || fail "spike's observed p95 should be ~50ms, got '$OBSERVED'"
[[ $(lt_field two .status.phase) == Failed ]] || fail "a failing scenario threshold should fail the test"
[[ $(lt_field two .status.message) == *"for scenario spike"* ]] || fail "message does not name the failed threshold"
echo "ok: two scenarios over 3 runners, exact per scenario, thresholds per scenario"
