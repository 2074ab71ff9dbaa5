#!/usr/bin/env bash
# The kubectl plugin against real runs: two LoadTests of 2 runners each through the host
# operator ("base" against the fast route, "next" against /slow where 10% take 50 ms),
# then, through kubectl's plugin mechanism (`kubectl barrage` finds kubectl-barrage on
# PATH): the text report's totals equal the status, the namespace comes from the
# kubeconfig's current context when -n is absent, --json carries the full report, --html
# writes a page with the plots, --fail-on-verdict exits 99 on a failed verdict, compare
# marks the slower run worse, and the clear errors (unknown LoadTest; report ConfigMap
# deleted) hold. `kubectl barrage watch` follows a third run from its creation to its end
# (a line per change when piped, then the summary) and exits with its verdict's status:
# 0 Passed, 99 Failed (an already finished run), 1 for a timeout or an unknown name.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
WORK=$(mktemp -d /tmp/barrage-plugin-XXXX)
trap 'rc=$?; rm -rf "$WORK"; cleanup_operator_test $rc' EXIT

# The plugin is built with the operator (same package, same static release build).
BIN_DIR=$(dirname "${E2E_OPERATOR_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/x86_64-unknown-linux-gnu/release/barrage-operator}")
[[ -x $BIN_DIR/kubectl-barrage ]] || fail "no kubectl-barrage next to the operator binary in $BIN_DIR (cargo build --release -p barrage-operator builds both)"
mkdir -p "$WORK/bin"
cp "$BIN_DIR/kubectl-barrage" "$WORK/bin/"
export PATH="$WORK/bin:$PATH"
kubectl plugin list 2>/dev/null | grep -q "$WORK/bin/kubectl-barrage" || fail "kubectl plugin list does not find kubectl-barrage on PATH"

TARGET=$(start_target)
start_operator

k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: base}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: arrival-rate, rate: 150, duration: 4s}
  reportInterval: 1s
  requests:
    - {name: api, path: /}
  thresholds: ["p(95) < 45ms"]
---
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: next}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: arrival-rate, rate: 150, duration: 4s}
  reportInterval: 1s
  requests:
    - {name: api, path: /slow}
  thresholds: ["p(95) < 45ms"]
YAML

for lt in base next; do
  k -n "$NS" wait "loadtest/$lt" --for=condition=Complete --timeout=180s >/dev/null ||
    fail "LoadTest $lt did not complete (phase $(lt_field $lt .status.phase): $(lt_field $lt .status.message))"
done
[[ $(lt_field base .status.verdict) == Passed ]] || fail "base should pass: $(lt_field base .status.message)"
[[ $(lt_field next .status.verdict) == Failed ]] || fail "next should fail its p95 threshold: $(lt_field next .status.message)"

# --- report (text): totals equal the status ---
REQ=$(lt_field base .status.requests)
ERRS=$(lt_field base .status.errors)
RPS=$(lt_field base .status.rps)
kubectl barrage report base -n "$NS" >"$WORK/base.txt" || fail "kubectl barrage report base failed"
cat "$WORK/base.txt"
grep -q "loadtest ........... $NS/base" "$WORK/base.txt" || fail "the report does not name $NS/base"
grep -q "barrage · $NS/base · 2 runner(s)" "$WORK/base.txt" || fail "the report does not show 2 runners"
grep -qE "requests \.+ $REQ  \(${RPS%.*}\.[0-9]/s\)" "$WORK/base.txt" || fail "report requests/rps differ from the status ($REQ, $RPS/s)"
grep -qE "errors \.+ $ERRS \(" "$WORK/base.txt" || fail "report errors differ from the status ($ERRS)"
grep -q "✓ p(95) < 45ms" "$WORK/base.txt" || fail "the threshold is not shown as passed"
[[ $(tail -n 2 "$WORK/base.txt" | tr -d ' \n') == PASSED ]] || fail "the report does not end with PASSED"

# Without -n: the namespace of the kubeconfig's current context (a copy, with $NS set).
cp "$KUBECONFIG" "$WORK/kubeconfig"
KUBECONFIG=$WORK/kubeconfig kubectl config set-context --current --namespace="$NS" >/dev/null
KUBECONFIG=$WORK/kubeconfig kubectl barrage report base >"$WORK/ctx.txt" || fail "report without -n failed"
grep -q "loadtest ........... $NS/base" "$WORK/ctx.txt" || fail "without -n the current context's namespace is not used"

# --json: the status and the full report.
kubectl barrage report base -n "$NS" --json >"$WORK/base.json" || fail "report --json failed"
jq -e --argjson n "$REQ" '.report.summary.total.requests == $n and .status.requests == $n and .report.snapshot.runners == 2 and (.report.snapshot.intervals | length) >= 3' \
  "$WORK/base.json" >/dev/null || fail "report --json does not carry the merged report of 2 runners"

# --html: one self-contained page with the four plots.
kubectl barrage report next -n "$NS" --html "$WORK/next.html" 2>"$WORK/html.err" || fail "report --html failed: $(cat "$WORK/html.err")"
for id in plot-rps plot-latency plot-spectrum plot-status; do
  grep -q "id=\"$id\"" "$WORK/next.html" || fail "the HTML page has no $id"
done
(($(grep -o '<polyline' "$WORK/next.html" | wc -l) >= 5)) || fail "the HTML plots have no lines"
grep -q 'FAILED · '"$NS"'/next' "$WORK/next.html" || fail "the HTML page has no FAILED banner"
! grep -qE '(src|href)=|https://' "$WORK/next.html" || fail "the HTML page references something outside itself"

