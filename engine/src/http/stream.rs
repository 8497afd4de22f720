//! `GET /api/v1/stream`: live events over a WebSocket.
//!
//! Query: `topics=accounts,positions,orders,fills,copies,logs,latency,quotes,signals` (default all),
//! `account=<id or name>`, `signal=<id>` (events that carry a signal: orders, fills, copies,
//! logs), `level=debug|info|warn` (logs at least this severe), and `access_token=<JWT>` for
//! clients that cannot set an `Authorization` header (browsers' WebSocket API).
//!
//! Messages (text, JSON): first `{"type":"snapshot",…}` (the state as of its `seq`, filtered),
//! then `{"type":"events","epoch","first_seq","last_seq","events":[{"seq","topic","data"}]}`
//! and `{"type":"heartbeat","seq"}` when nothing happened for a while. Numbers are gap-free
//! within an epoch; `first_seq..=last_seq` covers events filtered out too.
//!
//! A slow consumer never slows the engine: each subscriber has a bounded queue in the state
//! hub; one that falls behind is dropped from the broadcast and gets a fresh snapshot
//! (`"reason":"lagged"`) once it has caught up with what it held. Whatever waits when the
//! connection gets to write is coalesced into one `events` message. A client that does not
//! read for longer than the write timeout is disconnected.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream};
use mirror_wire::proto::{Delta, DeltaEvent, LogLevel, Snapshot, SnapshotReason, topics};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Role;
use super::api::Query;
use super::limits::Route;
use super::problem::Problem;
use super::{State, json as render};
use crate::gateway::state::{Registration, Start, filter_snapshot};

/// Largest frame a client may send (it has nothing to send but pings and close).
const CLIENT_FRAME_MAX: usize = 4 * 1024;
/// Events per `events` message at most.
const EVENTS_PER_MESSAGE: usize = 2_048;

const TOPICS: [(&str, u32); 9] = [
    ("accounts", topics::ACCOUNTS),
    ("positions", topics::POSITIONS),
    ("orders", topics::ORDERS),
    ("fills", topics::FILLS),
    ("copies", topics::COPY),
    ("logs", topics::LOGS),
    ("latency", topics::LATENCY),
    ("quotes", topics::QUOTES),
    ("signals", topics::SIGNALS),
];

/// What a subscriber asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Filter {
    topics: u32,
    account: Option<u32>,
    signal: Option<u64>,
    level: LogLevel,
}

impl Filter {
    fn read(query: &Query, state: &State) -> Result<Self, Problem> {
        let bad = Problem::bad_parameter;
        let topics = match query.text("topics") {
            None => topics::ALL,
            Some(list) => {
                let mut bits = 0;
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let Some((_, bit)) = TOPICS.iter().find(|(n, _)| *n == name) else {
                        let names: Vec<&str> = TOPICS.iter().map(|(n, _)| *n).collect();
                        return Err(bad(format!(
                            "topics: unknown topic `{name}`; expected some of {}",
                            names.join(",")
                        )));
                    };
                    bits |= bit;
                }
                if bits == 0 {
                    return Err(bad("topics: empty; leave it out for every topic".into()));
                }
                bits
            }
        };
        let account = query.text("account").map(|key| state.find_account(key).map(|a| a.id.0)).transpose()?;
        let level = match query.text("level") {
            None | Some("debug") => LogLevel::Debug,
            Some("info") => LogLevel::Info,
            Some("warn") => LogLevel::Warn,
            Some(other) => return Err(bad(format!("level: expected debug, info or warn, got `{other}`"))),
        };
        Ok(Self { topics, account, signal: query.number("signal")?, level })
    }

    fn keeps(&self, event: &DeltaEvent) -> bool {
        if event.topic() & self.topics == 0 {
            return false;
        }
        let (account, signal) = match event {
            DeltaEvent::Account(a) => (Some(a.id), None),
            DeltaEvent::Position(p) => (Some(p.account), None),
            DeltaEvent::Order(o) => (Some(o.account), Some(o.signal)),
            DeltaEvent::Fill(f) => (Some(f.account), Some(f.signal)),
            DeltaEvent::Copy(c) => (Some(c.account), Some(c.signal)),
            DeltaEvent::Log(l) => {
                if l.level < self.level {
                    return false;
                }
                (Some(l.account), Some(l.signal))
            }
            DeltaEvent::Latency(_) => (None, None),
            DeltaEvent::Quote(q) => (Some(q.account), None),
            // A leader account's signal is that account's; a source's belongs to no account.
            DeltaEvent::Signal(s) => ((s.leader_account != 0).then_some(s.leader_account), Some(s.signal)),
        };
        self.account.is_none_or(|want| account.is_none_or(|a| a == want))
            && self.signal.is_none_or(|want| signal.is_none_or(|s| s == want))
    }

    fn snapshot(&self, snapshot: &Snapshot) -> Value {
        let mut snapshot = filter_snapshot(snapshot.clone(), self.topics);
        if let Some(account) = self.account {
            snapshot.accounts.retain(|a| a.id == account);
            snapshot.positions.retain(|p| p.account == account);
            snapshot.orders.retain(|o| o.account == account);
            snapshot.fills.retain(|f| f.account == account);
            snapshot.copy.retain(|c| c.account == account);
            snapshot.quotes.retain(|q| q.account == account);
        }
        if let Some(signal) = self.signal {
            snapshot.orders.retain(|o| o.signal == signal);
            snapshot.fills.retain(|f| f.signal == signal);
            snapshot.copy.retain(|c| c.signal == signal);
        }
        let mut value = render::snapshot(&snapshot);
        value["topics"] =
            TOPICS.iter().filter(|(_, bit)| self.topics & bit != 0).map(|(name, _)| json!(name)).collect();
        value
    }
}

