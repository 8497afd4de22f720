//! Folding journal entries into the rows one batch writes: pure, with no I/O but reads of the
//! journal's own signal store and setup records.
//!
//! Rows that record something that happened (a fill, a skip, a position change) are keyed by
//! `(journal position, index within the entry)`. Rows that hold a current state (an order's
//! status, an open position) are folded here in journal order, so that the batch writes one
//! change per key: Postgres applies only one of several rows with the same key in one
//! `UPDATE ... FROM unnest(...)`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mirror_connector::{BrokerSnapshot, ConnectionState, ConnectorEvent};
use mirror_model::{
    AccountId, ClientOrderId, OrderKind, Origin, Position, PositionChange, PositionEffect, PositionId, Qty, Side,
    Signal, SignalAction, SignalId, SizeAdjustment, Symbol,
};

use super::postgres::PgError;
use crate::account::AuditEvent;
use crate::journal::{AdminAction, AdminRecord, Entry, Journal, JournalInput, SetupRecord, ShardEntry};
use crate::telemetry::AuditRecord;

/// Who the audit log names for the actors' own risk actions.
pub(crate) const ENGINE_RISK: &str = "engine:risk";

/// A signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SignalRow {
    pub(crate) id: i64,
    pub(crate) journal_pos: i64,
    pub(crate) origin_kind: &'static str,
    pub(crate) origin_id: i64,
    pub(crate) action: &'static str,
    pub(crate) leader_ref: Option<String>,
    pub(crate) symbol: Option<String>,
    pub(crate) side: Option<&'static str>,
    pub(crate) qty: Option<String>,
    pub(crate) signal: String,
    pub(crate) created_at: SystemTime,
    pub(crate) accepted_mono_ns: i64,
}

/// One follower reached by a fan-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeliveryRow {
    pub(crate) journal_pos: i64,
    pub(crate) idx: i32,
    pub(crate) signal_id: i64,
    pub(crate) account: i64,
    pub(crate) link: i64,
    pub(crate) input_seq: i64,
    pub(crate) handled_at: SystemTime,
}

/// A new order, as it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OrderRow {
    pub(crate) client_id: String,
    pub(crate) account: i64,
    pub(crate) signal_id: i64,
    pub(crate) leg: i32,
    pub(crate) kind: &'static str,
    pub(crate) symbol: Option<String>,
    pub(crate) side: Option<&'static str>,
    pub(crate) qty: String,
    pub(crate) order_type: Option<&'static str>,
    pub(crate) order_price: Option<String>,
    pub(crate) adjustment: Option<String>,
    pub(crate) position_id: Option<String>,
    pub(crate) corrects: Option<String>,
    pub(crate) journal_pos: i64,
    pub(crate) created_at: SystemTime,
}

/// Everything a batch did to one order after it was sent, folded in journal order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OrderUpdateRow {
    pub(crate) client_id: String,
    /// The last status set, or `None` when the last event was an execution (the status is
    /// then filled or partially filled, from the quantity filled in all).
    pub(crate) status: Option<&'static str>,
    pub(crate) broker_id: Option<String>,
    pub(crate) reject_reason: Option<String>,
    pub(crate) filled_add: String,
    pub(crate) updated_at: SystemTime,
}

/// One execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FillRow {
    pub(crate) journal_pos: i64,
    pub(crate) idx: i32,
    pub(crate) client_id: String,
    pub(crate) account: i64,
    pub(crate) signal_id: Option<i64>,
    pub(crate) qty: String,
    pub(crate) price: String,
    pub(crate) position_id: String,
    pub(crate) filled_at: SystemTime,
}

/// An open position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PositionRow {
    pub(crate) account: i64,
    pub(crate) position_id: String,
    pub(crate) symbol: String,
    pub(crate) side: &'static str,
    pub(crate) qty: String,
    pub(crate) open_price: String,
    pub(crate) stop_loss: Option<String>,
    pub(crate) take_profit: Option<String>,
    pub(crate) journal_pos: i64,
    pub(crate) updated_at: SystemTime,
}

