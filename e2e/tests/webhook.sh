#!/usr/bin/env bash
# The validating admission webhook (docs/webhook.md), installed by the chart with 2
# replicas and a serving certificate that lives 90 s under a CA that lives 150 s:
# - invalid LoadTests and ScheduledLoadTests are refused by `kubectl apply` and by
#   `kubectl apply --dry-run=server`, each with its field named: a bad template variable,
#   a bad threshold, a string that is no duration (refused by the schema's pattern), a
#   schema-valid value of the wrong type (a pacing that does not parse), a bad cron, an edit of a
#   running test's spec; valid ones are admitted; a missing Secret is only a warning;
# - one operator pod deleted: every apply answered throughout, and the new pod serves;
# - the serving certificate renewed twice and the CA rotated (staged, switched, dropped)
#   while `kubectl apply --dry-run=server` runs in a loop: not one apply refused;
# - a manifest with several errors shows them all (needs the schema branch's validate_all).
# The API server (on the host) calls the webhook Service's ClusterIP through kube-proxy.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_helm_test $?' EXIT
# The chart scopes the webhook to watchNamespaces by the kubernetes.io/metadata.name
# label, which Kubernetes sets from 1.21 on; the local cluster is 1.20.
k label namespace "$NS" "kubernetes.io/metadata.name=$NS" --overwrite >/dev/null

REL=barrage-e2e-wh-$RANDOM
helm_install_barrage "$REL" "$NS" "replicas: 2
webhook:
  certs: {caValidity: 150s, caRenewBefore: 100s, certValidity: 90s, certRenewBefore: 60s, checkInterval: 2s}"
k -n "$NS" wait --for=condition=Ready pod -l "app.kubernetes.io/instance=$REL" --timeout=120s >/dev/null ||
  fail "both operator pods should be Ready (ready = the webhook serves with a certificate)"
[[ -n $(k get validatingwebhookconfiguration "$REL" -o jsonpath='{.webhooks[0].clientConfig.caBundle}') ]] ||
  fail "the operator did not set the webhook configuration's caBundle"

# Its RBAC as the API server sees it: the one Secret and the one configuration, by name.
SA=system:serviceaccount:$NS:$REL
can() { k auth can-i "$@" --as "$SA" 2>/dev/null || true; }
[[ $(can update "secret/$REL-webhook-tls" -n "$NS") == yes ]] || fail "the operator cannot update its webhook Secret"
[[ $(can update secret/another -n "$NS") == no ]] || fail "the operator may update any Secret"
[[ $(can update "validatingwebhookconfiguration/$REL") == yes ]] || fail "the operator cannot update its webhook configuration"
[[ $(can update validatingwebhookconfiguration/another) == no ]] || fail "the operator may update any webhook configuration"

DIR=$(mktemp -d /tmp/e2e-webhook-XXXX)
# with SED_SCRIPT TEXT: TEXT edited.
with() { sed "$1" <<<"$2"; }
# manifest KIND NAME SPEC (indented 2): writes $DIR/NAME.yaml, prints its path.
manifest() {
  printf 'apiVersion: barrage.dev/v1alpha1\nkind: %s\nmetadata:\n  name: %s\nspec:\n%s\n' "$1" "$2" "$3" >"$DIR/$2.yaml"
  echo "$DIR/$2.yaml"
}
SPEC="  runners: 1
  target: {baseUrl: 'http://198.18.1.250:8080'}
  load: {users: 1, duration: 10s}
  requests: [{name: a, path: /}]
  thresholds: ['p(95) < 100ms']"

