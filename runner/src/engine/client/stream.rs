//! The byte stream under a connection: plain TCP, or TLS over TCP.
//!
//! An enum rather than a generic engine: the plain path pays one branch per
//! poll and nothing else (no allocation, no copy, no extra buffer). The TLS
//! stream is boxed so a plain connection stays as small as before (rustls's
//! connection state is a few hundred bytes plus its buffers).
//!
//! Memory per idle TLS connection (read from rustls 0.23's code, not
//! measured): rustls's record buffer grows by 4 KB reads up to one record
//! (~16.7 KB) while a response arrives and shrinks back to 4 KB once it is
//! empty; its plaintext queues are emptied by our reads; its connection
//! state (keys, record layer) is a few KB more. With our own read buffer
//! (`INITIAL_BUF`, 1 KB) an idle TLS user costs roughly 6-10 KB where a
//! plain one costs ~1 KB: 10,000 idle TLS users, on the order of 100 MB.
//! Plain users cost what they did.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::{engine::resolve::Resolver, snapshot::ErrorKind, tls::client::TlsTarget};

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The protocol the server chose by ALPN (`b"h2"`, `b"http/1.1"`), if
    /// TLS and it chose one (read by the HTTP/2 path and "auto").
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => t.get_ref().1.alpn_protocol(),
        }
    }
}

/// How long a new connection took to set up, for the connection histograms.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// The TCP connect (name resolution included, when a name is resolved).
    pub connect: Duration,
    /// The TLS handshake, after the TCP connect; `None` for plain HTTP.
    pub handshake: Option<Duration>,
}

/// Connects to `authority`, with a TLS handshake when `tls` is given
/// (`Stream::alpn` then says which protocol the server chose). A name that
/// does not resolve is `dns`, a TCP failure `connect`, a handshake failure
/// its TLS kind.
pub async fn dial(
    resolver: &Resolver,
    authority: &str,
    tls: Option<&TlsTarget>,
) -> Result<(Stream, Setup), ErrorKind> {
    let t0 = Instant::now();
    // An IP literal is used as it is; a host name's addresses come from the
    // run's resolver cache (one lookup per host, not per connection).
    let tcp = resolver.connect(authority).await?;
    tcp.set_nodelay(true).map_err(|_| ErrorKind::Connect)?;
    let t1 = Instant::now();
    let connect = t1 - t0;
    let Some(tls) = tls else {
        let setup = Setup {
            connect,
            handshake: None,
        };
        return Ok((Stream::Plain(tcp), setup));
    };
    let stream = TlsConnector::from(tls.config.clone())
        .connect(tls.server_name.clone(), tcp)
        .await
        .map_err(|e| crate::tls::client::classify(&e).unwrap_or(ErrorKind::Tls))?;
    let setup = Setup {
        connect,
        handshake: Some(t1.elapsed()),
    };
    Ok((Stream::Tls(Box::new(stream)), setup))
}

impl AsyncRead for Stream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