/// One position change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PositionEventRow {
    pub(crate) journal_pos: i64,
    pub(crate) idx: i32,
    pub(crate) change: &'static str,
    pub(crate) change_qty: Option<String>,
    pub(crate) realized_pnl: String,
    pub(crate) position: PositionRow,
}

/// Balance and equity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EquityRow {
    pub(crate) journal_pos: i64,
    pub(crate) idx: i32,
    pub(crate) account: i64,
    pub(crate) balance: String,
    pub(crate) equity: String,
    pub(crate) margin_used: String,
    pub(crate) source: &'static str,
    pub(crate) at: SystemTime,
}

/// A copy decision's why, or any other audit record without a table of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CopyEventRow {
    pub(crate) journal_pos: i64,
    pub(crate) idx: i32,
    pub(crate) account: i64,
    pub(crate) signal_id: Option<i64>,
    pub(crate) kind: String,
    pub(crate) client_id: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) detail: String,
    pub(crate) at: SystemTime,
}

/// Who did what, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditRow {
    pub(crate) journal_pos: i64,
    pub(crate) idx: i32,
    pub(crate) who: String,
    pub(crate) what: String,
    pub(crate) account: Option<i64>,
    pub(crate) detail: String,
    pub(crate) at: SystemTime,
}

/// An account and its inbound links, from a setup record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SetupRows {
    pub(crate) accounts: Vec<AccountRow>,
    pub(crate) links: Vec<LinkRow>,
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) mode: &'static str,
    pub(crate) is_leader: bool,
    pub(crate) risk: String,
}

/// A link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkRow {
    pub(crate) follower: i64,
    pub(crate) id: i64,
    pub(crate) origin_kind: &'static str,
    pub(crate) origin_id: i64,
    pub(crate) rules: String,
}

/// What one batch of entries writes.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Its last position (the new checkpoint).
    pub(crate) last: u64,
    /// Entries folded.
    pub(crate) entries: usize,
    pub(crate) signals: Vec<SignalRow>,
    pub(crate) deliveries: Vec<DeliveryRow>,
    pub(crate) orders: Vec<OrderRow>,
    pub(crate) order_updates: Vec<OrderUpdateRow>,
    pub(crate) fills: Vec<FillRow>,
    /// Accounts whose positions a broker snapshot replaced: theirs are deleted first.
    pub(crate) position_resets: Vec<i64>,
    /// Positions closed (deleted).
    pub(crate) positions_closed: Vec<(i64, String)>,
    /// Positions open after the batch (upserted).
    pub(crate) positions_open: Vec<PositionRow>,
    pub(crate) position_events: Vec<PositionEventRow>,
    /// Symbol and side of every position the batch saw: a close sent before its position's
    /// first execution was journaled (a leader that closes while the copy is still filling)
    /// learns them here, in whichever batch that comes.
    pub(crate) position_sides: Vec<(i64, String, String, &'static str)>,
    pub(crate) equity: Vec<EquityRow>,
    pub(crate) copy_events: Vec<CopyEventRow>,
    pub(crate) audit_log: Vec<AuditRow>,
    /// A configuration was applied: the accounts and links as the journal now has them.
    pub(crate) setups: Option<SetupRows>,
    /// Signals whose content the journal no longer had (or could not decode).
    pub(crate) signals_missing: Vec<SignalId>,
}

/// Folds `entries` (in position order) into one batch.
pub(crate) fn fold(journal: &Journal, entries: Vec<(u64, Entry)>) -> Result<Batch, PgError> {
    let mut folder = Folder::new(journal);
    for (position, entry) in entries {
        folder.batch.last = position;
        folder.batch.entries += 1;
        folder.entry(position, entry)?;
    }
    folder.finish()
}

/// The rows of the accounts and links of every setup the journal holds.
pub(crate) fn setup_rows(setups: &[SetupRecord]) -> Result<SetupRows, PgError> {
    let mut rows = SetupRows { accounts: Vec::with_capacity(setups.len()), links: Vec::new() };
    for setup in setups {
        let id = i64::from(setup.id.0);
        rows.accounts.push(AccountRow {
            id,
            name: setup.name.clone(),
            mode: match setup.mode {
                mirror_model::AccountMode::Netting => "netting",
                mirror_model::AccountMode::Hedging => "hedging",
            },
            is_leader: setup.is_leader,
            risk: json("risk limits", &setup.risk)?,
        });
        for (link, origin, rules) in &setup.inbound {
            let (origin_kind, origin_id) = origin_parts(*origin);
            rows.links.push(LinkRow {
                follower: id,
                id: i64::from(link.0),
                origin_kind,
                origin_id,
                rules: json("link rules", rules)?,
            });
        }
    }
    Ok(rows)
}

