//! The filtering proxy every connection of Chromium goes through (`--proxy-server`, loopback
//! not bypassed): pages, frames, workers, service workers, WebSockets and fetches alike.
//!
//! For each request it resolves the host once, checks every address against the
//! [`Policy`](super::address::Policy) and connects to the address it checked, so neither a
//! kind of request DevTools does not show nor DNS rebinding can reach a private address.
//! HTTPS and WebSockets arrive as `CONNECT host:port` tunnels; plain HTTP as absolute-form
//! requests, forwarded in origin form with `Connection: close` (one request per connection).
//! Request heads are read with a cap; refusals answer 403 with the reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::address::Policy;

/// Largest request head accepted from Chromium.
const MAX_HEAD: usize = 32 * 1024;
/// Time to resolve and connect to a site.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Headers read from one request head.
const MAX_HEADERS: usize = 128;

/// Resolves `host:port` to addresses (the system resolver, or a scripted one in tests).
pub type Resolve =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// Opens a connection to an address already checked.
pub type Dial =
    Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, std::io::Result<TcpStream>> + Send + Sync>;

/// How the proxy reaches sites: the system's resolver and TCP, or scripted ones in tests.
#[derive(Clone)]
pub struct Net {
    pub resolve: Resolve,
    pub dial: Dial,
}

impl Net {
    pub fn system() -> Self {
        Self {
            resolve: Arc::new(|host, port| {
                Box::pin(async move {
                    Ok(tokio::net::lookup_host((host.as_str(), port))
                        .await?
                        .collect())
                })
            }),
            dial: Arc::new(|address| Box::pin(TcpStream::connect(address))),
        }
    }
}

/// Starts the proxy on a loopback port of the current runtime; returns its address.
pub async fn start(policy: Policy, net: Net) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let policy = Arc::new(policy);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (policy, net) = (policy.clone(), net.clone());
            tokio::spawn(async move {
                if let Err(error) = serve(client, &policy, &net).await {
                    tracing::debug!(%error, "browser proxy connection ended");
                }
            });
        }
    });
    Ok(address)
}

/// What one request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Tunnel {
        host: String,
        port: u16,
    },
    Forward {
        host: String,
        port: u16,
        head: Vec<u8>,
    },
}

async fn serve(mut client: TcpStream, policy: &Policy, net: &Net) -> std::io::Result<()> {
    let (head, rest) = read_head(&mut client).await?;
    let target = match parse_head(&head) {
        Ok(target) => target,
        Err(why) => return refuse(&mut client, 400, &why).await,
    };
    let (host, port) = match &target {
        Target::Tunnel { host, port } | Target::Forward { host, port, .. } => (host.clone(), *port),
    };
    let mut upstream = match connect_checked(&host, port, policy, net).await {
        Ok(upstream) => upstream,
        Err(why) => return refuse(&mut client, 403, &why).await,
    };
    match target {
        Target::Tunnel { .. } => {
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await?;
        }
        Target::Forward { head, .. } => upstream.write_all(&head).await?,
    }
    upstream.write_all(&rest).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Resolves once, checks every address, connects to one of the checked ones.
async fn connect_checked(
    host: &str,
    port: u16,
    policy: &Policy,
    net: &Net,
) -> Result<TcpStream, String> {
    let addresses = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(CONNECT_TIMEOUT, (net.resolve)(host.to_string(), port))
            .await
            .map_err(|_| format!("resolving {host} timed out"))?
            .map_err(|e| format!("cannot resolve {host}: {e}"))?,
    };
    if addresses.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if let Some(private) = addresses
        .iter()
        .find(|a| !policy.permits(host, port, a.ip()))
    {
        return Err(format!(
            "{host} resolves to {}, a local or private network address this server does not let the browser open",
            private.ip()
        ));
    }
    let mut last_error = String::new();
    for address in addresses {
        match tokio::time::timeout(CONNECT_TIMEOUT, (net.dial)(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = "timed out".into(),
        }
    }
    Err(format!("cannot connect to {host}: {last_error}"))
}

/// Reads up to the end of the head; returns it and whatever followed it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find_head_end(&buffer) {
            let rest = buffer.split_off(end);
            return Ok((buffer, rest));
        }
        if buffer.len() >= MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::Error::other(
                "closed before the request head ended",
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The target of a request head, and for plain HTTP the head to send upstream (pure).
fn parse_head(head: &[u8]) -> Result<Target, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("malformed request".into()),
    }
    let method = request.method.unwrap_or("");
    let path = request.path.unwrap_or("");
    if method.eq_ignore_ascii_case("CONNECT") {
        let url = reqwest::Url::parse(&format!("http://{path}"))
            .map_err(|_| format!("bad tunnel target {path}"))?;
        let host = url
            .host_str()
            .ok_or("no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let port = url.port().ok_or("a tunnel needs a port")?;
        return Ok(Target::Tunnel { host, port });
    }
    let url = reqwest::Url::parse(path).map_err(|_| format!("not a proxy request: {path}"))?;
    if url.scheme() != "http" {
        return Err(format!("{} is not proxied", url.scheme()));
    }
    let host = url
        .host_str()
        .ok_or("no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut origin_form = url.path().to_string();
    if let Some(query) = url.query() {
        origin_form.push('?');
        origin_form.push_str(query);
    }
    let mut out = format!("{method} {origin_form} HTTP/1.1\r\n").into_bytes();
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "proxy-authorization" | "keep-alive"
        ) {
            continue;
        }
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Target::Forward {
        host,
        port,
        head: out,
    })
}

