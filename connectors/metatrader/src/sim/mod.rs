//! A simulated MetaTrader terminal with Mirror's EA attached: it dials the bridge over real
//! TCP (or TLS), speaks the protocol as the EAs do (hello, snapshot with journal, deals,
//! acks, pongs, quotes, reconnect with backoff), and trades an account at a simulated trade
//! server: hedging or netting, MT5 position tickets, MT4's partial close that leaves a new
//! ticket, MetaTrader's return codes.
//!
//! The "user" at the terminal can trade by hand ([`TerminalSim::manual_open`] and friends),
//! which is how a leader terminal is simulated, and tests can cut the connection at chosen
//! moments ([`Fault`]).

mod account;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mirror_model::{AccountMode, Money, Platform, Price, Qty, Side, Symbol};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use account::SimAccount;
pub use account::SimSymbol;

use crate::protocol::{
    EngineMessage, Hello, MAX_FRAME_BYTES, MarginMode, PROTOCOL_VERSION, PendingType, Pong, TerminalMessage,
    WirePlatform, decode_engine,
};
use crate::transport::{FrameReader, FrameWriter, LinkError, Stream, now_unix_ms};

/// How the simulated terminal reaches the bridge over TLS.
#[derive(Clone, Debug)]
pub struct SimTls {
    /// The bridge's certificate (DER), trusted as a root.
    pub certificate_der: Vec<u8>,
    /// The name the certificate is checked against.
    pub server_name: String,
}

/// One simulated terminal.
#[derive(Clone, Debug)]
pub struct TerminalSimConfig {
    /// Name, for logs.
    pub name: String,
    /// MT4 or MT5.
    pub platform: Platform,
    /// Netting or hedging (MT4 is always hedging).
    pub mode: AccountMode,
    /// Account number.
    pub login: u64,
    /// Deposit currency.
    pub currency: String,
    /// Starting balance.
    pub balance: Money,
    /// The EA's `Token` input.
    pub token: String,
    /// The bridge's address.
    pub bridge: SocketAddr,
    /// TLS, or plain TCP when `None`.
    pub tls: Option<SimTls>,
    /// Symbols and markets.
    pub symbols: Vec<SimSymbol>,
    /// First reconnect delay; doubled after each failure.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// The EA's `MagicNumber` input, on every order Mirror places.
    pub magic: u64,
    /// Tickets start above this.
    pub first_ticket: u64,
}

/// A way to cut the connection, for tests of reconnection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next command never reaches the EA: the connection drops as it arrives.
    DropBeforeExecute,
    /// The EA executes the next command, then the connection drops before its `ack` and
    /// deal frames are sent.
    DropAfterExecute,
}

/// A request by hand the simulated trade server refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The terminal does not trade it.
    #[error("unknown symbol {0}")]
    UnknownSymbol(Symbol),
    /// No such position or order.
    #[error("no ticket {0}")]
    UnknownTicket(u64),
    /// The trade server said no.
    #[error("refused: {0}")]
    Refused(&'static str),
}

/// An open position as the terminal shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPosition {
    /// The ticket now (MT4 renumbers after a partial close).
    pub ticket: u64,
    /// Symbol.
    pub symbol: Symbol,
    /// Long or short.
    pub side: Side,
    /// Volume.
    pub qty: Qty,
    /// Open price.
    pub open_price: Price,
    /// Stop loss.
    pub stop_loss: Option<Price>,
    /// Take profit.
    pub take_profit: Option<Price>,
    /// Comment (Mirror's compact client id, or `from #…`).
    pub comment: String,
}

/// One execution in the terminal's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimDeal {
    /// The position's ticket at the time.
    pub ticket: u64,
    /// Symbol.
    pub symbol: Symbol,
    /// Side of the deal.
    pub side: Side,
    /// Volume.
    pub qty: Qty,
    /// Price.
    pub price: Price,
    /// Opened or added (`true`), or reduced or closed.
    pub opening: bool,
    /// Mirror's compact client id, `""` for trades by hand and stops.
    pub cid: String,
}

