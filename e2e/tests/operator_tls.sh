#!/usr/bin/env bash
# HTTPS and HTTP/2 targets, and the operator's own TLS channel to its runners (issue 13).
#
# One target pod runs the built-in server twice: HTTPS with a private CA on 8443 (HTTP/1.1
# and h2 by ALPN), and mutual TLS on 9443 (client certificates from a second private CA).
# Checks:
# - a LoadTest trusts the private CA through a ConfigMap (caFrom) and a server name: exact
#   count, no errors, TLS handshakes reported apart from request latency;
# - meanwhile, its runners' agent port refuses plain HTTP, a TLS client without a
#   certificate and one with another certificate;
# - the mTLS target refuses runners without the client certificate (Failed, the TLS error
#   named in the status) and accepts them with it (Secret certFrom/keyFrom);
# - an HTTP/2 test over ALPN counts every request;
# - a CA Secret that does not exist is a Failed test naming it, before any pod starts.
source "$(dirname "$0")/../lib.sh"

NS=$(new_namespace)
trap 'cleanup_operator_test $?' EXIT
NAME=target.barrage.test

# --- certificates: two private CAs, a server certificate and a client certificate ---
CERTS=$(mktemp -d /tmp/barrage-e2e-tls.XXXX)
trap 'rm -rf "$CERTS"; cleanup_operator_test $?' EXIT
ossl() { openssl "$@" 2>/dev/null; }
ca() {
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$CERTS/$1.key" -out "$CERTS/$1.crt"
}
# leaf NAME CA EXTENSIONS
leaf() {
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" \
    -keyout "$CERTS/$1.key" -out "$CERTS/$1.csr"
  printf '%s\n' "$3" >"$CERTS/$1.ext"
  ossl x509 -req -in "$CERTS/$1.csr" -CA "$CERTS/$2.crt" -CAkey "$CERTS/$2.key" -CAcreateserial \
    -days 2 -extfile "$CERTS/$1.ext" -out "$CERTS/$1.crt"
}
ca server-ca
ca client-ca
leaf server server-ca "subjectAltName=DNS:$NAME
extendedKeyUsage=serverAuth"
leaf client client-ca "extendedKeyUsage=clientAuth"
leaf stranger client-ca "extendedKeyUsage=clientAuth"
[[ -s $CERTS/server.crt && -s $CERTS/client.crt ]] || fail "openssl did not make the certificates"

k -n "$NS" create secret generic target-tls --from-file=tls.crt="$CERTS/server.crt" \
  --from-file=tls.key="$CERTS/server.key" --from-file=client-ca.crt="$CERTS/client-ca.crt" >/dev/null
k -n "$NS" create configmap ca --from-file=ca.crt="$CERTS/server-ca.crt" >/dev/null
k -n "$NS" create secret generic client --from-file=tls.crt="$CERTS/client.crt" \
  --from-file=tls.key="$CERTS/client.key" >/dev/null

k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: target, labels: {app: target}}
spec:
  containers:
  - name: https
    image: $(image runner)
    imagePullPolicy: $E2E_PULL_POLICY
    args: [serve, --listen, "0.0.0.0:8443", --tls-cert, /tls/tls.crt, --tls-key, /tls/tls.key]
    volumeMounts: [{name: tls, mountPath: /tls, readOnly: true}]
    readinessProbe:
      httpGet: {path: /, port: 8443, scheme: HTTPS}
      periodSeconds: 1
  - name: mtls
    image: $(image runner)
    imagePullPolicy: $E2E_PULL_POLICY
    args: [serve, --listen, "0.0.0.0:9443", --tls-cert, /tls/tls.crt, --tls-key, /tls/tls.key,
           --tls-client-ca, /tls/client-ca.crt]
    volumeMounts: [{name: tls, mountPath: /tls, readOnly: true}]
    # The kubelet has no client certificate: a TCP probe.
    readinessProbe:
      tcpSocket: {port: 9443}
      periodSeconds: 1
  volumes: [{name: tls, secret: {secretName: target-tls}}]
YAML
wait_pod_ready target 120
pod_ip target >/dev/null
# By the Service's name; the certificate names $NAME (serverName below).
TARGET=$(expose target 8443 9443)
start_operator

# lt NAME PORT TLS LOAD [HTTP]
lt() {
  k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: barrage.dev/v1alpha1
kind: LoadTest
metadata: {name: $1}
spec:
  runners: 2
  runner: {imagePullPolicy: $E2E_PULL_POLICY}
  target:
    baseUrl: "https://$TARGET:$2"
    http: "${5:-1.1}"
    tls: $3
  load: $4
  requests:
    - {name: root, path: /}
YAML
}
CA="{caFrom: {configMap: ca, key: ca.crt}, serverName: $NAME, caMode: replace}"
CLIENT="caFrom: {configMap: ca, key: ca.crt}, certFrom: {secret: client, key: tls.crt}, keyFrom: {secret: client, key: tls.key}"

