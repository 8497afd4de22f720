//! Connections and command streams: the hello, then one request per bidirectional stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mirror_model::SignalAction;
use mirror_wire::proto::{
    ErrorCode, ErrorReply, Hello, HelloReply, PROTOCOL_VERSION, Request, Response, Role, Welcome, close_code,
    stream_code,
};

use super::auth::Grant;
use super::io::{StreamError, read_frame, write_frame};
use super::{Context, pair, state};
use crate::account::{Control, FlattenReason};
use crate::runtime::{ControlScope, SubmitError};

/// One authenticated connection.
pub(super) struct Session {
    pub(super) id: u64,
    pub(super) grant: Grant,
    /// `gateway:<token name>`, recorded in the journal's audit log for controls.
    pub(super) who: String,
}

/// Decrements the connection count when the connection's task ends, however it ends.
struct Counted(Arc<Context>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn accept_loop(endpoint: quinn::Endpoint, context: Arc<Context>) {
    let mut shutdown = context.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.changed() => return,
        };
        let Some(incoming) = incoming else { return };
        if context.connections.load(Ordering::Relaxed) >= context.limits.connections_max {
            tracing::warn!(remote = %incoming.remote_address(), "gateway: too many connections; refused");
            incoming.refuse();
            continue;
        }
        context.connections.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(Arc::clone(&context));
        tokio::spawn(async move {
            let context = Arc::clone(&counted.0);
            serve_connection(incoming, context).await;
            drop(counted);
        });
    }
}

async fn serve_connection(incoming: quinn::Incoming, context: Arc<Context>) {
    let remote = incoming.remote_address();
    let limit = context.limits.hello_timeout;
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => {
            tracing::debug!(%remote, %error, "gateway: handshake refused");
            return;
        }
    };
    let connection = match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            tracing::info!(%remote, %error, "gateway: handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%remote, "gateway: handshake timed out");
            return;
        }
    };
    let Some(session) = hello(&connection, &context).await else { return };
    let session = Arc::new(session);
    tracing::info!(%remote, session = session.id, token = %session.grant.name, role = ?session.grant.role, "gateway: session opened");
    let mut shutdown = context.shutdown.clone();
    loop {
        let stream = tokio::select! {
            stream = connection.accept_bi() => stream,
            _ = shutdown.changed() => {
                connection.close(close_code::SHUTDOWN.into(), b"shutting down");
                return;
            }
        };
        match stream {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(send, recv, Arc::clone(&session), Arc::clone(&context)));
            }
            Err(error) => {
                tracing::info!(%remote, session = session.id, %error, "gateway: session closed");
                return;
            }
        }
    }
}

/// The first stream's hello. Anything but a valid hello with a valid token in time closes the
/// connection: no session, no other stream read.
async fn hello(connection: &quinn::Connection, context: &Context) -> Option<Session> {
    let limit = context.limits.hello_timeout;
    let remote = connection.remote_address();
    let refuse = |code: u32, reason: &'static str| {
        tracing::info!(%remote, reason, "gateway: no session");
        connection.close(code.into(), reason.as_bytes());
        None
    };
    let (mut send, mut recv) = match tokio::time::timeout(limit, connection.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(_)) => return None,
        Err(_) => return refuse(close_code::UNAUTHORIZED, "no hello in time"),
    };
    let hello: Hello = match read_frame(&mut recv, limit).await {
        Ok(hello) => hello,
        Err(StreamError::Timeout(..)) => return refuse(close_code::UNAUTHORIZED, "no hello in time"),
        Err(error) => {
            tracing::info!(%remote, %error, "gateway: bad hello");
            return refuse(close_code::BAD_HELLO, "the first frame is not a valid hello");
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        return refuse(close_code::VERSION, "unsupported protocol version");
    }
    let Some(grant) = context.tokens.verify(&hello.token) else {
        let reply = HelloReply::Refused(ErrorReply::new(ErrorCode::Forbidden, "invalid token", false));
        let _ = write_frame(&mut send, &reply, limit).await;
        let _ = send.finish();
        // Give the refusal a moment to arrive before the close does (bounded).
        let _ = tokio::time::timeout(std::time::Duration::from_millis(250), send.stopped()).await;
        return refuse(close_code::UNAUTHORIZED, "invalid token");
    };
    let id = context.sessions.fetch_add(1, Ordering::Relaxed);
    let welcome = HelloReply::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        session: id,
        role: grant.role,
        epoch: context.hub.epoch(),
        source: grant.source.and_then(|origin| match origin {
            mirror_model::Origin::Source(source) => Some(source.0),
            mirror_model::Origin::Account(_) => None,
        }),
        server: format!("mirror-engine {}", env!("CARGO_PKG_VERSION")),
    });
    if write_frame(&mut send, &welcome, limit).await.is_err() {
        return None;
    }
    let _ = send.finish();
    let who = format!("gateway:{}", grant.name);
    tracing::info!(%remote, session = id, client = %hello.client, token = %grant.name, "gateway: hello");
    Some(Session { id, grant, who })
}