/// Frames the EA may queue for its socket; a terminal that cannot send drops the connection
/// (the bridge then resynchronises from the next snapshot).
const OUTBOUND_CAPACITY: usize = 4_096;

struct Core {
    account: SimAccount,
    link: Option<mpsc::Sender<TerminalMessage>>,
    faults: VecDeque<Fault>,
    subscriptions: BTreeSet<Symbol>,
    sessions: u64,
    commands: u64,
}

impl Core {
    /// Sends frames on the live session, if any; one that does not fit ends the session.
    fn send(&mut self, frames: Vec<TerminalMessage>) {
        let Some(link) = &self.link else { return };
        for frame in frames {
            if link.try_send(frame).is_err() {
                self.link = None;
                return;
            }
        }
    }
}

struct Inner {
    config: TerminalSimConfig,
    core: Mutex<Core>,
    kick: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running simulated terminal. Dropping it stops it.
pub struct TerminalSim {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TerminalSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalSim").field("name", &self.inner.config.name).finish_non_exhaustive()
    }
}

impl Drop for TerminalSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TerminalSim {
    /// Starts the terminal: it dials the bridge at once and keeps dialling until stopped.
    pub fn start(config: TerminalSimConfig) -> Self {
        let account = SimAccount::new(
            config.platform,
            if config.platform == Platform::Mt4 { AccountMode::Hedging } else { config.mode },
            config.balance,
            &config.symbols,
            config.first_ticket,
            config.magic,
        );
        let core = Core {
            account,
            link: None,
            faults: VecDeque::new(),
            subscriptions: BTreeSet::new(),
            sessions: 0,
            commands: 0,
        };
        let inner = Arc::new(Inner { config, core: Mutex::new(core), kick: Notify::new() });
        let task = tokio::spawn(run(Arc::clone(&inner)));
        Self { inner, task }
    }

    /// Sessions established so far.
    pub fn sessions(&self) -> u64 {
        self.inner.lock().sessions
    }

    /// Whether a session is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.lock().link.is_some()
    }

    /// Commands received (executed or not).
    pub fn commands(&self) -> u64 {
        self.inner.lock().commands
    }

    /// Arms a fault for the next command.
    pub fn inject(&self, fault: Fault) {
        self.inner.lock().faults.push_back(fault);
    }

    /// Drops the connection now (the terminal reconnects after its backoff).
    pub fn drop_connection(&self) {
        self.inner.lock().link = None;
        // Wakes a session waiting for frames; one busy elsewhere sees the cleared link.
        self.inner.kick.notify_waiters();
    }

    /// Open positions.
    pub fn positions(&self) -> Vec<SimPosition> {
        self.inner.lock().account.positions()
    }

    /// Pending order tickets.
    pub fn pending_orders(&self) -> Vec<u64> {
        self.inner.lock().account.pending_tickets()
    }

    /// Every execution so far, oldest first.
    pub fn history(&self) -> Vec<SimDeal> {
        self.inner.lock().account.history().to_vec()
    }

    /// The user opens a position at the market; returns its ticket.
    pub fn manual_open(
        &self,
        symbol: &str,
        side: Side,
        qty: Qty,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
    ) -> Result<u64, SimError> {
        let symbol = Symbol::new(symbol).map_err(|_| SimError::Refused("bad symbol"))?;
        let mut core = self.inner.lock();
        let (ticket, frames) = core.account.manual_open(symbol, side, qty, stop_loss, take_profit, now_unix_ms())?;
        core.send(frames);
        Ok(ticket)
    }

    /// The user closes all or part of a position.
    pub fn manual_close(&self, ticket: u64, qty: Qty) -> Result<(), SimError> {
        let mut core = self.inner.lock();
        let frames = core.account.manual_close(ticket, qty, now_unix_ms())?;
        core.send(frames);
        Ok(())
    }

    /// The user moves a position's stop loss and take profit.
    pub fn manual_modify(
        &self,
        ticket: u64,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
    ) -> Result<(), SimError> {
        let mut core = self.inner.lock();
        let frames = core.account.manual_modify(ticket, stop_loss, take_profit, now_unix_ms())?;
        core.send(frames);
        Ok(())
    }

    /// The user places a pending order; returns its ticket.
    pub fn manual_pending(
        &self,
        symbol: &str,
        order_type: PendingType,
        qty: Qty,
        price: Price,
    ) -> Result<u64, SimError> {
        let symbol = Symbol::new(symbol).map_err(|_| SimError::Refused("bad symbol"))?;
        let mut core = self.inner.lock();
        let (ticket, frame) = core.account.manual_pending(symbol, order_type, qty, price, now_unix_ms())?;
        core.send(vec![frame]);
        Ok(ticket)
    }

    /// The user deletes a pending order.
    pub fn manual_cancel(&self, ticket: u64) -> Result<(), SimError> {
        let mut core = self.inner.lock();
        let frame = core.account.manual_cancel(ticket, now_unix_ms())?;
        core.send(vec![frame]);
        Ok(())
    }

    /// Moves a symbol's bid (the ask follows at its spread): pending orders trigger, stops
    /// and targets close, subscribed quotes go out.
    pub fn set_price(&self, symbol: &str, bid: Price) -> Result<(), SimError> {
        let symbol = Symbol::new(symbol).map_err(|_| SimError::Refused("bad symbol"))?;
        let mut core = self.inner.lock();
        let now = now_unix_ms();
        let mut frames = core.account.set_price(symbol, bid, now)?;
        if core.subscriptions.contains(&symbol) {
            frames.extend(core.account.quote(&symbol, now));
        }
        core.send(frames);
        Ok(())
    }
}