# --fail-on-verdict: 99 for a failed verdict, 0 for a passed one.
rc=0
kubectl barrage report next -n "$NS" --fail-on-verdict >/dev/null || rc=$?
((rc == 99)) || fail "report --fail-on-verdict on a failed run exited $rc, not 99"
kubectl barrage report base -n "$NS" --fail-on-verdict >/dev/null || fail "report --fail-on-verdict on a passed run did not exit 0"

# --- compare: the slower run is worse on p95, and its threshold newly fails ---
kubectl barrage compare base "$NS/next" -n "$NS" --html "$WORK/compare.html" >"$WORK/compare.txt" 2>/dev/null ||
  fail "kubectl barrage compare failed"
cat "$WORK/compare.txt"
grep -qE '^ +p95 ms .*▼ worse' "$WORK/compare.txt" || fail "compare does not mark p95 worse"
grep -q "newly failing" "$WORK/compare.txt" || fail "compare does not say the threshold newly fails"
grep -q "verdict: Passed → Failed" "$WORK/compare.txt" || fail "compare does not show the verdict change"
! grep -q $'\x1b\\[' "$WORK/compare.txt" || fail "compare coloured output that is not a terminal"
grep -q '<tr class="worse"><td>p95 ms</td>' "$WORK/compare.html" || fail "the compare page does not mark p95 worse"

# --- errors ---
rc=0
kubectl barrage report nope -n "$NS" >/dev/null 2>"$WORK/nope.err" || rc=$?
((rc == 1)) && grep -q "LoadTest nope not found in namespace $NS" "$WORK/nope.err" ||
  fail "an unknown LoadTest should exit 1 with a clear error (exit $rc: $(cat "$WORK/nope.err"))"
# The report ConfigMap gone: the status summary, and a note that says so.
k -n "$NS" delete configmap base-report >/dev/null
kubectl barrage report base -n "$NS" >"$WORK/gone.txt" || fail "report without its ConfigMap should still succeed"
grep -q "note: the report ConfigMap base-report is missing" "$WORK/gone.txt" || fail "no note about the missing report: $(cat "$WORK/gone.txt")"
grep -qE "requests \.+ $REQ " "$WORK/gone.txt" || fail "without the report, the status totals are not shown"
echo "ok: kubectl barrage report/compare through kubectl's plugin mechanism"

# --- watch: follow a run from its creation to its end, as a CI job would ---
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: live}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: arrival-rate, rate: 100, duration: 12s}
  reportInterval: 1s
  requests:
    - {name: api, path: /}
  thresholds: ["p(95) < 45ms"]
YAML
# A timeout shorter than the run: exit 1, saying what it waited for.
rc=0
kubectl barrage watch live -n "$NS" --timeout 2s >/dev/null 2>"$WORK/timeout.err" || rc=$?
((rc == 1)) && grep -q "timed out after 2s: LoadTest $NS/live is still" "$WORK/timeout.err" ||
  fail "watch --timeout 2s should exit 1 with a timeout message (exit $rc: $(cat "$WORK/timeout.err"))"
# Then to the end: piped, so plain lines (no escape codes), a line per change at a bounded
# rate, the summary last, and exit 0 for Passed.
rc=0
kubectl barrage watch live -n "$NS" --timeout 3m >"$WORK/watch.txt" 2>"$WORK/watch.err" || rc=$?
cat "$WORK/watch.txt"
((rc == 0)) || fail "watch of a passing run exited $rc: $(cat "$WORK/watch.err")"
[[ $(lt_field live .status.verdict) == Passed ]] || fail "live should pass: $(lt_field live .status.message)"
! grep -q $'\x1b' "$WORK/watch.txt" || fail "watch drew on a pipe as on a terminal"
grep -qE '^[0-9TZ:-]+ Running · [0-9ms]+ elapsed.* · runners 2/2 · [0-9.]+ req/s' "$WORK/watch.txt" ||
  fail "watch printed no Running line with runners and req/s"
grep -qE '^[0-9TZ:-]+ Succeeded · .* · verdict Passed$' "$WORK/watch.txt" || fail "watch printed no final Succeeded line"
RUNNING_LINES=$(grep -cE '^[0-9TZ:-]+ Running ' "$WORK/watch.txt" || true)
((RUNNING_LINES >= 1 && RUNNING_LINES <= 6)) || fail "watch printed $RUNNING_LINES Running lines for a 12 s run (at most one per 5 s expected)"
grep -q "loadtest ........... $NS/live" "$WORK/watch.txt" || fail "watch did not end with the summary"
[[ $(tail -n 2 "$WORK/watch.txt" | tr -d ' \n') == PASSED ]] || fail "watch's summary does not end with PASSED"
# A run that already failed: its summary at once, and 99 as with report --fail-on-verdict.
rc=0
kubectl barrage watch next -n "$NS" >"$WORK/watch-next.txt" 2>&1 || rc=$?
((rc == 99)) || fail "watch of a failed run exited $rc, not 99: $(cat "$WORK/watch-next.txt")"
grep -q "verdict Failed" "$WORK/watch-next.txt" || fail "watch of a failed run does not show its verdict"
rc=0
kubectl barrage watch nope -n "$NS" >/dev/null 2>"$WORK/watch-nope.err" || rc=$?
((rc == 1)) && grep -q "LoadTest nope not found in namespace $NS" "$WORK/watch-nope.err" ||
  fail "watch of an unknown LoadTest should exit 1 with a clear error (exit $rc: $(cat "$WORK/watch-nope.err"))"
echo "ok: kubectl barrage watch follows a run to its verdict's exit status"
