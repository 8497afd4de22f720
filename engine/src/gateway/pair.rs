//! Two-leg orders: both legs are checked before either is sent, fanned out back to back, and
//! then watched follower by follower in the audit records. Where one leg fails on a follower
//! (rejected, skipped, never sent) or fills only partly, the pair's policy decides:
//!
//! - `Unwind`: every leg that follower holds or still works is closed on that follower alone
//!   (`Control::CloseCopy`), so no follower keeps half a spread.
//! - `Complete`: a leg that got nothing on a follower whose other leg filled is sent again to
//!   that follower alone (`Control::CopyOpen`), once; if it still does not fill, the follower is
//!   reported broken and left as it is.
//!
//! The outcome, per follower, is the stream's last frame.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mirror_model::{AccountId, OpenSignal, Origin, SignalAction, SignalId};
use mirror_wire::proto::{
    ErrorCode, ErrorReply, FollowerPair, LegReport, LegStatus, PairOutcome, PairPolicy, PairTicket, Resolution,
    Response,
};
use tokio::time::Instant;

use super::Context;
use super::io::write_frame;
use super::session::{Session, blocking, may_trade, submit};
use crate::account::{AuditEvent, Control};
use crate::runtime::ControlScope;
use crate::telemetry::{AuditRecord, AuditSubscription};

/// One leg on one follower, as the audit records tell it.
#[derive(Clone, Debug, Default)]
struct Leg {
    signal: u64,
    ordered: i64,
    filled: i64,
    opens: u32,
    status: Option<LegStatus>,
    reason: String,
}

impl Leg {
    fn new(signal: SignalId) -> Self {
        Self { signal: signal.0, ..Self::default() }
    }

    fn settled(&self) -> bool {
        self.status.is_some()
    }

    /// Nothing held and nothing working: the leg failed outright.
    fn failed_empty(&self) -> bool {
        self.filled == 0 && matches!(self.status, Some(LegStatus::Rejected | LegStatus::Skipped | LegStatus::NotSent))
    }

    fn apply(&mut self, event: &AuditEvent) {
        let failed = |leg: &mut Self, status: LegStatus, reason: String| {
            leg.status = Some(if leg.filled > 0 { LegStatus::PartlyFilled } else { status });
            leg.reason = reason;
        };
        match event {
            AuditEvent::Copied { qty, .. } => {
                self.ordered = self.ordered.saturating_add(qty.raw());
                self.opens += 1;
            }
            AuditEvent::Filled { fill, .. } => {
                self.filled = self.filled.saturating_add(fill.qty.raw());
                if self.opens > 0 && self.filled >= self.ordered {
                    self.status = Some(LegStatus::Filled);
                }
            }
            AuditEvent::Skipped { reason, .. } => failed(self, LegStatus::Skipped, reason.to_string()),
            AuditEvent::Rejected { reason, .. } => failed(self, LegStatus::Rejected, reason.clone()),
            AuditEvent::NotSent { command } => failed(self, LegStatus::NotSent, format!("{command} not sent")),
            AuditEvent::NeverSent { .. } => failed(self, LegStatus::NotSent, "never reached the broker".into()),
            AuditEvent::Cancelled { .. } => failed(self, LegStatus::Rejected, "cancelled".into()),
            AuditEvent::Expired { .. } => failed(self, LegStatus::Rejected, "expired".into()),
            _ => {}
        }
    }

    fn report(&self) -> LegReport {
        LegReport {
            signal: self.signal,
            ordered: self.ordered,
            filled: self.filled,
            status: self.status.unwrap_or(LegStatus::Pending),
            reason: self.reason.clone(),
        }
    }
}

/// Both legs on every follower.
struct Tracker {
    legs: BTreeMap<AccountId, [Leg; 2]>,
    /// Which leg a signal is, per follower (a leg sent again has a signal of its own).
    signals: BTreeMap<(SignalId, AccountId), usize>,
}

impl Tracker {
    fn new(followers: &[AccountId], first: SignalId, second: SignalId) -> Self {
        let mut legs = BTreeMap::new();
        let mut signals = BTreeMap::new();
        for follower in followers {
            legs.insert(*follower, [Leg::new(first), Leg::new(second)]);
            signals.insert((first, *follower), 0);
            signals.insert((second, *follower), 1);
        }
        Self { legs, signals }
    }

