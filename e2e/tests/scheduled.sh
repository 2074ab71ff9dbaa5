#!/usr/bin/env bash
# ScheduledLoadTest: a schedule of every minute (read in Europe/Berlin) with
# concurrencyPolicy Forbid and runs of about 70 s, so the minute after each run
# starts falls while it is active. Over about four minutes: runs start on their
# minute, never two at once, the Forbid skip is recorded (status and event), the
# history limit (1 succeeded) deletes the older run while status.history keeps
# its verdict, req/s and p95 exactly as its LoadTest had them, and `kubectl get
# slt` shows the trend columns; one with a bad time zone is rejected naming the
# field, without holding up the other. Then suspend: no new run. GitOps: re-applying the
# same manifests (the ScheduledLoadTest, and a finished LoadTest) changes
# nothing and starts nothing.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
on_exit() {
  local rc=$1
  if ((rc != 0)); then
    k -n "$NS" get scheduledloadtests -o yaml 2>/dev/null | sed -n '/^  status:/,$p' | head -n 80 >&2 || true
    k -n "$NS" get events --field-selector involvedObject.name=nightly 2>/dev/null | tail -n 20 >&2 || true
  fi
  cleanup_operator_test "$rc"
}
trap 'on_exit $?' EXIT
TARGET=$(start_target)
start_operator

# The minute-scheduled runs last about 70 s: 65 s of load plus pod start.
slt_manifest() {
  cat <<YAML
apiVersion: barrage.dev/v1alpha1
kind: ScheduledLoadTest
metadata: {name: nightly}
spec:
  schedule: "* * * * *"
  timeZone: Europe/Berlin
  suspend: $1
  concurrencyPolicy: Forbid
  successfulRunsHistoryLimit: 1
  failedRunsHistoryLimit: 1
  template:
    metadata: {labels: {team: perf}}
    spec:
      runner: {imagePullPolicy: $E2E_PULL_POLICY}
      target: {baseUrl: "http://$TARGET:8080"}
      load: {executor: arrival-rate, rate: 20, duration: 65s}
      requests:
        - {name: slow, path: /slow}
      thresholds: ["error_rate < 1%"]
YAML
}

ONCE=$(cat <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: once}
spec:
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {executor: arrival-rate, rate: 20, duration: 2s}
  requests:
    - {name: slow, path: /slow}
YAML
)
k -n "$NS" apply -f - >/dev/null <<<"$ONCE"

slt() { k -n "$NS" get scheduledloadtest nightly -o json; }
runs() { k -n "$NS" get loadtests -l barrage.dev/scheduledloadtest=nightly -o json; }

# Applying the same manifest twice: the second apply changes nothing.
slt_manifest false | k -n "$NS" apply -f - >/dev/null
OUT=$(slt_manifest false | k -n "$NS" apply -f -)
[[ $OUT == *unchanged* ]] || fail "re-applying the same ScheduledLoadTest was not a no-op: $OUT"
CREATED=$SECONDS
# A ScheduledLoadTest with a bad time zone: rejected with the field named, and
# it does not hold up the good one.
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: ScheduledLoadTest
metadata: {name: badzone}
spec:
  schedule: "* * * * *"
  timeZone: Europe/Berlinn
  template: {spec: {target: {baseUrl: "http://$TARGET:8080"}, load: {users: 1, duration: 1s}, requests: [{name: a, path: /}]}}
YAML
echo "ScheduledLoadTest created at $(date -u +%T); waiting for runs"

