//! A minimal hand-written HTTP/1.1 client (keep-alive, Content-Length
//! bodies only, which is all the built-in server sends) and a server
//! starter, shared by the tests of the built-in target.
#![allow(dead_code)] // each test file uses its own part

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use barrage_runner::serve::{LocalServer, ServeConfig, spawn_local};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

pub struct Client {
    pub conn: BufReader<TcpStream>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub elapsed: Duration,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            conn: BufReader::new(stream),
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, b"").await
    }

    pub async fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Reply {
        self.send_with(method, path, &[], body).await
    }

    /// `send` with extra request headers.
    pub async fn send_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let start = Instant::now();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (n, v) in headers {
            head += &format!("{n}: {v}\r\n");
        }
        head += "\r\n";
        let stream = self.conn.get_mut();
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");

        let mut line = String::new();
        self.conn.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.conn.read_line(&mut line).await.expect("header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').expect("header has a colon");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("the server always sends content-length");
        let mut buf = vec![0; len];
        self.conn.read_exact(&mut buf).await.expect("body");
        Reply {
            status,
            headers,
            body: String::from_utf8(buf).unwrap(),
            elapsed: start.elapsed(),
        }
    }
}

pub async fn server(yaml: &str) -> LocalServer {
    spawn_local(ServeConfig::from_yaml_str(yaml).unwrap())
        .await
        .unwrap()
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
