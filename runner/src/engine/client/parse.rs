//! Parsing a response head and chunk-size lines: pure functions over bytes,
//! synchronous so that httparse's header array never lives in a future.

use super::{Error, Framing, Head, MAX_HEADERS};

/// Parses a response head at the start of `buf`: `None` while incomplete.
/// Synchronous, so httparse's header array never lives in a future.
pub(super) fn parse_head(buf: &[u8], keep_headers: bool) -> Result<Option<Head>, Error> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut raw);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::Malformed("too many headers")),
        Err(httparse::Error::Status) => return Err(Error::Malformed("invalid status line")),
        Err(httparse::Error::Version) => return Err(Error::Malformed("invalid HTTP version")),
        Err(_) => return Err(Error::Malformed("invalid header")),
    };
    let status = res.code.ok_or(Error::Malformed("no status"))?;
    let http11 = res.version == Some(1);
    let mut length: Option<u64> = None;
    let mut te = false;
    let mut chunked = false;
    let (mut close, mut keep_alive) = (false, false);
    for h in res.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // `5` or, as some servers repeat it, `5, 5`: all values equal.
            for v in h.value.split(|&b| b == b',') {
                let n = parse_decimal(v.trim_ascii())
                    .ok_or(Error::Malformed("invalid content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::Malformed("conflicting content-length"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            // The last coding applied decides; a later header field appends.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = if te {
        // Transfer-Encoding overrides Content-Length (RFC 9112, 6.3); in an
        // HTTP/1.0 response its framing cannot be trusted.
        if chunked && http11 {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    let keep_alive = !close && (http11 || keep_alive) && !(te && length.is_some());
    let headers = if keep_headers {
        res.headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(Head {
        len,
        status,
        framing,
        keep_alive,
        headers,
    }))
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// `1a;ext=v\r\n` -> 26.
pub(super) fn parse_chunk_size(line: &[u8]) -> Result<u64, Error> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return Err(Error::Malformed("invalid chunk size"));
    }
    let mut n = 0u64;
    for &b in digits {
        let d = (b as char)
            .to_digit(16)
            .ok_or(Error::Malformed("invalid chunk size"))?;
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}