/// One command stream: read the request; a bad frame is answered with an error and the
/// stream closed, nothing else is affected.
async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    session: Arc<Session>,
    context: Arc<Context>,
) {
    let limits = &context.limits;
    let request: Request = match read_frame(&mut recv, limits.frame_timeout).await {
        Ok(request) => request,
        Err(error) if error.is_bad_frame() => {
            tracing::info!(session = session.id, %error, "gateway: bad frame; stream closed");
            let reply = Response::Error(ErrorReply::new(ErrorCode::BadFrame, error.to_string(), false));
            let _ = write_frame(&mut send, &reply, limits.write_timeout).await;
            let _ = send.finish();
            let _ = recv.stop(stream_code::BAD_FRAME.into());
            return;
        }
        Err(error) => {
            tracing::debug!(session = session.id, %error, "gateway: stream ended before a request");
            return;
        }
    };
    match request {
        Request::Subscribe(subscribe) => {
            state::serve_subscriber(send, recv, subscribe, Arc::clone(&context)).await;
        }
        Request::SubmitPair(ticket) => {
            if let Err(reply) = may_trade(&session) {
                let _ = write_frame(&mut send, &Response::Error(reply), limits.write_timeout).await;
                let _ = send.finish();
                return;
            }
            pair::serve_pair(send, ticket, session, context).await;
        }
        other => {
            let response = command(other, &session, &context).await;
            let _ = write_frame(&mut send, &response, limits.write_timeout).await;
            let _ = send.finish();
            // Let the reply reach the client before the stream's state is dropped.
            let _ = tokio::time::timeout(limits.write_timeout, send.stopped()).await;
        }
    }
}

fn forbidden(what: &str, role: Role) -> ErrorReply {
    ErrorReply::new(ErrorCode::Forbidden, format!("{what} needs a higher role than {role:?}"), false)
}

pub(super) fn may_trade(session: &Session) -> Result<mirror_model::Origin, ErrorReply> {
    if session.grant.role < Role::Trader {
        return Err(forbidden("sending orders", session.grant.role));
    }
    session
        .grant
        .source
        .ok_or_else(|| ErrorReply::new(ErrorCode::Forbidden, "this token has no source to send orders as", false))
}

/// The reply for an engine refusal.
pub(super) fn submit_error(error: &SubmitError) -> ErrorReply {
    let (code, retryable) = match error {
        SubmitError::Invalid(_) | SubmitError::UnknownOrigin(_) | SubmitError::UnknownSymbol { .. } => {
            (ErrorCode::Refused, false)
        }
        SubmitError::Encode(_) => (ErrorCode::Internal, false),
        SubmitError::Stopped => (ErrorCode::Stopped, true),
        SubmitError::Journal(_) => (ErrorCode::Internal, true),
        SubmitError::Unconfirmed(_) => (ErrorCode::Unconfirmed, false),
    };
    ErrorReply::new(code, error.to_string(), retryable)
}

/// Runs a blocking engine call on a blocking thread, bounded by `limit`.
pub(super) async fn blocking<T: Send + 'static>(
    limit: std::time::Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ErrorReply> {
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(call)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(ErrorReply::new(ErrorCode::Internal, format!("engine call failed: {error}"), false)),
        Err(_) => Err(ErrorReply::new(
            ErrorCode::Unconfirmed,
            format!("no answer from the engine in {limit:?}; the command may have been applied: do not resend"),
            false,
        )),
    }
}

