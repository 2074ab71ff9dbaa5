#!/usr/bin/env python3
"""Offline tests of charts/barrage (no cluster): lint, renders with default and
non-default values, least-privilege RBAC, the values schema, the CRD copy, the
Grafana dashboard.

    python3 charts/tests/test_chart.py [-k SUBSTRING] [-v]

Installs helm-python-sdk (the pin e2e/helm.py uses) with pip if it is missing.
Prints one line per test, then "N passed, N failed"; exits 1 if any failed.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import tomllib
import traceback
from typing import Any, Callable

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "barrage")
HELM_PY = os.path.join(ROOT, "e2e", "helm.py")
SDK_PIN = "helm-python-sdk==0.2.2"


def ensure_sdk() -> None:
    try:
        import helm_python  # noqa: F401
    except ImportError:
        print(f"installing {SDK_PIN}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", SDK_PIN], check=True)


ensure_sdk()
import helm_python  # noqa: E402

RELEASE, NAMESPACE = "barrage", "barrage-system"
# The one version (issue 16): [workspace.package] version in Cargo.toml.
with open(os.path.join(ROOT, "Cargo.toml"), "rb") as _f:
    VERSION = tomllib.load(_f)["workspace"]["package"]["version"]
FULLNAME = "barrage"  # release name == chart name: the full name is the release name

# The operator's API rights, exactly (issue 5). An extra verb, resource or group fails.
LEAST_PRIVILEGE = {
    ("barrage.dev", "loadtests"): {"get", "list", "watch", "create", "delete"},
    ("barrage.dev", "loadtests/status"): {"get", "patch", "update"},
    ("barrage.dev", "scheduledloadtests"): {"get", "list", "watch"},
    ("barrage.dev", "scheduledloadtests/status"): {"get", "patch", "update"},
    ("", "pods"): {"get", "list", "watch", "create", "delete"},
    ("", "pods/log"): {"get"},
    ("batch", "jobs"): {"get", "list", "watch", "create"},
    ("", "configmaps"): {"get", "create", "patch"},
    ("", "secrets"): {"get", "create", "patch"},
    ("", "serviceaccounts"): {"create"},
    ("rbac.authorization.k8s.io", "roles"): {"create"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"create"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    # networkPolicy.enabled (the default): each LoadTest's runners' NetworkPolicy.
    ("networking.k8s.io", "networkpolicies"): {"get", "create", "patch"},
}
WITHOUT_NETWORK_POLICY = {k: v for k, v in LEAST_PRIVILEGE.items() if k[1] != "networkpolicies"}
LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"},
               # the leader labels its own pod (the metrics Service selects the label)
               ("", "pods"): {"patch"}}


# What webhook.enabled (the default) adds: the Service, the empty certificate Secret,
# the configuration, and RBAC on exactly those two objects.
WEBHOOK_KINDS = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Secret", "Service",
                 "ValidatingWebhookConfiguration"]
WEBHOOK_SECRET_RULES = [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [f"{FULLNAME}-webhook-tls"],
                         "verbs": ["get", "update"]}]
WEBHOOK_CONFIG_RULES = [{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
                         "resourceNames": [FULLNAME], "verbs": ["get", "update"]}]


# --- helpers -----------------------------------------------------------------

class Rendered:
    """The objects a render produced, with lookups by kind/name/namespace."""

    def __init__(self, manifests: dict[str, str]):
        self.notes = ""
        self.objects: list[dict[str, Any]] = []
        # Helm hooks (the CRD upgrade Job, `helm test`), apart: not part of the release.
        self.hooks: list[dict[str, Any]] = []
        for path, body in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                self.notes = body
                continue
            for doc in split_docs(body):
                obj = helm_python.values_from_yaml(doc)
                if obj:
                    obj.setdefault("_source", path)
                    hook = "helm.sh/hook" in ((obj.get("metadata") or {}).get("annotations") or {})
                    (self.hooks if hook else self.objects).append(obj)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def hook(self, kind: str, hook: str) -> list[dict[str, Any]]:
        return [o for o in self.hooks if o.get("kind") == kind and hook in o["metadata"]["annotations"]["helm.sh/hook"].split(",")]

    def container(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]["spec"]["containers"][0]

    def env(self) -> dict[str, Any]:
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in self.container().get("env", [])}


def split_docs(body: str) -> list[str]:
    docs, cur = [], []
    for line in body.splitlines():
        if line.strip() == "---":
            docs.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("\n".join(cur))
    return [d for d in docs if any(l.strip() and not l.lstrip().startswith("#") for l in d.splitlines())]


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> Rendered:
    chart = helm_python.Chart.load(CHART)
    return Rendered(chart.render(values, name=RELEASE, namespace=namespace, is_install=True))


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role.get("rules", []):
        assert "nonResourceURLs" not in rule, f"unexpected nonResourceURLs in {role['metadata']['name']}"
        for group in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                assert "*" not in (group, res) and "*" not in rule.get("verbs", []), f"wildcard in {rule}"
                key = (group, res)
                verbs = set(rule.get("verbs", []))
                assert key not in out, f"{key} granted by two rules in {role['metadata']['name']}"
                out[key] = verbs
    return out


def assert_rules(role: dict[str, Any], want: dict[tuple[str, str], set[str]]) -> None:
    got = rules_of(role)
    if got != want:
        extra = {k: sorted(v - want.get(k, set())) for k, v in got.items() if v - want.get(k, set())}
        missing = {k: sorted(v - got.get(k, set())) for k, v in want.items() if v - got.get(k, set())}
        raise AssertionError(f"{role['kind']} {role['metadata']['name']}: extra {extra}, missing {missing}")


def operator_role(r: Rendered, kind: str) -> dict[str, Any]:
    """The operator's own (Cluster)Role or binding, not the webhook's."""
    found = [o for o in r.of(kind) if o["metadata"]["name"] == FULLNAME]
    assert len(found) == 1, [o["metadata"]["name"] for o in r.of(kind)]
    return found[0]


def named(r: Rendered, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in r.of(kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in r.of(kind)])
    return found[0]


def expect_render_error(values: dict[str, Any], needle: str) -> None:
    try:
        render(values)
    except helm_python.HelmError as e:
        assert needle in str(e), f"error does not mention {needle!r}: {e}"
        return
    raise AssertionError(f"values {values} rendered, but the schema should reject them")


NON_DEFAULT = {
    "watchNamespaces": ["a", "b"],
    "replicas": 2,
    "metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kube-prometheus"}}},
    "resources": {"requests": {"cpu": "100m", "memory": "96Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    "runner": {"image": {"repository": "reg.example/barrage/runner", "tag": "1.2.3"}, "pullPolicy": "Always",
               "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}},
    "image": {"repository": "reg.example/barrage/operator", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "nodeSelector": {"pool": "system"},
    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
    "logLevel": "debug",
}


# --- tests -------------------------------------------------------------------

def test_lint_default() -> None:
    out = subprocess.run([sys.executable, HELM_PY, "lint", CHART, "--strict"], capture_output=True, text=True)
    assert out.returncode == 0, f"helm.py lint --strict failed:\n{out.stdout}{out.stderr}"
    report = helm_python.lint(CHART, None, strict=True)
    assert not report.get("errors"), report
    assert all(int(m.get("severity", 0)) < 2 for m in report.get("messages") or []), report


def test_lint_non_default() -> None:
    report = helm_python.lint(CHART, NON_DEFAULT, strict=True, namespace=NAMESPACE)
    assert not report.get("errors"), report
    assert all(int(m.get("severity", 0)) < 2 for m in report.get("messages") or []), report


def test_lint_kube_versions() -> None:
    # The local harness runs v1.20.2 (seccompProfile fields exist since v1.19); kubeVersion says >=1.20.
    for kv in ("v1.20.2", "v1.30.0"):
        report = helm_python.lint(CHART, NON_DEFAULT, strict=True, kube_version=kv)
        assert not report.get("errors") and all(int(m.get("severity", 0)) < 2 for m in report.get("messages") or []), (kv, report)


def test_chart_metadata() -> None:
    chart = helm_python.Chart.load(CHART)
    md = chart.metadata
    assert md["apiVersion"] == "v2" and md["name"] == "barrage", md
    # Chart, images and binaries share the workspace version (operator/tests/versions.rs
    # checks the binaries' --version against the same Chart.yaml).
    assert md["version"] == VERSION and md["appVersion"] == VERSION, (md, f"Cargo.toml says {VERSION}")


# Files where people read image names: every barrage image they name carries the version.
IMAGE_REF = re.compile(r"barrage/(runner|operator):([A-Za-z0-9_.${}-]+)")


def test_no_dev_tag_and_docs_name_the_version() -> None:
    files = [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md"))
    files += glob.glob(os.path.join(ROOT, "examples", "*.yaml")) + glob.glob(os.path.join(ROOT, "e2e", "*"))
    files += glob.glob(os.path.join(ROOT, "e2e", "tests", "*.sh")) + glob.glob(os.path.join(ROOT, "images", "*"))
    files += glob.glob(os.path.join(CHART, "*.yaml")) + glob.glob(os.path.join(CHART, "templates", "*"))
    files += glob.glob(os.path.join(ROOT, "operator", "src", "*.rs"))
    seen = 0
    for path in files:
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in IMAGE_REF.finditer(text):
            tag = m.group(2)
            if "$" in tag or "{" in tag or tag == "VERSION":
                continue  # a variable (e.g. $E2E_IMAGE_TAG) or a placeholder, not a default
            seen += 1
            assert tag == VERSION, f"{os.path.relpath(path, ROOT)}: {m.group(0)} is not tagged {VERSION} (Cargo.toml)"
    assert seen >= 3, f"only {seen} versioned image names found: did the docs stop naming the images?"


CONTAINERFILES = {"runner": ["barrage-runner"], "operator": ["barrage-operator", "kubectl-barrage"]}


def test_containerfiles() -> None:
    # What e2e/run builds and users build: static binaries FROM scratch, numeric non-root
    # user (the chart's and the operator's pods run as 65532), OCI labels from build args.
    for image, bins in CONTAINERFILES.items():
        with open(os.path.join(ROOT, "images", f"{image}.Containerfile"), encoding="utf-8") as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        text = "\n".join(lines)
        assert [ln for ln in lines if ln.startswith("FROM ")] == ["FROM scratch"], (image, lines)
        assert [ln for ln in lines if ln.startswith("USER ")] == ["USER 65532:65532"], (image, lines)
        assert f'ENTRYPOINT ["/usr/local/bin/{bins[0]}"]' in lines, (image, lines)
        for b in bins:
            assert re.search(rf"COPY .*\$\{{BIN_DIR\}}/{b}\b", text), (image, b)
        for label, value in [("title", f'"barrage-{image}"'), ("version", '"${VERSION}"'), ("revision", '"${REVISION}"'),
                             ("source", '"${SOURCE}"'), ("licenses", '"Apache-2.0"')]:
            assert f"org.opencontainers.image.{label}={value}" in text, (image, label)
    # The build context is the repository: the ignore file keeps target/ out but the binaries in.
    with open(os.path.join(ROOT, ".containerignore"), encoding="utf-8") as f:
        ignore = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*" and "!images/etc" in ignore, ignore
    for b in sum(CONTAINERFILES.values(), []):
        assert f"!target/*/release/{b}" in ignore, b
    assert os.path.realpath(os.path.join(ROOT, ".dockerignore")) == os.path.join(ROOT, ".containerignore")
    with open(os.path.join(ROOT, "images", "etc", "passwd"), encoding="utf-8") as f:
        assert any(ln.split(":")[2:4] == ["65532", "65532"] for ln in f), "no user 65532 in images/etc/passwd"


CRD_FILES = ["loadtest.yaml", "scheduledloadtest.yaml"]


def test_crd_is_the_same_bytes() -> None:
    assert sorted(os.listdir(os.path.join(ROOT, "crds"))) == CRD_FILES, os.listdir(os.path.join(ROOT, "crds"))
    crds = {c["name"]: c["data"].encode() for c in helm_python.Chart.load(CHART).crds}
    # Helm loads exactly these as the chart's CRD files (installed before the templates).
    assert sorted(crds) == [f"crds/{f}" for f in CRD_FILES], sorted(crds)
    for f in CRD_FILES:
        with open(os.path.join(ROOT, "crds", f), "rb") as a, open(os.path.join(CHART, "crds", f), "rb") as b:
            top, chart = a.read(), b.read()
        assert top == chart, f"charts/barrage/crds/{f} differs from crds/{f}: cp crds/{f} charts/barrage/crds/"
        assert crds[f"crds/{f}"] == top, f"Helm reads a different CRD text than crds/{f}"


def test_defaults_cluster_wide() -> None:
    r = render()
    assert r.kinds() == sorted(["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"]
                               + WEBHOOK_KINDS), r.kinds()
    cr = operator_role(r, "ClusterRole")
    assert_rules(cr, LEAST_PRIVILEGE)
    crb = operator_role(r, "ClusterRoleBinding")
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cr["metadata"]["name"]}
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}], crb["subjects"]
    # Every namespaced object lives in the release namespace.
    for o in r.objects:
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"):
            assert o["metadata"].get("namespace") == NAMESPACE, (o["kind"], o["metadata"])
    env = r.env()
    assert "BARRAGE_WATCH_NAMESPACES" not in env, "empty watchNamespaces must leave the whole cluster (no env)"
    assert env["BARRAGE_LEADER_ELECT"] == "true"
    assert env["BARRAGE_METRICS_ADDR"] == "0.0.0.0:8080"
    assert env["BARRAGE_RUNNER_IMAGE"] == f"docker.io/barrage/runner:{VERSION}"
    assert env["BARRAGE_RUNNER_PULL_POLICY"] == "IfNotPresent"
    assert "BARRAGE_RUNNER_RESOURCES" not in env
    assert env["BARRAGE_LOG"] == "info"
    assert r.container()["image"] == f"docker.io/barrage/operator:{VERSION}"
    assert r.container()["imagePullPolicy"] == "IfNotPresent"
    assert r.one("Deployment")["spec"]["replicas"] == 1


def test_deployment_pod_shape() -> None:
    r = render()
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    c = r.container()
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["automountServiceAccountToken"] is True
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert c["ports"] == [{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "https-webhook", "containerPort": 9443, "protocol": "TCP"}], c["ports"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    sel = r.one("Deployment")["spec"]["selector"]["matchLabels"]
    labels = r.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sel.items()), "pod labels do not match the selector"
    svc = [o for o in r.of("Service") if o["metadata"]["name"] == f"{FULLNAME}-metrics"][0]
    # Only the leader (leader election is on by default): it labels its own pod.
    assert svc["spec"]["selector"] == {**sel, "barrage.dev/leader": "true"}, svc["spec"]["selector"]
    assert svc["spec"]["ports"] == [{"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}]
    assert svc["spec"]["type"] == "ClusterIP"


def test_security_context() -> None:
    r = render()
    pod = r.one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    c = r.container()["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532, pod
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, pod
    assert c["runAsNonRoot"] is True and c["runAsUser"] == 65532, c
    assert c["readOnlyRootFilesystem"] is True
    assert c["allowPrivilegeEscalation"] is False
    assert c["capabilities"] == {"drop": ["ALL"]}
    assert c["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in c or c["privileged"] is False


def test_leader_election_role() -> None:
    r = render()
    lease = [o for o in r.of("Role") if o["metadata"]["name"].endswith("-leader-election")]
    assert len(lease) == 1 and len(r.of("Role")) == 2, [o["metadata"]["name"] for o in r.of("Role")]
    assert lease[0]["metadata"]["namespace"] == NAMESPACE
    assert_rules(lease[0], LEASE_RULES)
    rb = [o for o in r.of("RoleBinding") if o["metadata"]["name"].endswith("-leader-election")][0]
    assert rb["roleRef"]["name"] == lease[0]["metadata"]["name"] and rb["metadata"]["namespace"] == NAMESPACE
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    off = render({"leaderElection": {"enabled": False}})
    assert [o["metadata"]["name"] for o in off.of("Role") + off.of("RoleBinding")] == [f"{FULLNAME}-webhook"] * 2, off.kinds()
    assert off.env()["BARRAGE_LEADER_ELECT"] == "false"


def test_watch_namespaces_and_non_defaults() -> None:
    r = render(NON_DEFAULT)
    # Cluster-wide only the webhook configuration's caBundle, by name.
    assert [o["metadata"]["name"] for o in r.of("ClusterRole") + r.of("ClusterRoleBinding")] == [f"{FULLNAME}-webhook"] * 2, \
        "watchNamespaces must not create cluster-wide RBAC"
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in r.of("Role")}
    assert roles == {("a", FULLNAME), ("b", FULLNAME), (NAMESPACE, f"{FULLNAME}-leader-election"),
                     (NAMESPACE, f"{FULLNAME}-webhook")}, roles
    for role in r.of("Role"):
        if role["metadata"]["name"].endswith("-webhook"):
            continue
        assert_rules(role, LEASE_RULES if role["metadata"]["name"].endswith("-leader-election") else LEAST_PRIVILEGE)
    bindings = {(o["metadata"]["namespace"], o["roleRef"]["kind"], o["roleRef"]["name"]) for o in r.of("RoleBinding")}
    assert bindings == {("a", "Role", FULLNAME), ("b", "Role", FULLNAME), (NAMESPACE, "Role", f"{FULLNAME}-leader-election"),
                        (NAMESPACE, "Role", f"{FULLNAME}-webhook")}, bindings
    for rb in r.of("RoleBinding"):
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}], rb["subjects"]
    env = r.env()
    assert env["BARRAGE_WATCH_NAMESPACES"] == "a,b", env
    assert env["BARRAGE_RUNNER_IMAGE"] == "reg.example/barrage/runner:1.2.3"
    assert env["BARRAGE_RUNNER_PULL_POLICY"] == "Always"
    assert json.loads(env["BARRAGE_RUNNER_RESOURCES"]) == NON_DEFAULT["runner"]["resources"]
    assert env["BARRAGE_LOG"] == "debug"
    d = r.one("Deployment")
    assert d["spec"]["replicas"] == 2
    c = r.container()
    assert c["image"] == "reg.example/barrage/operator:1.2.3" and c["imagePullPolicy"] == "Always"
    assert c["resources"] == NON_DEFAULT["resources"], c["resources"]
    pod = d["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == NON_DEFAULT["tolerations"]
    sm = r.one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["metadata"]["namespace"] == NAMESPACE
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus"
    assert sm["spec"]["endpoints"] == [{"port": "http-metrics", "path": "/metrics", "interval": "15s"}], sm["spec"]["endpoints"]
    assert sm["spec"]["selector"]["matchLabels"] == {**d["spec"]["selector"]["matchLabels"], "barrage.dev/service": "metrics"}
    svc_labels = named(r, "Service", f"{FULLNAME}-metrics")["metadata"]["labels"]
    assert all(svc_labels.get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()), svc_labels
    assert "a, b" in r.notes


def test_service_monitor_only_when_enabled() -> None:
    assert not render().of("ServiceMonitor")
    assert render({"metrics": {"serviceMonitor": {"enabled": True}}}).of("ServiceMonitor")
    off = render({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}})
    assert not off.of("ServiceMonitor") and not [o for o in off.of("Service") if o["metadata"]["name"].endswith("-metrics")], off.kinds()
    # The probes still need the HTTP port.
    assert off.container()["readinessProbe"]["httpGet"]["port"] == "http-metrics"
    port = render({"metrics": {"port": 9100}})
    assert port.env()["BARRAGE_METRICS_ADDR"] == "0.0.0.0:9100"
    assert port.container()["ports"][0]["containerPort"] == 9100
    assert named(port, "Service", f"{FULLNAME}-metrics")["spec"]["ports"][0]["port"] == 9100


def test_no_rbac_and_existing_service_account() -> None:
    r = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ops-barrage"}})
    # The webhook's objects stay (its Secret, Service, configuration); its RBAC goes with rbac.create.
    assert r.kinds() == ["Deployment", "Secret", "Service", "Service", "ValidatingWebhookConfiguration"], r.kinds()
    assert r.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops-barrage"
    r = render({"serviceAccount": {"create": False, "name": "ops-barrage"}})
    assert not r.of("ServiceAccount")
    for b in r.of("ClusterRoleBinding") + r.of("RoleBinding"):
        assert b["subjects"][0]["name"] == "ops-barrage", b
    r = render({"serviceAccount": {"create": True, "name": "custom", "annotations": {"eks.amazonaws.com/role-arn": "arn:x"}}})
    sa = r.one("ServiceAccount")
    assert sa["metadata"]["name"] == "custom" and sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"}
    assert r.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "custom"


def test_schema_rejects_wrong_types() -> None:
    expect_render_error({"replicas": "two"}, "/replicas")
    expect_render_error({"watchNamespaces": "a"}, "/watchNamespaces")
    expect_render_error({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces")
    expect_render_error({"metrics": {"port": "x"}}, "/metrics/port")
    expect_render_error({"metrics": {"port": 70000}}, "/metrics/port")
    expect_render_error({"leaderElection": {"enabled": "yes"}}, "/leaderElection/enabled")
    expect_render_error({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy")
    expect_render_error({"runner": {"resources": "big"}}, "/runner/resources")
    expect_render_error({"rbac": {"create": "true"}}, "/rbac/create")
    expect_render_error({"replica": 2}, "replica")  # a typo'd top-level key
    expect_render_error({"metrics": {"serviceMonitor": {"enabled": True, "interval": "often"}}}, "interval")


def operator_env_names() -> set[str]:
    """The environment variables the operator binary reads (operator/src/main.rs)."""
    import re
    with open(os.path.join(ROOT, "operator", "src", "main.rs"), encoding="utf-8") as f:
        return set(re.findall(r'env = "([A-Z_]+)"', f.read()))


def label_list(s: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in s.split(","))


def test_network_policy_is_the_operators_in_every_install_mode() -> None:
    # The chart makes no NetworkPolicy itself (one cannot span namespaces): the operator
    # makes one per LoadTest, so a cluster-wide install is covered too.
    names = operator_env_names()
    for values in (None, NON_DEFAULT):
        r = render(values)
        assert not r.of("NetworkPolicy"), r.kinds()
        env = r.env()
        assert env["BARRAGE_NETWORK_POLICY"] == "true", env
        # The policy admits the operator's pods: labels they carry, and only this release's.
        d = r.one("Deployment")
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        admitted = label_list(env["BARRAGE_OPERATOR_POD_LABELS"])
        assert admitted == d["spec"]["selector"]["matchLabels"], admitted
        assert all(pod_labels.get(k) == v for k, v in admitted.items()), (admitted, pod_labels)
        # The namespace: from the downward API; its labels default in the operator.
        assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert "BARRAGE_OPERATOR_NAMESPACE_LABELS" not in env
        for var in ("BARRAGE_NETWORK_POLICY", "BARRAGE_OPERATOR_POD_LABELS", "BARRAGE_OPERATOR_NAMESPACE_LABELS", "POD_NAMESPACE"):
            assert var in names, f"the operator does not read {var}"
        roles = [o for o in r.of("ClusterRole") + r.of("Role") if not o["metadata"]["name"].endswith(("-leader-election", "-webhook"))]
        assert roles, r.kinds()
        for role in roles:
            assert_rules(role, LEAST_PRIVILEGE)
        assert "NetworkPolicy <name>-runners" in r.notes, r.notes
        assert "WARNING" not in r.notes


def test_network_policy_off_and_namespace_labels() -> None:
    off = render({"networkPolicy": {"enabled": False}})
    assert off.env()["BARRAGE_NETWORK_POLICY"] == "false"
    assert "BARRAGE_OPERATOR_POD_LABELS" not in off.env()
    assert_rules(operator_role(off, "ClusterRole"), WITHOUT_NETWORK_POLICY)
    off = render({"watchNamespaces": ["a"], "networkPolicy": {"enabled": False}})
    assert_rules([o for o in off.of("Role") if o["metadata"]["namespace"] == "a"][0], WITHOUT_NETWORK_POLICY)
    assert "NetworkPolicy" not in off.notes
    # A release namespace without kubernetes.io/metadata.name (Kubernetes 1.20).
    r = render({"networkPolicy": {"operatorNamespaceLabels": {"team": "platform", "tier": "ops"}}})
    assert label_list(r.env()["BARRAGE_OPERATOR_NAMESPACE_LABELS"]) == {"team": "platform", "tier": "ops"}
    assert "kubernetes.io/metadata.name" not in r.notes
    expect_render_error({"networkPolicy": {"enabled": "yes"}}, "/networkPolicy/enabled")
    # The per-namespace list is gone: setting it is an error, not silently ignored.
    expect_render_error({"networkPolicy": {"namespaces": ["team-x"]}}, "namespaces")
    expect_render_error({"networkPolicy": {"operatorNamespaceLabels": {"team": 1}}}, "operatorNamespaceLabels")


def test_grafana_dashboard() -> None:
    with open(os.path.join(CHART, "dashboards", "barrage.json"), encoding="utf-8") as f:
        dash = json.load(f)
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    for metric in ("barrage_loadtest_rps", "barrage_loadtest_requests_total", "barrage_loadtest_latency_seconds",
                   "barrage_loadtest_error_ratio", "barrage_loadtest_runners_ready", "barrage_reconcile_errors_total",
                   "barrage_reconciles_total", "barrage_reconcile_duration_seconds_bucket"):
        assert metric in exprs, f"no panel uses {metric}"
    for q in ("0.5", "0.95", "0.99"):
        assert f'quantile="{q}"' in exprs, q
    assert "by (category)" in exprs
    # The remote-written series (their queries run against a real Prometheus
    # in runner/tests/remote_write_prometheus.rs).
    for metric in ("barrage_requests_total", "barrage_errors_total", "barrage_request_duration_seconds",
                   "barrage_dropped_total", "barrage_runners_active"):
        assert metric in exprs, f"no panel uses {metric}"
    assert "heatmap" in [p["type"] for p in dash["panels"]]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    assert not render().of("ConfigMap")
    r = render({"grafana": {"dashboard": {"enabled": True}}})
    cm = r.one("ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["barrage.json"]) == dash, "the ConfigMap does not carry the dashboard verbatim"
    cm = render({"grafana": {"dashboard": {"enabled": True, "namespace": "monitoring"}}}).one("ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"


RW_DIR = "/etc/barrage/remote-write"


def test_remote_write_default_off() -> None:
    r = render()
    assert "BARRAGE_REMOTE_WRITE" not in r.env()
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    assert "volumes" not in pod and "volumeMounts" not in r.container(), pod
    assert "fsGroup" not in pod["securityContext"], pod["securityContext"]
    assert "BARRAGE_REMOTE_WRITE" in operator_env_names(), "the operator reads BARRAGE_REMOTE_WRITE"


def test_remote_write_default_mounts_its_secrets_and_passes_paths() -> None:
    r = render({"prometheusRemoteWrite": {
        "url": "https://mimir.monitoring:8080/api/v1/push",
        "headers": {"X-Scope-OrgID": "load"},
        "bearerTokenSecret": {"name": "rw-auth", "key": "token"},
        "tls": {"caSecret": {"name": "rw-ca", "key": "ca.crt"},
                "certSecret": {"name": "rw-client", "key": "tls.crt"},
                "keySecret": {"name": "rw-client", "key": "tls.key"},
                "serverName": "mimir.internal"},
        "interval": "15s", "histograms": "quantiles"}})
    # The JSON the operator parses (remote_write::cluster_default): paths, never a secret.
    assert json.loads(r.env()["BARRAGE_REMOTE_WRITE"]) == {
        "url": "https://mimir.monitoring:8080/api/v1/push",
        "headers": {"X-Scope-OrgID": "load"},
        "bearerTokenFile": f"{RW_DIR}/token",
        "tls": {"caFile": f"{RW_DIR}/ca.pem", "certFile": f"{RW_DIR}/cert.pem", "keyFile": f"{RW_DIR}/key.pem",
                "serverName": "mimir.internal"},
        "interval": "15s", "histograms": "quantiles"}
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    assert r.container()["volumeMounts"] == [{"name": "remote-write", "mountPath": RW_DIR, "readOnly": True}]
    (vol,) = pod["volumes"]
    assert vol["name"] == "remote-write" and vol["projected"]["defaultMode"] == 0o440, vol
    got = [(s["secret"]["name"], s["secret"]["items"]) for s in vol["projected"]["sources"]]
    assert got == [("rw-auth", [{"key": "token", "path": "token"}]),
                   ("rw-ca", [{"key": "ca.crt", "path": "ca.pem"}]),
                   ("rw-client", [{"key": "tls.crt", "path": "cert.pem"}]),
                   ("rw-client", [{"key": "tls.key", "path": "key.pem"}])], got
    # 0440 files, readable by the operator's group; the rest of the pod's context kept.
    assert pod["securityContext"]["fsGroup"] == 65532 and pod["securityContext"]["runAsUser"] == 65532
    # Mounted by the kubelet: no Secret rights beyond those LoadTests already need.
    assert_rules(operator_role(r, "ClusterRole"), LEAST_PRIVILEGE)


def test_remote_write_basic_auth_and_plain_url() -> None:
    r = render({"prometheusRemoteWrite": {"url": "http://prometheus.monitoring:9090/api/v1/write",
                                          "basicAuth": {"username": "load", "passwordSecret": {"name": "rw", "key": "pw"}}}})
    assert json.loads(r.env()["BARRAGE_REMOTE_WRITE"]) == {
        "url": "http://prometheus.monitoring:9090/api/v1/write",
        "basicAuth": {"username": "load", "passwordFile": f"{RW_DIR}/password"}}
    r = render({"prometheusRemoteWrite": {"url": "http://prometheus.monitoring:9090/api/v1/write"}})
    assert json.loads(r.env()["BARRAGE_REMOTE_WRITE"]) == {"url": "http://prometheus.monitoring:9090/api/v1/write"}
    assert "volumes" not in r.one("Deployment")["spec"]["template"]["spec"]


def test_remote_write_values_errors_name_the_value() -> None:
    rw = lambda v: {"prometheusRemoteWrite": {"url": "http://p:9090/api/v1/write", **v}}  # noqa: E731
    expect_render_error(rw({"basicAuth": {"username": "u"}}), "prometheusRemoteWrite.basicAuth")
    expect_render_error(rw({"bearerTokenSecret": {"name": "s"}}), "prometheusRemoteWrite.bearerTokenSecret")
    expect_render_error(rw({"bearerTokenSecret": {"name": "s", "key": "t"},
                            "basicAuth": {"username": "u", "passwordSecret": {"name": "s", "key": "p"}}}),
                        "not both")
    expect_render_error(rw({"histograms": "sometimes"}), "/prometheusRemoteWrite/histograms")
    expect_render_error({"prometheusRemoteWrite": {"url": "ftp://p"}}, "/prometheusRemoteWrite/url")
    expect_render_error(rw({"token": "x"}), "token")
    # What the operator would refuse at start (a crash loop) fails the render instead.
    ca = {"caSecret": {"name": "s", "key": "ca"}}
    expect_render_error(rw({"tls": ca}), "applies to an https:// url only")
    https = lambda v: {"prometheusRemoteWrite": {"url": "https://p/api/v1/write", **v}}  # noqa: E731
    expect_render_error(https({"tls": {"certSecret": {"name": "s", "key": "c"}}}), "go together")
    expect_render_error(https({"tls": {"keySecret": {"name": "s", "key": "k"}}}), "go together")


def test_cli_render_matches() -> None:
    # e2e/helm.py render is what people (and the e2e test) use: it must take --set like helm.
    out = subprocess.run([sys.executable, HELM_PY, "render", CHART, "--name", RELEASE, "-n", NAMESPACE,
                          "--set", "watchNamespaces={x,y}", "--set", "image.pullPolicy=Never"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'value: "x,y"' in out.stdout and "imagePullPolicy: Never" in out.stdout, out.stdout[:2000]
    out = subprocess.run([sys.executable, HELM_PY, "render", CHART, "--set", "replicas=two"], capture_output=True, text=True)
    assert out.returncode == 1 and "/replicas" in out.stderr, (out.returncode, out.stderr)


# --- the admission webhook (docs/webhook.md) ----------------------------------

def test_webhook_by_default() -> None:
    r = render()
    vwc = r.one("ValidatingWebhookConfiguration")
    assert vwc["metadata"]["name"] == FULLNAME and "namespace" not in vwc["metadata"]
    assert "annotations" not in vwc["metadata"], "no cert-manager injection by default"
    hooks = {w["name"]: w for w in vwc["webhooks"]}
    assert sorted(hooks) == ["loadtests.barrage.dev", "scheduledloadtests.barrage.dev"]
    for name, w in hooks.items():
        plural = name.split(".")[0]
        assert w["rules"] == [{"apiGroups": ["barrage.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                               "resources": [plural], "scope": "Namespaced"}], w["rules"]
        assert w["clientConfig"] == {"service": {"name": f"{FULLNAME}-webhook", "namespace": NAMESPACE, "path": "/validate",
                                                 "port": 443}}, "caBundle is the operator's to keep"
        assert w["failurePolicy"] == "Fail" and w["timeoutSeconds"] == 5
        assert w["sideEffects"] == "None", "dry-run must reach the webhook"
        assert w["admissionReviewVersions"] == ["v1"] and w["matchPolicy"] == "Equivalent"
        assert "namespaceSelector" not in w, "the whole cluster by default"
    svc = named(r, "Service", f"{FULLNAME}-webhook")
    sel = r.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"] == sel, "every replica, leader or not"
    assert svc["spec"]["ports"] == [{"name": "https-webhook", "port": 443, "targetPort": "https-webhook", "protocol": "TCP"}]
    secret = named(r, "Secret", f"{FULLNAME}-webhook-tls")
    assert secret["type"] == "Opaque" and not secret.get("data"), "pre-created empty; the operator fills it"
    env = r.env()
    assert env["BARRAGE_WEBHOOK_ADDR"] == "0.0.0.0:9443"
    assert env["BARRAGE_WEBHOOK_SECRET"] == f"{FULLNAME}-webhook-tls"
    assert env["BARRAGE_WEBHOOK_SERVICE"] == f"{FULLNAME}-webhook"
    assert env["BARRAGE_WEBHOOK_CONFIGURATION"] == FULLNAME
    assert env["BARRAGE_WEBHOOK_MANAGE_CERTS"] == "true"
    assert env["BARRAGE_WEBHOOK_CERT_VALIDITY"] == "2160h" and env["BARRAGE_WEBHOOK_CHECK_INTERVAL"] == "30s"
    # The readiness probe (which waits for the webhook's certificate) is /readyz.
    assert r.container()["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # No NetworkPolicy selects the operator's pods: the API server reaches the port.
    assert not r.of("NetworkPolicy")


def test_webhook_rbac_is_by_name_only() -> None:
    r = render()
    role = named(r, "Role", f"{FULLNAME}-webhook")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == WEBHOOK_SECRET_RULES, role["rules"]
    cr = named(r, "ClusterRole", f"{FULLNAME}-webhook")
    assert cr["rules"] == WEBHOOK_CONFIG_RULES, cr["rules"]
    for kind, ref in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        b = named(r, kind, f"{FULLNAME}-webhook")
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": ref, "name": f"{FULLNAME}-webhook"}
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    # The operator's main rights are unchanged by the webhook (no create on secrets by name, no webhook configs).
    assert_rules(operator_role(r, "ClusterRole"), LEAST_PRIVILEGE)


def test_webhook_off_removes_all_of_it() -> None:
    r = render({"webhook": {"enabled": False}})
    assert not r.of("ValidatingWebhookConfiguration") and not r.of("Secret"), r.kinds()
    assert [o["metadata"]["name"] for o in r.of("Service")] == [f"{FULLNAME}-metrics"]
    assert not any(o["metadata"]["name"].endswith("-webhook") for o in r.objects), r.kinds()
    assert not [k for k in r.env() if k.startswith("BARRAGE_WEBHOOK_")]
    assert [p["name"] for p in r.container()["ports"]] == ["http-metrics"]


def test_webhook_values() -> None:
    r = render({"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 10, "port": 8443,
                            "certs": {"certValidity": "2m", "certRenewBefore": "1m", "checkInterval": "2s"}},
                "watchNamespaces": ["a", "b"]})
    for w in r.one("ValidatingWebhookConfiguration")["webhooks"]:
        assert w["failurePolicy"] == "Ignore" and w["timeoutSeconds"] == 10
        assert w["namespaceSelector"] == {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}]}, w.get("namespaceSelector")
    env = r.env()
    assert env["BARRAGE_WEBHOOK_ADDR"] == "0.0.0.0:8443"
    assert env["BARRAGE_WEBHOOK_CERT_VALIDITY"] == "2m" and env["BARRAGE_WEBHOOK_CERT_RENEW_BEFORE"] == "1m"
    assert env["BARRAGE_WEBHOOK_CHECK_INTERVAL"] == "2s"
    assert {"name": "https-webhook", "containerPort": 8443, "protocol": "TCP"} in r.container()["ports"]
    expect_render_error({"webhook": {"failurePolicy": "Sometimes"}}, "failurePolicy")
    expect_render_error({"webhook": {"timeoutSeconds": 31}}, "timeoutSeconds")
    expect_render_error({"webhook": {"certs": {"certValidity": "90 days"}}}, "certValidity")
    expect_render_error({"webhook": {"enable": True}}, "enable")


def test_webhook_with_cert_manager() -> None:
    r = render({"webhook": {"certManager": {"enabled": True}}})
    vwc = r.one("ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": f"{NAMESPACE}/{FULLNAME}-webhook"}
    assert not r.of("Secret"), "cert-manager makes the Secret"
    certs = {c["metadata"]["name"]: c for c in r.of("Certificate")}
    assert sorted(certs) == [f"{FULLNAME}-webhook", f"{FULLNAME}-webhook-ca"]
    serving = certs[f"{FULLNAME}-webhook"]
    assert serving["apiVersion"] == "cert-manager.io/v1"
    assert serving["spec"]["secretName"] == f"{FULLNAME}-webhook-tls"
    assert serving["spec"]["dnsNames"] == [f"{FULLNAME}-webhook.{NAMESPACE}.svc", f"{FULLNAME}-webhook.{NAMESPACE}.svc.cluster.local"]
    assert serving["spec"]["issuerRef"] == {"name": f"{FULLNAME}-webhook-ca", "kind": "Issuer"}
    assert certs[f"{FULLNAME}-webhook-ca"]["spec"]["isCA"] is True
    issuers = {i["metadata"]["name"]: i["spec"] for i in r.of("Issuer")}
    assert issuers == {f"{FULLNAME}-webhook-selfsigned": {"selfSigned": {}},
                       f"{FULLNAME}-webhook-ca": {"ca": {"secretName": f"{FULLNAME}-webhook-ca"}}}, issuers
    # The operator only reads the Secret: get, no update, no webhook configuration rights.
    assert r.env()["BARRAGE_WEBHOOK_MANAGE_CERTS"] == "false"
    assert named(r, "Role", f"{FULLNAME}-webhook")["rules"] == [dict(WEBHOOK_SECRET_RULES[0], verbs=["get"])]
    assert not [o for o in r.of("ClusterRole") if o["metadata"]["name"].endswith("-webhook")]
    # An existing issuer: only the serving Certificate.
    r = render({"webhook": {"certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}})
    assert not r.of("Issuer") and len(r.of("Certificate")) == 1
    assert r.one("Certificate")["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


# --- the metrics Service reaches the leader; CRD upgrade hook; helm test ------------

PSS_RESTRICTED_CONTAINER = {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def assert_restricted(pod: dict[str, Any]) -> None:
    """The Pod Security "restricted" profile's checks that a pod spec can fail."""
    psc = pod.get("securityContext") or {}
    assert psc.get("runAsNonRoot") is True and psc.get("seccompProfile") == {"type": "RuntimeDefault"}, psc
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), pod
    assert all("hostPath" not in v for v in pod.get("volumes", [])), pod.get("volumes")
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c.get("securityContext") or {}
        for k, v in PSS_RESTRICTED_CONTAINER.items():
            assert sc.get(k) == v, (c["name"], k, sc.get(k))
        assert not sc.get("privileged") and all("hostPort" not in p for p in c.get("ports", [])), c