/// The bearer token: the `Authorization` header, or `access_token` in the query.
fn bearer(request: &HttpRequest, query: &Query) -> Option<String> {
    let header = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    header.or_else(|| query.text("access_token").map(|token| format!("Bearer {token}")))
}

pub(super) async fn stream(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Api)?;
    let query = Query::read(&request, &["topics", "account", "signal", "level", "access_token"])?;
    state.authenticate(bearer(&request, &query).as_deref(), Role::Viewer).await?;
    let filter = Filter::read(&query, &state)?;
    let slot = StreamSlot::take(&state)?;
    let live = state.live()?;
    let subscribed =
        tokio::time::timeout(state.stream_limits.write_timeout, live.hub().subscribe(None, SnapshotReason::Initial));
    let Some(registration) = subscribed.await.ok().flatten() else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "stopped", "Stopping", "the state hub has stopped"));
    };
    let (response, session, messages) = actix_ws::handle(&request, body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "not-websocket", "Not a WebSocket upgrade", e.to_string())
    })?;
    let messages = messages.max_frame_size(CLIENT_FRAME_MAX);
    let subscriber = Subscriber {
        state: state.clone(),
        session,
        filter,
        epoch: live.hub().epoch(),
        write_timeout: state.stream_limits.write_timeout,
        heartbeat: state.stream_limits.heartbeat,
    };
    let stopping = live.stopping();
    actix_web::rt::spawn(async move {
        let _slot = slot;
        subscriber.run(registration, messages, stopping).await;
    });
    Ok(response)
}

/// One of the `streams_max` places, given back when the stream ends.
struct StreamSlot {
    state: web::Data<State>,
}