struct Folder<'a> {
    journal: &'a Journal,
    batch: Batch,
    /// Per new order in `batch.orders`: what its symbol and side are found from.
    order_sources: Vec<SideSource>,
    patches: BTreeMap<ClientOrderId, Patch>,
    /// The latest state of every position the batch touched (`None`: closed).
    positions: BTreeMap<(AccountId, PositionId), Option<PositionRow>>,
    resets: BTreeSet<AccountId>,
    /// Symbol and side of every position the batch saw (they never change for one id).
    seen_positions: BTreeMap<(AccountId, PositionId), (Symbol, Side)>,
    config_applied: bool,
}

/// Where a new order's symbol and side come from when its audit record does not carry them.
#[derive(Clone, Copy, Debug)]
enum SideSource {
    /// Carried.
    Known,
    /// A close: the position's symbol, the other side.
    Closes(AccountId, PositionId),
    /// A correction: the other side of the closing order it takes the excess of.
    Corrects(Option<ClientOrderId>),
}

#[derive(Clone, Debug)]
struct Patch {
    status: Option<&'static str>,
    broker_id: Option<String>,
    reject_reason: Option<String>,
    filled_add: Qty,
    updated_at: SystemTime,
}

impl<'a> Folder<'a> {
    fn new(journal: &'a Journal) -> Self {
        Self {
            journal,
            batch: Batch::default(),
            order_sources: Vec::new(),
            patches: BTreeMap::new(),
            positions: BTreeMap::new(),
            resets: BTreeSet::new(),
            seen_positions: BTreeMap::new(),
            config_applied: false,
        }
    }

    fn entry(&mut self, position: u64, entry: Entry) -> Result<(), PgError> {
        let journal_pos = big("journal position", position)?;
        match entry {
            Entry::Signal(mark) => match self.journal.signal(mark.id)? {
                Some(signal) => self.signal(journal_pos, &signal),
                None => {
                    self.batch.signals_missing.push(mark.id);
                    Ok(())
                }
            },
            Entry::Shard(shard) => self.shard(journal_pos, shard),
            Entry::Snapshot { .. } => Ok(()),
            Entry::Admin(record) => self.admin(journal_pos, record),
        }
    }

    fn signal(&mut self, journal_pos: i64, signal: &Signal) -> Result<(), PgError> {
        let (origin_kind, origin_id) = origin_parts(signal.origin);
        let (leader_ref, symbol, side, qty) = match signal.action {
            SignalAction::Open(open) => (Some(open.leader), Some(open.symbol), Some(open.side), Some(open.qty)),
            SignalAction::Modify { leader, .. }
            | SignalAction::Close { leader }
            | SignalAction::CancelPending { leader } => (Some(leader), None, None, None),
            SignalAction::PartialClose { leader, closed_qty, .. } => (Some(leader), None, None, Some(closed_qty)),
            SignalAction::CloseAll { symbol } => (None, symbol, None, None),
        };
        self.batch.signals.push(SignalRow {
            id: big("signal id", signal.id.0)?,
            journal_pos,
            origin_kind,
            origin_id,
            action: signal.action.name(),
            leader_ref: leader_ref.map(|leader| leader.0.to_string()),
            symbol: symbol.map(|s| s.to_string()),
            side: side.map(side_name),
            qty: qty.map(|q| q.to_string()),
            signal: json("signal", signal)?,
            created_at: at(signal.created_unix_ms),
            accepted_mono_ns: big("signal acceptance time", signal.accepted_mono_ns)?,
        });
        Ok(())
    }

