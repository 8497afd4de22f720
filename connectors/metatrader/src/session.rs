//! One connection from an Expert Advisor: transport (TLS or plain, told apart by the first
//! byte), `hello` and authentication, the opening snapshot, then frames until either side
//! stops. A reader (this task) and a writer task share the connection; the writer also sends
//! the heartbeat.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::bridge::{Counters, Shared};
use crate::protocol::{EngineMessage, ErrorFrame, PROTOCOL_VERSION, Ping, TerminalMessage, Welcome, decode_terminal};
use crate::transport::{FrameReader, FrameWriter, LinkError, Stream, now_unix_ms};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

async fn negotiate(
    shared: &Shared,
    tcp: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    allow_plaintext: bool,
) -> Result<Box<dyn Stream>, LinkError> {
    let limit = shared.settings.handshake_timeout;
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(limit, tcp.peek(&mut first))
        .await
        .map_err(|_| LinkError::Timeout(format!("nothing received within {limit:?}")))??;
    if peeked == 0 {
        return Err(LinkError::Closed);
    }
    match (first[0] == TLS_HANDSHAKE, acceptor) {
        (true, Some(acceptor)) => {
            let tls = tokio::time::timeout(limit, acceptor.accept(tcp))
                .await
                .map_err(|_| LinkError::Timeout(format!("no TLS handshake within {limit:?}")))??;
            Ok(Box::new(tls))
        }
        (true, None) => Err(LinkError::Unexpected("TLS handshake, but the bridge has no certificate".into())),
        (false, _) if allow_plaintext => Ok(Box::new(tcp)),
        (false, _) => Err(LinkError::Unexpected("plain TCP, but the bridge requires TLS".into())),
    }
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    allow_plaintext: bool,
) {
    let settings = shared.settings;
    let stream = match negotiate(&shared, tcp, acceptor, allow_plaintext).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%peer, %error, "connection dropped before hello");
            return;
        }
    };
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read_half, settings.max_frame_bytes, decode_terminal);
    let mut writer = FrameWriter::new(write_half, settings.max_frame_bytes, settings.write_timeout);
    let hello = match reader.next_within(settings.handshake_timeout, "hello").await {
        Ok(TerminalMessage::Hello(hello)) => hello,
        Ok(_) => {
            return refuse(&shared, &mut writer, peer, ("protocol", "the first frame must be a hello".into())).await;
        }
        Err(error) => {
            if matches!(error, LinkError::Protocol(_)) {
                Counters::add(&shared.counters.protocol_errors, 1);
            }
            tracing::warn!(%peer, %error, "no hello");
            return;
        }
    };
    let terminal = match shared.authenticate(&hello) {
        Ok(terminal) => terminal,
        Err(refusal) => return refuse(&shared, &mut writer, peer, refusal).await,
    };
    let session = shared.next_session();
    let (out, outbound) = mpsc::channel(settings.outbound_capacity);
    let close = Arc::new(watch::channel(false).0);
    let login = hello.login;
    if let Err(refusal) = terminal.attach(session, out.clone(), Arc::clone(&close), hello) {
        return refuse(&shared, &mut writer, peer, refusal).await;
    }
    Counters::add(&shared.counters.sessions, 1);
    tracing::info!(terminal = %terminal.config.name, %peer, login, session, "terminal connected");
    let welcome = Welcome {
        proto: PROTOCOL_VERSION,
        session,
        heartbeat_ms: u64::try_from(settings.heartbeat.as_millis()).unwrap_or(u64::MAX),
    };
    // The channel is new and empty: the welcome fits.
    let _ = out.try_send(EngineMessage::Welcome(welcome));
    let writing = tokio::spawn(write_loop(writer, outbound, close.subscribe(), Arc::clone(&close), settings.heartbeat));

    let ended = async {
        match reader.next_within(settings.handshake_timeout, "snapshot").await? {
            TerminalMessage::Snapshot(snapshot) if snapshot.sync == 0 => {
                terminal.on_opening_snapshot(&shared, session, snapshot).await?;
            }
            _ => return Err(LinkError::Unexpected("the frame after hello must be the opening snapshot".into())),
        }
        let mut closed = close.subscribe();
        let mut shutdown = shared.shutdown.clone();
        loop {
            let frame = tokio::select! {
                biased;
                _ = closed.wait_for(|closed| *closed) => Err(LinkError::Unexpected("session closed".into())),
                _ = shutdown.wait_for(|stop| *stop) => Err(LinkError::Unexpected("the bridge is shutting down".into())),
                frame = reader.next_within(settings.idle_timeout, "frame from the terminal") => frame,
            };
            terminal.on_frame(&shared, session, frame?).await?;
        }
    }
    .await;
    let reason = match ended {
        Ok(()) => "session ended".to_owned(),
        Err(error) => {
            if let LinkError::Protocol(protocol) = &error {
                Counters::add(&shared.counters.protocol_errors, 1);
                let _ = out.try_send(EngineMessage::Error(ErrorFrame {
                    code: "protocol".into(),
                    message: protocol.to_string(),
                }));
            }
            error.to_string()
        }
    };
    tracing::info!(terminal = %terminal.config.name, session, %reason, "terminal session ended");
    terminal.detach(&shared, session, &reason).await;
    close.send_replace(true);
    drop(out);
    // The writer flushes what is queued (an error frame) and closes, under its write timeout.
    let limit = settings.write_timeout * 2;
    let abort = writing.abort_handle();
    if tokio::time::timeout(limit, writing).await.is_err() {
        abort.abort();
    }
}

async fn refuse<W: tokio::io::AsyncWrite + Unpin>(
    shared: &Shared,
    writer: &mut FrameWriter<W>,
    peer: SocketAddr,
    (code, message): (&'static str, String),
) {
    Counters::add(&shared.counters.refused, 1);
    tracing::warn!(%peer, code, %message, "terminal refused");
    let _ = writer.send(&EngineMessage::Error(ErrorFrame { code: code.into(), message })).await;
    writer.shutdown().await;
}

/// Writes queued frames in order and a ping every `heartbeat`; stops when the session
/// closes (after writing what was queued before) or a write fails (closing the session).
async fn write_loop<W: tokio::io::AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut outbound: mpsc::Receiver<EngineMessage>,
    mut closed: watch::Receiver<bool>,
    close: Arc<watch::Sender<bool>>,
    heartbeat: std::time::Duration,
) {
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            biased;
            message = outbound.recv() => match message {
                Some(message) => Some(message),
                None => break,
            },
            _ = closed.wait_for(|closed| *closed) => None,
            _ = ticker.tick() => Some(EngineMessage::Ping(Ping { t: now_unix_ms() })),
        };
        let Some(message) = message else {
            // Closing: write what was queued before the close (an error frame says why).
            while let Ok(message) = outbound.try_recv() {
                if writer.send(&message).await.is_err() {
                    break;
                }
            }
            break;
        };
        if let Err(error) = writer.send(&message).await {
            tracing::warn!(%error, "write to the terminal failed");
            break;
        }
    }
    close.send_replace(true);
    writer.shutdown().await;
}
