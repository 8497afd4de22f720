//! The network side: `mirror-sdk` on a tokio runtime in a thread of its own, so the UI never
//! waits on the network. Requests go in and replies come out through bounded queues:
//!
//! - requests, UI -> backend: [`REQUESTS_CAPACITY`]; when full the UI is told at once and the
//!   request is not sent (a config editor never has more than a few in flight);
//! - replies, backend -> UI: [`REPLIES_CAPACITY`]; the backend waits for room (replies are
//!   few and each matters: an apply's outcome must not be dropped).
//!
//! Every await on the network is bounded: the SDK's own connect and request timeouts, and
//! [`REQUEST_TIMEOUT`] around each request as a whole. The SDK reconnects by itself when a
//! request finds the connection gone.

use std::sync::Arc;
use std::time::Duration;

use mirror_desk::Profile;
use mirror_sdk::{Client, ClientConfig, Role, SdkError, Trust};

/// Requests waiting for the backend.
pub const REQUESTS_CAPACITY: usize = 8;
/// Replies waiting for the UI.
pub const REPLIES_CAPACITY: usize = 32;
/// Longest one request may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// What the UI asks of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The configuration in force.
    ReadConfig,
    /// Apply this configuration live, whole or not at all (admin).
    Apply(String),
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A session is open.
    Connected {
        /// The token's role (applying needs admin).
        role: Role,
        /// The engine's version.
        server: String,
    },
    /// The configuration in force.
    Config(String),
    /// The configuration sent was applied (a `Config` with what is now in force follows).
    Applied,
    /// The engine refused it, with its message (what cannot change live, a bad value …).
    Refused(String),
    /// The request failed on the way (no connection, timeout); `unknown` when it was sent and
    /// no answer came, so whether an apply happened is not known until the config is re-read.
    Failed {
        /// What happened.
        message: String,
        /// Sent, outcome unknown.
        unknown: bool,
    },
}

/// The running backend. Dropping it stops the thread.
pub struct Backend {
    requests: flume::Sender<Request>,
    replies: flume::Receiver<Reply>,
    /// Where it connects.
    pub profile: Profile,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("profile", &self.profile).finish_non_exhaustive()
    }
}

type Repaint = Arc<dyn Fn() + Send + Sync>;

impl Backend {
    /// Connects to `profile` with `token` (then reads the configuration in force); `repaint`
    /// is called when a reply arrives.
    pub fn start(profile: Profile, token: String, repaint: Option<Repaint>) -> Result<Self, String> {
        let server = profile.address.trim().parse().map_err(|e| format!("address {:?}: {e}", profile.address))?;
        let mut config = ClientConfig::new(server, Trust::Fingerprint(profile.fingerprint.trim().to_owned()), token);
        config.server_name = profile.server_name.clone();
        config.client_name = format!("mirror-map/{}", env!("CARGO_PKG_VERSION"));
        let (requests, inbox) = flume::bounded(REQUESTS_CAPACITY);
        let (outbox, replies) = flume::bounded(REPLIES_CAPACITY);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("mirror-map-net")
            .build()
            .map_err(|e| format!("network runtime: {e}"))?;
        let wake = repaint.unwrap_or_else(|| Arc::new(|| {}));
        std::thread::Builder::new()
            .name("mirror-map-backend".into())
            .spawn(move || {
                runtime.block_on(run(config, inbox, outbox, wake));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| format!("network thread: {e}"))?;
        Ok(Self { requests, replies, profile })
    }

    /// Queues a request, or says why it was not.
    pub fn send(&self, request: Request) -> Result<(), String> {
        self.requests.try_send(request).map_err(|error| match error {
            flume::TrySendError::Full(_) => format!("{REQUESTS_CAPACITY} requests are already waiting: not sent"),
            flume::TrySendError::Disconnected(_) => "the network thread stopped: not sent".into(),
        })
    }

    /// Replies that have arrived, oldest first.
    pub fn replies(&self) -> Vec<Reply> {
        self.replies.try_iter().collect()
    }
}

async fn run(config: ClientConfig, inbox: flume::Receiver<Request>, outbox: flume::Sender<Reply>, wake: Repaint) {
    let reply = |reply: Reply| {
        let outbox = outbox.clone();
        let wake = Arc::clone(&wake);
        async move {
            let sent = outbox.send_async(reply).await.is_ok();
            wake();
            sent
        }
    };
    let client = match tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(config)).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => {
            reply(failed(&error)).await;
            return;
        }
        Err(_) => {
            reply(Reply::Failed { message: format!("no session within {REQUEST_TIMEOUT:?}"), unknown: false }).await;
            return;
        }
    };
    if let Some(welcome) = client.welcome() {
        reply(Reply::Connected { role: welcome.role, server: welcome.server }).await;
    }
    let mut pending = vec![Request::ReadConfig];
    loop {
        let request = match pending.pop() {
            Some(request) => request,
            None => match inbox.recv_async().await {
                Ok(request) => request,
                Err(_) => break,
            },
        };
        let answer = match &request {
            Request::ReadConfig => bounded(client.read_config()).await.map(Reply::Config),
            Request::Apply(text) => bounded(client.apply_config(text)).await.map(|()| Reply::Applied),
        };
        let answer = answer.unwrap_or_else(|error| match error {
            SdkError::Server(refusal) => Reply::Refused(refusal.message),
            other => failed(&other),
        });
        let reread = matches!(request, Request::Apply(_))
            && matches!(answer, Reply::Applied | Reply::Failed { unknown: true, .. });
        if !reply(answer).await {
            break;
        }
        if reread {
            // What is in force now, whichever way the apply went.
            pending.push(Request::ReadConfig);
        }
    }
    client.close().await;
}

async fn bounded<T>(request: impl Future<Output = Result<T, SdkError>>) -> Result<T, SdkError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .unwrap_or(Err(SdkError::Timeout { what: "the engine's answer", after: REQUEST_TIMEOUT }))
}

fn failed(error: &SdkError) -> Reply {
    match error {
        SdkError::Connection { sent: true, .. } | SdkError::Timeout { .. } => Reply::Failed {
            message: format!("{error}; whether it was applied is unknown until the configuration is read again"),
            unknown: true,
        },
        other => Reply::Failed { message: other.to_string(), unknown: false },
    }
}
