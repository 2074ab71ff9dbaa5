#!/usr/bin/env bash
# Upgrading a live install: installs the PREVIOUS release (chart, CRDs and images of
# E2E_PREV_REF, a full commit name, default 12228b9's, the last landed main), starts a
# LoadTest long enough to outlive the upgrade (75 s against the built-in target),
# upgrades while it runs the way docs/helm.md says (server-side apply of crds/ with
# --force-conflicts, then `helm upgrade` to the current chart and images), and checks that the LoadTest finishes
# Complete/Passed with exact results: status.requests == the requests the target
# counted == the report's total, one Started event, and the new operator pod took over.
#
# The previous ref's sources and static binaries are cached by ref in
#   /var/cache/barrage-e2e/prev-<ref>/{src,target,bin}
# (cold: a release build of that ref, its CARGO_TARGET_DIR seeded with this worktree's
# compiled third-party dependencies). Build it outside the e2e lock first with
#   bash e2e/tests/helm_upgrade.sh --prepare
# Its images are imported as docker.io/barrage/{operator,runner}:prev-<ref>.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# The full commit name: a shallow clone fetches it from origin, and a fetch by
# commit takes only a full name (an abbreviation is taken for a ref name).
PREV_REF=${E2E_PREV_REF:-12228b92dad8a11404a2dbb0e18937fc6b3f2c19}
PREV_SHORT=${PREV_REF:0:7}
PREV_DIR=${BARRAGE_E2E_CACHE:-/var/cache/barrage-e2e}/prev-$PREV_SHORT
RUST_TARGET=x86_64-unknown-linux-gnu

# prepare_prev: the previous ref's sources (git archive) and static binaries, once per ref.
prepare_prev() {
  if [[ -x $PREV_DIR/bin/barrage-operator && -x $PREV_DIR/bin/barrage-runner && -d $PREV_DIR/src/charts/barrage ]]; then
    return 0
  fi
  local start=$SECONDS
  mkdir -p "$PREV_DIR"
  if [[ ! -d $PREV_DIR/src/charts/barrage ]]; then
    rm -rf "$PREV_DIR/src.tmp" && mkdir -p "$PREV_DIR/src.tmp"
    # A shallow clone (as CI may make) lacks the previous release: fetch just it.
    git -C "$ROOT" cat-file -e "$PREV_REF^{commit}" 2>/dev/null ||
      git -C "$ROOT" fetch --quiet --depth=1 origin "$PREV_REF" ||
      { echo "FAIL [helm_upgrade]: the previous release $PREV_SHORT is not in this clone and cannot be fetched from origin" >&2; exit 1; }
    git -C "$ROOT" archive --format=tar "$PREV_REF" | tar -x -C "$PREV_DIR/src.tmp"
    mv "$PREV_DIR/src.tmp" "$PREV_DIR/src"
  fi
  # E2E_PREV_SEED: a target dir whose compiled third-party crates seed this build.
  local seed=${E2E_PREV_SEED:-$ROOT/target}
  local tgt=$PREV_DIR/target ours=$seed/$RUST_TARGET/release
  if [[ ! -d $tgt/$RUST_TARGET/release/deps && -d $ours/deps ]]; then
    # Seed with the third-party crates only (same lock file: nothing to rebuild there).
    mkdir -p "$tgt/$RUST_TARGET/release/deps"
    cp -a "$ours/build" "$ours/.fingerprint" "$tgt/$RUST_TARGET/release/"
    find "$ours/deps" -maxdepth 1 -type f -name 'lib*' ! -name '*barrage*' -exec cp -a {} "$tgt/$RUST_TARGET/release/deps/" \;
    # The host side (proc macros, build scripts) lives in release/ beside the target's.
    local host=$seed/release
    if [[ -d $host/deps ]]; then
      mkdir -p "$tgt/release/deps"
      cp -a "$host/build" "$host/.fingerprint" "$tgt/release/"
      find "$host/deps" -maxdepth 1 -type f -name 'lib*' ! -name '*barrage*' -exec cp -a {} "$tgt/release/deps/" \;
    fi
  fi
  echo "helm_upgrade: building $PREV_SHORT's static operator and runner in $PREV_DIR (once per ref)" >&2
  (cd "$PREV_DIR/src" && CARGO_TARGET_DIR=$tgt RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --target "$RUST_TARGET" -p barrage-runner -p barrage-operator) >&2
  mkdir -p "$PREV_DIR/bin"
  cp "$tgt/$RUST_TARGET/release/barrage-operator" "$tgt/$RUST_TARGET/release/barrage-runner" "$PREV_DIR/bin/"
  # Only the binaries are kept: the build tree is big and a ref never changes.
  rm -rf "$tgt"
  echo "helm_upgrade: $PREV_SHORT built in $((SECONDS - start))s" >&2
}