    fn admin(&mut self, journal_pos: i64, record: AdminRecord) -> Result<(), PgError> {
        let (what, account) = match &record.action {
            AdminAction::ConfigApplied { .. } => {
                self.config_applied = true;
                ("config_applied", None)
            }
            AdminAction::Control { account, .. } => ("control", account.map(|a| i64::from(a.0))),
            AdminAction::Lifecycle { .. } => ("lifecycle", None),
        };
        self.batch.audit_log.push(AuditRow {
            journal_pos,
            idx: 0,
            who: record.who,
            what: what.to_owned(),
            account,
            detail: json("admin action", &record.action)?,
            at: at(record.unix_ms),
        });
        Ok(())
    }

    fn shard(&mut self, journal_pos: i64, shard: ShardEntry) -> Result<(), PgError> {
        if let Some(deliveries) = &shard.deliveries {
            let signal_id = big("signal id", deliveries.signal.0)?;
            for (idx, (account, input_seq, link)) in deliveries.followers.iter().enumerate() {
                self.batch.deliveries.push(DeliveryRow {
                    journal_pos,
                    idx: index(idx)?,
                    signal_id,
                    account: i64::from(account.0),
                    link: i64::from(link.0),
                    input_seq: big("input number", *input_seq)?,
                    handled_at: at(deliveries.now.unix_ms),
                });
            }
        }
        // Broker snapshots by account, in the order taken: each one's `Reconciled` audit
        // record marks where in the audit stream it replaced the account's positions.
        let mut snapshots: BTreeMap<AccountId, VecDeque<&BrokerSnapshot>> = BTreeMap::new();
        for (idx, input) in shard.inputs.iter().enumerate() {
            let JournalInput::Event(event) = &input.input else { continue };
            let (account, source) = match event.as_ref() {
                ConnectorEvent::Account(account) => (account, "account"),
                ConnectorEvent::Snapshot(snapshot) => {
                    snapshots.entry(input.account).or_default().push_back(snapshot);
                    (&snapshot.account, "snapshot")
                }
                _ => continue,
            };
            self.batch.equity.push(EquityRow {
                journal_pos,
                idx: index(idx)?,
                account: i64::from(input.account.0),
                balance: account.balance.to_string(),
                equity: account.equity.to_string(),
                margin_used: account.margin_used.to_string(),
                source,
                at: at(input.now.unix_ms),
            });
        }
        for emitted in &shard.emitted {
            match mirror_wire::SharedSignal::decode(&emitted.bytes) {
                Ok(shared) => self.signal(journal_pos, &shared.to_signal())?,
                Err(error) => {
                    tracing::error!(signal = %emitted.id, %error, "a journaled leader signal does not decode");
                    self.batch.signals_missing.push(emitted.id);
                }
            }
        }
        let when = at(shard.unix_ms);
        // The last execution per account: a correction takes back the excess of that one.
        let mut last_fill: BTreeMap<AccountId, ClientOrderId> = BTreeMap::new();
        for (idx, record) in shard.audits.iter().enumerate() {
            let place = Place { journal_pos, idx: index(idx)?, at: when };
            self.audit(place, record, &mut snapshots, &mut last_fill)?;
        }
        Ok(())
    }

