# Helpers for e2e/tests/*.sh (sourced, not run). Tests get from e2e/run:
#   KUBECONFIG            the cluster to use
#   E2E_IMAGE_REPO/TAG    where our images are (docker.io/barrage, the workspace version)
#   E2E_PULL_POLICY       Never on the local harness (images imported), IfNotPresent elsewhere
#   E2E_LOCAL_CLUSTER     1 when e2e/cluster runs the cluster (pod IPs then lie in E2E_POD_CIDR_PREFIX)
set -euo pipefail

E2E_IMAGE_REPO=${E2E_IMAGE_REPO:-docker.io/barrage}
E2E_IMAGE_TAG=${E2E_IMAGE_TAG:-$(sed -n '/^\[workspace.package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' "$(dirname "${BASH_SOURCE[0]}")/../Cargo.toml" | head -n1)}
E2E_PULL_POLICY=${E2E_PULL_POLICY:-IfNotPresent}
E2E_POD_CIDR_PREFIX=${E2E_POD_CIDR_PREFIX:-198.18.1.}
TEST_NAME=$(basename "$0" .sh)

image() { echo "$E2E_IMAGE_REPO/$1:$E2E_IMAGE_TAG"; }

# kubectl with a bound on every request; its version-skew warning is noise here.
k() { kubectl --request-timeout=30s "$@"; }

fail() {
  echo "FAIL [$TEST_NAME]: $*" >&2
  exit 1
}

# A namespace of its own per test run, removed on exit (after showing state on failure).
# Usage: NS=$(new_namespace)  (then call `trap 'cleanup_namespace $?' EXIT` in the test)
new_namespace() {
  local ns
  ns="e2e-${TEST_NAME//_/-}-$(date +%s)-$RANDOM"
  k create namespace "$ns" >/dev/null
  # Pods need the namespace's default service account (created asynchronously).
  local deadline=$((SECONDS + 30))
  until k -n "$ns" get serviceaccount default >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "no default service account in $ns after 30s"
    sleep 0.5
  done
  echo "$ns"
}

# On failure, show what a person would look at first, then delete the namespace.
cleanup_namespace() {
  local rc=$1
  if ((rc != 0)) && [[ -n ${NS:-} ]]; then
    echo "--- state of namespace $NS (test failed) ---" >&2
    k -n "$NS" get pods -o wide >&2 || true
    k -n "$NS" describe pods >&2 2>&1 | tail -n 60 >&2 || true
    local p
    for p in $(k -n "$NS" get pods -o name 2>/dev/null); do
      echo "--- logs of $p ---" >&2
      k -n "$NS" logs "$p" --tail=30 >&2 || true
    done
  fi
  [[ -z ${NS:-} ]] || k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
}

# wait_pod_ready POD TIMEOUT
wait_pod_ready() {
  k -n "$NS" wait --for=condition=Ready "pod/$1" --timeout="${2}s" >/dev/null ||
    fail "pod $1 not Ready within ${2}s (phase: $(k -n "$NS" get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null))"
}

