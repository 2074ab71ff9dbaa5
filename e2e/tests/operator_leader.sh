#!/usr/bin/env bash
# Leader election: two operator replicas with --leader-elect share one Lease. Only
# the holder reconciles (one "Started" event, one leader in the logs); when it is
# killed, the standby takes the Lease over and reconciles the next LoadTest.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
LOG_A=$(mktemp /tmp/barrage-op-a-XXXX.log)
LOG_B=$(mktemp /tmp/barrage-op-b-XXXX.log)
PID_B=
trap 'rc=$?; [[ -n $PID_B ]] && kill $PID_B 2>/dev/null; ((rc)) && tail -n 20 "$LOG_B" >&2; cleanup_operator_test $rc' EXIT
TARGET=$(start_target)

# Replica A, then replica B, as two processes with their own identities.
OPERATOR_LOG=$LOG_A POD_NAME=replica-a POD_NAMESPACE=$NS start_operator --leader-elect true
PID_A=$OPERATOR_PID
# B starts once A holds the Lease (a slow API server must not let B win the race).
for _ in $(seq 60); do
  [[ $(k -n "$NS" get lease barrage-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null) == replica-a ]] && break
  sleep 0.5
done
bin=${E2E_OPERATOR_BIN:-}
[[ -x ${bin:-} ]] || bin=$(cd "$(dirname "$0")/../.." && pwd)/target/x86_64-unknown-linux-gnu/release/barrage-operator
POD_NAME=replica-b POD_NAMESPACE=$NS BARRAGE_RUNNER_IMAGE=$(image runner) NO_COLOR=1 \
  "$bin" --namespace "$NS" --metrics-addr 127.0.0.1:0 --leader-elect true >>"$LOG_B" 2>&1 &
PID_B=$!

lt() {
  k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: $1}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target: {baseUrl: "http://$TARGET:8080"}
  load: {users: 2, iterations: 200}
  requests: [{name: root, path: /}]
YAML
}

lt first
k -n "$NS" wait loadtest/first --for=condition=Complete --timeout=120s >/dev/null || fail "first LoadTest did not complete"
HOLDER=$(k -n "$NS" get lease barrage-operator -o jsonpath='{.spec.holderIdentity}')
[[ $HOLDER == replica-a ]] || fail "expected replica-a to hold the lease, holder is '$HOLDER'"
grep -q "became the leader" "$LOG_A" || fail "replica-a did not log leadership"
! grep -q "became the leader" "$LOG_B" || fail "replica-b became leader while replica-a held the lease"
! grep -q "start sent" "$LOG_B" || fail "the standby reconciled"
STARTS=$(k -n "$NS" get events --field-selector involvedObject.name=first,reason=Started -o name | wc -l)
[[ $STARTS == 1 ]] || fail "expected one Started event, found $STARTS"
[[ $(lt_field first .status.requests) == 200 ]] || fail "expected 200 requests"
echo "ok: one leader (replica-a); the standby stayed idle"

# The leader dies without releasing the lease; the standby takes over once it expires.
kill -KILL "$PID_A"; OPERATOR_PID=
lt second
k -n "$NS" wait loadtest/second --for=condition=Complete --timeout=120s >/dev/null || fail "second LoadTest did not complete after failover"
HOLDER=$(k -n "$NS" get lease barrage-operator -o jsonpath='{.spec.holderIdentity}')
[[ $HOLDER == replica-b ]] || fail "expected replica-b to hold the lease after failover, holder is '$HOLDER'"
[[ $(lt_field second .status.phase) == Succeeded ]] || fail "second LoadTest: $(lt_field second .status.message)"
echo "ok: failover to replica-b"