    fn audit(
        &mut self,
        place: Place,
        record: &AuditRecord,
        snapshots: &mut BTreeMap<AccountId, VecDeque<&BrokerSnapshot>>,
        last_fill: &mut BTreeMap<AccountId, ClientOrderId>,
    ) -> Result<(), PgError> {
        let account = record.account;
        match &record.audit.event {
            AuditEvent::Copied { client_id, symbol, side, qty, kind, adjustment } => {
                let (order_type, order_price) = match kind {
                    OrderKind::Market => ("market", None),
                    OrderKind::Limit { price } => ("limit", Some(price.to_string())),
                    OrderKind::Stop { price } => ("stop", Some(price.to_string())),
                };
                let adjustment = match adjustment {
                    SizeAdjustment::None => None,
                    SizeAdjustment::ClampedToMax(max) => Some(format!("clamped to the maximum {max}")),
                    SizeAdjustment::RaisedToMin(min) => Some(format!("raised to the minimum {min}")),
                };
                let mut row = self.order_row(place, *client_id, "open", *qty)?;
                row.symbol = Some(symbol.to_string());
                row.side = Some(side_name(*side));
                row.order_type = Some(order_type);
                row.order_price = order_price;
                row.adjustment = adjustment;
                self.new_order(row, SideSource::Known);
            }
            AuditEvent::Closing { client_id, position, qty } => {
                let mut row = self.order_row(place, *client_id, "close", *qty)?;
                row.position_id = Some(position.0.to_string());
                self.new_order(row, SideSource::Closes(account, *position));
            }
            AuditEvent::Corrected { client_id, symbol, qty } => {
                let mut row = self.order_row(place, *client_id, "correction", *qty)?;
                row.symbol = Some(symbol.to_string());
                let offset = last_fill.get(&account).copied();
                row.corrects = offset.map(|id| id.to_string());
                self.new_order(row, SideSource::Corrects(offset));
            }
            AuditEvent::Accepted { client_id, broker_id } => {
                let patch = self.patch(*client_id, place.at);
                patch.status = Some("working");
                patch.broker_id = Some(broker_id.0.to_string());
            }
            AuditEvent::Rejected { client_id, reason } => {
                let patch = self.patch(*client_id, place.at);
                patch.status = Some("rejected");
                patch.reject_reason = Some(reason.clone());
            }
            AuditEvent::NeverSent { client_id } => self.patch(*client_id, place.at).status = Some("never_sent"),
            AuditEvent::Resent { client_id, .. } => self.patch(*client_id, place.at).status = Some("submitted"),
            AuditEvent::OutcomeUnknown { client_id, .. } => {
                self.patch(*client_id, place.at).status = Some("in_flight_unknown");
            }
            AuditEvent::Cancelled { client_id } => self.patch(*client_id, place.at).status = Some("cancelled"),
            AuditEvent::Expired { client_id } => self.patch(*client_id, place.at).status = Some("expired"),
            AuditEvent::Filled { client_id, fill } => {
                self.batch.fills.push(FillRow {
                    journal_pos: place.journal_pos,
                    idx: place.idx,
                    client_id: client_id.to_string(),
                    account: i64::from(account.0),
                    signal_id: record.audit.signal.map(|s| big("signal id", s.0)).transpose()?,
                    qty: fill.qty.to_string(),
                    price: fill.price.to_string(),
                    position_id: fill.position.0.to_string(),
                    filled_at: place.at,
                });
                let patch = self.patch(*client_id, place.at);
                patch.status = None;
                patch.filled_add += fill.qty;
                last_fill.insert(account, *client_id);
            }
            AuditEvent::Position { effect } => self.position(place, account, effect)?,
            AuditEvent::Breach { .. }
            | AuditEvent::Mode { .. }
            | AuditEvent::Flattening { .. }
            | AuditEvent::Paused { .. } => {
                let (what, detail) = tagged(&record.audit.event)?;
                self.batch.audit_log.push(AuditRow {
                    journal_pos: place.journal_pos,
                    idx: place.idx,
                    who: ENGINE_RISK.to_owned(),
                    what,
                    account: Some(i64::from(account.0)),
                    detail,
                    at: place.at,
                });
            }
            event => {
                if matches!(event, AuditEvent::Reconciled { .. })
                    && let Some(snapshot) = snapshots.get_mut(&account).and_then(VecDeque::pop_front)
                {
                    self.replace_positions(place, account, &snapshot.positions);
                }
                let (kind, detail) = tagged(event)?;
                self.batch.copy_events.push(CopyEventRow {
                    journal_pos: place.journal_pos,
                    idx: place.idx,
                    account: i64::from(account.0),
                    signal_id: record.audit.signal.map(|s| big("signal id", s.0)).transpose()?,
                    kind,
                    client_id: event_client_id(event).map(|id| id.to_string()),
                    reason: reason(event),
                    detail,
                    at: place.at,
                });
            }
        }
        Ok(())
    }

    fn order_row(
        &self,
        place: Place,
        client_id: ClientOrderId,
        kind: &'static str,
        qty: Qty,
    ) -> Result<OrderRow, PgError> {
        Ok(OrderRow {
            client_id: client_id.to_string(),
            account: i64::from(client_id.account.0),
            signal_id: big("signal id", client_id.signal.0)?,
            leg: i32::from(client_id.leg),
            kind,
            symbol: None,
            side: None,
            qty: qty.to_string(),
            order_type: None,
            order_price: None,
            adjustment: None,
            position_id: None,
            corrects: None,
            journal_pos: place.journal_pos,
            created_at: place.at,
        })
    }