# refused WHAT FILE FIELD...: refused by the webhook, with each FIELD in kubectl's output,
# in a server-side dry run and in a real apply alike.
refused() {
  local what=$1 file=$2 mode out f
  shift 2
  for mode in --dry-run=server --dry-run=none; do
    if out=$(k -n "$NS" apply "$mode" -f "$file" 2>&1); then fail "$what was admitted ($mode): $out"; fi
    # kubectl prints an Invalid refusal with causes as 'The KIND "NAME" is invalid: FIELD:
    # MESSAGE, ...', the object named from the details as for the API server's own
    # refusals (the webhook's name is in the status message, which kubectl then omits).
    grep -qF "The $(sed -n 's/^kind: //p' "$file") \"$(sed -n 's/^  name: //p' "$file")\" is invalid" <<<"$out" ||
      fail "$what ($mode): not a refusal naming the object: $out"
    for f in "$@"; do grep -qF -- "$f" <<<"$out" || fail "$what ($mode): '$f' not named in: $out"; done
  done
  echo "refused: $what: $(grep -oE 'is invalid.*' <<<"$out" | head -c 200)"
}
admitted() {
  local out
  out=$(k -n "$NS" apply --dry-run=server -f "$2" 2>&1) || fail "$1 refused in a dry run: $out"
  out=$(k -n "$NS" apply -f "$2" 2>&1) || fail "$1 refused: $out"
  echo "admitted: $1"
}

# --- valid and invalid manifests ------------------------------------------------------
admitted "a valid LoadTest" "$(manifest LoadTest valid "$SPEC")"
k -n "$NS" delete loadtest valid --wait=false >/dev/null
refused "a bad template variable" "$(manifest LoadTest bad-template "$(with "s|path: /}|path: '/{{ nope }}'}|" "$SPEC")")" "spec.requests[0]"
refused "a bad threshold" "$(manifest LoadTest bad-threshold "$(with 's|p(95) < 100ms|p(95) <<< 100ms|' "$SPEC")")" "spec.thresholds[0]"
refused "a string that is no duration" "$(manifest LoadTest bad-duration "$(with 's|duration: 10s|duration: 10 parsecs|' "$SPEC")")" "spec.load.duration"
# A value the schema takes (pacing is any string: it also holds ranges and
# distributions) but the operator's types do not: only the webhook can refuse it.
refused "a schema-valid value of the wrong type" "$(manifest LoadTest bad-pacing "$(with 's|duration: 10s}|duration: 10s, pacing: a while}|' "$SPEC")")" "spec.load.pacing"
SLT="  schedule: '0 3 * * *'
  suspend: true
  template:
    spec:
$(sed 's/^/    /' <<<"$SPEC")"
admitted "a valid ScheduledLoadTest" "$(manifest ScheduledLoadTest nightly "$SLT")"
refused "a bad cron" "$(manifest ScheduledLoadTest bad-cron "$(with "s|'0 3 \* \* \*'|'0 25 * * *'|" "$SLT")")" "spec.schedule"
# A template edit is admitted (it applies from the next run).
admitted "a ScheduledLoadTest template edit" "$(manifest ScheduledLoadTest nightly "$(with 's|users: 1,|users: 2,|' "$SLT")")"
[[ $(k -n "$NS" get scheduledloadtest nightly -o jsonpath='{.spec.template.spec.load.users}') == 2 ]] ||
  fail "the template edit was not stored"
# What only the cluster can tell is a warning: the apply goes through.
TLS_SPEC=$(with "s|baseUrl: 'http://198.18.1.250:8080'|baseUrl: 'https://198.18.1.250:8443', tls: {caFrom: {secret: not-yet, key: ca.crt}}|" "$SPEC")
out=$(k -n "$NS" apply --dry-run=server -f "$(manifest LoadTest later-secret "$TLS_SPEC")" 2>&1) ||
  fail "a LoadTest naming a Secret not there yet was refused: $out"
grep -q 'Warning: spec.target.tls.caFrom: Secret "not-yet"' <<<"$out" || fail "no warning about the missing Secret: $out"
echo "warned: $(grep Warning <<<"$out")"