/// Dials, runs sessions, and dials again with backoff, forever.
async fn run(inner: Arc<Inner>) {
    let config = &inner.config;
    let mut delay = config.reconnect_min;
    loop {
        let before = inner.lock().sessions;
        if let Err(error) = session(&inner).await {
            tracing::debug!(terminal = %config.name, %error, "simulated terminal session ended");
        }
        let established = {
            let mut core = inner.lock();
            core.link = None;
            core.sessions > before
        };
        // Back off from the shortest delay after a session that worked, doubling otherwise.
        delay = if established { config.reconnect_min } else { (delay * 2).min(config.reconnect_max) };
        tokio::time::sleep(delay).await;
    }
}

async fn dial(config: &TerminalSimConfig) -> Result<Box<dyn Stream>, LinkError> {
    let limit = Duration::from_secs(3);
    let tcp = tokio::time::timeout(limit, TcpStream::connect(config.bridge))
        .await
        .map_err(|_| LinkError::Timeout("connect timed out".into()))??;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &config.tls else { return Ok(Box::new(tcp)) };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(tls.certificate_der.clone()))
        .map_err(|e| LinkError::Unexpected(format!("bad certificate: {e}")))?;
    let client = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| LinkError::Unexpected(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(tls.server_name.clone())
        .map_err(|e| LinkError::Unexpected(format!("bad server name: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let stream = tokio::time::timeout(limit, connector.connect(name, tcp))
        .await
        .map_err(|_| LinkError::Timeout("TLS handshake timed out".into()))??;
    Ok(Box::new(stream))
}

async fn session(inner: &Arc<Inner>) -> Result<(), LinkError> {
    let config = &inner.config;
    let stream = dial(config).await?;
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read_half, MAX_FRAME_BYTES, decode_engine);
    let mut writer = FrameWriter::new(write_half, MAX_FRAME_BYTES, Duration::from_secs(5));
    let hello = Hello {
        proto: PROTOCOL_VERSION,
        platform: if config.platform == Platform::Mt4 { WirePlatform::Mt4 } else { WirePlatform::Mt5 },
        build: if config.platform == Platform::Mt4 { 1420 } else { 4755 },
        ea_version: "sim".into(),
        login: config.login,
        server: "Sim-Server".into(),
        company: "Mirror simulated broker".into(),
        currency: config.currency.clone(),
        margin_mode: if config.mode == AccountMode::Netting && config.platform == Platform::Mt5 {
            MarginMode::Netting
        } else {
            MarginMode::Hedging
        },
        leverage: 100,
        token: config.token.clone(),
    };
    writer.send(&TerminalMessage::Hello(hello)).await?;
    let heartbeat = match reader.next_within(Duration::from_secs(5), "welcome").await? {
        EngineMessage::Welcome(welcome) => Duration::from_millis(welcome.heartbeat_ms.max(1)),
        EngineMessage::Error(error) => {
            return Err(LinkError::Unexpected(format!("refused: {} ({})", error.message, error.code)));
        }
        _ => return Err(LinkError::Unexpected("expected welcome".into())),
    };
    // Like the EA: several heartbeats of silence mean the bridge is gone.
    let idle = heartbeat * 5;
    let (link, mut outbound) = mpsc::channel::<TerminalMessage>(OUTBOUND_CAPACITY);
    let writing = tokio::spawn(async move {
        while let Some(frame) = outbound.recv().await {
            if writer.send(&frame).await.is_err() {
                break;
            }
        }
        writer.shutdown().await;
    });
    {
        let mut core = inner.lock();
        let snapshot = core.account.snapshot(0, true, now_unix_ms());
        let _ = link.try_send(TerminalMessage::Snapshot(snapshot));
        core.link = Some(link.clone());
        core.sessions += 1;
    }
    let result = serve(inner, &mut reader, idle).await;
    inner.lock().link = None;
    drop(link);
    // What was queued before the end is still written, as TCP delivers what was sent.
    let abort = writing.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), writing).await.is_err() {
        abort.abort();
    }
    result
}

