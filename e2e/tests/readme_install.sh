#!/usr/bin/env bash
# The README's install section, as written: the fenced blocks after `<!-- e2e: install-images -->`
# (build the images with buildah, import them into the node) and `<!-- e2e: install -->`
# (helm install with the chart's defaults, the built-in target as a Deployment + Service,
# examples/loadtest-incluster.yaml by the Service's name, kubectl wait, kubectl get lt,
# kubectl barrage report), extracted from README.md and run in order by one bash.
# Then: the LoadTest Passed, its requests are counted, the report ConfigMap's totals equal
# the status and the plugin's report prints them. Also: the release kubectl-barrage (built
# by e2e/run) is under 20 MiB.
#
# Own namespace: `barrage-system` in the blocks becomes the test's namespace, which is
# also the current context's namespace of a kubeconfig copy (the README's unqualified
# kubectl commands land there). `helm` is a shim for e2e/helm.py (no helm binary here),
# and `kubectl barrage` finds the kubectl-barrage that e2e/run built. The image block is
# skipped when e2e/run has just built and imported those images (E2E_IMAGES_BUILT=1).
# Until the local cluster has DNS (kubelet clusterDNS), the Service's name in the
# LoadTest's URL is replaced by its ClusterIP, and the test says so.
source "$(dirname "$0")/../lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NS=$(new_namespace)
WORK=$(mktemp -d /tmp/barrage-readme-XXXX)
HELM_RELEASE=
cleanup() {
  local rc=$1
  if [[ -n $HELM_RELEASE ]] && ((rc != 0)); then
    k -n "$NS" get deployment,pods,service -o wide >&2 || true
  fi
  cleanup_helm_test "$rc"
  rm -rf "$WORK"
}
trap 'cleanup $?' EXIT

# blocks MARK: the README's fenced sh blocks preceded by <!-- e2e: MARK -->, in order.
blocks() {
  python3 - "$ROOT/README.md" "$1" <<'PY'
import re, sys, textwrap
text = open(sys.argv[1], encoding="utf-8").read()
pat = re.compile(r"^([ \t]*)<!-- e2e: " + re.escape(sys.argv[2]) + r" -->\n[ \t]*```sh\n(.*?)^[ \t]*```", re.M | re.S)
found = [textwrap.dedent(m.group(2)) for m in pat.finditer(text)]
if not found:
    sys.exit(f"README.md has no block marked <!-- e2e: {sys.argv[2]} -->")
print("\n".join(found))
PY
}

IMAGES_SH=$(blocks install-images) || fail "cannot extract the README's image block"
INSTALL_SH=$(blocks install) || fail "cannot extract the README's install blocks"
grep -q '^helm install barrage charts/barrage -n barrage-system' <<<"$INSTALL_SH" || fail "the install block no longer installs the chart: $INSTALL_SH"
grep -q 'kubectl barrage report incluster' <<<"$INSTALL_SH" || fail "the install block no longer shows the report"

# helm -> e2e/helm.py (its install/upgrade take CHART RELEASE, helm's take RELEASE CHART).
mkdir -p "$WORK/bin"
cat >"$WORK/bin/helm" <<SH
#!/usr/bin/env bash
case \${1:-} in
  install | upgrade) exec python3 "$ROOT/e2e/helm.py" "\$1" "\$3" "\$2" "\${@:4}" ;;
  *) exec python3 "$ROOT/e2e/helm.py" "\$@" ;;
esac
SH
chmod +x "$WORK/bin/helm"
BIN_DIR=$(dirname "${E2E_OPERATOR_BIN:-$ROOT/target/x86_64-unknown-linux-gnu/release/barrage-operator}")
[[ -x $BIN_DIR/kubectl-barrage ]] || fail "no kubectl-barrage in $BIN_DIR (images/build builds it with the operator)"
if [[ -z ${E2E_OPERATOR_BIN:-} || ${E2E_IMAGES_BUILT:-0} == 1 ]]; then
  # The plugin goes on the PATH by the static `cargo install` docs/images.md gives, which
  # reuses what images/build compiled here (shown to work, not just written down).
  INSTALL_CMD="CARGO_TARGET_DIR=\$PWD/target RUSTFLAGS='-C target-feature=+crt-static' \\"
  grep -qF "$INSTALL_CMD" "$ROOT/docs/images.md" || fail "docs/images.md no longer gives the static cargo install of the plugin"
  echo "+ cargo install --locked --path operator --bin kubectl-barrage --target x86_64-unknown-linux-gnu (static, as docs/images.md)"
  (cd "$ROOT" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} RUSTFLAGS='-C target-feature=+crt-static' \
    cargo install --locked --path operator --bin kubectl-barrage --target x86_64-unknown-linux-gnu --root "$WORK/cargo") >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; fail "cargo install of kubectl-barrage failed"; }
  grep -E "Installed|Replaced|Compiling" "$WORK/install.log" || true
  BIN_DIR=$WORK/cargo/bin