# --- a running test's spec is frozen; its labels are not -------------------------------
TARGET_IP=$(start_target)
RUN=$(with "s|198.18.1.250|$TARGET_IP|; s|duration: 10s|duration: 120s|" "$SPEC")
admitted "a long LoadTest" "$(manifest LoadTest running "$RUN")"
wait_lt_phase running 120 Running >/dev/null
refused "an edit of a running test's spec" "$(manifest LoadTest running "$(with 's|users: 1,|users: 3,|' "$RUN")")" "spec: cannot change" "is running"
k -n "$NS" label loadtest running team=perf >/dev/null || fail "a label on a running test was refused"
k -n "$NS" delete loadtest running --wait=false >/dev/null

# --- the operator restarted: answering throughout (2 replicas) -------------------------
VALID=$(manifest LoadTest probe "$SPEC")
apply_dry() {
  local err
  err=$(k -n "$NS" apply --dry-run=server -f "$VALID" 2>&1 >/dev/null) || fail "$1: a valid dry run was refused: $err"
}
mapfile -t PODS < <(k -n "$NS" get pods -l "app.kubernetes.io/instance=$REL" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
k -n "$NS" delete pod "${PODS[0]}" --wait=false >/dev/null
n=0 deadline=$((SECONDS + 120))
while :; do
  apply_dry "while ${PODS[0]} restarts"
  n=$((n + 1))
  ready=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$REL" -o json |
    jq --arg gone "${PODS[0]}" '[.items[] | select(.metadata.name != $gone and .metadata.deletionTimestamp == null)
      | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length')
  ((ready == 2)) && break
  ((SECONDS < deadline)) || fail "the replacement operator pod is not Ready after 120s"
done
echo "restart: $n dry runs while ${PODS[0]} was replaced, none refused"

# --- certificate rotation under load ---------------------------------------------------
field() { k -n "$NS" get secret "$REL-webhook-tls" -o jsonpath="{.data.$1}"; }
first_ca=$(field 'ca\.crt') leaf=$(field 'tls\.crt')
renewals=0 ca_switched=0 old_dropped=0 n=0 deadline=$((SECONDS + 240))
while ((renewals < 2 || !old_dropped)); do
  apply_dry "during certificate rotation"
  n=$((n + 1))
  cur=$(field 'tls\.crt')
  [[ $cur != "$leaf" ]] && { renewals=$((renewals + 1)); leaf=$cur; }
  [[ $(field 'ca\.crt') != "$first_ca" ]] && ca_switched=1
  ((ca_switched)) && [[ -z $(field 'old-ca\.crt') ]] && old_dropped=1
  ((SECONDS < deadline)) || fail "rotation not seen in 240s (renewals $renewals, CA switched $ca_switched, old CA dropped $old_dropped)"
done
# Both pods serve the newest certificate (hot reload, no restart), still answering.
want=$(base64 -d <<<"$leaf" | openssl x509 -noout -fingerprint -sha256)
for ip in $(k -n "$NS" get pods -l "app.kubernetes.io/instance=$REL" -o jsonpath='{.items[*].status.podIP}'); do
  deadline=$((SECONDS + 30))
  until [[ $(openssl s_client -connect "$ip:9443" -servername "$REL-webhook.$NS.svc" </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null) == "$want" ]]; do
    apply_dry "while the pods reload"
    ((SECONDS < deadline)) || fail "pod $ip does not serve the newest certificate"
  done
done
restarts=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$REL" -o jsonpath='{.items[*].status.containerStatuses[0].restartCount}')
[[ $restarts == "0 0" ]] || fail "operator containers restarted: $restarts"
echo "rotation: $renewals serving certificates and one CA rotated over $n dry runs, none refused"

# --- every error at once (needs the schema branch's validate_all; one error before it) ---
refused "a manifest with two errors" "$(manifest LoadTest two-errors "$(with 's|runners: 1|runners: 0|; s|p(95) < 100ms|p(95) <<< 100ms|' "$SPEC")")" \
  "spec.runners" "spec.thresholds[0]"

helm_uninstall_barrage "$REL"
rm -rf "$DIR"
echo "ok: webhook refuses with fields, survives a restart and rotations without a refused apply"