# wait_pod_finished POD TIMEOUT: until phase is Succeeded or Failed; prints the phase.
wait_pod_finished() {
  local pod=$1 deadline=$((SECONDS + $2)) phase
  while :; do
    phase=$(k -n "$NS" get pod "$pod" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    [[ $phase == Succeeded || $phase == Failed ]] && break
    ((SECONDS < deadline)) || fail "pod $pod did not finish within ${2}s (phase: ${phase:-unknown})"
    sleep 1
  done
  echo "$phase"
}

# Test traffic may only go to pods of the harness's own cluster (never elsewhere).
assert_local_pod_ip() {
  [[ ${E2E_LOCAL_CLUSTER:-0} == 1 ]] || return 0
  [[ $1 == "$E2E_POD_CIDR_PREFIX"* ]] || fail "pod IP $1 is outside the harness's pod network ${E2E_POD_CIDR_PREFIX}0/24"
}

# --- The operator as a process on this machine, watching only the test's namespace ---
# (the Helm-installed, in-cluster operator has its own tests). It reaches runner pods by
# pod IP, as it would in-cluster.
OPERATOR_PID=
OPERATOR_LOG=

# The CRDs from crds/ (the Helm tests install the chart's identical copies); so that
# each operator test also runs alone, not only after a Helm test.
ensure_crd() {
  k apply --server-side --force-conflicts -f "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/crds/" >/dev/null
  k wait --for=condition=Established crd/loadtests.barrage.dev crd/scheduledloadtests.barrage.dev --timeout=30s >/dev/null ||
    fail "the LoadTest and ScheduledLoadTest CRDs are not established"
}

start_operator() {
  ensure_crd
  local bin=${E2E_OPERATOR_BIN:-}
  [[ -x $bin ]] || bin=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/x86_64-unknown-linux-gnu/release/barrage-operator
  [[ -x $bin ]] || fail "no barrage-operator binary (run through e2e/run, which builds it)"
  OPERATOR_LOG=${OPERATOR_LOG:-$(mktemp /tmp/barrage-operator-XXXX.log)}
  BARRAGE_RUNNER_IMAGE=$(image runner) BARRAGE_OPERATOR_IMAGE=$(image operator) \
    BARRAGE_LOG=info,barrage_operator=debug NO_COLOR=1 \
    "$bin" --namespace "$NS" --metrics-addr "${OPERATOR_METRICS_ADDR:-127.0.0.1:0}" "$@" >>"$OPERATOR_LOG" 2>&1 &
  OPERATOR_PID=$!
}

stop_operator() {
  [[ -n $OPERATOR_PID ]] || return 0
  kill -"${1:-TERM}" "$OPERATOR_PID" 2>/dev/null || true
  wait "$OPERATOR_PID" 2>/dev/null || true
  OPERATOR_PID=
}

# For `trap`: stop the operator, show its log on failure, clean the namespace.
cleanup_operator_test() {
  local rc=$1
  stop_operator
  if ((rc != 0)) && [[ -n $OPERATOR_LOG ]]; then
    echo "--- operator log (tail) ---" >&2
    tail -n 40 "$OPERATOR_LOG" >&2 || true
    k -n "$NS" get loadtests -o yaml 2>/dev/null | tail -n 80 >&2 || true
    k -n "$NS" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 >&2 || true
  fi
  cleanup_namespace "$rc"
}

# lt_field NAME JSONPATH
lt_field() { k -n "$NS" get loadtest "$1" -o jsonpath="{$2}"; }

# wait_lt_phase NAME TIMEOUT PHASE...: until the LoadTest is in one of PHASEs; prints it.
wait_lt_phase() {
  local name=$1 deadline=$((SECONDS + $2)) phase want
  shift 2
  while :; do
    phase=$(lt_field "$name" .status.phase 2>/dev/null || true)
    for want in "$@"; do [[ $phase == "$want" ]] && { echo "$phase"; return 0; }; done
    ((SECONDS < deadline)) || fail "LoadTest $name not in ${*} within the time (phase: ${phase:-none}; message: $(lt_field "$name" .status.message 2>/dev/null))"
    sleep 1
  done
}

# --- Targets by name, the way users address them -------------------------------------
# Load goes to Services by DNS name (NAME.NS.svc.cluster.local, or the short forms
# NAME and NAME.NS through the pod's search path); host-side checks (curl from this
# machine, which does not use the cluster DNS) use pod IPs (`pod_ip`).

# service_fqdn NAME: the Service's full name in the test's namespace.
service_fqdn() { echo "$1.$NS.svc.cluster.local"; }

# expose POD PORT...: a ClusterIP Service named POD for the pod labelled app=POD, on
# each PORT; waits until it is served (`wait_service`); prints its full name.
expose() {
  local pod=$1 ports="" p
  shift
  for p in "$@"; do ports+="{name: p$p, port: $p, targetPort: $p}, "; done
  k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: $pod}
spec:
  selector: {app: $pod}
  ports: [${ports%, }]
YAML
  for p in "$@"; do wait_service "$pod" "$p"; done
  service_fqdn "$pod"
}

