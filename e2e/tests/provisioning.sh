#!/usr/bin/env bash
# Provisioning (issue 6). A setup Job registers 100 users through the built-in
# target's auth flow (register, authorize with PKCE, exchange the code for a
# token) and publishes their emails and tokens to a Secret that only it may
# write. Then three scenarios run with 2 runners against the token-checked
# endpoint: warm cache (cycle), cold start (unique) and mixed (80% repeat);
# the last two reuse the first one's records. The target counts what it saw
# (/auth/stats), so each policy is checked from outside as well as against
# the LoadTest's own distinct-record count. A setup whose users fail ends
# Failed with the count and the first errors in its status. A slow setup shows
# its progress (users done of N, from the setup pod's progress lines) in
# status.progress while it provisions, cleared once the test ends.
source "$(dirname "$0")/../lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT

# The target with its auth flow, configured as in examples/auth-target.yaml.
# Plus one slow route, for a setup slow enough to watch its progress.
TARGET_CFG=$(mktemp)
{ cat "$ROOT/examples/auth-target.yaml"; echo "  - {method: GET, path: /api/slow, body: ok, latency: 250ms}"; } >"$TARGET_CFG"
k -n "$NS" create configmap target-config --from-file=config.yaml="$TARGET_CFG" >/dev/null
rm -f "$TARGET_CFG"
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: target, labels: {app: target}}
spec:
  containers:
  - name: serve
    image: $(image runner)
    imagePullPolicy: $E2E_PULL_POLICY
    args: [serve, --listen, "0.0.0.0:8080", --config, /cfg/config.yaml]
    volumeMounts: [{name: cfg, mountPath: /cfg}]
    readinessProbe:
      httpGet: {path: /auth/stats, port: 8080}
      periodSeconds: 1
  volumes: [{name: cfg, configMap: {name: target-config}}]
YAML
wait_pod_ready target 120
TARGET_IP=$(k -n "$NS" get pod target -o jsonpath='{.status.podIP}')
assert_local_pod_ip "$TARGET_IP"
TARGET=$(expose target 8080)
start_operator

stats() { curl -fsS --max-time 10 "http://$TARGET_IP:8080/auth/stats"; }

# What the target saw between two /auth/stats answers: users whose token was
# used, requests, the fewest and most requests per user, and failed checks.
delta() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
d = {u: n - a["userRequests"].get(u, 0) for u, n in b["userRequests"].items()}
used = [n for n in d.values() if n > 0]
print(len(used), sum(used), min(used, default=0), max(used, default=0), b["rejected"] - a["rejected"])
PY
}

# The example manifest, renamed and pointed at the target, with 2 runners.
manifest() { # NAME LOAD DATA [EXTRA_SPEC]
  sed -e "s/name: accounts-warm/name: $1/" \
    -e "s#baseUrl: http://127.0.0.1:8080#baseUrl: http://$TARGET:8080#" \
    -e "s/^  load: .*/  load: $2/" \
    -e "s/^  data: .*/  data: $3/" \
    -e "s/^spec:/spec:\n  runners: 2\n  runner: {imagePullPolicy: $E2E_PULL_POLICY}\n  timeouts: {setup: 3m}${4:+\n  $4}/" \
    "$ROOT/examples/provisioning.yaml"
}
# The same without its setup, reusing warm's records.
reusing() { # NAME LOAD DATA
  manifest "$1" "$2" "$3" "dataFrom: {loadTest: warm}" | python3 -c '
import sys, yaml
d = yaml.safe_load(sys.stdin); del d["spec"]["setup"]; print(yaml.safe_dump(d))'
}
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check pyyaml

# --- A setup whose users fail: one email for all, so all but one get 409.
manifest dupes "{users: 1, iterations: 5}" "{select: cycle}" |
  sed -e 's/users: 100/users: 5/' -e 's/email: "{{ email }}"/email: dupe@example.test/' |
  k -n "$NS" apply -f - >/dev/null

