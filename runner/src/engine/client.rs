//! HTTP/1.1 connections straight on hyper's connection API.
//!
//! Each virtual user (closed model) or pooled slot (open model) owns one
//! keep-alive connection, the way wrk and k6 use theirs; there is no shared
//! pool to contend on and no per-request URL parsing.

use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Conn {
    tx: http1::SendRequest<Full<Bytes>>,
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    /// Kept only when a capture needs it.
    pub body: Option<Bytes>,
    /// Approximate bytes on the wire: status line, headers and body.
    pub received: u64,
}

pub async fn connect(authority: &str) -> io::Result<Conn> {
    // An IP literal is parsed without any resolver; a host name goes through
    // the system's.
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (tx, conn) = http1::Builder::new()
        // Small fixed read buffers: thousands of mostly idle users must not
        // cost megabytes each.
        .max_buf_size(64 * 1024)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn { tx })
}

impl Conn {
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends one request and reads the whole response body (counting it, and
    /// keeping it when `keep_body`), so the connection can be reused.
    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
        keep_body: bool,
    ) -> Result<Response, hyper::Error> {
        self.tx.ready().await?;
        let res = self.tx.send_request(req).await?;
        let (parts, mut body) = res.into_parts();
        let mut received = 17
            + parts
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>() as u64;
        let mut kept = keep_body.then(Vec::new);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                received += data.len() as u64;
                if let Some(k) = kept.as_mut() {
                    k.extend_from_slice(&data);
                }
            }
        }
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: kept.map(Bytes::from),
            received,
        })
    }
}