/// Sends a signal for the session's source; its id once accepted.
pub(super) async fn submit(
    context: &Context,
    origin: mirror_model::Origin,
    action: SignalAction,
    note: String,
) -> Result<mirror_model::SignalId, ErrorReply> {
    let engine = context.engine.clone();
    blocking(context.limits.submit_timeout, move || engine.submit(origin, action, None, &note))
        .await?
        .map_err(|error| submit_error(&error))
}

async fn command(request: Request, session: &Session, context: &Context) -> Response {
    match run_command(request, session, context).await {
        Ok(response) => response,
        Err(reply) => Response::Error(reply),
    }
}

async fn run_command(request: Request, session: &Session, context: &Context) -> Result<Response, ErrorReply> {
    let role = session.grant.role;
    let limit = context.limits.submit_timeout;
    let scope = |account: Option<u32>| match account {
        Some(id) => ControlScope::Account(mirror_model::AccountId(id)),
        None => ControlScope::All,
    };
    let control = |scope: ControlScope, control: Control| {
        let engine = context.engine.clone();
        let who = session.who.clone();
        blocking(limit, move || engine.control_by(&who, scope, control))
    };
    match request {
        Request::Ping { nonce } => Ok(Response::Pong { nonce, server_unix_ms: context.engine.clock().now().unix_ms }),
        Request::ReadConfig => {
            let Some(config) = context.config.clone() else { return Err(no_config()) };
            let toml = blocking(limit, move || config.read()).await?;
            toml.map(|toml| Response::Config { toml })
                .map_err(|reason| ErrorReply::new(ErrorCode::Internal, reason, true))
        }
        Request::ApplyConfig { toml } => {
            if role < Role::Admin {
                return Err(forbidden("applying a configuration", role));
            }
            let Some(config) = context.config.clone() else { return Err(no_config()) };
            let who = session.who.clone();
            blocking(limit, move || config.apply(&toml, &who))
                .await?
                .map(|()| Response::Done)
                .map_err(|reason| ErrorReply::new(ErrorCode::Refused, reason, false))
        }
        Request::Flatten { account } => {
            admin(role, "flattening")?;
            let flatten = Control::Flatten {
                id: context.engine.next_signal_id(),
                reason: FlattenReason::Operator,
                freeze: false,
            };
            done(control(scope(account), flatten).await?)
        }
        Request::Pause { account } => {
            admin(role, "pausing")?;
            let pause = if account.is_some() { Control::Pause } else { Control::PauseAll };
            done(control(scope(account), pause).await?)
        }
        Request::Resume { account } => {
            admin(role, "resuming")?;
            let resume = if account.is_some() { Control::Resume } else { Control::ResumeAll };
            done(control(scope(account), resume).await?)
        }
        Request::Subscribe(_) | Request::SubmitPair(_) => {
            Err(ErrorReply::new(ErrorCode::Internal, "handled on its own stream", false))
        }
        order => {
            let origin = may_trade(session)?;
            let note = match &order {
                Request::Submit(ticket) => ticket.note.clone(),
                _ => String::new(),
            };
            let action = order
                .to_action()
                .map_err(|e| ErrorReply::new(ErrorCode::BadFrame, e.to_string(), false))?
                .ok_or_else(|| ErrorReply::new(ErrorCode::Internal, "not an order", false))?;
            let signal = submit(context, origin, action, note).await?;
            Ok(Response::Accepted { signal: signal.0 })
        }
    }
}

fn admin(role: Role, what: &str) -> Result<(), ErrorReply> {
    if role < Role::Admin { Err(forbidden(what, role)) } else { Ok(()) }
}

fn done(result: Result<(), SubmitError>) -> Result<Response, ErrorReply> {
    result.map(|()| Response::Done).map_err(|error| submit_error(&error))
}

fn no_config() -> ErrorReply {
    ErrorReply::new(ErrorCode::Unavailable, "this server has no configuration service", false)
}