# --- Warm cache: provision 100 users, then 300 requests going round them.
S0=$(mktemp) S1=$(mktemp)
stats >"$S0"
manifest warm "{users: 4, iterations: 300}" "{select: cycle}" | k -n "$NS" apply -f - >/dev/null
wait_lt_phase warm 240 Succeeded >/dev/null
stats >"$S1"
[[ $(lt_field warm '.status.records.count') == 100 ]] || fail "warm: expected 100 records, status: $(lt_field warm .status.records)"
[[ $(lt_field warm '.status.records.secret') == warm-records ]] || fail "warm: records Secret not named"
REG=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["registered"])' "$S1")
((REG >= 100)) || fail "the target registered $REG users"
read -r USED REQS MIN MAX REJ < <(delta "$S0" "$S1")
echo "warm: $USED users used, $REQS requests (per user $MIN..$MAX), $REJ rejected; status distinct $(lt_field warm .status.records.distinctUsed)"
[[ $(lt_field warm .status.requests) == 300 && $(lt_field warm .status.errors) == 0 ]] || fail "warm: $(lt_field warm .status.requests) requests, $(lt_field warm .status.errors) errors"
((REQS == 300 && REJ == 0)) || fail "warm: the target saw $REQS token-checked requests, $REJ rejected"
((USED <= 100)) || fail "warm: $USED distinct users, more than were provisioned"
[[ $(lt_field warm .status.records.distinctUsed) == "$USED" ]] || fail "warm: status distinctUsed differs from the target's $USED"

# The setup pod could write its records Secret and nothing else.
SA=system:serviceaccount:$NS:warm-setup
can() { k -n "$NS" auth can-i "$@" --as "$SA" 2>/dev/null || true; }
[[ $(can patch secret/warm-records) == yes ]] || fail "the setup ServiceAccount cannot patch its records Secret"
[[ $(can get secret/warm-token) == no ]] || fail "the setup ServiceAccount can read the agents' token"
[[ $(can create secrets) == no && $(can list secrets) == no ]] || fail "the setup ServiceAccount can create or list Secrets"
[[ $(k -n "$NS" get secret warm-records -o jsonpath='{.metadata.ownerReferences[0].name}') == warm ]] || fail "the records Secret is not owned by its LoadTest"
echo "ok: warm cache; the records Secret is writable by its setup pod only"

# --- Cold start: each request a user never used before; 100 requests, 100 users.
reusing cold "{users: 4, iterations: 100}" "{select: unique}" | k -n "$NS" apply -f - >/dev/null
wait_lt_phase cold 180 Succeeded >/dev/null
stats >"$S0"
read -r USED REQS MIN MAX REJ < <(delta "$S1" "$S0")
echo "cold: $USED users used, $REQS requests (per user $MIN..$MAX), $REJ rejected"
[[ $(lt_field cold '.status.conditions[?(@.type=="Provisioned")].reason') == RecordsReused ]] || fail "cold did not reuse warm's records"
[[ -z $(k -n "$NS" get job cold-setup -o name --ignore-not-found) ]] || fail "cold ran a setup job of its own"
((USED == 100 && MIN == 1 && MAX == 1 && REJ == 0)) || fail "cold: expected one request for each of 100 users"
[[ $(lt_field cold .status.records.distinctUsed) == 100 && $(lt_field cold .status.errors) == 0 ]] || fail "cold: status $(lt_field cold .status.records)"
echo "ok: cold start"

# --- Mixed: 80% of 200 requests reuse a user, 20% take a new one (40 expected).
reusing mixed "{users: 4, iterations: 200}" "{select: mixed, repeat: 0.8}" | k -n "$NS" apply -f - >/dev/null
wait_lt_phase mixed 180 Succeeded >/dev/null
stats >"$S1"
read -r USED REQS MIN MAX REJ < <(delta "$S0" "$S1")
echo "mixed: $USED users used, $REQS requests (per user $MIN..$MAX), $REJ rejected"
((REQS == 200 && REJ == 0)) || fail "mixed: $REQS requests seen, $REJ rejected"
# About 2 + Binomial(198, 0.2) (mean 42, sd 5.6): 15..70 is beyond 4.5 sd either way,
# and still far from always-new (200) and always-reuse (one per user).
((USED >= 15 && USED <= 70)) || fail "mixed: $USED new users of 200 requests is not about 20%"
[[ $(lt_field mixed .status.records.distinctUsed) == "$USED" ]] || fail "mixed: status distinctUsed differs from the target's $USED"
echo "ok: mixed"