if [[ ${1:-} == --prepare ]]; then
  prepare_prev
  exit 0
fi

source "$(dirname "$0")/../lib.sh"
if [[ ${E2E_LOCAL_CLUSTER:-0} != 1 ]]; then
  # On your own cluster the previous images would have to be pushed somewhere first.
  echo "skip: needs the local harness (imports $PREV_SHORT's images)" >&2
  exit 77
fi
PREV_TAG=prev-$PREV_SHORT
CRD_NAMES=(loadtests.barrage.dev scheduledloadtests.barrage.dev)
NS=$(new_namespace)
cleanup() {
  local rc=$1
  ((rc == 0)) || k -n "$NS" get pods,jobs -o wide >&2 2>&1 || true
  cleanup_helm_test "$rc"
  # The CRDs are shared by every test on this cluster: leave them with no field owner,
  # so that the next install of any version (Helm applies CRDs server-side, without
  # forcing) does not conflict with the manager this test used.
  local c
  for c in "${CRD_NAMES[@]}"; do
    k patch crd "$c" --type=merge -p '{"metadata":{"managedFields":[{}]}}' >/dev/null 2>&1 || true
  done
}
trap 'cleanup $?' EXIT

START=$SECONDS
prepare_prev
echo "previous release $PREV_SHORT ready after $((SECONDS - START))s"
CLUSTER=$ROOT/e2e/cluster
"$CLUSTER" image "$E2E_IMAGE_REPO/operator:$PREV_TAG" "$PREV_DIR/bin/barrage-operator" >/dev/null
"$CLUSTER" image "$E2E_IMAGE_REPO/runner:$PREV_TAG" "$PREV_DIR/bin/barrage-runner" >/dev/null

# crds_apply DIR: the documented upgrade path for CRDs (docs/helm.md, "Upgrading").
crds_apply() {
  k apply --server-side --field-manager=barrage-crds --force-conflicts -f "$1" >/dev/null ||
    fail "kubectl apply --server-side of $1 failed"
  k wait --for=condition=Established "${CRD_NAMES[@]/#/crd/}" --timeout=60s >/dev/null ||
    fail "the CRDs from $1 are not Established"
}

# --- 1. the previous release: its CRDs, its chart, its images ------------------------
crds_apply "$PREV_DIR/src/charts/barrage/crds/"
REL=barrage-e2e-$RANDOM
VALUES=$(barrage_values "$PREV_TAG" "$NS")
HELM_RELEASE=$REL
helm_py install "$PREV_DIR/src/charts/barrage" "$REL" -n "$NS" -f "$VALUES" --timeout 180 >&2 ||
  fail "helm install of the $PREV_SHORT chart failed"
rm -f "$VALUES"
k -n "$NS" rollout status "deployment/$REL" --timeout=180s >/dev/null || fail "the $PREV_SHORT operator did not become available"
OLD_POD=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$REL" -o jsonpath='{.items[0].metadata.name}')
[[ $(k -n "$NS" get pod "$OLD_POD" -o jsonpath='{.spec.containers[0].image}') == *":$PREV_TAG" ]] ||
  fail "the first install does not run the $PREV_TAG image"
echo "installed $REL from $PREV_SHORT: operator pod $OLD_POD"

# --- 2. a LoadTest long enough to outlive the upgrade --------------------------------
TARGET_IP=$(start_target)
PLANNED=1500 # 2 users x 10 iterations/s (pacing 100ms): 75 s
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: across}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET_IP:8080"}
  load: {users: 2, iterations: $PLANNED, pacing: 100ms}
  requests: [{name: root, path: /, expect: {status: [200]}}]
  thresholds: ["error_rate < 1%"]
YAML
wait_lt_phase across 150 Running >/dev/null
RUN_AT=$SECONDS
echo "across: Running with the $PREV_SHORT operator and runners"

