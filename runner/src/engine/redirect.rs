//! Following redirects, for steps with `followRedirects: true`: only to the
//! plan's target (load must never go anywhere else), at most
//! `MAX_REDIRECTS`; a redirect elsewhere is the response, as it is.
//!
//! The next request is the previous one's bytes with a new request line
//! (headers are already rendered): 301, 302 and 303 become a GET without the
//! body (a HEAD stays a HEAD), 307 and 308 keep the method and the body.

use crate::compile::TargetInfo;

use super::{client::Response, request::valid_path};

/// The request that follows `res`, the answer to `prev`; `None` when `res`
/// is not a redirect to follow.
pub fn next_request(prev: &[u8], res: &Response, target: &TargetInfo) -> Option<Vec<u8>> {
    let keep_method = match res.status {
        301..=303 => false,
        307 | 308 => true,
        _ => return None,
    };
    let location = res.header("location")?;
    let line_end = find(prev, b"\r\n")?;
    let line = std::str::from_utf8(&prev[..line_end]).ok()?;
    let (method, rest) = line.split_once(' ')?;
    let (current, _) = rest.rsplit_once(' ')?;
    let path = resolve(location, current, target)?;
    let head_end = find(prev, b"\r\n\r\n")?;
    let headers = &prev[line_end + 2..head_end + 2];
    let body = &prev[head_end + 4..];

    let (method, drop_body) = match (keep_method, method) {
        (true, m) => (m, false),
        (false, "HEAD") => ("HEAD", true),
        (false, _) => ("GET", true),
    };
    let mut out = Vec::with_capacity(prev.len() + path.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in headers.split_inclusive(|&b| b == b'\n') {
        let name = h.split(|&b| b == b':').next().unwrap_or_default();
        let body_header = [
            &b"content-length"[..],
            b"content-type",
            b"transfer-encoding",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n));
        if !(drop_body && body_header) {
            out.extend_from_slice(h);
        }
    }
    out.extend_from_slice(b"\r\n");
    if !drop_body {
        out.extend_from_slice(body);
    }
    Some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The origin-form target that `location` points to from `current`, if it
/// is on the plan's target host.
fn resolve(location: &str, current: &str, target: &TargetInfo) -> Option<String> {
    let loc = location.trim();
    let path = if let Some(rest) = loc.strip_prefix("//") {
        let scheme = if target.https { "https" } else { "http" };
        same_target(&format!("{scheme}://{rest}"), target)?
    } else if loc.starts_with('/') {
        loc.to_string()
    } else if loc
        .find(':')
        .is_some_and(|c| !loc[..c].contains(['/', '?', '#']))
    {
        same_target(loc, target)?
    } else {
        let current = current.split(['?', '#']).next().unwrap_or("/");
        if loc.starts_with('?') {
            format!("{current}{loc}")
        } else {
            let dir = current.rfind('/').map_or("/", |i| &current[..=i]);
            format!("{dir}{loc}")
        }
    };
    valid_path(&path).map(str::to_string)
}

/// The path and query of the absolute URL `url`, if it is to the target's
/// scheme, host and port: an https target is never followed to http (nor
/// the other way), where the same bytes would go out unencrypted.
fn same_target(url: &str, target: &TargetInfo) -> Option<String> {
    let uri: hyper::Uri = url.parse().ok()?;
    let scheme = if target.https { "https" } else { "http" };
    if !uri.scheme_str()?.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let host = uri.host()?;
    let port = uri
        .port_u16()
        .unwrap_or(if target.https { 443 } else { 80 });
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    if !authority.eq_ignore_ascii_case(&target.authority) {
        return None;
    }
    Some(
        uri.path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn target() -> TargetInfo {
        TargetInfo {
            authority: "127.0.0.1:8080".into(),
            host_header: HeaderValue::from_static("127.0.0.1:8080"),
            prefix: String::new(),
            https: false,
            host: "127.0.0.1".into(),
            tls: None,
        }
    }

    fn res(status: u16, location: &str) -> Response {
        Response {
            status,
            headers: vec![("Location".into(), location.as_bytes().to_vec())],
            body: None,
            received: 0,
            body_len: 0,
        }
    }

    const POST: &[u8] = b"POST /a/b?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nContent-Type: text/plain\r\nx-k: v\r\ncontent-length: 2\r\n\r\nhi";

    fn next(status: u16, location: &str) -> Option<String> {
        next_request(POST, &res(status, location), &target()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn see_other_becomes_a_get_and_307_keeps_the_body() {
        for status in [301, 302, 303] {
            assert_eq!(
                next(status, "/c").unwrap(),
                "GET /c HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-k: v\r\n\r\n"
            );
        }
        for status in [307, 308] {
            assert_eq!(
                next(status, "http://127.0.0.1:8080/c?y=2").unwrap(),
                "POST /c?y=2 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nContent-Type: text/plain\r\nx-k: v\r\ncontent-length: 2\r\n\r\nhi"
            );
        }
        let head = b"HEAD / HTTP/1.1\r\nhost: h\r\n\r\n";
        let n = next_request(head, &res(302, "/x"), &target()).unwrap();
        assert_eq!(n, b"HEAD /x HTTP/1.1\r\nhost: h\r\n\r\n");
        for status in [200, 304, 300, 404] {
            assert_eq!(next(status, "/c"), None);
        }
        let no_location = Response {
            headers: vec![],
            ..res(302, "")
        };
        assert!(next_request(POST, &no_location, &target()).is_none());
    }

    #[test]
    fn only_the_target_host_is_followed() {
        let start = |l: &str| next(302, l).map(|r| r.lines().next().unwrap().to_string());
        assert_eq!(start("/z#frag").unwrap(), "GET /z HTTP/1.1");
        assert_eq!(start("c?q=1").unwrap(), "GET /a/c?q=1 HTTP/1.1");
        assert_eq!(start("?q=2").unwrap(), "GET /a/b?q=2 HTTP/1.1");
        assert_eq!(start("HTTP://127.0.0.1:8080").unwrap(), "GET / HTTP/1.1");
        assert_eq!(start("//127.0.0.1:8080/s").unwrap(), "GET /s HTTP/1.1");
        for elsewhere in [
            "http://127.0.0.2:8080/",
            "http://127.0.0.1:8081/",
            "http://127.0.0.1/",
            "https://127.0.0.1:8080/",
            "//example.test/x",
            "http://evil.test/?http://127.0.0.1:8080/",
            "mailto:a@b",
            "/bad path",
        ] {
            assert_eq!(start(elsewhere), None, "{elsewhere}");
        }
    }

    #[test]
    fn an_https_target_is_followed_only_over_https() {
        let t = TargetInfo {
            authority: "127.0.0.1:443".into(),
            https: true,
            ..target()
        };
        let start = |l: &str| {
            next_request(POST, &res(302, l), &t).map(|b| {
                String::from_utf8(b)
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap()
                    .to_string()
            })
        };
        assert_eq!(start("https://127.0.0.1/s").unwrap(), "GET /s HTTP/1.1");
        assert_eq!(start("https://127.0.0.1:443/s").unwrap(), "GET /s HTTP/1.1");
        assert_eq!(start("//127.0.0.1/s").unwrap(), "GET /s HTTP/1.1");
        assert_eq!(start("/s").unwrap(), "GET /s HTTP/1.1");
        // Down to cleartext, even to the same host and port: refused.
        for refused in ["http://127.0.0.1:443/s", "http://127.0.0.1/s"] {
            assert_eq!(start(refused), None, "{refused}");
        }
    }
}
