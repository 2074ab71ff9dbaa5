//! The webhook's own certificates, kept in one Secret: a long-lived CA
//! (`ca.crt`, `ca.key`) and a short-lived serving certificate it signs
//! (`tls.crt`, `tls.key`), the key names cert-manager uses too.
//!
//! Pure: `plan` says what the Secret needs given the time, `apply` makes
//! it, `bundle` is the CA bundle the ValidatingWebhookConfiguration must
//! trust. Rotation never refuses an apply:
//! - the serving certificate is renewed under the same CA, which the API
//!   server already trusts, well before it expires;
//! - the CA is rotated in three steps, each waiting `settle` (long enough for
//!   every replica to load the Secret and the bundle to be patched): the next
//!   CA is *staged* (`next-ca.crt`, in the bundle beside the current one), then
//!   the serving certificate *switches* to it (the previous CA stays in the
//!   bundle as `old-ca.crt`), then the old CA is *dropped*.
//!
//! The times come from the certificates themselves (their notBefore is
//! when they were made, less `BACKDATE`), so any replica reaches the same
//! decision from the same Secret, and writing it twice is harmless.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, pem::PemObject};

pub const CA_CRT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const NEXT_CA_CRT: &str = "next-ca.crt";
pub const NEXT_CA_KEY: &str = "next-ca.key";
pub const OLD_CA_CRT: &str = "old-ca.crt";

/// Certificates start this long before they are made: clocks of the
/// API server and the operator's node may differ a little.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// The Secret's data, as the API returns it (decoded).
pub type Data = BTreeMap<String, Vec<u8>>;

/// Validity periods and rotation points (flags; see docs/webhook.md).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub ca_validity: Duration,
    /// The CA rotation starts when less than this is left.
    pub ca_renew_before: Duration,
    pub cert_validity: Duration,
    /// The serving certificate is renewed when less than this is left.
    pub cert_renew_before: Duration,
    /// How long each CA rotation step waits for every replica and the
    /// API server to see the previous one.
    pub settle: Duration,
    /// The names the API server calls: `<service>.<namespace>.svc` and kin.
    pub dns_names: Vec<String>,
}

impl Settings {
    /// Refuses periods that would rotate forever or never.
    pub fn check(&self) -> Result<(), String> {
        if self.cert_renew_before >= self.cert_validity {
            return Err(
                "--webhook-cert-renew-before must be shorter than --webhook-cert-validity".into(),
            );
        }
        if self.ca_renew_before >= self.ca_validity {
            return Err(
                "--webhook-ca-renew-before must be shorter than --webhook-ca-validity".into(),
            );
        }
        if self.cert_validity > self.ca_validity {
            return Err(
                "--webhook-cert-validity must not be longer than --webhook-ca-validity".into(),
            );
        }
        if self.dns_names.is_empty() {
            return Err("the webhook needs a service name (--webhook-service)".into());
        }
        Ok(())
    }
}

/// The names `service` in `namespace` is called by.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ]
}

/// What the Secret needs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Keep,
    /// No usable CA (first start, an emptied or corrupt Secret, an expired
    /// CA): a new CA and serving certificate.
    Fresh,
    /// The CA nears its end: make the next one and trust both.
    StageCa,
    /// The next CA has been trusted for `settle`: sign the serving
    /// certificate with it; the current one becomes the old one.
    SwitchCa,
    /// The serving certificate nears its end, is missing, names other
    /// hosts or was signed by another CA: a new one under the current CA.
    RenewCert,
    /// The serving certificate under the new CA has been served for
    /// `settle`: stop trusting the old CA.
    DropOldCa,
}

/// What the Secret's certificates say, read without verifying (we made them).
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub not_before: i64,
    pub not_after: i64,
    pub subject_cn: String,
    pub issuer_cn: String,
    pub dns_names: Vec<String>,
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn secs(d: Duration) -> i64 {
    d.as_secs().min(i64::MAX as u64 / 2) as i64
}

/// The first certificate of a PEM text, parsed; None when there is none
/// or it does not parse.
pub fn parse(pem: &[u8]) -> Option<Parsed> {
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let cn = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Parsed {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        subject_cn: cn(cert.subject()),
        issuer_cn: cn(cert.issuer()),
        dns_names,
    })
}

/// A certificate with its private key present (the key is not parsed here:
/// `apply` and the server refuse one that does not load).
fn with_key(data: &Data, crt: &str, key: &str) -> Option<Parsed> {
    data.get(key).filter(|k| !k.is_empty())?;
    parse(data.get(crt)?)
}