impl StreamSlot {
    fn take(state: &web::Data<State>) -> Result<Self, Problem> {
        let max = state.limits.streams_max;
        let open = state.streams.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if open >= max {
            state.streams.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-streams",
                "Too many streams",
                format!("{max} streams are open (http.streams_max); try again later"),
            ));
        }
        Ok(Self { state: state.clone() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.state.streams.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

struct Subscriber {
    state: web::Data<State>,
    session: actix_ws::Session,
    filter: Filter,
    epoch: u64,
    write_timeout: Duration,
    heartbeat: Duration,
}

/// Why a stream ended.
enum End {
    /// The client closed, went away or sent something it should not.
    Client,
    /// The client does not read fast enough.
    Slow,
    /// The server stops.
    Stopping,
}

impl Subscriber {
    async fn send(&mut self, value: &Value) -> Result<(), End> {
        match tokio::time::timeout(self.write_timeout, self.session.text(value.to_string())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Client),
            Err(_) => Err(End::Slow),
        }
    }

    /// Sends where a registration starts; the number it brings the subscriber to.
    async fn start(&mut self, registration: &Registration) -> Result<u64, End> {
        match &registration.start {
            Start::Snapshot(snapshot) => {
                let value = self.filter.snapshot(snapshot);
                self.send(&value).await?;
            }
            Start::Replay(deltas) => {
                let after = deltas.first().map_or(registration.seq, |d| d.seq - 1);
                self.events(after, deltas).await?;
            }
        }
        Ok(registration.seq)
    }

    /// Sends `deltas` (contiguous, after `last`) as `events` messages.
    async fn events(&mut self, mut last: u64, deltas: &[Delta]) -> Result<(), End> {
        for chunk in deltas.chunks(EVENTS_PER_MESSAGE) {
            let first_seq = last + 1;
            last = chunk.last().map_or(last, |d| d.seq);
            let events: Vec<Value> = chunk.iter().filter(|d| self.filter.keeps(&d.event)).map(render::delta).collect();
            if events.is_empty() {
                continue;
            }
            let message = json!({
                "type": "events",
                "epoch": self.epoch,
                "first_seq": first_seq,
                "last_seq": last,
                "events": events,
            });
            self.send(&message).await?;
        }
        Ok(())
    }

    async fn run(
        mut self,
        mut registration: Registration,
        mut messages: MessageStream,
        mut stopping: watch::Receiver<bool>,
    ) {
        let state = self.state.clone();
        let end = match self.serve(&mut registration, &mut messages, &state, &mut stopping).await {
            Ok(()) => End::Client,
            Err(end) => end,
        };
        let reason = match end {
            End::Client => None,
            End::Slow => Some(CloseReason {
                code: CloseCode::Policy,
                description: Some("too slow: the stream was not read within the write timeout".into()),
            }),
            End::Stopping => Some(CloseReason { code: CloseCode::Away, description: Some("server stopping".into()) }),
        };
        if matches!(end, End::Slow) {
            tracing::info!("stream: subscriber too slow; disconnected");
        }
        let _ = tokio::time::timeout(self.write_timeout, self.session.clone().close(reason)).await;
    }

    async fn serve(
        &mut self,
        registration: &mut Registration,
        messages: &mut MessageStream,
        state: &State,
        stopping: &mut watch::Receiver<bool>,
    ) -> Result<(), End> {
        let mut last = self.start(registration).await?;
        let mut heartbeat = tokio::time::interval(self.heartbeat.max(Duration::from_millis(10)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        loop {
            tokio::select! {
                biased;
                _ = stopping.changed() => return Err(End::Stopping),
                message = messages.recv() => match message {
                    Some(Ok(Message::Ping(bytes))) => {
                        // Bounded like every other write: a client that pings but never reads
                        // must not hold this task (and its stream slot) forever.
                        match tokio::time::timeout(self.write_timeout, self.session.pong(&bytes)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return Err(End::Client),
                            Err(_) => return Err(End::Slow),
                        }
                    }
                    Some(Ok(Message::Pong(_) | Message::Text(_) | Message::Nop)) => {}
                    _ => return Err(End::Client),
                },
                batch = registration.live.recv_async() => {
                    let Ok(batch) = batch else {
                        let Some(reason) = registration.restart_reason() else { return Err(End::Stopping) };
                        let Ok(live) = state.live() else { return Err(End::Stopping) };
                        let Some(fresh) = live.hub().subscribe(None, reason).await else {
                            return Err(End::Stopping);
                        };
                        *registration = fresh;
                        last = self.start(registration).await?;
                        continue;
                    };
                    // Coalesce what else is waiting.
                    let mut deltas: Vec<Delta> = batch.iter().filter(|d| d.seq > last).cloned().collect();
                    while deltas.len() < EVENTS_PER_MESSAGE {
                        let Ok(more) = registration.live.try_recv() else { break };
                        deltas.extend(more.iter().filter(|d| d.seq > last).cloned());
                    }
                    if deltas.is_empty() {
                        continue;
                    }
                    self.events(last, &deltas).await?;
                    last = deltas.last().map_or(last, |d| d.seq);
                    heartbeat.reset();
                }
                _ = heartbeat.tick() => {
                    self.send(&json!({ "type": "heartbeat", "epoch": self.epoch, "seq": last })).await?;
                }
            }
        }
    }
}