# --- 3. upgrade while it runs: CRDs first (server-side apply), then the chart --------
# The upgrade also turns the CRD hook on: its Job applies the same CRDs again, with the
# hook's own ServiceAccount and a ClusterRole limited to Barrage's two CRDs.
crds_apply "$ROOT/charts/barrage/crds/"
VALUES=$(barrage_values "$E2E_IMAGE_TAG" "$NS" "crds: {upgradeHook: true}")
helm_py upgrade "$ROOT/charts/barrage" "$REL" -n "$NS" -f "$VALUES" --timeout 180 >&2 ||
  fail "helm upgrade to the current chart failed"
rm -f "$VALUES"
k -n "$NS" rollout status "deployment/$REL" --timeout=180s >/dev/null || fail "the upgraded operator did not become available"
[[ -z $(k get clusterrole "$REL-crds" --ignore-not-found -o name) ]] ||
  fail "the CRD hook's ClusterRole outlived the hook (hook-delete-policy)"
[[ -z $(k -n "$NS" get job "$REL-crds" --ignore-not-found -o name) ]] || fail "the CRD hook's Job outlived the hook"
PHASE=$(lt_field across .status.phase)
[[ $PHASE == Running ]] || fail "the upgrade took longer than the run (phase $PHASE after $((SECONDS - RUN_AT))s): nothing was shown"
echo "upgraded to $E2E_IMAGE_TAG $((SECONDS - RUN_AT))s into the run (phase $PHASE, $(lt_field across .status.requests) requests so far)"

# The new operator pod leads and labels itself; the metrics Service routes only there.
deadline=$((SECONDS + 60))
while :; do
  NEW_POD=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$REL,barrage.dev/leader=true" -o jsonpath='{.items[*].metadata.name}')
  [[ -n $NEW_POD && $NEW_POD != *" "* && $NEW_POD != "$OLD_POD" ]] && break
  ((SECONDS < deadline)) || fail "no single new operator pod labelled leader 60s after the upgrade ('$NEW_POD')"
  sleep 1
done
[[ $(k -n "$NS" get pod "$NEW_POD" -o jsonpath='{.spec.containers[0].image}') == *":$E2E_IMAGE_TAG" ]] ||
  fail "the leader $NEW_POD does not run the $E2E_IMAGE_TAG image"
NEW_IP=$(k -n "$NS" get pod "$NEW_POD" -o jsonpath='{.status.podIP}')
deadline=$((SECONDS + 30))
until [[ $(k -n "$NS" get endpoints "$REL-metrics" -o jsonpath='{.subsets[*].addresses[*].ip}') == "$NEW_IP" ]]; do
  ((SECONDS < deadline)) || fail "the metrics Service's endpoints are not the leader $NEW_IP"
  sleep 1
done

# --- 4. the run finishes, counted exactly once -------------------------------------
k -n "$NS" wait loadtest/across --for=condition=Complete --timeout=240s >/dev/null ||
  fail "LoadTest across did not complete after the upgrade (phase $(lt_field across .status.phase): $(lt_field across .status.message))"
PHASE=$(lt_field across .status.phase)
REQUESTS=$(lt_field across .status.requests)
echo "across: phase=$PHASE verdict=$(lt_field across .status.verdict) requests=$REQUESTS errors=$(lt_field across .status.errors) retries=$(lt_field across .status.retries)"
[[ $PHASE == Succeeded ]] || fail "expected Succeeded, got $PHASE: $(lt_field across .status.message)"
[[ $(lt_field across .status.verdict) == Passed ]] || fail "expected verdict Passed"
[[ $(lt_field across '.status.conditions[?(@.type=="Passed")].status') == True ]] || fail "Passed condition is not True"
[[ $REQUESTS == "$PLANNED" ]] || fail "expected exactly $PLANNED requests across the upgrade, status says $REQUESTS"
[[ $(lt_field across .status.errors) == 0 ]] || fail "errors across the upgrade"
k -n "$NS" get configmap across-report -o jsonpath='{.data.report\.json}' | jq -e ".summary.total.requests == $PLANNED" >/dev/null ||
  fail "the report ConfigMap does not hold $PLANNED requests"
STARTS=$(k -n "$NS" get events --field-selector involvedObject.name=across,reason=Started -o name | wc -l)
[[ $STARTS == 1 ]] || fail "the run was started $STARTS times (the new operator must pick it up, not restart it)"
helm_uninstall_barrage "$REL"
echo "ok: $PREV_SHORT -> current upgrade under load, $PLANNED of $PLANNED requests, one start"