# Watch the runs until the second run has finished and the first is gone (the
# history limit), checking on the way that no two runs are ever active.
declare -A RESULT=() SCHEDULED=() STARTED_LATE=()
while :; do
  ((SECONDS - CREATED < 330)) || fail "no two finished runs with the first one pruned within 330s; runs: $(runs | jq -c '[.items[] | {n: .metadata.name, p: .status.phase}]')"
  R=$(runs)
  ACTIVE=$(jq '[.items[] | select(.metadata.deletionTimestamp == null and (.status.phase // "Pending" | IN("Succeeded", "Failed", "Aborted") | not))] | length' <<<"$R")
  ((ACTIVE <= 1)) || fail "$ACTIVE runs active at once under Forbid: $(jq -c '[.items[] | {n: .metadata.name, p: .status.phase}]' <<<"$R")"
  while read -r name sched created; do
    [[ -n $name ]] || continue
    SCHEDULED[$name]=$sched
    # Started on its minute: created within 15 s of the scheduled time.
    lag=$(($(date -d "$created" +%s) - $(date -d "$sched" +%s)))
    ((lag >= 0 && lag <= 15)) || STARTED_LATE[$name]="$sched -> $created"
  done < <(jq -r '.items[] | "\(.metadata.name) \(.metadata.annotations["barrage.dev/scheduled-at"]) \(.metadata.creationTimestamp)"' <<<"$R")
  # Each finished run's own figures, read while its LoadTest exists.
  while read -r name fig; do
    [[ -n $name && -z ${RESULT[$name]:-} ]] || continue
    RESULT[$name]=$fig
    echo "  run $name finished: $fig (verdict rps p95)"
  done < <(jq -r '.items[] | select(.status.phase == "Succeeded" or .status.phase == "Failed" or .status.phase == "Aborted") | "\(.metadata.name) \(.status.verdict) \(.status.rps) \(.status.latencyMs.p95)"' <<<"$R")
  ACTIVE_STATUS=$(slt | jq '.status.activeCount // 0')
  ((ACTIVE_STATUS <= 1)) || fail "status.activeCount is $ACTIVE_STATUS under Forbid"
  LEFT=$(jq '.items | length' <<<"$R")
  if ((${#RESULT[@]} >= 2 && LEFT == 1)) && [[ $(jq -r '.items[0].status.phase' <<<"$R") == Succeeded ]]; then
    break
  fi
  sleep 2
done
echo "two runs finished after $((SECONDS - CREATED))s: ${!RESULT[*]}"
((${#STARTED_LATE[@]} == 0)) || fail "runs not started on their minute: ${STARTED_LATE[*]}"

S=$(slt)
jq . <<<"$S" | sed -n '/"status"/,$p' | head -n 80
# Scheduled times are whole minutes, at least two apart (the minute between was skipped).
mapfile -t TIMES < <(printf '%s\n' "${SCHEDULED[@]}" | sort)
((${#TIMES[@]} >= 2)) || fail "expected at least 2 runs, saw ${#TIMES[@]}"
for t in "${TIMES[@]}"; do [[ $t == *:00Z ]] || fail "scheduled time $t is not on a minute"; done
GAP=$(($(date -d "${TIMES[1]}" +%s) - $(date -d "${TIMES[0]}" +%s)))
((GAP >= 120)) || fail "runs ${TIMES[0]} and ${TIMES[1]} are $GAP s apart: the minute between should have been skipped (Forbid)"

BAD=$(k -n "$NS" get scheduledloadtest badzone -o json)
[[ $(jq -r '.status.conditions[] | select(.type == "Ready") | "\(.status) \(.reason)"' <<<"$BAD") == "False InvalidSpec" ]] ||
  fail "the ScheduledLoadTest with a bad time zone is not Ready=False InvalidSpec"
[[ $(jq -r '.status.conditions[] | select(.type == "Ready") | .message' <<<"$BAD") == *spec.timeZone* ]] ||
  fail "the bad time zone's message does not name spec.timeZone"
k -n "$NS" get events --field-selector involvedObject.name=badzone,reason=InvalidSpec -o name | grep -q . ||
  fail "no InvalidSpec event for the bad time zone"
[[ -z $(k -n "$NS" get loadtests -l barrage.dev/scheduledloadtest=badzone -o name) ]] || fail "the invalid ScheduledLoadTest started a run"

# The Forbid skip: in the status and as an event.
[[ $(jq '.status.skippedRuns' <<<"$S") -ge 1 ]] || fail "status.skippedRuns is not >= 1"
[[ $(jq -r '.status.lastSkippedReason' <<<"$S") == ConcurrencyForbid ]] || fail "lastSkippedReason is not ConcurrencyForbid"
k -n "$NS" get events --field-selector involvedObject.name=nightly,reason=SkippedRun -o name | grep -q . ||
  fail "no SkippedRun event"
k -n "$NS" get events --field-selector involvedObject.name=nightly,reason=CreatedRun -o name | grep -q . ||
  fail "no CreatedRun event"
k -n "$NS" get events --field-selector involvedObject.name=nightly,reason=DeletedRun -o name | grep -q . ||
  fail "no DeletedRun event (history limit)"

# The history limit: one Succeeded LoadTest left, the newest.
R=$(runs)
[[ $(jq '[.items[] | select(.status.phase == "Succeeded")] | length' <<<"$R") == 1 ]] ||
  fail "successfulRunsHistoryLimit 1: $(jq -c '[.items[].metadata.name]' <<<"$R") left"
NEWEST=$(printf '%s\n' "${!RESULT[@]}" | sort | tail -n 1)
[[ $(jq -r '.items[0].metadata.name' <<<"$R") == "$NEWEST" ]] || fail "the LoadTest kept is not the newest run $NEWEST"
[[ $(jq -r '.items[0].metadata.labels.team' <<<"$R") == perf ]] || fail "the template's labels are not on the run"
[[ $(jq -r '.items[0].metadata.ownerReferences[0] | "\(.kind) \(.name) \(.controller)"' <<<"$R") == "ScheduledLoadTest nightly true" ]] ||
  fail "the run is not controlled by the ScheduledLoadTest"

# status.history holds each run's verdict, req/s and p95 as its LoadTest had them,
# including the run whose LoadTest the history limit deleted.
for name in "${!RESULT[@]}"; do
  got=$(jq -r --arg n "$name" '.status.history[] | select(.name == $n) | "\(.verdict) \(.rps) \(.p95Ms)"' <<<"$S")
  [[ $got == "${RESULT[$name]}" ]] || fail "history of $name says '$got', its LoadTest said '${RESULT[$name]}'"
  [[ ${RESULT[$name]} == "Passed "* ]] || fail "run $name did not pass: ${RESULT[$name]}"
  check "$(cut -d' ' -f2 <<<"${RESULT[$name]}")" '>' 15 || fail "run $name: req/s ${RESULT[$name]} is not near 20"
done
[[ $(jq -r '.status.lastScheduleTime' <<<"$S") == "${TIMES[-1]}" ]] || fail "lastScheduleTime is not ${TIMES[-1]}"
[[ $(jq -r '.status.lastVerdict' <<<"$S") == Passed ]] || fail "lastVerdict is not Passed"
[[ -n $(jq -r '.status.lastSuccessfulTime // empty' <<<"$S") ]] || fail "no lastSuccessfulTime"
k -n "$NS" wait scheduledloadtest/nightly --for=condition=LastRunPassed --timeout=10s >/dev/null ||
  fail "kubectl wait --for=condition=LastRunPassed did not succeed"
[[ $(jq -r '.status.conditions[] | select(.type == "Ready") | .status' <<<"$S") == True ]] || fail "Ready is not True"

# What a person sees.
GET=$(k -n "$NS" get slt nightly)
echo "$GET"
for col in SCHEDULE SUSPEND ACTIVE "LAST SCHEDULE" "LAST VERDICT" "P95(MS) RECENT"; do
  [[ $(head -n 1 <<<"$GET") == *"$col"* ]] || fail "kubectl get slt has no $col column"
done
P95_NEWEST=$(cut -d' ' -f3 <<<"${RESULT[$NEWEST]}")
[[ $(tail -n 1 <<<"$GET") == *"* * * * *"*Passed* ]] || fail "kubectl get slt row lacks the schedule or verdict"
[[ $(jq -r '.status.recentP95' <<<"$S") == "$(printf '%.1f' "$P95_NEWEST") "* ]] ||
  fail "recentP95 '$(jq -r '.status.recentP95' <<<"$S")' does not start with the newest run's p95 $P95_NEWEST"
DESC=$(k -n "$NS" describe slt nightly)
grep -Eq "Last Verdict: +Passed" <<<"$DESC" && grep -q "recentP95: " <<<"$DESC" && grep -q "p95Ms: " <<<"$DESC" ||
  fail "kubectl describe slt does not show the verdict, the trend and the history"

# Suspend: no new run, even when the next minute comes.
slt_manifest true | k -n "$NS" apply -f - >/dev/null
deadline=$((SECONDS + 20))
until [[ $(slt | jq -r '.status.conditions[] | select(.type == "Suspended") | .status') == True ]]; do
  ((SECONDS < deadline)) || fail "Suspended condition not True 20s after suspend"
  sleep 1
done
BEFORE=$(runs | jq -c '[.items[].metadata.name] | sort')
# Past the next minute boundary, with time for a reconcile.
sleep $((60 - $(date +%-S) + 8))
AFTER=$(runs | jq -c '[.items[].metadata.name] | sort')
[[ $AFTER == "$BEFORE" ]] || fail "a run started while suspended: $BEFORE -> $AFTER"
echo "suspended: no new run over a minute boundary ($AFTER)"

# GitOps: re-applying the same (suspended) manifest changes nothing, starts nothing.
RV=$(slt | jq -r .metadata.resourceVersion)
ST=$(slt | jq -cS .status)
OUT=$(slt_manifest true | k -n "$NS" apply -f -)
[[ $OUT == *unchanged* ]] || fail "re-applying the ScheduledLoadTest was not a no-op: $OUT"
sleep 5
[[ $(slt | jq -r .metadata.resourceVersion) == "$RV" ]] || fail "re-applying changed the ScheduledLoadTest (resourceVersion)"
[[ $(slt | jq -cS .status) == "$ST" ]] || fail "re-applying changed the ScheduledLoadTest's status"
[[ $(runs | jq -c '[.items[].metadata.name] | sort') == "$AFTER" ]] || fail "re-applying created a run"

# And a finished LoadTest applied again is not run again: no pods, status as it was.
k -n "$NS" wait loadtest/once --for=condition=Complete --timeout=60s >/dev/null || fail "LoadTest once did not complete"
ONCE_ST=$(k -n "$NS" get loadtest once -o json | jq -cS .status)
ONCE_RV=$(k -n "$NS" get loadtest once -o jsonpath='{.metadata.resourceVersion}')
OUT=$(k -n "$NS" apply -f - <<<"$ONCE")
[[ $OUT == *unchanged* ]] || fail "re-applying the finished LoadTest was not a no-op: $OUT"
sleep 5
[[ $(k -n "$NS" get loadtest once -o json | jq -cS .status) == "$ONCE_ST" ]] || fail "re-applying the finished LoadTest changed its status"
[[ $(k -n "$NS" get loadtest once -o jsonpath='{.metadata.resourceVersion}') == "$ONCE_RV" ]] || fail "re-applying the finished LoadTest changed it"
LIVE=$(k -n "$NS" get pods -l barrage.dev/loadtest=once -o json | jq '[.items[] | select(.metadata.deletionTimestamp == null)] | length')
[[ $LIVE == 0 ]] || fail "re-applying the finished LoadTest started $LIVE pods"
echo "ok: scheduled runs, Forbid, history limit and history, suspend, re-apply is a no-op ($((SECONDS - CREATED))s)"