/// What the Secret needs at `now`.
pub fn plan(now: SystemTime, data: &Data, s: &Settings) -> Plan {
    let now = unix(now);
    let Some(ca) = with_key(data, CA_CRT, CA_KEY).filter(|ca| ca.not_after > now) else {
        return Plan::Fresh;
    };
    let made = |p: &Parsed| p.not_before + secs(BACKDATE);
    let cert = with_key(data, TLS_CRT, TLS_KEY);
    let cert_ok = cert.as_ref().is_some_and(|c| {
        c.issuer_cn == ca.subject_cn
            && c.dns_names == s.dns_names
            && c.not_after - now > secs(s.cert_renew_before)
            && c.not_before <= now
    });
    match with_key(data, NEXT_CA_CRT, NEXT_CA_KEY) {
        Some(next) if now >= made(&next) + secs(s.settle) => return Plan::SwitchCa,
        // Staged: the current CA still signs until the switch.
        Some(_) => return if cert_ok { Plan::Keep } else { Plan::RenewCert },
        None if ca.not_after - now <= secs(s.ca_renew_before) => return Plan::StageCa,
        None => {}
    }
    if !cert_ok {
        return Plan::RenewCert;
    }
    let cert = cert.expect("cert_ok");
    if data.contains_key(OLD_CA_CRT) && now >= made(&cert) + secs(s.settle) {
        return Plan::DropOldCa;
    }
    Plan::Keep
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("webhook certificate: {0}")]
pub struct CertError(String);

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        CertError(e.to_string())
    }
}

fn ca_params(cn: &str, not_before: SystemTime, not_after: SystemTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    p
}

/// A new CA: (certificate PEM, key PEM). Its name carries the time it was
/// made, so that the serving certificate's issuer tells which CA signed it.
fn new_ca(now: SystemTime, s: &Settings) -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    let cn = format!("barrage-webhook-ca-{}", unix(now));
    let cert = ca_params(&cn, now - BACKDATE, now + s.ca_validity).self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A serving certificate signed by the CA in `ca_crt`/`ca_key`, ending no
/// later than the CA does.
fn new_cert(
    now: SystemTime,
    s: &Settings,
    ca_crt: &[u8],
    ca_key: &[u8],
) -> Result<(String, String), CertError> {
    let ca = parse(ca_crt).ok_or_else(|| CertError("the CA does not parse".into()))?;
    let ca_key = std::str::from_utf8(ca_key).map_err(|e| CertError(e.to_string()))?;
    let ca_key = KeyPair::from_pem(ca_key)?;
    let ca_end = UNIX_EPOCH + Duration::from_secs(ca.not_after.max(0) as u64);
    let issuer = Issuer::new(ca_params(&ca.subject_cn, now, ca_end), ca_key);
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(s.dns_names.clone())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, s.dns_names[0].as_str());
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = (now - BACKDATE).into();
    p.not_after = (now + s.cert_validity).min(ca_end).into();
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn put(data: &mut Data, k: &str, v: String) {
    data.insert(k.to_string(), v.into_bytes());
}

/// The Secret's data after `plan` (other keys are kept as they are).
pub fn apply(plan: Plan, now: SystemTime, data: &Data, s: &Settings) -> Result<Data, CertError> {
    let mut out = data.clone();
    let get = |k: &str| data.get(k).cloned().unwrap_or_default();
    match plan {
        Plan::Keep => {}
        Plan::Fresh => {
            for k in [NEXT_CA_CRT, NEXT_CA_KEY, OLD_CA_CRT] {
                out.remove(k);
            }
            let (crt, key) = new_ca(now, s)?;
            let (tls, tls_key) = new_cert(now, s, crt.as_bytes(), key.as_bytes())?;
            put(&mut out, CA_CRT, crt);
            put(&mut out, CA_KEY, key);
            put(&mut out, TLS_CRT, tls);
            put(&mut out, TLS_KEY, tls_key);
        }
        Plan::StageCa => {
            let (crt, key) = new_ca(now, s)?;
            put(&mut out, NEXT_CA_CRT, crt);
            put(&mut out, NEXT_CA_KEY, key);
        }
        Plan::SwitchCa => {
            let (crt, key) = (get(NEXT_CA_CRT), get(NEXT_CA_KEY));
            let (tls, tls_key) = new_cert(now, s, &crt, &key)?;
            out.insert(OLD_CA_CRT.into(), get(CA_CRT));
            out.insert(CA_CRT.into(), crt);
            out.insert(CA_KEY.into(), key);
            out.remove(NEXT_CA_CRT);
            out.remove(NEXT_CA_KEY);
            put(&mut out, TLS_CRT, tls);
            put(&mut out, TLS_KEY, tls_key);
        }
        Plan::RenewCert => {
            let (tls, tls_key) = new_cert(now, s, &get(CA_CRT), &get(CA_KEY))?;
            put(&mut out, TLS_CRT, tls);
            put(&mut out, TLS_KEY, tls_key);
        }
        Plan::DropOldCa => {
            out.remove(OLD_CA_CRT);
        }
    }
    Ok(out)
}

/// The CA bundle to trust: the current CA, and the next or the old one
/// while a CA rotation is under way; each certificate once, in that order.
pub fn bundle(data: &Data) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for k in [CA_CRT, NEXT_CA_CRT, OLD_CA_CRT] {
        let Some(pem) = data.get(k) else { continue };
        for der in CertificateDer::pem_slice_iter(pem).flatten() {
            if seen.contains(&der.to_vec()) {
                continue;
            }
            seen.push(der.to_vec());
            let text = pem_text(&der);
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

fn pem_text(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}
