use std::sync::atomic::AtomicU32;

use tokio::net::TcpListener;

use super::*;

/// A test resolver: `name` is `addrs`, every other name does not exist;
/// counts the lookups it answers.
fn hosts(name: &'static str, addrs: Vec<IpAddr>) -> (Resolver, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let lookup: Lookup = Arc::new(move |host: String| {
        c.fetch_add(1, Ordering::SeqCst);
        let addrs = addrs.clone();
        Box::pin(async move {
            // Slow enough that concurrent dials overlap the lookup.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if host == name {
                Ok(addrs)
            } else {
                Err(io::Error::new(io::ErrorKind::NotFound, "no such name"))
            }
        })
    });
    (Resolver::with_lookup(lookup), calls)
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn a_name_is_looked_up_once_for_many_concurrent_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (resolver, calls) = hosts("target.test", vec![LOCAL]);
    let authority = format!("target.test:{port}");
    let dials = (0..50).map(|_| resolver.connect(&authority));
    let conns = futures_util::future::join_all(dials).await;
    assert!(conns.iter().all(Result::is_ok), "every dial connects");
    // And later connections reuse the answer too.
    resolver.connect(&authority).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_dns_and_is_remembered_briefly() {
    let (resolver, calls) = hosts("target.test", vec![LOCAL]);
    for _ in 0..3 {
        let e = resolver
            .connect("nonexistent.invalid:80")
            .await
            .unwrap_err();
        assert_eq!(e, ErrorKind::Dns);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one lookup per NEGATIVE");
    // An empty answer is no answer.
    let (empty, _) = hosts("target.test", vec![]);
    assert_eq!(
        empty.connect("target.test:80").await.unwrap_err(),
        ErrorKind::Dns
    );
}

#[tokio::test]
async fn ip_literals_skip_the_resolver() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lookup: Lookup = Arc::new(|h: String| panic!("looked up {h}"));
    let resolver = Resolver::with_lookup(lookup);
    resolver.connect(&addr.to_string()).await.unwrap();
    // A refused literal is `connect`, never `dns`.
    drop(listener);
    assert_eq!(
        resolver.connect(&addr.to_string()).await.unwrap_err(),
        ErrorKind::Connect
    );
    let (addrs, _) = resolver.resolve("[::1]").await.unwrap();
    assert_eq!(&addrs[..], &[IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)]);
}

#[tokio::test]
async fn connections_take_the_addresses_in_turn_and_skip_a_dead_one() {
    let two: IpAddr = "127.0.0.2".parse().unwrap();
    let (resolver, calls) = hosts("pods.test", vec![two, LOCAL]);
    let mut firsts = Vec::new();
    for _ in 0..4 {
        firsts.push(resolver.resolve("pods.test").await.unwrap().1);
    }
    assert_eq!(firsts, [0, 1, 0, 1]);
    // Only 127.0.0.1 listens on this port: a dial that starts at
    // 127.0.0.2 is refused there and connects to the next address.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for _ in 0..2 {
        let s = resolver
            .connect(&format!("pods.test:{port}"))
            .await
            .unwrap();
        assert_eq!(s.peer_addr().unwrap().ip(), LOCAL);
    }
    drop(listener);
    assert_eq!(
        resolver
            .connect(&format!("pods.test:{port}"))
            .await
            .unwrap_err(),
        ErrorKind::Connect
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let lookup: Lookup = Arc::new(|_| Box::pin(async { Ok(vec![LOCAL]) }));
    let resolver = Resolver::with_lookup(lookup);
    for i in 0..MAX_HOSTS + 10 {
        resolver.resolve(&format!("h{i}.test")).await.unwrap();
    }
    assert_eq!(resolver.hosts.lock().unwrap().len(), MAX_HOSTS);
}

#[test]
fn authorities_split_into_host_and_port() {
    assert_eq!(split("svc.ns:8080"), Some(("svc.ns", 8080)));
    assert_eq!(split("[::1]:80"), Some(("[::1]", 80)));
    assert_eq!(split("svc"), None);
    assert_eq!(split(":80"), None);
}

#[tokio::test]
async fn the_system_resolver_reads_etc_hosts() {
    // `localhost` is in /etc/hosts (no query leaves the machine); it may
    // come first as ::1, where nothing listens: the next address connects.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let resolver = Resolver::default();
    let s = resolver
        .connect(&format!("localhost:{port}"))
        .await
        .unwrap();
    assert_eq!(s.peer_addr().unwrap().ip(), LOCAL);
}