    fn new_order(&mut self, row: OrderRow, source: SideSource) {
        self.batch.orders.push(row);
        self.order_sources.push(source);
    }

    fn patch(&mut self, client_id: ClientOrderId, when: SystemTime) -> &mut Patch {
        let patch = self.patches.entry(client_id).or_insert(Patch {
            status: None,
            broker_id: None,
            reject_reason: None,
            filled_add: Qty::ZERO,
            updated_at: when,
        });
        patch.updated_at = when;
        patch
    }

    fn position(&mut self, place: Place, account: AccountId, effect: &PositionEffect) -> Result<(), PgError> {
        let (change, change_qty) = match effect.change {
            PositionChange::Opened => ("opened", None),
            PositionChange::Increased { added } => ("increased", Some(added)),
            PositionChange::Reduced { closed, .. } => ("reduced", Some(closed)),
            PositionChange::Closed { closed } => ("closed", Some(closed)),
            PositionChange::ProtectionChanged => ("protection_changed", None),
        };
        let row = position_row(account, &effect.position, place);
        self.batch.position_events.push(PositionEventRow {
            journal_pos: place.journal_pos,
            idx: place.idx,
            change,
            change_qty: change_qty.map(|q| q.to_string()),
            realized_pnl: effect.realized_pnl.to_string(),
            position: row.clone(),
        });
        let key = (account, effect.position.id);
        self.seen_positions.insert(key, (effect.position.symbol, effect.position.side));
        let after = if matches!(effect.change, PositionChange::Closed { .. }) { None } else { Some(row) };
        self.positions.insert(key, after);
        Ok(())
    }

    /// A broker snapshot: the account holds exactly these positions now.
    fn replace_positions(&mut self, place: Place, account: AccountId, positions: &[Position]) {
        self.resets.insert(account);
        self.positions.retain(|(owner, _), _| *owner != account);
        for position in positions {
            let key = (account, position.id);
            self.seen_positions.insert(key, (position.symbol, position.side));
            self.positions.insert(key, Some(position_row(account, position, place)));
        }
    }

    fn finish(mut self) -> Result<Batch, PgError> {
        self.resolve_sides();
        let mut batch = self.batch;
        batch.order_updates = self
            .patches
            .into_iter()
            .map(|(client_id, patch)| OrderUpdateRow {
                client_id: client_id.to_string(),
                status: patch.status,
                broker_id: patch.broker_id,
                reject_reason: patch.reject_reason,
                filled_add: patch.filled_add.to_string(),
                updated_at: patch.updated_at,
            })
            .collect();
        batch.position_resets = self.resets.iter().map(|a| i64::from(a.0)).collect();
        batch.position_sides = self
            .seen_positions
            .iter()
            .map(|((account, id), (symbol, side))| {
                (i64::from(account.0), id.0.to_string(), symbol.to_string(), side_name(*side))
            })
            .collect();
        for ((account, id), state) in self.positions {
            match state {
                Some(row) => batch.positions_open.push(row),
                None => batch.positions_closed.push((i64::from(account.0), id.0.to_string())),
            }
        }
        if self.config_applied {
            batch.setups = Some(setup_rows(&self.journal.setups()?)?);
        }
        Ok(batch)
    }

    /// Symbol and side of closes (from the position) and corrections (the other side of the
    /// close they correct) when this batch saw them; the rest is looked up by the insert.
    fn resolve_sides(&mut self) {
        for (row, source) in self.batch.orders.iter_mut().zip(&self.order_sources) {
            if let SideSource::Closes(account, position) = source
                && let Some((symbol, side)) = self.seen_positions.get(&(*account, *position))
            {
                row.symbol = Some(symbol.to_string());
                row.side = Some(side_name(side.opposite()));
            }
        }
        let sides: BTreeMap<String, &'static str> =
            self.batch.orders.iter().filter_map(|row| Some((row.client_id.clone(), row.side?))).collect();
        for (row, source) in self.batch.orders.iter_mut().zip(&self.order_sources) {
            if let SideSource::Corrects(Some(offset)) = source
                && let Some(side) = sides.get(&offset.to_string())
            {
                row.side = Some(opposite_name(side));
            }
        }
    }
}

