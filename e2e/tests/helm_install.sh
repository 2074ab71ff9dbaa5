#!/usr/bin/env bash
# The Helm chart on a real cluster: installs charts/barrage (through e2e/helm.py) into
# the test's namespace with the local images, waits for the in-cluster operator to be
# Ready (its probes), runs examples/loadtest-incluster.yaml against a target pod and
# checks Succeeded with results; scrapes the operator's /metrics from its pod IP and
# checks that the LoadTest's gauges equal its status (requests, p95); checks the RBAC
# the chart gave its service account on the real API server; checks the LoadTest's
# NetworkPolicy (made by the operator: its runners, the agent port, the operator's pods)
# and that it goes with the LoadTest; `helm test` (the chart's selftest pod runs a tiny
# LoadTest against the built-in target in itself and passes only on verdict Passed); `helm uninstall` leaves no operator pod. Then a
# second install watching only namespace X reconciles a LoadTest in X and ignores one in
# namespace Y, and passes networkPolicy.operatorNamespaceLabels to X's policy.
# (The harness's CNI does not enforce NetworkPolicy: the policy's blocking is not shown.)
#
# Every install sets watchNamespaces: other tests run their own operators on this
# cluster at the same time, and a cluster-wide one would take their LoadTests too.
# (The cluster-wide RBAC shape is checked offline by charts/tests/test_chart.py.)
source "$(dirname "$0")/../lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)

NS=$(new_namespace)            # the release namespace (and the first watched one)
NS_X='' NS_Y=''
cleanup() {
  local rc=$1 n
  if ((rc != 0)); then
    for n in $NS_X $NS_Y; do
      echo "--- LoadTests and events in $n ---" >&2
      k -n "$n" get loadtests -o wide >&2 2>&1 || true
      k -n "$n" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 15 >&2 || true
    done
  fi
  for n in $NS_X $NS_Y; do k delete namespace "$n" --wait=false >/dev/null 2>&1 || true; done
  cleanup_helm_test "$rc"
}
trap 'cleanup $?' EXIT

# install_release RELEASE WATCH_NS [EXTRA_VALUES_YAML]: the chart with the test images,
# watching one namespace.
install_release() {
  helm_install_barrage "$1" "$2" "${3:-}"
  k -n "$NS" wait --for=condition=Ready "pod/$OPERATOR_POD" --timeout=60s >/dev/null || fail "operator pod not Ready"
  echo "installed $1: operator pod $OPERATOR_POD ($OPERATOR_IP), watching $2"
}

# uninstall_release RELEASE: no pod left, and nothing else of the release either.
uninstall_release() {
  helm_uninstall_barrage "$1"
  local kind
  for kind in deployment serviceaccount service role rolebinding; do
    [[ -z $(k -n "$NS" get "$kind" -l "app.kubernetes.io/instance=$1" -o name 2>/dev/null) ]] ||
      fail "helm uninstall left a $kind of $1 behind"
  done
}

# apply_example NAMESPACE TARGET: examples/loadtest-incluster.yaml aimed at the target (its Service name).
apply_example() {
  sed "s|http://TARGET_IP:8080|http://$2:8080|" "$ROOT/examples/loadtest-incluster.yaml" | k -n "$1" apply -f - >/dev/null
}
metric() { operator_metric "$@"; }

# check_runner_policy NAMESPACE LT RELEASE NAMESPACE_SELECTOR_JSON: the operator's
# NetworkPolicy for LT fences exactly LT's runner pods, admitting TCP 9090 only from
# RELEASE's operator pods in the namespaces NAMESPACE_SELECTOR_JSON selects.
check_runner_policy() {
  local np
  np=$(k -n "$1" get networkpolicy "$2-runners" -o json) || fail "no NetworkPolicy $2-runners in $1"
  jq -e --arg lt "$2" --arg rel "$3" --argjson nsel "$4" '
    .spec.podSelector == {matchLabels: {"barrage.dev/loadtest": $lt, "barrage.dev/role": "runner",
                                        "app.kubernetes.io/managed-by": "barrage-operator"}}
    and .spec.policyTypes == ["Ingress"]
    and (.spec.ingress | length) == 1
    and .spec.ingress[0].ports == [{protocol: "TCP", port: 9090}]
    and (.spec.ingress[0].from | length) == 1
    and .spec.ingress[0].from[0].namespaceSelector == {matchLabels: $nsel}
    and .spec.ingress[0].from[0].podSelector.matchLabels["app.kubernetes.io/instance"] == $rel
    and .spec.ingress[0].from[0].podSelector.matchLabels["app.kubernetes.io/component"] == "operator"
    and ([.metadata.ownerReferences[] | select(.controller == true and .kind == "LoadTest" and .name == $lt)] | length) == 1
  ' <<<"$np" >/dev/null || fail "NetworkPolicy $2-runners in $1 is not the runners' fence: $(jq -c '{spec, owners: .metadata.ownerReferences}' <<<"$np")"
}