async fn serve<R: tokio::io::AsyncRead + Unpin>(
    inner: &Arc<Inner>,
    reader: &mut FrameReader<R, EngineMessage>,
    idle: Duration,
) -> Result<(), LinkError> {
    loop {
        let message = tokio::select! {
            biased;
            _ = inner.kick.notified() => return Err(LinkError::Unexpected("connection dropped on purpose".into())),
            message = reader.next_within(idle, "frame from the bridge") => message?,
        };
        let mut core = inner.lock();
        if core.link.is_none() {
            return Err(LinkError::Unexpected("could not send".into()));
        }
        let now = now_unix_ms();
        match message {
            EngineMessage::Cmd(cmd) => {
                core.commands += 1;
                let fault = core.faults.pop_front();
                if fault == Some(Fault::DropBeforeExecute) {
                    core.link = None;
                    return Err(LinkError::Unexpected("fault: dropped before executing".into()));
                }
                let (ack, frames) = core.account.command(&cmd, now);
                if fault == Some(Fault::DropAfterExecute) {
                    core.link = None;
                    return Err(LinkError::Unexpected("fault: dropped after executing".into()));
                }
                core.send(vec![TerminalMessage::Ack(ack)]);
                core.send(frames);
            }
            EngineMessage::Ping(ping) => {
                core.send(vec![TerminalMessage::Pong(Pong { t: ping.t, connected: true, trade_allowed: true })]);
            }
            EngineMessage::Subscribe(subscribe) => {
                core.subscriptions = subscribe.symbols.iter().filter_map(|s| Symbol::new(s).ok()).collect();
                let quotes: Vec<TerminalMessage> =
                    core.subscriptions.iter().filter_map(|s| core.account.quote(s, now)).collect();
                core.send(quotes);
            }
            EngineMessage::Sync(sync) => {
                let snapshot = core.account.snapshot(sync.id, sync.symbols, now);
                core.send(vec![TerminalMessage::Snapshot(snapshot)]);
            }
            EngineMessage::Error(error) => {
                return Err(LinkError::Unexpected(format!(
                    "the bridge ended the session: {} ({})",
                    error.message, error.code
                )));
            }
            EngineMessage::Welcome(_) => return Err(LinkError::Unexpected("a second welcome".into())),
        }
        if core.link.is_none() {
            return Err(LinkError::Unexpected("outbound queue full".into()));
        }
    }
}