/// Where a row derived from an audit record sits.
#[derive(Clone, Copy, Debug)]
struct Place {
    journal_pos: i64,
    idx: i32,
    at: SystemTime,
}

fn position_row(account: AccountId, position: &Position, place: Place) -> PositionRow {
    PositionRow {
        account: i64::from(account.0),
        position_id: position.id.0.to_string(),
        symbol: position.symbol.to_string(),
        side: side_name(position.side),
        qty: position.qty.to_string(),
        open_price: position.open_price.to_string(),
        stop_loss: position.stop_loss.map(|p| p.to_string()),
        take_profit: position.take_profit.map(|p| p.to_string()),
        journal_pos: place.journal_pos,
        updated_at: place.at,
    }
}

fn event_client_id(event: &AuditEvent) -> Option<ClientOrderId> {
    match event {
        AuditEvent::Cancelling { client_id } | AuditEvent::UnknownOrder { client_id } => Some(*client_id),
        AuditEvent::InvalidTransition { error } => match error {
            mirror_model::OrderError::InvalidTransition { order, .. }
            | mirror_model::OrderError::Overfill { order, .. }
            | mirror_model::OrderError::BadFill { order, .. } => Some(*order),
        },
        AuditEvent::Drift { drift: crate::account::Drift::OrderResolved { client_id, .. } } => Some(*client_id),
        _ => None,
    }
}

/// A sentence for the events that have a why.
fn reason(event: &AuditEvent) -> Option<String> {
    Some(match event {
        AuditEvent::Skipped { reason, .. } => reason.to_string(),
        AuditEvent::InvalidTransition { error } => error.to_string(),
        AuditEvent::CommandFailed { command, error } => format!("{command}: {error}"),
        AuditEvent::NotSent { command } => format!("the {command} could not be queued for the connector"),
        AuditEvent::Reconciled { positions, orders } => {
            format!("the broker holds {positions} positions and {orders} working orders")
        }
        AuditEvent::Connection { state } => match state {
            ConnectionState::Connected => "connected".to_owned(),
            ConnectionState::Reconnecting { reason } => format!("reconnecting: {reason}"),
            ConnectionState::Disconnected { reason } => format!("disconnected: {reason}"),
        },
        _ => return None,
    })
}

/// The event's tag (`skipped`, `drift`, …) and the whole event as JSON.
fn tagged(event: &AuditEvent) -> Result<(String, String), PgError> {
    let value =
        serde_json::to_value(event).map_err(|e| PgError::Json { what: "audit event", reason: e.to_string() })?;
    let tag = value.get("event").and_then(serde_json::Value::as_str).unwrap_or("unknown").to_owned();
    Ok((tag, value.to_string()))
}

fn json<T: serde::Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String, PgError> {
    serde_json::to_string(value).map_err(|e| PgError::Json { what, reason: e.to_string() })
}

fn origin_parts(origin: Origin) -> (&'static str, i64) {
    match origin {
        Origin::Account(account) => ("account", i64::from(account.0)),
        Origin::Source(source) => ("source", i64::from(source.0)),
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn opposite_name(side: &str) -> &'static str {
    if side == "buy" { "sell" } else { "buy" }
}

/// A journal number as a Postgres bigint.
pub(crate) fn big(what: &'static str, value: u64) -> Result<i64, PgError> {
    i64::try_from(value).map_err(|_| PgError::OutOfRange { what, value })
}

fn index(idx: usize) -> Result<i32, PgError> {
    i32::try_from(idx).map_err(|_| PgError::OutOfRange { what: "index within an entry", value: idx as u64 })
}

/// Unix milliseconds as a timestamp.
pub(crate) fn at(unix_ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(unix_ms.unsigned_abs());
    if unix_ms >= 0 { UNIX_EPOCH + magnitude } else { UNIX_EPOCH - magnitude }
}