# 500 requests at 50/s: long enough to probe the runners' agent port while it runs.
lt https 8443 "$CA" "{executor: arrival-rate, rate: 50, duration: 10s}"
lt mtls-denied 9443 "{caFrom: {configMap: ca, key: ca.crt}, serverName: $NAME}" "{executor: concurrency, users: 2, iterations: 20}"
lt mtls 9443 "{$CLIENT, serverName: $NAME}" "{executor: concurrency, users: 4, iterations: 400}"
lt h2 8443 "$CA" "{executor: concurrency, users: 20, iterations: 2000}" 2
lt no-ca 8443 "{caFrom: {secret: no-such-ca, key: ca.crt}}" "{executor: concurrency, users: 1, iterations: 1}"

# --- the agent channel: TLS only, and only with this LoadTest's own certificate ---
wait_lt_phase https 120 Running >/dev/null
IPS=$(k -n "$NS" get pods -l barrage.dev/loadtest=https -o jsonpath='{.items[*].status.podIP}')
[[ -n $IPS ]] || fail "no runner pod IPs for the https LoadTest"
for ip in $IPS; do
  assert_local_pod_ip "$ip"
  # Plain HTTP gets no HTTP answer.
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$ip:9090/status" || true)
  [[ $code == 000 ]] || fail "the agent on $ip answered plain HTTP with $code"
  # TLS without a client certificate, and with a certificate that is not this test's.
  curl -sk --max-time 5 "https://$ip:9090/status" -o /dev/null &&
    fail "the agent on $ip accepted a TLS client without a certificate"
  curl -sk --max-time 5 --cert "$CERTS/stranger.crt" --key "$CERTS/stranger.key" \
    "https://$ip:9090/status" -o /dev/null &&
    fail "the agent on $ip accepted a TLS client with another certificate"
done
echo "ok: the agent port refuses plain HTTP, no certificate and another certificate ($IPS)"

for t in https mtls h2; do
  k -n "$NS" wait "loadtest/$t" --for=condition=Complete --timeout=180s >/dev/null ||
    fail "LoadTest $t did not complete (phase $(lt_field "$t" .status.phase): $(lt_field "$t" .status.message))"
  echo "$t: phase=$(lt_field "$t" .status.phase) requests=$(lt_field "$t" .status.requests) errors=$(lt_field "$t" .status.errors) handshakes=$(lt_field "$t" .status.connections.tlsHandshakeMs)"
  [[ $(lt_field "$t" .status.phase) == Succeeded ]] || fail "$t: expected Succeeded: $(lt_field "$t" .status.message)"
  [[ $(lt_field "$t" .status.errors) == 0 ]] || fail "$t: expected no errors"
done
check_arrivals "https (50/s x 10s)" "$(lt_field https .status.requests)" "$(lt_field https .status.dropped)" 500
[[ $(lt_field mtls .status.requests) == 400 ]] || fail "mtls: expected exactly 400 requests"
[[ $(lt_field h2 .status.requests) == 2000 ]] || fail "h2: expected exactly 2000 requests"
# Handshakes are their own figure, one or more per runner; not in request latency.
check "$(lt_field https .status.connections.opened)" '>=' 2 || fail "https: connections opened not reported"
[[ -n $(lt_field https .status.connections.tlsHandshakeMs.p50) ]] || fail "https: no TLS handshake figures"

k -n "$NS" wait loadtest/mtls-denied --for=condition=Complete --timeout=120s >/dev/null ||
  fail "mtls-denied did not complete"
[[ $(lt_field mtls-denied .status.phase) == Failed ]] || fail "mtls-denied: expected Failed"
REFUSED=$(lt_field mtls-denied .status.errorKinds.tls_refused)
[[ ${REFUSED:-0} -gt 0 ]] || fail "mtls-denied: the status does not name tls_refused: $(k -n "$NS" get lt mtls-denied -o jsonpath='{.status}')"
[[ $(lt_field mtls-denied .status.message) == *tls_refused* ]] || fail "mtls-denied: the message does not name tls_refused: $(lt_field mtls-denied .status.message)"
echo "ok: mTLS refused without the client certificate ($REFUSED tls_refused), accepted with it"

PHASE=$(wait_lt_phase no-ca 60 Failed)
[[ $(lt_field no-ca .status.message) == *no-such-ca* ]] || fail "no-ca: the message does not name the Secret: $(lt_field no-ca .status.message)"
[[ -z $(k -n "$NS" get pods -l barrage.dev/loadtest=no-ca -o name) ]] || fail "no-ca: runner pods were made"
# No key material anywhere in what the operator wrote.
KEYLINE=$(sed -n 2p "$CERTS/client.key")
for t in https mtls h2 mtls-denied no-ca; do
  k -n "$NS" get lt "$t" -o json | grep -qF "$KEYLINE" && fail "$t: key material in the LoadTest"
done
k -n "$NS" get events -o json | grep -qF "$KEYLINE" && fail "key material in an event"
grep -qF "$KEYLINE" "$OPERATOR_LOG" && fail "key material in the operator's log"
echo "ok: https with a private CA, mTLS, h2, a missing CA named"
