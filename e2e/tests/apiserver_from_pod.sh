#!/usr/bin/env bash
# Harness check: from inside a pod's network namespace, the apiserver is reachable
# through the `kubernetes` Service (kube-proxy DNAT to the node IP), its certificate
# is valid for the Service IP, and the pod's service-account token is accepted.
# That is the path an in-cluster client (the operator, via kube-rs) takes.
# Local harness only: it enters the pod's network namespace from the host (no curl image).
source "$(dirname "$0")/../lib.sh"

if [[ ${E2E_LOCAL_CLUSTER:-0} != 1 ]]; then
  echo "skip: needs the local harness (enters a pod's network namespace from the host)"
  exit 77
fi
STATE_DIR=${BARRAGE_E2E_STATE:-/var/lib/barrage-e2e}

NS=$(new_namespace)
trap 'cleanup_namespace $?' EXIT

# The pause image is always on the local node: a pod that only holds a network namespace.
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: probe}
spec:
  containers: [{name: pause, image: docker.io/barrage/pause:3.2, imagePullPolicy: Never}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: default, namespace: $NS}]
YAML
wait_pod_ready probe 60
POD_IP=$(k -n "$NS" get pod probe -o jsonpath='{.status.podIP}')
assert_local_pod_ip "$POD_IP"

NETNS=""
for n in "$STATE_DIR"/containerd/state/io.containerd.grpc.v1.cri/netns/*; do
  addrs=$(nsenter --net="$n" ip -4 -o addr show 2>/dev/null) || continue
  if grep -q " $POD_IP/" <<<"$addrs"; then NETNS=$n; break; fi
done
[[ -n $NETNS ]] || fail "no network namespace with pod IP $POD_IP under $STATE_DIR"

SVC_IP=$(k get service kubernetes -n default -o jsonpath='{.spec.clusterIP}')
SECRET=$(k -n "$NS" get serviceaccount default -o jsonpath='{.secrets[0].name}')
TOKEN=$(k -n "$NS" get secret "$SECRET" -o jsonpath='{.data.token}' | base64 -d)
CA=$(mktemp)
k -n "$NS" get secret "$SECRET" -o jsonpath='{.data.ca\.crt}' | base64 -d >"$CA"

# Exactly what an in-cluster client does: https://$KUBERNETES_SERVICE_HOST with the
# mounted CA and token; curl verifies the certificate against the Service IP.
BODY=$(nsenter --net="$NETNS" curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
  "https://$SVC_IP/api/v1/namespaces/$NS/pods") || fail "pod could not reach the apiserver at https://$SVC_IP"
rm -f "$CA"
NAMES=$(jq -r '.items[].metadata.name' <<<"$BODY" 2>/dev/null) || fail "unexpected answer: $BODY"
[[ $NAMES == probe ]] || fail "expected to list pod probe, got: $BODY"
echo "ok: pod $POD_IP listed its pods through https://$SVC_IP (kubernetes Service)"
