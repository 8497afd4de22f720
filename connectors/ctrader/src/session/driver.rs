//! The connection's life: connect, authenticate the application, read and write until the
//! connection ends, tidy up, wait, connect again.

use std::sync::Arc;
use std::time::Duration;

use mirror_connector::ConnectionState;
use mirror_model::{ClientOrderId, Price};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::scheduler::{Lane, Next};
use super::{
    AccountStatus, Core, Inflight, Link, Meta, Outgoing, Shared, WireWrite, bump, connection_event, expect, restore,
    settle_refusal, settle_resolution, unix_ms,
};
use crate::codec::{FrameDecoder, encode_message};
use crate::error::CtraderError;
use crate::proto::{
    OpenApiMessage, ProtoErrorRes, ProtoHeartbeatEvent, ProtoMessage, ProtoOAAccountDisconnectEvent,
    ProtoOAAccountsTokenInvalidatedEvent, ProtoOAAmendPositionSLTPReq, ProtoOAApplicationAuthReq,
    ProtoOAApplicationAuthRes, ProtoOAClientDisconnectEvent, ProtoOAErrorRes, ProtoOAExecutionEvent,
    ProtoOAExecutionType, ProtoOAOrderErrorEvent, ProtoOAPositionStatus, ProtoOAReconcileRes, ProtoOASpotEvent,
    ProtoOASymbolChangedEvent, ProtoOATraderUpdatedEvent, ProtoOATrailingSLChangedEvent,
};
use crate::units::{double_from_price, money_from_scaled};

/// Requests written together at most (a burst beyond it is written in several goes).
const WRITE_BATCH_MAX: usize = 64;

/// Work the reader found that must happen outside the lock.
enum Deferred {
    /// Set a market order's stop loss and take profit now that it has filled.
    Protect { account: i64, position: i64, levels: (Option<Price>, Option<Price>) },
    /// Authorise an account again (the server dropped it).
    Reauthorize { account: i64 },
    /// Refresh the access token, then authorise these accounts again.
    NewToken { accounts: Vec<i64> },
    /// The account's consumer fell a whole stream behind: restore it once it caught up.
    Resynchronise { account: i64 },
}

/// Starts the driver task unless it runs.
pub(crate) fn ensure_running(shared: &Arc<Shared>) {
    {
        let mut core = shared.lock();
        if core.driver_running || core.stopping {
            return;
        }
        core.driver_running = true;
    }
    tokio::spawn(run(Arc::clone(shared)));
}

/// Connects again and again until shut down or refused for good.
async fn run(shared: Arc<Shared>) {
    let config = &shared.config;
    let mut backoff = config.reconnect_min;
    let mut attempt: u32 = 0;
    let mut fatal = false;
    let final_reason = loop {
        if shared.lock().stopping {
            break "shut down".to_owned();
        }
        let end = match connect_tls(&shared).await {
            Ok(stream) => serve(&shared, stream).await,
            Err(reason) => {
                tracing::warn!(%reason, "cTrader connection attempt failed");
                End { authenticated: false, fatal: None, reason }
            }
        };
        teardown(&shared, &end.reason);
        if let Some(reason) = end.fatal {
            fatal = true;
            break reason;
        }
        if shared.lock().stopping {
            break "shut down".to_owned();
        }
        if end.authenticated {
            backoff = config.reconnect_min;
        }
        // Spread reconnects of many sessions: a deterministic jitter of up to a quarter.
        attempt = attempt.wrapping_add(1);
        let jitter = backoff.mul_f64(f64::from(attempt.wrapping_mul(2_654_435_761) % 1000) / 4000.0);
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            () = shared.shutdown.notified() => {}
        }
        backoff = (backoff * 2).min(config.reconnect_max);
    };
    let mut core = shared.lock();
    core.driver_running = false;
    for slot in core.accounts.values_mut() {
        slot.wanted = false;
        slot.ready_generation = None;
        slot.restoring = None;
        slot.emit(connection_event(ConnectionState::Disconnected { reason: final_reason.clone() }), &shared.counters());
        // Refused credentials are an authentication failure; a shutdown is just down.
        let error = if fatal {
            mirror_connector::ConnectorError::Auth(final_reason.clone())
        } else {
            mirror_connector::ConnectorError::NotConnected
        };
        slot.set_status(AccountStatus::Failed(error));
    }
    // Requests still queued can never go now.
    let accounts: Vec<i64> = core.accounts.keys().copied().collect();
    let mut dropped = core.scheduler.drain_connection_work();
    for account in accounts {
        dropped.extend(core.scheduler.drain_account(account));
    }
    drop(core);
    for item in dropped {
        if let Some(reply) = item.reply {
            let _ = reply.send(Err(CtraderError::Down(final_reason.clone())));
        }
    }
    shared.link.send_replace(Link::Failed(final_reason));
}