# gone_with_loadtest NAMESPACE LT: deleting LT deletes its NetworkPolicy (garbage collector).
gone_with_loadtest() {
  k -n "$1" delete loadtest "$2" --wait=true >/dev/null || fail "could not delete LoadTest $2"
  # `wait --for=delete` errors on an object already gone with some kubectl versions: then look.
  k -n "$1" wait --for=delete "networkpolicy/$2-runners" --timeout=60s >/dev/null 2>&1 ||
    [[ -z $(k -n "$1" get networkpolicy "$2-runners" --ignore-not-found -o name) ]] ||
    fail "NetworkPolicy $2-runners in $1 outlived its LoadTest by 60s"
}

# --- 1. install, run the example, read the results -----------------------------------
REL1=barrage-e2e-$RANDOM
install_release "$REL1" "$NS"
for path in healthz readyz; do
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$OPERATOR_IP:8080/$path") == 200 ]] || fail "/$path is not 200"
done
[[ $(k -n "$NS" get pod "$OPERATOR_POD" -o jsonpath='{.spec.containers[0].securityContext.readOnlyRootFilesystem}') == true ]] ||
  fail "the operator container is not read-only"
[[ $(k -n "$NS" get pod "$OPERATOR_POD" -o jsonpath='{.status.containerStatuses[0].restartCount}') == 0 ]] ||
  fail "the operator restarted (liveness probe?)"

# The chart's RBAC as the API server sees it (least privilege, only the watched namespace).
SA=system:serviceaccount:$NS:$REL1
can() { k auth can-i "$@" --as "$SA" 2>/dev/null || true; }
[[ $(can create pods -n "$NS") == yes ]] || fail "the operator cannot create pods in its watched namespace"
[[ $(can get pods --subresource=log -n "$NS") == yes ]] || fail "the operator cannot read a setup pod's log (status.progress)"
[[ $(can patch loadtests.barrage.dev --subresource=status -n "$NS") == yes ]] || fail "the operator cannot patch LoadTest status"
[[ $(can update leases.coordination.k8s.io -n "$NS") == yes ]] || fail "the operator cannot update its Lease"
[[ $(can create loadtests.barrage.dev -n "$NS") == yes ]] || fail "the operator cannot create LoadTests (a ScheduledLoadTest's runs)"
[[ $(can patch scheduledloadtests.barrage.dev --subresource=status -n "$NS") == yes ]] || fail "the operator cannot patch ScheduledLoadTest status"
[[ $(can update scheduledloadtests.barrage.dev -n "$NS") == no ]] || fail "the operator may change ScheduledLoadTest specs"
[[ $(can list loadtests.barrage.dev -n default) == no ]] || fail "the operator may list LoadTests outside watchNamespaces"
[[ $(can delete configmaps -n "$NS") == no ]] || fail "the operator may delete ConfigMaps (not in its least-privilege set)"
[[ $(can list secrets -n "$NS") == no ]] || fail "the operator may list Secrets"
[[ $(can create networkpolicies.networking.k8s.io -n "$NS") == yes ]] || fail "the operator cannot create its runners' NetworkPolicy"
[[ $(can patch networkpolicies.networking.k8s.io -n "$NS") == yes ]] || fail "the operator cannot apply its runners' NetworkPolicy"
[[ $(can list networkpolicies.networking.k8s.io -n "$NS") == no ]] || fail "the operator may list NetworkPolicies"
[[ $(can delete networkpolicies.networking.k8s.io -n "$NS") == no ]] || fail "the operator may delete NetworkPolicies"

TARGET=$(start_target)
apply_example "$NS" "$TARGET"
k -n "$NS" wait loadtest/incluster --for=condition=Complete --timeout=240s >/dev/null ||
  fail "LoadTest incluster did not complete (phase $(lt_field incluster .status.phase): $(lt_field incluster .status.message))"
PHASE=$(lt_field incluster .status.phase)
REQUESTS=$(lt_field incluster .status.requests)
P95=$(lt_field incluster .status.latencyMs.p95)
echo "incluster: phase=$PHASE requests=$REQUESTS rps=$(lt_field incluster .status.rps) p95=${P95}ms verdict=$(lt_field incluster .status.verdict)"
[[ $PHASE == Succeeded ]] || fail "expected Succeeded, got $PHASE: $(lt_field incluster .status.message)"
check "$REQUESTS" '>=' 900 || fail "expected ~1000 requests (100 req/s for 10 s), status says $REQUESTS"
[[ $(lt_field incluster .status.runnersFinished) == 2 ]] || fail "expected 2 runners finished"
k -n "$NS" get configmap incluster-report -o jsonpath='{.data.report\.json}' | jq -e ".summary.total.requests == $REQUESTS" >/dev/null ||
  fail "the report ConfigMap does not hold the status's request count"

# --- 2. metrics: the gauges equal the status ----------------------------------------
deadline=$((SECONDS + 30))
while :; do
  M_REQ=$(metric barrage_loadtest_requests_total "$NS" incluster)
  M_P95=$(metric barrage_loadtest_latency_seconds "$NS" incluster 'quantile="0.95"')
  [[ $M_REQ == "$REQUESTS" ]] && [[ -n $M_P95 ]] && break
  ((SECONDS < deadline)) || fail "barrage_loadtest_requests_total{namespace=\"$NS\",name=\"incluster\"} is '${M_REQ}', status.requests is $REQUESTS"
  sleep 1
