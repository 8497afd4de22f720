//! What the HTTP tests share: plain HTTP/1.1 requests over a TCP socket from a chosen
//! 127.0.0.x address, and their replies.

#![allow(dead_code, unused_macros)]

/// `[engine]` and `[sim]` for tests: one unpinned shard, an instant simulated broker.
macro_rules! engine_sim {
    () => {
        r#"
[engine]
shards = 1
spin_iterations = 100
pin_cores = false

[sim]
tick_ms = 0
latency_min_ms = 0
latency_max_ms = 0
slippage_ticks_max = 0
"#
    };
}

/// Two futures, ES and NQ, as the tests' catalog.
macro_rules! es_nq {
    () => {
        r#"
[instruments.ES]
kind = "future"
contract_size = 50
tick_size = "0.25"
lot_step = 1
min_qty = 1
max_qty = 200
price = 5000

[instruments.NQ]
kind = "future"
contract_size = 20
tick_size = "0.25"
lot_step = 1
min_qty = 1
max_qty = 200
price = 18000
"#
    };
}

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest wait for anything in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// The usual client address.
pub(crate) const LOCAL: [u8; 4] = [127, 0, 0, 1];

/// Now, Unix seconds.
pub(crate) fn now_s() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// A response: status, headers of interest, body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) retry_after: Option<String>,
    pub(crate) www_authenticate: Option<String>,
    /// Every header, as sent.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    /// A header's value (the first of that name, any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The problem document's detail, checking that it is one.
    pub(crate) fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        self.json()["detail"].as_str().unwrap_or_default().to_owned()
    }
}

/// One HTTP/1.1 request from `client` (a 127.0.0.x address) to `server`.
pub(crate) async fn request(
    server: SocketAddr,
    client: [u8; 4],
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((client, 0))).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading everything and close.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await.expect("a response in time");
    if raw.is_empty() {
        read.unwrap();
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))).collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    Reply {
        status,
        content_type: header("content-type").unwrap_or_default(),
        retry_after: header("retry-after"),
        www_authenticate: header("www-authenticate"),
        body: body.to_owned(),
        headers,
    }
}