async fn refuse(client: &mut TcpStream, status: u16, why: &str) -> std::io::Result<()> {
    let reason = if status == 403 {
        "Forbidden"
    } else {
        "Bad Request"
    };
    let body = format!("okcvm: {why}\n");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn heads_become_tunnels_or_origin_form_requests() {
        assert_eq!(
            parse_head(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
            Ok(Target::Tunnel {
                host: "example.com".into(),
                port: 443
            })
        );
        assert_eq!(
            parse_head(b"CONNECT [::1]:8080 HTTP/1.1\r\n\r\n"),
            Ok(Target::Tunnel {
                host: "::1".into(),
                port: 8080
            })
        );
        let Ok(Target::Forward { host, port, head }) = parse_head(
            b"GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        ) else {
            panic!("not forwarded");
        };
        assert_eq!((host.as_str(), port), ("example.com", 80));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert!(parse_head(b"GET /relative HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"GET ftp://x/ HTTP/1.1\r\n\r\n").is_err());
    }

    /// A host that resolves to a public address first and a private one after: the proxy
    /// resolves once per connection and decides on the address it uses.
    #[tokio::test]
    async fn a_rebinding_host_never_reaches_a_private_address() {
        let target = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let target_port = target.local_addr().unwrap().port();
        let reached = Arc::new(AtomicUsize::new(0));
        let counter = reached.clone();
        tokio::spawn(async move {
            while target.accept().await.is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        let lookups = Arc::new(AtomicUsize::new(0));
        let seen = lookups.clone();
        let resolve: Resolve = Arc::new(move |_, port| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let ip = if n.is_multiple_of(2) {
                    "8.8.8.8"
                } else {
                    "127.0.0.1"
                };
                Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)])
            })
        });
        // Connections are recorded; only loopback is really dialled (tests stay on it).
        let dialled = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = dialled.clone();
        let dial: Dial = Arc::new(move |address: SocketAddr| {
            record.lock().unwrap().push(address);
            Box::pin(async move {
                if address.ip().is_loopback() {
                    TcpStream::connect(address).await
                } else {
                    Err(std::io::Error::other("no route in tests"))
                }
            })
        });
        let proxy = start(Policy::default(), Net { resolve, dial })
            .await
            .unwrap();
        for _ in 0..4 {
            let mut client = TcpStream::connect(proxy).await.unwrap();
            let request = format!("CONNECT rebind.test:{target_port} HTTP/1.1\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            client.read_to_string(&mut answer).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        }
        assert_eq!(
            lookups.load(Ordering::SeqCst),
            4,
            "one lookup per connection"
        );
        let dialled = dialled.lock().unwrap().clone();
        assert!(
            dialled.iter().all(|a| a.ip().to_string() == "8.8.8.8"),
            "only the checked public address was dialled: {dialled:?}"
        );
        assert_eq!(reached.load(Ordering::SeqCst), 0, "loopback was reached");

        let mut client = TcpStream::connect(proxy).await.unwrap();
        client
            .write_all(format!("CONNECT 127.0.0.1:{target_port} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert_eq!(reached.load(Ordering::SeqCst), 0);
    }
}