    fn signal_of(record: &AuditRecord) -> Option<SignalId> {
        match &record.audit.event {
            AuditEvent::Copied { client_id, .. }
            | AuditEvent::Rejected { client_id, .. }
            | AuditEvent::Filled { client_id, .. }
            | AuditEvent::NeverSent { client_id }
            | AuditEvent::Cancelled { client_id }
            | AuditEvent::Expired { client_id } => Some(client_id.signal),
            _ => record.audit.signal,
        }
    }

    fn apply(&mut self, record: &AuditRecord) {
        let Some(signal) = Self::signal_of(record) else { return };
        let Some(&index) = self.signals.get(&(signal, record.account)) else { return };
        if let Some(legs) = self.legs.get_mut(&record.account) {
            legs[index].apply(&record.audit.event);
        }
    }

    fn settled(&self) -> bool {
        self.legs.values().all(|legs| legs.iter().all(Leg::settled))
    }

    /// Watches the audit records until every leg has settled or `deadline`; whether it ran out.
    async fn watch(&mut self, audits: &AuditSubscription, deadline: Instant) -> bool {
        while !self.settled() {
            match tokio::time::timeout_at(deadline, audits.recv()).await {
                Ok(Some(batch)) => batch.iter().for_each(|record| self.apply(record)),
                Ok(None) | Err(_) => return true,
            }
        }
        false
    }
}

pub(super) async fn serve_pair(
    mut send: quinn::SendStream,
    ticket: PairTicket,
    session: Arc<Session>,
    context: Arc<Context>,
) {
    let write_timeout = context.limits.write_timeout;
    let response = match run_pair(&mut send, ticket, &session, &context).await {
        Ok(outcome) => Response::PairOutcome(outcome),
        Err(reply) => Response::Error(reply),
    };
    let _ = write_frame(&mut send, &response, write_timeout).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(write_timeout, send.stopped()).await;
}

fn leg_open(ticket: &mirror_wire::proto::OrderTicket, which: &str) -> Result<OpenSignal, ErrorReply> {
    ticket.to_open().map_err(|e| ErrorReply::new(ErrorCode::BadFrame, format!("{which} leg: {e}"), false))
}

