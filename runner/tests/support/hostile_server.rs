//! A misbehaving HTTP/1.1 server for the tests: raw TCP on 127.0.0.1, each
//! connection scripted by a function of how many requests that connection has
//! read. It counts every request it read in full (its head and its
//! Content-Length body), so a test can hold the client's counts against what
//! the target really saw, and it counts connections still open, so a test can
//! wait for the client to have let go of every one of them.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// What the server does with the `k`-th request read on a connection.
#[derive(Clone)]
pub enum Reply {
    /// Writes these bytes and reads the next request.
    Send(Vec<u8>),
    /// Writes these bytes and closes the connection.
    SendClose(Vec<u8>),
    /// Closes the connection without a word.
    Close,
    /// Writes `head`, then `chunk` again and again until the client goes.
    Endless { head: Vec<u8>, chunk: Vec<u8> },
    /// Never answers; waits for the client to close.
    Silent,
    /// Writes these bytes one at a time, `every` apart.
    Trickle { bytes: Vec<u8>, every: Duration },
}

pub type Script = Arc<dyn Fn(u64) -> Reply + Send + Sync>;

pub struct Hostile {
    pub addr: std::net::SocketAddr,
    /// Requests read in full, over all connections.
    requests: Arc<AtomicU64>,
    /// The method of each request read, in order.
    methods: Arc<Mutex<Vec<String>>>,
    /// Connections accepted, and how many are still open.
    accepted: Arc<AtomicU64>,
    open: watch::Receiver<u64>,
}

impl Hostile {
    pub async fn start(script: impl Fn(u64) -> Reply + Send + Sync + 'static) -> Hostile {
        let script: Script = Arc::new(script);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let methods = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicU64::new(0));
        let (open_tx, open) = watch::channel(0u64);
        let open_tx = Arc::new(open_tx);
        let (r, m, a) = (requests.clone(), methods.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                open_tx.send_modify(|n| *n += 1);
                let (script, r, m, open_tx) =
                    (script.clone(), r.clone(), m.clone(), open_tx.clone());
                tokio::spawn(async move {
                    serve(s, &*script, &r, &m).await;
                    open_tx.send_modify(|n| *n -= 1);
                });
            }
        });
        Hostile {
            addr,
            requests,
            methods,
            accepted,
            open,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn methods(&self) -> Vec<String> {
        self.methods.lock().unwrap().clone()
    }

    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) until the client has closed every connection;
    /// false if some are still open then.
    pub async fn all_closed(&self, limit: Duration) -> bool {
        let mut open = self.open.clone();
        tokio::time::timeout(limit, open.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Longest request head the server reads: the client never sends more.
const MAX_REQUEST: usize = 64 * 1024;

async fn serve(
    mut s: TcpStream,
    script: &(dyn Fn(u64) -> Reply + Send + Sync),
    requests: &AtomicU64,
    methods: &Mutex<Vec<String>>,
) {
    let mut buf = Vec::new();
    for k in 0.. {
        let Some(method) = read_request(&mut s, &mut buf).await else {
            return;
        };
        requests.fetch_add(1, Ordering::SeqCst);
        methods.lock().unwrap().push(method);
        match script(k) {
            Reply::Send(b) => {
                if s.write_all(&b).await.is_err() {
                    return;
                }
            }
            Reply::SendClose(b) => {
                let _ = s.write_all(&b).await;
                return;
            }
            Reply::Close => return,
            Reply::Endless { head, chunk } => {
                if s.write_all(&head).await.is_err() {
                    return;
                }
                while s.write_all(&chunk).await.is_ok() {}
                return;
            }
            Reply::Silent => {
                // Until the client closes (or sends bytes nobody reads).
                let mut b = [0u8; 1024];
                while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
                return;
            }
            Reply::Trickle { bytes, every } => {
                for b in bytes {
                    if s.write_all(&[b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(every).await;
                }
            }
        }
    }
}

/// Reads one whole request (head and Content-Length body) from `s`, keeping
/// what follows it in `buf`; its method, or None at the end of the stream.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())
                        .flatten()
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                if s.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            }
            buf.drain(..end + 4 + length);
            return head.split(' ').next().map(str::to_string);
        }
        if buf.len() > MAX_REQUEST || s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}
