//! Leading: a leader account's position changes become signals for its followers.
//!
//! Signals come from the difference between the position as this account knew it and the
//! position as the broker now reports it, not from the kind of event that reported it. So a
//! live event, a snapshot after a reconnect and a snapshot after a restart all lead the same
//! way, and hearing about the same state twice leads nothing.

use super::*;

impl AccountActor {
    /// Leads the change of one position from `before` to `after` (`None`: not open).
    pub(super) fn lead_change(
        &mut self,
        now: Now,
        before: Option<Position>,
        after: Option<Position>,
        from_pending: Option<LeaderRef>,
        out: &mut Vec<Action>,
    ) {
        match (before, after) {
            (None, None) => {}
            (None, Some(opened)) => {
                let action = self.open_signal(opened, opened.qty, from_pending);
                self.lead(now, action, out);
            }
            (Some(closed), None) => self.lead(now, SignalAction::Close { leader: LeaderRef(closed.id.0) }, out),
            (Some(before), Some(after)) if before.side != after.side => {
                // A netting position that flipped under the same id: close, then open.
                self.lead(now, SignalAction::Close { leader: LeaderRef(before.id.0) }, out);
                let action = self.open_signal(after, after.qty, None);
                self.lead(now, action, out);
            }
            (Some(before), Some(after)) => {
                let leader = LeaderRef(after.id.0);
                if after.qty > before.qty {
                    let action = self.open_signal(after, after.qty - before.qty, None);
                    self.lead(now, action, out);
                } else if after.qty < before.qty {
                    let closed_qty = before.qty - after.qty;
                    self.lead(now, SignalAction::PartialClose { leader, closed_qty, qty_before: before.qty }, out);
                }
                if (before.stop_loss, before.take_profit) != (after.stop_loss, after.take_profit) {
                    let action =
                        SignalAction::Modify { leader, stop_loss: after.stop_loss, take_profit: after.take_profit };
                    self.lead(now, action, out);
                }
            }
        }
    }

    /// An open of `qty` of `position`, at the price of the execution that caused it when that
    /// is the latest one seen.
    fn open_signal(&self, position: Position, qty: Qty, from_pending: Option<LeaderRef>) -> SignalAction {
        let fill = self.last_fill.filter(|(_, id, _)| *id == position.id);
        SignalAction::Open(OpenSignal {
            leader: LeaderRef(position.id.0),
            symbol: position.symbol,
            side: position.side,
            qty,
            kind: OrderKind::Market,
            reference_price: Some(fill.map_or(position.open_price, |(_, _, price)| price)),
            stop_loss: position.stop_loss,
            take_profit: position.take_profit,
            time_in_force: TimeInForce::Gtc,
            contract_size: self.instruments.get(&position.symbol).map(|s| s.contract_size),
            from_pending,
            risk_bp: None,
        })
    }

    /// The pending order a newly opened position came from: the order of the execution that
    /// opened it, if it was a pending order of this account's.
    pub(super) fn pending_source(&mut self, position: PositionId) -> Option<LeaderRef> {
        let (order, filled, _) = self.last_fill?;
        (filled == position && self.leader_pending.remove(&order).is_some()).then_some(LeaderRef(order.0))
    }

    pub(super) fn lead(&mut self, now: Now, action: SignalAction, out: &mut Vec<Action>) {
        audit(out, None, AuditEvent::Led { action });
        out.push(Action::Emit(SignalDraft {
            action,
            created_unix_ms: now.unix_ms,
            leader_balance: self.balance,
            leader_equity: self.equity,
        }));
    }
}