struct End {
    authenticated: bool,
    fatal: Option<String>,
    reason: String,
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect_tls(shared: &Shared) -> Result<Tls, String> {
    let config = &shared.config;
    let name = rustls::pki_types::ServerName::try_from(config.server_name.clone())
        .map_err(|error| format!("bad server name {}: {error}", config.server_name))?;
    let connect = async {
        let tcp = TcpStream::connect((config.host.as_str(), config.port)).await.map_err(|e| e.to_string())?;
        // Orders are small and latency matters more than packing.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        shared.tls.connect(name, tcp).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(config.connect_timeout, connect)
        .await
        .map_err(|_| format!("no connection to {}:{} within {:?}", config.host, config.port, config.connect_timeout))?
}

/// Runs one connection until it ends.
async fn serve(shared: &Arc<Shared>, stream: Tls) -> End {
    let generation = {
        let mut core = shared.lock();
        core.generation += 1;
        core.app_authed = false;
        core.generation
    };
    bump(&shared.counters.connections);
    let (reader, writer) = tokio::io::split(stream);
    let auth = ProtoOAApplicationAuthReq {
        payload_type: None,
        client_id: shared.config.client_id.clone(),
        client_secret: shared.config.client_secret.clone(),
    };
    let handshake = async {
        let pending = shared
            .enqueue(Lane::Connection, &auth, Meta::Plain, "application auth")
            .map_err(|error| (false, error.to_string()))?;
        let reply = pending.wait(Instant::now() + shared.config.request_timeout).await;
        match reply.and_then(|reply| expect::<ProtoOAApplicationAuthRes>(&reply, "application auth")) {
            Ok(_) => Ok(()),
            Err(error @ CtraderError::Refused { .. }) => Err((true, error.to_string())),
            Err(error) => Err((false, error.to_string())),
        }
    };
    let mut authenticated = false;
    let read = read_loop(shared, reader, generation);
    let write = write_loop(shared, writer, generation);
    tokio::pin!(read, write, handshake);
    let mut handshake_done = false;
    loop {
        tokio::select! {
            reason = &mut read => return End { authenticated, fatal: None, reason },
            reason = &mut write => return End { authenticated, fatal: None, reason },
            () = shared.shutdown.notified() => return End { authenticated, fatal: None, reason: "shut down".into() },
            outcome = &mut handshake, if !handshake_done => {
                handshake_done = true;
                match outcome {
                    Ok(()) => {
                        authenticated = true;
                        authenticated_now(shared, generation);
                    }
                    Err((true, reason)) => return End { authenticated, fatal: Some(reason.clone()), reason },
                    Err((false, reason)) => return End { authenticated, fatal: None, reason },
                }
            }
        }
    }
}

/// The application is in: authorise every account that wants to be.
fn authenticated_now(shared: &Arc<Shared>, generation: u64) {
    let accounts: Vec<i64> = {
        let mut core = shared.lock();
        core.app_authed = true;
        core.accounts
            .iter_mut()
            .filter(|(_, slot)| slot.wanted && slot.restoring.is_none())
            .map(|(id, slot)| {
                slot.restoring = Some(generation);
                *id
            })
            .collect()
    };
    shared.link.send_replace(Link::Up(generation));
    shared.wake_writer();
    for account in accounts {
        tokio::spawn(restore(Arc::clone(shared), account, generation));
    }
}

/// The connection is gone: every request on the wire has an unknown outcome, session work is
/// void, accounts are down until restored on the next connection.
fn teardown(shared: &Shared, reason: &str) {
    let mut core = shared.lock();
    core.app_authed = false;
    core.went_down_unix_ms = Some(unix_ms());
    shared.link.send_replace(Link::Down);
    let inflight: Vec<Inflight> = core.inflight.drain().map(|(_, i)| i).collect();
    let queued = core.scheduler.drain_connection_work();
    for flight in &inflight {
        if let (Some(account), Meta::Order { client_id }) = (flight.account, &flight.meta)
            && let Some(slot) = core.accounts.get_mut(&account)
            && slot.tracker.order_of(client_id).is_none()
        {
            slot.in_doubt.entry(*client_id).or_insert(flight.sent_unix_ms);
        }
    }
    let counters = shared.counters();
    for slot in core.accounts.values_mut() {
        if slot.wanted && slot.in_step() {
            slot.emit(connection_event(ConnectionState::Reconnecting { reason: reason.to_owned() }), &counters);
        }
        slot.ready_generation = None;
        slot.restoring = None;
        if !matches!(*slot.status.borrow(), AccountStatus::Failed(_)) {
            slot.set_status(AccountStatus::Down);
        }
    }
    drop(core);
    for flight in inflight {
        let _ = flight.reply.send(Err(CtraderError::ConnectionLost { operation: flight.operation, sent: true }));
    }
    for item in queued {
        if let Some(reply) = item.reply {
            let _ = reply.send(Err(CtraderError::ConnectionLost { operation: item.operation, sent: false }));
        }
    }
}

impl Core {
    /// The next request to write, registered as in flight when it expects an answer.
    fn next_outgoing(&mut self, now: Instant) -> Next<Outgoing> {
        let generation = self.generation;
        loop {
            let Core { scheduler, accounts, app_authed, .. } = self;
            let next = scheduler.next(now, *app_authed, |account| {
                accounts.get(&account).is_some_and(|slot| slot.ready_generation == Some(generation))
            });
            let Next::Send(mut item) = next else { return next };
            if !item.ticket.mark_sent() {
                // Given up by its caller an instant ago.
                continue;
            }
            if let Some(reply) = item.reply.take() {
                let flight = Inflight {
                    reply,
                    account: item.account,
                    meta: std::mem::replace(&mut item.meta, Meta::Plain),
                    operation: item.operation,
                    sent_unix_ms: super::unix_ms(),
                };
                self.inflight.insert(item.msg_id.clone(), flight);
            }
            return Next::Send(item);
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(shared: &Shared, mut writer: W, generation: u64) -> String {
    let config = &shared.config;
    let heartbeat = match encode_message(&ProtoHeartbeatEvent::default(), None) {
        Ok(frame) => frame,
        Err(error) => return format!("cannot encode a heartbeat: {error}"),
    };
    let mut last_write = Instant::now();
    loop {
        let now = Instant::now();
        let next = {
            let mut core = shared.lock();
            if core.generation != generation {
                return "replaced by a newer connection".into();
            }
            core.next_outgoing(now)
        };
        let heartbeat_due = last_write + config.heartbeat_interval;
        match next {
            Next::Send(first) => {
                // Everything else that may go now goes in the same write and flush: one
                // syscall and one TLS record for a burst instead of one per request.
                let mut batch = vec![first];
                {
                    let mut core = shared.lock();
                    while batch.len() < WRITE_BATCH_MAX && core.generation == generation {
                        match core.next_outgoing(now) {
                            Next::Send(item) => batch.push(item),
                            _ => break,
                        }
                    }
                }
                let bytes: Vec<u8> = if batch.len() == 1 {
                    std::mem::take(&mut batch[0].frame)
                } else {
                    batch.iter().flat_map(|item| item.frame.iter().copied()).collect()
                };
                if let Err(reason) = write_frame(&mut writer, &bytes, config.write_timeout).await {
                    return reason;
                }
                last_write = Instant::now();
                let written = u64::try_from(batch.len()).unwrap_or(u64::MAX);
                shared.counters.requests_sent.fetch_add(written, std::sync::atomic::Ordering::Relaxed);
                let tap = shared.lock().tap.clone();
                if let Some(tap) = tap {
                    for item in &batch {
                        let record = WireWrite {
                            account: item.account,
                            payload_type: item.payload_type,
                            at: last_write.into_std(),
                        };
                        // Never wait for a measurement consumer.
                        let _ = tap.try_send(record);
                    }
                }
                continue;
            }
            Next::WaitUntil(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.min(heartbeat_due)) => {}
                    () = shared.writer_wake.notified() => {}
                }
            }
            Next::Idle => {
                tokio::select! {
                    () = tokio::time::sleep_until(heartbeat_due) => {}
                    () = shared.writer_wake.notified() => {}
                }
            }
        }
        if Instant::now() >= last_write + config.heartbeat_interval {
            if let Err(reason) = write_frame(&mut writer, &heartbeat, config.write_timeout).await {
                return reason;
            }
            bump(&shared.counters.heartbeats_sent);
            last_write = Instant::now();
        }
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: &[u8], timeout: Duration) -> Result<(), String> {
    let write = async {
        writer.write_all(frame).await?;
        writer.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("write failed: {error}")),
        Err(_) => Err(format!("a write did not complete within {timeout:?}")),
    }
}

async fn read_loop<R: AsyncRead + Unpin>(shared: &Arc<Shared>, mut reader: R, generation: u64) -> String {
    let mut decoder = FrameDecoder::new();
    let idle = shared.config.read_idle_timeout;
    loop {
        let buffer = decoder.buffer_mut();
        if buffer.capacity() - buffer.len() < 4_096 {
            buffer.reserve(64 * 1024);
        }
        match tokio::time::timeout(idle, reader.read_buf(buffer)).await {
            Err(_) => return format!("nothing received for {idle:?}"),
            Ok(Ok(0)) => return "closed by the server".into(),
            Ok(Err(error)) => return format!("read failed: {error}"),
            Ok(Ok(_)) => {}
        }
        let mut deferred = Vec::new();
        let mut replies = Vec::new();
        {
            let mut core = shared.lock();
            if core.generation != generation {
                return "replaced by a newer connection".into();
            }
            loop {
                match decoder.next_message() {
                    Ok(Some(message)) => dispatch(shared, &mut core, message, &mut deferred, &mut replies),
                    Ok(None) => break,
                    Err(error) => return format!("bad frame from the server: {error}"),
                }
            }
        }
        // Waiters are woken after the lock is released, so none of them contends for it.
        for (reply, message) in replies {
            let _ = reply.send(Ok(message));
        }
        for work in deferred {
            spawn_deferred(shared, work, generation);
        }
    }
}

fn spawn_deferred(shared: &Arc<Shared>, work: Deferred, generation: u64) {
    let shared = Arc::clone(shared);
    match work {
        Deferred::Protect { account, position, levels: (stop_loss, take_profit) } => {
            tokio::spawn(async move {
                let amend = ProtoOAAmendPositionSLTPReq {
                    ctid_trader_account_id: account,
                    position_id: position,
                    stop_loss: stop_loss.map(double_from_price),
                    take_profit: take_profit.map(double_from_price),
                    ..ProtoOAAmendPositionSLTPReq::default()
                };
                let deadline = Instant::now() + shared.config.request_timeout;
                let outcome = match shared.enqueue(Lane::Account(account), &amend, Meta::Plain, "protect after fill") {
                    Ok(pending) => pending
                        .wait(deadline)
                        .await
                        .and_then(|reply| expect::<ProtoOAExecutionEvent>(&reply, "protect after fill").map(|_| ())),
                    Err(error) => Err(error),
                };
                if let Err(error) = outcome {
                    tracing::error!(account, position, %error, "stop loss / take profit after the fill failed");
                }
            });
        }
        Deferred::Reauthorize { account } => start_restore(&shared, account, generation),
        Deferred::Resynchronise { account } => {
            tokio::spawn(async move {
                // Polling is fine here: an overflow is rare, and the reader must not wait.
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let mut core = shared.lock();
                    if core.stopping || core.generation != generation {
                        return;
                    }
                    let Some(slot) = core.accounts.get_mut(&account) else { return };
                    if !slot.wanted || slot.in_step() {
                        return;
                    }
                    if slot.drained() {
                        let reason = "event stream overflowed; resynchronising".to_owned();
                        slot.emit(connection_event(ConnectionState::Reconnecting { reason }), &shared.counters());
                        break;
                    }
                }
                start_restore(&shared, account, generation);
            });
        }
        Deferred::NewToken { accounts } => {
            tokio::spawn(async move {
                let stale = shared.lock().tokens.access_token.clone();
                if let Err(error) = super::refresh_tokens(&shared, &stale).await {
                    tracing::error!(%error, "the access token was invalidated and could not be refreshed");
                }
                for account in accounts {
                    start_restore(&shared, account, generation);
                }
            });
        }
    }
}

/// Starts a restore of `account` on `generation` unless one runs or the connection changed.
pub(crate) fn start_restore(shared: &Arc<Shared>, account: i64, generation: u64) {
    {
        let mut core = shared.lock();
        if core.generation != generation || !core.app_authed {
            return;
        }
        let Some(slot) = core.accounts.get_mut(&account) else { return };
        if !slot.wanted || slot.restoring.is_some() {
            return;
        }
        slot.restoring = Some(generation);
    }
    tokio::spawn(restore(Arc::clone(shared), account, generation));
}

fn client_id_of(text: Option<&str>) -> Option<ClientOrderId> {
    text?.parse().ok()
}

/// Applies one message from the server. Runs under the lock: events are enqueued in the
/// order the server sent them; replies are handed back to be sent after the lock.
fn dispatch(
    shared: &Shared,
    core: &mut Core,
    message: ProtoMessage,
    deferred: &mut Vec<Deferred>,
    replies: &mut Vec<(tokio::sync::oneshot::Sender<super::Reply>, ProtoMessage)>,
) {
    bump(&shared.counters.frames_received);
    let flight = message.client_msg_id.as_ref().and_then(|id| core.inflight.remove(id));
    let now = unix_ms();
    let counters = shared.counters();
    let order_client_id = match flight.as_ref().map(|f| &f.meta) {
        Some(Meta::Order { client_id }) => Some(*client_id),
        _ => None,
    };
    match message.payload_type {
        t if t == ProtoHeartbeatEvent::PAYLOAD_TYPE => {}
        t if t == ProtoOAExecutionEvent::PAYLOAD_TYPE => match message.unpack::<ProtoOAExecutionEvent>() {
            Ok(event) => on_execution(core, &event, order_client_id, now, &counters, deferred),
            Err(error) => tracing::warn!(%error, "undecodable execution event"),
        },
        t if t == ProtoOASpotEvent::PAYLOAD_TYPE => {
            if let Ok(event) = message.unpack::<ProtoOASpotEvent>()
                && let Some(slot) = core.accounts.get_mut(&event.ctid_trader_account_id)
                && slot.in_step()
            {
                let mut out = Vec::with_capacity(1);
                slot.tracker.on_spot(&event, now, &mut out);
                for event in out {
                    slot.emit(event, &counters);
                }
            }
        }
        t if t == ProtoOAReconcileRes::PAYLOAD_TYPE => {
            if let (Ok(snapshot), Some(flight)) = (message.unpack::<ProtoOAReconcileRes>(), flight.as_ref())
                && let Some(slot) = core.accounts.get_mut(&snapshot.ctid_trader_account_id)
            {
                match &flight.meta {
                    Meta::Baseline => slot.tracker.baseline(&snapshot.position, &snapshot.order),
                    Meta::Snapshot { account } => {
                        // In the stream exactly where the server read it.
                        let state = mirror_connector::BrokerSnapshot {
                            positions: snapshot.position.iter().filter_map(|p| slot.tracker.map_position(p)).collect(),
                            orders: snapshot.order.iter().filter_map(|o| slot.tracker.map_working(o)).collect(),
                            account: *account,
                        };
                        slot.emit(mirror_connector::ConnectorEvent::Snapshot(Box::new(state)), &counters);
                    }
                    Meta::Restore { history, in_doubt } => {
                        let mut out = Vec::new();
                        let resolutions = slot.tracker.reconcile(
                            &snapshot.position,
                            &snapshot.order,
                            history,
                            in_doubt,
                            now,
                            &mut out,
                        );
                        for (client_id, resolution) in resolutions {
                            settle_resolution(slot, client_id, resolution);
                        }
                        for event in out {
                            slot.emit(event, &counters);
                        }
                    }
                    _ => {}
                }
            }
        }
        t if t == ProtoOAOrderErrorEvent::PAYLOAD_TYPE
            || t == ProtoOAErrorRes::PAYLOAD_TYPE
            || t == ProtoErrorRes::PAYLOAD_TYPE =>
        {
            if let Some((code, _)) = super::refusal(&message)
                && code == "REQUEST_FREQUENCY_EXCEEDED"
            {
                bump(&shared.counters.rate_limited);
            }
            if let (Some(flight), Some(client_id)) = (flight.as_ref(), order_client_id)
                && let Some(slot) = flight.account.and_then(|a| core.accounts.get_mut(&a))
            {
                settle_refusal(slot, client_id, &message);
            }
            if flight.is_none() {
                tracing::warn!(payload_type = message.payload_type, "unsolicited error from the server");
            }
        }
        t if t == ProtoOAAccountDisconnectEvent::PAYLOAD_TYPE => {
            if let Ok(event) = message.unpack::<ProtoOAAccountDisconnectEvent>() {
                let account = event.ctid_trader_account_id;
                account_dropped(core, account, "the server logged the account out", &counters);
                deferred.push(Deferred::Reauthorize { account });
            }
        }
        t if t == ProtoOAAccountsTokenInvalidatedEvent::PAYLOAD_TYPE => {
            if let Ok(event) = message.unpack::<ProtoOAAccountsTokenInvalidatedEvent>() {
                let reason = event.reason.unwrap_or_else(|| "the access token was invalidated".into());
                for account in &event.ctid_trader_account_ids {
                    account_dropped(core, *account, &reason, &counters);
                }
                deferred.push(Deferred::NewToken { accounts: event.ctid_trader_account_ids });
            }
        }
        t if t == ProtoOAClientDisconnectEvent::PAYLOAD_TYPE => {
            let reason = message.unpack::<ProtoOAClientDisconnectEvent>().ok().and_then(|e| e.reason);
            tracing::warn!(reason = reason.as_deref().unwrap_or("none given"), "the server is closing the connection");
        }
        t if t == ProtoOATraderUpdatedEvent::PAYLOAD_TYPE => {
            if let Ok(event) = message.unpack::<ProtoOATraderUpdatedEvent>()
                && let Some(trader) = event.trader
                && let Some(slot) = core.accounts.get_mut(&event.ctid_trader_account_id)
            {
                let digits = trader.money_digits.unwrap_or(slot.tracker.money_digits);
                if let Some(balance) = money_from_scaled(trader.balance, digits) {
                    slot.tracker.set_balance(balance);
                }
            }
        }
        t if t == ProtoOATrailingSLChangedEvent::PAYLOAD_TYPE => {
            if let Ok(event) = message.unpack::<ProtoOATrailingSLChangedEvent>()
                && let Some(slot) = core.accounts.get_mut(&event.ctid_trader_account_id)
                && slot.in_step()
            {
                let mut out = Vec::with_capacity(1);
                slot.tracker.on_trailing_stop(event.position_id, event.stop_price, &mut out);
                for event in out {
                    slot.emit(event, &counters);
                }
            }
        }
        t if t == ProtoOASymbolChangedEvent::PAYLOAD_TYPE => {
            if let Ok(event) = message.unpack::<ProtoOASymbolChangedEvent>()
                && let Some(slot) = core.accounts.get_mut(&event.ctid_trader_account_id)
            {
                // The catalog is fetched again at the next authorisation.
                slot.symbols_stale = true;
            }
        }
        other => tracing::debug!(payload_type = other, "message ignored"),
    }
    if let Some(flight) = flight {
        replies.push((flight.reply, message));
    }
}

fn account_dropped(core: &mut Core, account: i64, reason: &str, counters: &super::CountersRef<'_>) {
    if let Some(slot) = core.accounts.get_mut(&account) {
        if slot.in_step() {
            slot.emit(connection_event(ConnectionState::Reconnecting { reason: reason.to_owned() }), counters);
        }
        slot.ready_generation = None;
        slot.restoring = None;
        slot.set_status(AccountStatus::Down);
    }
}

fn on_execution(
    core: &mut Core,
    event: &ProtoOAExecutionEvent,
    hint: Option<ClientOrderId>,
    now: i64,
    counters: &super::CountersRef<'_>,
    deferred: &mut Vec<Deferred>,
) {
    let account = event.ctid_trader_account_id;
    let Some(slot) = core.accounts.get_mut(&account) else { return };
    if !slot.in_step() {
        return;
    }
    if !slot.has_room() {
        slot.fall_out_of_step(counters);
        deferred.push(Deferred::Resynchronise { account });
        return;
    }
    let mut out = Vec::with_capacity(3);
    slot.tracker.on_execution(event, hint, now, &mut out);
    let client_id = event.order.as_ref().and_then(|o| client_id_of(o.client_order_id.as_deref())).or(hint);
    if let Some(client_id) = client_id {
        // Its answer came: nothing about it is in doubt any more.
        slot.in_doubt.remove(&client_id);
        let filled = event.execution_type == ProtoOAExecutionType::OrderFilled as i32
            || event.execution_type == ProtoOAExecutionType::OrderPartialFill as i32;
        if filled
            && let Some(position) = &event.position
            && position.position_status == ProtoOAPositionStatus::PositionStatusOpen as i32
            && let Some(levels) = slot.protect_after_fill.remove(&client_id)
        {
            deferred.push(Deferred::Protect { account, position: position.position_id, levels });
        }
    }
    for event in out {
        slot.emit(event, counters);
    }
}
