//! Pending: the spec is checked (and the Secrets and ConfigMaps that
//! `spec.target.tls` references), and what every later phase needs is made
//! once: the agents' Secret (token, and the certificate both ends of the
//! agent channel pin), the plan ConfigMap, and (with a setup)
//! the setup pod's records Secret and rights.

use std::time::{Duration, SystemTime};

use barrage_runner::tls::pinned::{self, PinnedPem};

use kube::{ResourceExt, runtime::events::EventType};

use super::{
    context::{Context, enter, now},
    next::{Next, fail, terminal},
    output, provisioning, rules, tls_refs,
};
use crate::{
    crd::{LoadTest, LoadTestStatus, Phase},
    error::Result,
    pods,
    status::{self, COND_PROVISIONED, COND_VALIDATED, set_condition},
    validate::validate,
};

pub async fn step(lt: &LoadTest, ctx: &Context, mut st: LoadTestStatus) -> Result<Next> {
    let generation = lt.metadata.generation;
    st.observed_generation = generation;
    if let Err(e) = validate(&lt.name_any(), &lt.spec) {
        let msg = format!("invalid spec: {e}");
        status::invalid_spec(&mut st, &msg, generation, now());
        return Ok(Next::new(st, None).event(EventType::Warning, "InvalidSpec", msg));
    }
    match tls_refs::check(lt, ctx).await {
        Ok(None) => {}
        Ok(Some((reason, msg))) => return Ok(fail(st, generation, msg, COND_VALIDATED, reason)),
        Err(e) => return terminal(st, generation, e, COND_VALIDATED),
    }
    match output::check(lt, ctx).await {
        Ok(None) => {}
        Ok(Some((reason, msg))) => return Ok(fail(st, generation, msg, COND_VALIDATED, reason)),
        Err(e) => return terminal(st, generation, e, COND_VALIDATED),
    }
    let token = random_token()?;
    let tls = agent_certificate(lt)?;
    let created = async {
        ctx.create_if_absent(lt, &pods::token_secret(lt, &token, &tls))
            .await?;
        ctx.create_if_absent(lt, &pods::plan_config_map(lt)).await
    };
    if let Err(e) = created.await {
        return terminal(st, generation, e, COND_VALIDATED);
    }
    set_condition(
        &mut st.conditions,
        COND_VALIDATED,
        true,
        "Valid",
        "the spec is valid",
        generation,
        now(),
    );
    set_condition(
        &mut st.conditions,
        status::COND_COMPLETE,
        false,
        "InProgress",
        "the test has not finished",
        generation,
        now(),
    );
    st.runners = Some(status::runners_text(0, lt.spec.runners));
    let insecure = status::target_verification(&mut st, &lt.spec.plan.target, generation, now());
    if let Err(e) = provisioning::prepare(lt, ctx).await {
        return terminal(st, generation, e, COND_PROVISIONED);
    }
    let phase = if lt.spec.setup.is_some() || lt.spec.data_from.is_some() {
        Phase::Provisioning
    } else {
        Phase::Starting
    };
    enter(&mut st, phase);
    let note = format!("{} runner(s); next: {phase:?}", lt.spec.runners);
    let mut next =
        Next::new(st, Some(Duration::from_secs(1))).event(EventType::Normal, "Validated", note);
    if let Some(warning) = insecure {
        next = next.event(EventType::Warning, "InsecureSkipVerify", warning.into());
    }
    Ok(next)
}

/// 32 random bytes from the operating system, hex: the agents' bearer token.
fn random_token() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| {
        crate::error::Error::Other(format!("no randomness for the agents' token: {e}"))
    })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Beyond the run's own limit: the setup, the wait for runners, and the
/// agents' linger after the load.
const CERT_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// The agent channel's certificate for this LoadTest (one key pair, kept
/// in its Secret). Its dates are informational (pinning ignores them) but
/// cover the whole test, and an hour of clock skew before it.
fn agent_certificate(lt: &LoadTest) -> Result<PinnedPem> {
    let now = SystemTime::now();
    let name = format!(
        "barrage-agent {}/{}",
        lt.namespace().unwrap_or_default(),
        lt.name_any()
    );
    let until = now + rules::run_limit(lt).saturating_add(CERT_MARGIN);
    pinned::generate(&name, now - Duration::from_secs(3600), until)
        .map_err(crate::error::Error::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loadtest_gets_its_own_certificate_naming_it() {
        let lt = crate::pods::tests::lt(
            "target: {baseUrl: 'http://x'}\nload: {users: 1, duration: 10s}\nrequests: [{name: a, path: /}]",
        );
        let (a, b) = (
            agent_certificate(&lt).unwrap(),
            agent_certificate(&lt).unwrap(),
        );
        assert_ne!(a.cert, b.cert);
        let der = barrage_runner::tls::certs_from_pem(a.cert.as_bytes()).unwrap();
        let der: &[u8] = der[0].as_ref();
        let cn = b"barrage-agent ns1/smoke";
        assert!(der.windows(cn.len()).any(|w| w == cn));
        assert!(pinned::Identity::from_pem(a.cert.as_bytes(), a.key.as_bytes()).is_ok());
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}