fi
ln -s "$BIN_DIR/kubectl-barrage" "$WORK/bin/kubectl-barrage"
# The release profile strips the binaries: the plugin people download stays small.
PLUGIN_BYTES=$(stat -c %s "$BIN_DIR/kubectl-barrage")
((PLUGIN_BYTES < 20 * 1024 * 1024)) || fail "kubectl-barrage is $((PLUGIN_BYTES / 1024 / 1024)) MiB, over 20 MiB (is [profile.release] still strip = true?)"
echo "kubectl-barrage: $((PLUGIN_BYTES / 1024)) KiB"
export PATH="$WORK/bin:$PATH"

cd "$ROOT"
if [[ ${E2E_IMAGES_BUILT:-0} == 1 ]]; then
  echo "skipping the README's image block: e2e/run built and imported those images"
else
  [[ ${E2E_LOCAL_CLUSTER:-0} == 1 ]] || { echo "the image block is for the local cluster; give your cluster the images yourself"; exit 77; }
  echo "+ the README's image block"
  bash -euxo pipefail -c "$IMAGES_SH" || fail "the README's image block failed"
fi

# A kubeconfig of our own whose current context's namespace is the test's namespace.
kubectl config view --raw >"$WORK/kubeconfig"
export KUBECONFIG=$WORK/kubeconfig
kubectl config set-context --current --namespace="$NS" >/dev/null

INSTALL_SH=${INSTALL_SH//barrage-system/$NS}
node=$(k get nodes -o jsonpath='{.items[0].metadata.name}')
if ! k get --raw "/api/v1/nodes/$node/proxy/configz" | jq -e '(.kubeletconfig.clusterDNS // []) | length > 0' >/dev/null; then
  echo "NOTE: this cluster has no cluster DNS: the LoadTest gets the Service's ClusterIP instead of its name"
  INSTALL_SH=${INSTALL_SH//"|http://target:8080|'"/"|http://'\"\$(kubectl get service target -o jsonpath='{.spec.clusterIP}')\"':8080|'"}
  [[ $INSTALL_SH == *"spec.clusterIP"* ]] || fail "the README no longer names the target as http://target:8080"
fi
HELM_RELEASE=barrage # for the cleanup's uninstall, from here on
echo "+ the README's install blocks (barrage-system -> $NS)"
bash -euxo pipefail -c "$INSTALL_SH" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; fail "the README's install blocks failed"; }
cat "$WORK/out"

# What the README promises: a finished, passed run, counted, with its report.
VERDICT=$(lt_field incluster .status.verdict)
REQUESTS=$(lt_field incluster .status.requests)
[[ $VERDICT == Passed ]] || fail "LoadTest incluster: verdict '$VERDICT' ($(lt_field incluster .status.message))"
check "$REQUESTS" '>=' 900 || fail "expected about 1000 requests (100 req/s for 10 s), status says $REQUESTS"
k get configmap incluster-report -o jsonpath='{.data.report\.json}' | jq -e ".summary.total.requests == $REQUESTS" >/dev/null ||
  fail "the report ConfigMap's total is not the status's $REQUESTS requests"
grep -qE "^incluster +Succeeded +2/2 .* Passed " "$WORK/out" || fail "kubectl get lt incluster did not show it Succeeded, 2/2 runners, Passed"
sed -n '/kubectl barrage report incluster/,$p' "$WORK/out" >"$WORK/report.txt"
grep -q "loadtest \.* $NS/incluster" "$WORK/report.txt" || fail "kubectl barrage report does not name $NS/incluster"
grep -qE "requests \.+ $REQUESTS " "$WORK/report.txt" || fail "kubectl barrage report does not show the status's $REQUESTS requests"
[[ $(tail -n 2 "$WORK/report.txt" | tr -d ' \n') == PASSED ]] || fail "kubectl barrage report does not end with PASSED"
echo "ok: the README's install section: verdict $VERDICT, $REQUESTS requests, report shown"