# --- A custom setup image writes its own JSON lines to $BARRAGE_RECORDS_FILE;
# they are published the same way. The image: Debian's static busybox alone.
[[ -x /bin/busybox ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null 2>&1
bash "$ROOT/e2e/cluster" image "$(image busybox)" /bin/busybox >/dev/null
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: custom}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  setup:
    image: $(image busybox)
    command: [/busybox, sh, -c, 'for i in 1 2 3 4; do echo "{\"id\": \"c\$i\"}"; done > "\$BARRAGE_RECORDS_FILE"']
  data: {select: unique}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 2, iterations: 4}
  requests: [{name: stats, path: '/auth/stats?as={{ record.id }}'}]
YAML
wait_lt_phase custom 120 Succeeded >/dev/null
[[ $(lt_field custom .status.records.count) == 4 && $(lt_field custom .status.records.distinctUsed) == 4 ]] ||
  fail "custom: records $(lt_field custom .status.records)"
[[ $(lt_field custom .status.requests) == 4 && $(lt_field custom .status.errors) == 0 ]] || fail "custom: the runners did not use the 4 records"
echo "ok: a custom setup image's records"

# --- The failed setup: counts and first errors reach the status; no runners.
wait_lt_phase dupes 120 Failed >/dev/null
MSG=$(lt_field dupes .status.message)
echo "dupes: $MSG"
[[ $MSG == *"setup failed for 4 of 5 users"* && $MSG == *'status 409 (expected 201)'* ]] ||
  fail "the failed setup's message lacks the count or the first error"
[[ -z $(k -n "$NS" get pods -l barrage.dev/loadtest=dupes,barrage.dev/role=runner -o name) ]] || fail "runners started after a failed setup"
k -n "$NS" get events --field-selector involvedObject.name=dupes -o jsonpath='{.items[*].message}' | grep -q "setup failed for 4 of 5 users" ||
  fail "no event carries the setup failure"
echo "ok: failed setup"

# --- Progress: 60 users one at a time, 250 ms each (about 15 s). While it
# provisions, status.progress counts users done of 60 from the setup pod's
# progress lines (read at most every 5 s); it is gone once the test ends.
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: slow}
spec:
  runners: 1
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  timeouts: {setup: 3m}
  setup:
    users: 60
    concurrency: 1
    vars: {n: "{{ randInt(1, 9) }}"}
    steps: [{name: slow, path: /api/slow}]
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 1, iterations: 2}
  requests: [{name: slow, path: /api/slow}]
YAML
SEEN_TOTAL=0 SEEN_MID=""
deadline=$((SECONDS + 180))
while :; do
  phase=$(lt_field slow .status.phase 2>/dev/null || true)
  [[ $phase == Provisioning || $phase == Pending || -z $phase ]] || break
  ((SECONDS < deadline)) || fail "slow: still $phase after 180 s"
  # One read of the whole progress: a second read could see the next stage's.
  read -r stage unit ndone total text < <(k -n "$NS" get loadtest slow \
    -o jsonpath='{.status.progress.stage} {.status.progress.unit} {.status.progress.done} {.status.progress.total} {.status.progress.text}{"\n"}' 2>/dev/null || true) || true
  if [[ $stage == setup ]]; then
    [[ $unit == users && $total == 60 ]] || fail "slow: progress is not users of 60: $(lt_field slow .status.progress)"
    SEEN_TOTAL=1
    if ((ndone > 0 && ndone < 60)); then SEEN_MID=$text; fi
  fi
  sleep 0.5
done
((SEEN_TOTAL)) || fail "slow: status.progress never showed the setup"
[[ -n $SEEN_MID ]] || fail "slow: status.progress never showed users done part way (read from the setup pod's log)"
echo "slow: progress seen while provisioning: $SEEN_MID"
[[ $SEEN_MID == *"/60 users"* ]] || fail "slow: the progress text is not 'N/60 users ...': $SEEN_MID"
# The setup pod's log carries the documented progress lines.
SETUP_LOG=$(k -n "$NS" logs job/slow-setup -c setup 2>&1 || true)
grep -q '^barrage-progress done=60 total=60$' <<<"$SETUP_LOG" ||
  fail "slow: the setup pod's log has no final progress line: $(tail -n 5 <<<"$SETUP_LOG")"
wait_lt_phase slow 120 Succeeded >/dev/null
[[ -z $(lt_field slow .status.progress) ]] || fail "slow: status.progress stays after the end: $(lt_field slow .status.progress)"
echo "ok: provisioning progress"
