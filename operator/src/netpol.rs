//! The NetworkPolicy that fences one LoadTest's runner pods: their agent
//! port (which starts, snapshots and stops the run, given the token) admits
//! only the operator's pods. One per LoadTest, in its namespace, owned by it,
//! because a NetworkPolicy selects pods of its own namespace only and a
//! cluster-wide operator does not know in advance where LoadTests will run.
//! Pure builders and flag parsing; `loadtest::starting` applies the policy.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::ResourceExt;

use crate::{
    crd::LoadTest,
    pods::{AGENT_PORT, LABEL_ROLE, LABEL_TEST, MANAGED_BY, owned_meta},
};

/// The label Kubernetes 1.21 and later put on every namespace: its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The operator's pods as a NetworkPolicy peer: the labels of its namespace
/// and of its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPeer {
    pub namespace_labels: BTreeMap<String, String>,
    pub pod_labels: BTreeMap<String, String>,
}

impl OperatorPeer {
    /// From the operator's flags. Without namespace labels, the namespace is
    /// selected by its name label (absent before Kubernetes 1.21: there, set
    /// `--operator-namespace-labels` or label the namespace). Without pod
    /// labels the peer would be every pod of that namespace, so that is
    /// refused rather than widened silently.
    pub fn new(
        namespace: Option<&str>,
        pod_labels: &str,
        namespace_labels: &str,
    ) -> Result<Self, String> {
        let pod_labels = parse_labels("--operator-pod-labels", pod_labels)?;
        if pod_labels.is_empty() {
            return Err(
                "--operator-pod-labels: none given; the runners' policy would admit \
                 every pod of the operator's namespace"
                    .into(),
            );
        }
        let mut namespace_labels = parse_labels("--operator-namespace-labels", namespace_labels)?;
        if namespace_labels.is_empty() {
            let ns = namespace.map(str::trim).filter(|s| !s.is_empty()).ok_or(
                "--operator-namespace (POD_NAMESPACE): needed for the runners' policy \
                 when --operator-namespace-labels is empty",
            )?;
            namespace_labels.insert(NAMESPACE_NAME_LABEL.into(), ns.into());
        }
        Ok(Self {
            namespace_labels,
            pod_labels,
        })
    }
}

/// `k=v,k=v` (blanks around items ignored) as a label map; `flag` names the
/// flag in the error.
pub fn parse_labels(flag: &str, s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{flag}: {item:?} is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || k.contains(char::is_whitespace) || v.contains(char::is_whitespace) {
            return Err(format!("{flag}: {item:?} is not a label key=value"));
        }
        if out
            .insert(k.to_string(), v.to_string())
            .is_some_and(|old| old != v)
        {
            return Err(format!("{flag}: {k} is given two values"));
        }
    }
    Ok(out)
}

pub fn policy_name(lt: &LoadTest) -> String {
    format!("{}-runners", lt.name_any())
}