done
awk -v m="$M_P95" -v s="$P95" 'BEGIN { d = m - s / 1000; if (d < 0) d = -d; exit !(d <= 1e-6 + 1e-6 * s) }' ||
  fail "p95 gauge $M_P95 s != status latencyMs.p95 $P95 ms / 1000"
M_RPS=$(metric barrage_loadtest_rps "$NS" incluster)
M_ERR=$(metric barrage_loadtest_error_ratio "$NS" incluster)
curl -sf --max-time 5 "http://$OPERATOR_IP:8080/metrics" | grep -q '^barrage_reconciles_total' || fail "no barrage_reconciles_total"
curl -sf --max-time 5 "http://$OPERATOR_IP:8080/metrics" | grep -q '^barrage_reconcile_duration_seconds_bucket' || fail "no reconcile duration histogram"
echo "metrics: requests_total=$M_REQ p95=${M_P95}s rps=$M_RPS error_ratio=$M_ERR"

# --- 2b. helm test: the chart's selftest pod runs a LoadTest against itself ----------
OUT=$(helm_py test "$REL1" -n "$NS" --timeout 240 --logs 2>&1) || fail "helm test $REL1 failed: $OUT"
grep -q "verdict Passed, requests 200," <<<"$OUT" || fail "helm test passed without the selftest's summary: $OUT"
grep -q "selftest passed" <<<"$OUT" || fail "helm test: no 'selftest passed' in the test pod's log: $OUT"
[[ -z $(k -n "$NS" get loadtests -l app.kubernetes.io/component=selftest -o name) ]] ||
  fail "the selftest left its LoadTest behind"
echo "helm test: $(grep -m1 '^LoadTest ' <<<"$OUT")"
# The finished test pod stays for its log (before-hook-creation) and Helm's uninstall
# leaves hooks alone: remove it, as docs/helm.md tells users to.
k -n "$NS" delete pod "$REL1-selftest" --wait=false >/dev/null

# --- 3. the runners' NetworkPolicy: made by the operator, gone with the LoadTest -----
# This cluster's namespaces have no kubernetes.io/metadata.name (v1.20): the default
# selector is still what the operator must write.
check_runner_policy "$NS" incluster "$REL1" "{\"kubernetes.io/metadata.name\": \"$NS\"}"
gone_with_loadtest "$NS" incluster
echo "network policy: incluster-runners fenced the runners and went with the LoadTest"

# --- 4. uninstall leaves nothing running ------------------------------------------------
uninstall_release "$REL1"
echo "uninstalled $REL1: no operator pods left"

# --- 5. watchNamespaces: X is reconciled, Y is not --------------------------------------
NS_X=$(new_namespace) NS_Y=$(new_namespace)
REL2=barrage-e2e-$RANDOM
# As on Kubernetes 1.20: the release namespace selected by a label of one's own.
k label namespace "$NS" barrage.dev/e2e-operator=yes --overwrite >/dev/null
install_release "$REL2" "$NS_X" 'networkPolicy: {operatorNamespaceLabels: {barrage.dev/e2e-operator: "yes"}}'
[[ $(k auth can-i list loadtests.barrage.dev -n "$NS_Y" --as "system:serviceaccount:$NS:$REL2" 2>/dev/null || true) == no ]] ||
  fail "the second release may list LoadTests in $NS_Y"
apply_example "$NS_Y" "$TARGET"
Y_CREATED=$SECONDS
apply_example "$NS_X" "$TARGET"
k -n "$NS_X" wait loadtest/incluster --for=condition=Complete --timeout=240s >/dev/null ||
  fail "the LoadTest in the watched namespace $NS_X did not complete"
[[ $(k -n "$NS_X" get loadtest incluster -o jsonpath='{.status.phase}') == Succeeded ]] || fail "LoadTest in $NS_X not Succeeded"
check_runner_policy "$NS_X" incluster "$REL2" '{"barrage.dev/e2e-operator": "yes"}'
while ((SECONDS - Y_CREATED < 20)); do sleep 1; done
Y_STATUS=$(k -n "$NS_Y" get loadtest incluster -o jsonpath='{.status}')
[[ -z $Y_STATUS ]] || fail "the LoadTest in the unwatched namespace $NS_Y got a status: $Y_STATUS"
[[ -z $(k -n "$NS_Y" get pods -o name) ]] || fail "runner pods appeared in the unwatched namespace $NS_Y"
[[ -z $(k -n "$NS_Y" get networkpolicies -o name) ]] || fail "a NetworkPolicy appeared in the unwatched namespace $NS_Y"
[[ -z $(metric barrage_loadtest_requests_total "$NS_Y" incluster) ]] || fail "metrics for the unwatched namespace"
echo "watchNamespaces: $NS_X reconciled, $NS_Y untouched after $((SECONDS - Y_CREATED))s"
uninstall_release "$REL2"
echo "ok: helm install, example LoadTest, metrics, network policy, uninstall, watchNamespaces"
