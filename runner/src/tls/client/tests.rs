use super::*;

#[test]
fn alpn_follows_the_http_version() {
    assert_eq!(alpn_for(HttpVersion::Http1), [b"http/1.1".to_vec()]);
    assert_eq!(alpn_for(HttpVersion::Http2), [b"h2".to_vec()]);
    assert_eq!(
        alpn_for(HttpVersion::Auto),
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