/// Admits TCP on the agent port of `lt`'s runner pods from `peer` only.
/// Ingress only: the runners' traffic to the target stays open.
pub fn runner_policy(lt: &LoadTest, peer: &OperatorPeer) -> NetworkPolicy {
    // The labels runner_pod sets and a LoadTest's own labels cannot override.
    let runners = BTreeMap::from([
        (LABEL_TEST.to_string(), lt.name_any()),
        (LABEL_ROLE.to_string(), "runner".to_string()),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ]);
    let selector = |labels: &BTreeMap<String, String>| LabelSelector {
        match_labels: Some(labels.clone()),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: owned_meta(lt, policy_name(lt), "network-policy"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(&runners)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                // One peer holding both selectors: pods with these labels
                // in namespaces with those (two peers would admit either).
                from: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(selector(&peer.namespace_labels)),
                    pod_selector: Some(selector(&peer.pod_labels)),
                    ..Default::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    protocol: Some("TCP".into()),
                    port: Some(IntOrString::Int(AGENT_PORT)),
                    ..Default::default()
                }]),
            }]),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::{
        runner_pod,
        tests::{defaults, lt},
    };

    const SPEC: &str = "runners: 2\ntarget: {baseUrl: 'http://10.0.0.1'}\nload: {users: 2, duration: 1s}\nrequests: [{name: a, path: /}]\nrunner: {labels: {team: sre, barrage.dev/loadtest: other}}";

    fn peer() -> OperatorPeer {
        OperatorPeer::new(
            Some("barrage-system"),
            "app.kubernetes.io/name=barrage,app.kubernetes.io/component=operator",
            "",
        )
        .unwrap()
    }

    fn matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
        assert!(sel.match_expressions.is_none());
        let want = sel.match_labels.as_ref().unwrap();
        !want.is_empty() && want.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    #[test]
    fn selects_this_loadtests_runners_only() {
        let t = lt(SPEC);
        let np = runner_policy(&t, &peer());
        assert_eq!(np.metadata.name.as_deref(), Some("smoke-runners"));
        assert_eq!(np.metadata.namespace.as_deref(), Some("ns1"));
        let owner = &np.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("LoadTest", "uid-1", Some(true))
        );
        let spec = np.spec.unwrap();
        let sel = spec.pod_selector.as_ref().unwrap();
        for i in 0..2 {
            let pod = runner_pod(&t, i, &defaults());
            assert!(matches(sel, pod.metadata.labels.as_ref().unwrap()));
        }
        // Another LoadTest's runners, and this one's other objects, are not selected.
        let mut other = lt(SPEC);
        other.metadata.name = Some("other".into());
        let pod = runner_pod(&other, 0, &defaults());
        assert!(!matches(sel, pod.metadata.labels.as_ref().unwrap()));
        let plan = crate::pods::plan_config_map(&t);
        assert!(!matches(sel, plan.metadata.labels.as_ref().unwrap()));
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        assert!(spec.egress.is_none());
    }

    #[test]
    fn admits_only_the_agent_port_from_only_the_operator() {
        let np = runner_policy(&lt(SPEC), &peer());
        let ingress = np.spec.unwrap().ingress.unwrap();
        assert_eq!(ingress.len(), 1);
        let ports = ingress[0].ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(ports[0].port, Some(IntOrString::Int(9090)));
        assert!(ports[0].end_port.is_none());
        let from = ingress[0].from.as_ref().unwrap();
        assert_eq!(from.len(), 1, "one peer: both selectors must hold at once");
        let p = &from[0];
        assert!(p.ip_block.is_none());
        assert_eq!(
            p.namespace_selector.as_ref().unwrap().match_labels,
            Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                "barrage-system".to_string()
            )]))
        );
        assert_eq!(
            p.pod_selector.as_ref().unwrap().match_labels,
            Some(peer().pod_labels)
        );
    }

    #[test]
    fn the_operator_peer_comes_from_the_flags() {
        let p = OperatorPeer::new(None, " a=1 , b=2 ", "team=platform").unwrap();
        assert_eq!(
            p.pod_labels,
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        assert_eq!(
            p.namespace_labels,
            BTreeMap::from([("team".into(), "platform".into())])
        );
        let err =
            |ns: Option<&str>, pods: &str, nss: &str| OperatorPeer::new(ns, pods, nss).unwrap_err();
        assert!(err(Some("x"), "", "").starts_with("--operator-pod-labels:"));
        assert!(err(None, "a=1", "").starts_with("--operator-namespace"));
        assert!(err(Some(" "), "a=1", "").starts_with("--operator-namespace"));
        assert!(err(Some("x"), "a", "").contains("\"a\" is not key=value"));
        assert!(err(Some("x"), "=1", "").starts_with("--operator-pod-labels:"));
        assert!(err(Some("x"), "a=1", "t=p q").starts_with("--operator-namespace-labels:"));
        assert!(err(Some("x"), "a=1,a=2", "").contains("a is given two values"));
        assert_eq!(parse_labels("f", "a=1,a=1,,").unwrap().len(), 1);
        assert_eq!(parse_labels("f", "a=").unwrap()["a"], "");
    }
}