# wait_service SERVICE PORT: on the local harness, until the cluster DNS serves the
# Service's name and its ClusterIP takes connections (kube-proxy has its ready pod):
# a runner that started before either would count errors a user would not see.
# Elsewhere the cluster's own DNS and proxy are trusted.
wait_service() {
  [[ ${E2E_LOCAL_CLUSTER:-0} == 1 ]] || return 0
  local name ip deadline=$((SECONDS + 60))
  name=$(service_fqdn "$1")
  ip=$(k -n "$NS" get service "$1" -o jsonpath='{.spec.clusterIP}')
  until [[ $(dns_lookup "$name") == "$ip" ]]; do
    ((SECONDS < deadline)) || fail "the cluster DNS does not serve $name ($ip) after 60s"
    sleep 0.2
  done
  until timeout 2 bash -c "exec 3<>/dev/tcp/$ip/$2" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "Service $1 ($ip:$2) takes no connections after 60s"
    sleep 0.2
  done
}

# dns_lookup NAME: the A records the local cluster DNS (dnsmasq on the node IP)
# gives NAME, space-separated; empty for NXDOMAIN. Asks it directly: this machine's
# own resolver does not use the cluster DNS.
dns_lookup() {
  python3 - "$1" "${E2E_CLUSTER_DNS:-198.18.0.10}" <<'PY'
import random, socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
tid = random.randint(0, 65535)
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1), (server, 53))
d = s.recv(4096)
i, ips = 12 + len(qname) + 4, []
for _ in range(struct.unpack(">H", d[6:8])[0]):
    i += 2 if d[i] & 0xC0 == 0xC0 else d[i:].index(0) + 1
    t, _, _, n = struct.unpack(">HHIH", d[i:i + 10])
    i += 10
    if t == 1:
        ips.append(socket.inet_ntoa(d[i:i + n]))
    i += n
print(" ".join(ips))
PY
}

# pod_ip POD: the pod's IP, checked to be in the harness's pod network (for host-side checks).
pod_ip() {
  local ip
  ip=$(k -n "$NS" get pod "$1" -o jsonpath='{.status.podIP}')
  [[ -n $ip ]] || fail "pod $1 has no IP"
  assert_local_pod_ip "$ip"
  echo "$ip"
}

# A target pod running barrage-runner's built-in server behind the Service `target`;
# prints the Service's full name (target.NS.svc.cluster.local).
start_target() {
  k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: target, labels: {app: target}}
spec:
  containers:
  - name: serve
    image: $(image runner)
    imagePullPolicy: $E2E_PULL_POLICY
    args: [serve, --listen, "0.0.0.0:8080"]
    readinessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
YAML
  wait_pod_ready target 120
  pod_ip target >/dev/null
  expose target 8080
}

# float comparison: check "A OP B" with awk, e.g. check 51.2 '>=' 50
check() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

# An arrival-rate load's count: check_arrivals LABEL SENT DROPPED PLANNED. Every arrival
# is sent or counted dropped; a runner held up on a busy node as the load ends may drop
# its last ones (it never sends past the planned end), at most 2.
check_arrivals() {
  local label=$1 sent=$2 dropped=${3:-0} planned=$4
  ((sent + dropped == planned && dropped <= 2)) ||
    fail "$label: expected $planned arrivals sent or dropped (at most 2 dropped), status says $sent sent, $dropped dropped"
}

# --- The Helm chart (charts/barrage), installed through e2e/helm.py -----------------------
# Every install watches given namespaces only: other tests run operators on the same cluster.
HELM_RELEASE=
OPERATOR_POD=
OPERATOR_IP=