def test_metrics_service_selects_the_leader_only() -> None:
    r = render()
    assert r.env()["BARRAGE_LEADER_LABEL"] == "true"
    assert "BARRAGE_LEADER_LABEL" in operator_env_names()
    assert named(r, "Service", f"{FULLNAME}-metrics")["spec"]["selector"]["barrage.dev/leader"] == "true"
    # The Deployment never selects by it (a pod is the ReplicaSet's whatever its role).
    assert "barrage.dev/leader" not in r.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert "barrage.dev/leader" not in r.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    # Without leader election one replica serves, unlabelled: the Service selects it.
    off = render({"leaderElection": {"enabled": False}})
    assert off.env()["BARRAGE_LEADER_LABEL"] == "false"
    assert "barrage.dev/leader" not in named(off, "Service", f"{FULLNAME}-metrics")["spec"]["selector"]
    # ServiceMonitor -> the metrics Service only (other Services of the release carry
    # the selector labels too).
    sm = render({"metrics": {"serviceMonitor": {"enabled": True}}}).one("ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"]["barrage.dev/service"] == "metrics"


def test_crd_upgrade_hook_off_by_default() -> None:
    r = render()
    assert not [h for h in r.hooks if "pre-upgrade" in h["metadata"]["annotations"]["helm.sh/hook"]], r.hooks
    assert not r.of("Job")


