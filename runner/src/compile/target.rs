//! The target: its base URL (http or https, a port from 1 to 65535, no
//! credentials, which error messages never repeat) and its headers.

use hyper::header::{HeaderName, HeaderValue};

use super::TargetInfo;
use crate::{
    error::{Error, Result},
    template::{Scope, Template},
};

/// Where to connect and what to send as Host, from `target.baseUrl`.
pub(super) fn compile_target(base: &str) -> std::result::Result<TargetInfo, String> {
    // Messages quote the URL without its userinfo: it may hold a password.
    let shown = redact_userinfo(base);
    let uri: hyper::Uri = base
        .parse()
        .map_err(|e| format!("{shown:?} is not a valid URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{shown:?} must start with http:// or https://")),
    };
    let auth = uri.authority().map_or("", |a| a.as_str());
    if auth.contains('@') {
        return Err(format!(
            "{shown:?} has credentials in it (user:password@), which would be sent as part of the Host header: \
             give them as a header instead, e.g. target.headers.authorization: \"Basic {{{{ env.CREDENTIALS }}}}\""
        ));
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{shown:?} has no host"))?;
    if uri.query().is_some() {
        return Err(format!(
            "{shown:?} must not have a query; put it in the requests"
        ));
    }
    let mut port = port_of(auth).map_err(|m| format!("{shown:?}: {m}"))?;
    if https && uri.port().is_none() {
        port = 443;
    }
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let host_header = HeaderValue::from_str(auth).map_err(|e| e.to_string())?;
    let prefix = uri.path().trim_end_matches('/').to_string();
    Ok(TargetInfo {
        authority,
        host_header,
        prefix,
    })
}

/// The port of an authority (`host`, `host:port`, `[v6]:port`): 80 when it
/// has none; an empty, 0 or out-of-range port is an error (a port that does
/// not fit in 16 bits must not become port 80).
pub(super) fn port_of(authority: &str) -> std::result::Result<u16, String> {
    let after_host = match authority.rfind(']') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let Some((_, port)) = after_host.rsplit_once(':') else {
        return Ok(80);
    };
    match port.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(format!(
            "port {port:?} is not a port number from 1 to 65535"
        )),
    }
}

/// `base` with anything between `://` and the authority's last `@` replaced,
/// so an error never repeats a password.
pub(super) fn redact_userinfo(base: &str) -> String {
    // Up to the last `@` anywhere after the scheme: a password may hold `/`,
    // `?` or `#`, which would otherwise end the authority early and leave
    // the secret in the message. Hiding a path's `@` too costs nothing.
    let start = base.find("://").map_or(0, |i| i + 3);
    match base[start..].rfind('@') {
        Some(at) => format!("{}***{}", &base[..start], &base[start + at..]),
        None => base.to_string(),
    }
}

/// A header of the target or a step: a valid name, and a template whose
/// value, when it has no variable part, is a valid header value already.
pub(super) fn compile_header(
    k: &str,
    v: &str,
    scope: &Scope<'_>,
    field: &str,
) -> Result<(HeaderName, Template)> {
    let name = HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| Error::invalid(field, format!("{k:?} is not a valid header name")))?;
    let t = Template::compile(v, scope).map_err(|e| Error::invalid(field, e))?;
    if let Some(s) = t.as_static() {
        HeaderValue::from_str(s)
            .map_err(|_| Error::invalid(field, "is not a valid header value"))?;
    }
    Ok((name, t))
}