helm_py() { python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/helm.py" "$@"; }

# barrage_values TAG WATCH_NS [EXTRA_VALUES_YAML]: writes the tests' chart values (the
# images of TAG, small runner requests, debug logs) to a temp file and prints its path.
# Only keys every version of the chart knows: helm_upgrade.sh installs the previous
# release's chart with them, and its schema refuses unknown keys.
barrage_values() {
  local f
  f=$(mktemp /tmp/barrage-helm-values-XXXX.yaml)
  cat >"$f" <<YAML
image: {repository: $E2E_IMAGE_REPO/operator, tag: "$1", pullPolicy: $E2E_PULL_POLICY}
runner:
  image: {repository: $E2E_IMAGE_REPO/runner, tag: "$1"}
  pullPolicy: $E2E_PULL_POLICY
  resources: {requests: {cpu: 50m, memory: 32Mi}}
watchNamespaces: [$2]
logLevel: info,barrage_operator=debug
${3:-}
YAML
  echo "$f"
}

# helm_install_barrage RELEASE WATCH_NS [EXTRA_VALUES_YAML]: install into $NS with the
# test images, wait for the Deployment, set OPERATOR_POD/OPERATOR_IP (its first pod).
helm_install_barrage() {
  python3 -c 'import helm_python' 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check 'helm-python-sdk==0.2.2' >&2
  local values chart
  chart=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/charts/barrage
  values=$(barrage_values "$E2E_IMAGE_TAG" "$2" "${3:-}")
  HELM_RELEASE=$1
  helm_py install "$chart" "$1" -n "$NS" -f "$values" --timeout 180 >&2 || fail "helm install $1 failed"
  rm -f "$values"
  k -n "$NS" rollout status "deployment/$1" --timeout=180s >/dev/null ||
    fail "the operator Deployment $1 did not become available (readiness probe /readyz)"
  OPERATOR_POD=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$1" --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}')
  OPERATOR_IP=$(k -n "$NS" get pod "$OPERATOR_POD" -o jsonpath='{.status.podIP}')
  assert_local_pod_ip "$OPERATOR_IP"
}

# helm_uninstall_barrage RELEASE: uninstall, then wait until no pod of it is left.
helm_uninstall_barrage() {
  helm_py uninstall "$1" -n "$NS" --timeout 120 >/dev/null || fail "helm uninstall $1 failed"
  HELM_RELEASE=
  local deadline=$((SECONDS + 90))
  until [[ -z $(k -n "$NS" get pods -l "app.kubernetes.io/instance=$1" -o name 2>/dev/null) ]]; do
    ((SECONDS < deadline)) || fail "pods of $1 still there 90s after helm uninstall"
    sleep 1
  done
}

# For `trap`: operator logs on failure, uninstall what is left, clean the namespace.
cleanup_helm_test() {
  local rc=$1 p
  if ((rc != 0)) && [[ -n ${NS:-} ]]; then
    for p in $(k -n "$NS" get pods -l app.kubernetes.io/component=operator -o name 2>/dev/null); do
      echo "--- operator log: $p ---" >&2
      k -n "$NS" logs "$p" --tail=40 >&2 || true
    done
    k -n "$NS" get loadtests -o wide >&2 2>&1 || true
  fi
  [[ -z $HELM_RELEASE ]] || helm_py uninstall "$HELM_RELEASE" -n "$NS" --ignore-not-found --timeout 60 >/dev/null 2>&1 || true
  cleanup_namespace "$rc"
}

# operator_metric NAME NAMESPACE LT [EXTRA_LABEL]: one sample from $OPERATOR_IP:8080/metrics.
operator_metric() {
  curl -sf --max-time 5 "http://$OPERATOR_IP:8080/metrics" |
    grep "^$1{" | grep -F "namespace=\"$2\"" | grep -F "name=\"$3\"" | grep -F "${4:-}" | awk '{print $NF}' | head -n 1 || true
}