def test_crd_upgrade_hook() -> None:
    r = render({"crds": {"upgradeHook": True, "timeout": 90}})
    assert r.kinds() == render().kinds(), "the hook adds no release object"
    (job,) = r.hook("Job", "pre-upgrade")
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"):
        (obj,) = r.hook(kind, "pre-install")
        ann = obj["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade", ann
        assert set(ann["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}, ann
        # The rights exist before the Job runs.
        assert int(ann["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) or kind == "Job"
    (cr,) = r.hook("ClusterRole", "pre-upgrade")
    assert cr["rules"] == [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                            "resourceNames": ["loadtests.barrage.dev", "scheduledloadtests.barrage.dev"],
                            "verbs": ["get", "patch", "create"]}], cr["rules"]
    # The names are the CRDs crds/ holds.
    names = sorted(helm_python.values_from_yaml(c["data"])["metadata"]["name"] for c in helm_python.Chart.load(CHART).crds)
    assert names == sorted(cr["rules"][0]["resourceNames"]), names
    (crb,) = r.hook("ClusterRoleBinding", "pre-upgrade")
    (sa,) = r.hook("ServiceAccount", "pre-upgrade")
    assert crb["roleRef"]["name"] == cr["metadata"]["name"]
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"] and pod["restartPolicy"] == "Never"
    c = pod["containers"][0]
    assert c["image"] == r.container()["image"], "the hook runs the operator image being installed"
    assert c["args"] == ["crds", "apply", "--timeout", "90"], c["args"]
    assert_restricted(pod)
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 150
    expect_render_error({"crds": {"upgradeHook": "yes"}}, "/crds/upgradeHook")
    expect_render_error({"crds": {"timeout": 0}}, "/crds/timeout")


def test_helm_test_selftest() -> None:
    r = render()
    (pod,) = r.hook("Pod", "test")
    spec = pod["spec"]
    c = spec["containers"][0]
    assert c["image"] == r.container()["image"]
    assert c["args"][:1] == ["selftest"], c["args"]
    args = dict(zip(c["args"][1::2], c["args"][2::2]))
    assert args["--namespace"] == NAMESPACE and args["--target"] == "http://$(POD_IP):8080", args
    assert args["--listen"] == "0.0.0.0:8080" and args["--timeout"] == "180", args
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert spec["restartPolicy"] == "Never"
    assert_restricted(spec)
    (role,) = r.hook("Role", "test")
    assert_rules(role, {("barrage.dev", "loadtests"): {"create", "get", "list", "watch", "delete"}})
    (rb,) = r.hook("RoleBinding", "test")
    (sa,) = r.hook("ServiceAccount", "test")
    assert spec["serviceAccountName"] == sa["metadata"]["name"]
    assert rb["roleRef"]["name"] == role["metadata"]["name"]
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]
    for obj in (pod, role, rb, sa):
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert "before-hook-creation" in obj["metadata"]["annotations"]["helm.sh/hook-delete-policy"], obj["metadata"]
    # watchNamespaces without the release namespace: the test runs where the operator watches.
    w = render({"watchNamespaces": ["team-a", "team-b"]})
    (pod,) = w.hook("Pod", "test")
    assert pod["metadata"]["namespace"] == "team-a" and "team-a" in pod["spec"]["containers"][0]["args"]
    assert {o["metadata"]["namespace"] for o in w.hooks} == {"team-a"}
    w = render({"watchNamespaces": ["team-a", NAMESPACE]})
    assert {o["metadata"]["namespace"] for o in w.hooks} == {NAMESPACE}
    assert not render({"tests": {"enabled": False}}).hooks
    expect_render_error({"tests": {"timeout": "long"}}, "/tests/timeout")


def main(argv: list[str]) -> int:
    only = argv[argv.index("-k") + 1] if "-k" in argv else ""
    verbose = "-v" in argv
    tests: list[tuple[str, Callable[[], None]]] = [
        (n, f) for n, f in globals().items() if n.startswith("test_") and callable(f) and only in n
    ]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            if verbose:
                traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not tests else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