async fn run_pair(
    send: &mut quinn::SendStream,
    ticket: PairTicket,
    session: &Session,
    context: &Context,
) -> Result<PairOutcome, ErrorReply> {
    let origin = may_trade(session)?;
    let Ok(_permit) = Arc::clone(&context.pairs).try_acquire_owned() else {
        return Err(ErrorReply::new(ErrorCode::Busy, "too many pairs being settled; try again shortly", true));
    };
    let engine = &context.engine;
    let Some(feed) = engine.audit_feed() else {
        return Err(ErrorReply::new(
            ErrorCode::Unavailable,
            "pairs need the engine's audit records (telemetry)",
            false,
        ));
    };
    let opens = [leg_open(&ticket.first, "first")?, leg_open(&ticket.second, "second")?];
    let notes = [ticket.first.note.clone(), ticket.second.note.clone()];
    for (open, (which, note)) in opens.iter().zip([("first", &notes[0]), ("second", &notes[1])]) {
        engine
            .precheck(origin, SignalAction::Open(*open), note)
            .map_err(|e| ErrorReply::new(ErrorCode::Refused, format!("{which} leg: {e}; nothing was sent"), false))?;
    }
    // Subscribed before anything is sent: no record of the legs can be missed.
    let audits = feed.subscribe(context.limits.audit_queue);
    let followers = engine.followers(origin);
    let first = submit(context, origin, SignalAction::Open(opens[0]), notes[0].clone())
        .await
        .map_err(|e| ErrorReply::new(e.code, format!("first leg: {}; nothing was sent", e.message), e.retryable))?;
    let second = match submit(context, origin, SignalAction::Open(opens[1]), notes[1].clone()).await {
        Ok(second) => second,
        Err(error) => return Err(second_refused(context, origin, ticket.policy, first, &opens[0], error).await),
    };
    write_frame(send, &Response::PairAccepted { first: first.0, second: second.0 }, context.limits.write_timeout)
        .await
        .map_err(|e| ErrorReply::new(ErrorCode::Internal, e.to_string(), false))?;
    let settle = match ticket.settle_ms {
        0 => context.limits.pair_settle,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let mut tracker = Tracker::new(&followers, first, second);
    let mut timed_out = tracker.watch(&audits, Instant::now() + settle).await;
    let mut resolutions: BTreeMap<AccountId, Resolution> = BTreeMap::new();
    let mut reissued: Vec<(AccountId, usize, SignalId)> = Vec::new();
    for (follower, legs) in &tracker.legs {
        let resolution = if legs.iter().all(|l| l.status == Some(LegStatus::Filled)) {
            Resolution::Complete
        } else if legs.iter().all(Leg::failed_empty) {
            Resolution::NotCopied
        } else {
            match ticket.policy {
                PairPolicy::Unwind => {
                    for (index, leg) in legs.iter().enumerate() {
                        if leg.filled > 0 || !leg.settled() {
                            let id = engine.next_signal_id();
                            let control = Control::CloseCopy { id, origin, leader: opens[index].leader };
                            send_control(context, session, *follower, control).await?;
                        }
                    }
                    Resolution::Unwound
                }
                PairPolicy::Complete => {
                    let missing: Vec<usize> = (0..2).filter(|i| legs[*i].failed_empty()).collect();
                    let other_filled = |i: usize| legs[1 - i].filled > 0;
                    if missing.len() == 1 && other_filled(missing[0]) {
                        let index = missing[0];
                        let id = engine.next_signal_id();
                        let control = Control::CopyOpen { id, origin, open: opens[index] };
                        send_control(context, session, *follower, control).await?;
                        reissued.push((*follower, index, id));
                        Resolution::Completed
                    } else {
                        Resolution::Broken
                    }
                }
            }
        };
        resolutions.insert(*follower, resolution);
    }
    if !reissued.is_empty() {
        for (follower, index, id) in &reissued {
            if let Some(legs) = tracker.legs.get_mut(follower) {
                legs[*index] = Leg::new(*id);
            }
            tracker.signals.insert((*id, *follower), *index);
        }
        timed_out |= tracker.watch(&audits, Instant::now() + settle).await;
        for (follower, index, _) in &reissued {
            let filled = tracker.legs.get(follower).is_some_and(|legs| legs[*index].status == Some(LegStatus::Filled));
            if !filled {
                resolutions.insert(*follower, Resolution::Broken);
            }
        }
    }
    let names = account_names(context).await;
    let followers = tracker
        .legs
        .iter()
        .map(|(account, legs)| FollowerPair {
            account: account.0,
            name: names.get(account).cloned().unwrap_or_default(),
            first: legs[0].report(),
            second: legs[1].report(),
            resolution: resolutions.get(account).copied().unwrap_or(Resolution::Broken),
        })
        .collect();
    Ok(PairOutcome { first: first.0, second: second.0, policy: ticket.policy, followers, timed_out })
}

/// The first leg went out and the second was refused: under `Unwind` the first is closed at
/// once on every follower (a close signal for its position); under `Complete` it stands.
async fn second_refused(
    context: &Context,
    origin: Origin,
    policy: PairPolicy,
    first: SignalId,
    first_open: &OpenSignal,
    error: ErrorReply,
) -> ErrorReply {
    let what = match policy {
        PairPolicy::Unwind => {
            let close = SignalAction::Close { leader: first_open.leader };
            match submit(context, origin, close, "pair unwound: second leg refused".into()).await {
                Ok(signal) => format!("the first leg ({first}) is unwound by {signal}"),
                Err(unwind) => format!("the first leg ({first}) could not be unwound: {}", unwind.message),
            }
        }
        PairPolicy::Complete => format!("the first leg ({first}) stands"),
    };
    ErrorReply::new(error.code, format!("second leg: {}; {what}", error.message), false)
}

async fn send_control(
    context: &Context,
    session: &Session,
    follower: AccountId,
    control: Control,
) -> Result<(), ErrorReply> {
    let engine = context.engine.clone();
    let who = session.who.clone();
    blocking(context.limits.submit_timeout, move || engine.control_by(&who, ControlScope::Account(follower), control))
        .await?
        .map_err(|e| super::session::submit_error(&e))
}

async fn account_names(context: &Context) -> BTreeMap<AccountId, String> {
    let engine = context.engine.clone();
    match blocking(context.limits.submit_timeout, move || engine.accounts()).await {
        Ok(Ok(views)) => views.into_iter().map(|v| (v.id, v.name.to_string())).collect(),
        _ => BTreeMap::new(),
    }
}
