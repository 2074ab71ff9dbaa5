#!/usr/bin/env bash
# The CRDs document themselves: applied to the API server (which refuses a
# schema it cannot take, e.g. an enum holding null on v1.20), `kubectl explain`
# shows a duration as a string with its description and example, and nested
# objects and list items with their descriptions, for both kinds.
source "$(dirname "$0")/../lib.sh"

ensure_crd

explain() {
  local out
  out=$(k explain "$1" 2>&1) || fail "kubectl explain $1 failed: $out"
  printf '%s\n' "$out"
}

# The API server publishes each CRD's schema to its OpenAPI document a moment after
# the CRD is Established (and again after each change), one CRD at a time: wait until
# `explain` shows both kinds' duration type (on a fresh cluster the ScheduledLoadTest
# was once still unknown after the LoadTest was there), then check everything at once.
published() {
  k explain loadtest.spec.load.duration 2>/dev/null | grep -qF "<string>" &&
    k explain scheduledloadtest.spec.template.spec.load.duration 2>/dev/null | grep -qF "<string>"
}
for _ in $(seq 60); do published && break; sleep 0.5; done
expect() { # FIELD TEXT...
  local field=$1 out
  shift
  out=$(explain "$field")
  for want in "$@"; do
    grep -qF -- "$want" <<<"$out" || fail "kubectl explain $field: no \"$want\" in:
$out"
  done
}

# A duration: a string, described, with an example.
expect loadtest.spec.load.duration "<string>" "How long to run at the constant level" "e.g. 30s, 5m, 1h30m"
# A nested object and its fields.
expect loadtest.spec.load "<Object>" "users" "<integer>" "executor" "arrival-rate"
expect loadtest.spec.requests.expect "<Object>" "What a successful response looks like"
expect loadtest.spec.target.tls.caFrom.key "<string>" "The key within the Secret or ConfigMap"
# List items and map values are described by their field.
expect loadtest.spec.runner.tolerations "<[]Object>" "Taints the runner pods tolerate"
expect loadtest.status.latencyMs.p95 "<number>" "95th percentile"
# The ScheduledLoadTest, down into its template.
expect scheduledloadtest.spec.schedule "<string>" "cron expression"
expect scheduledloadtest.spec.template.spec.load.duration "<string>" "e.g. 30s, 5m, 1h30m"
expect scheduledloadtest.status.history.p95Ms "<number>" "95th percentile"
echo "ok: kubectl explain reads like the docs"
