//! Instructions: pause, resume, flatten, a new trading day.

use super::*;

impl AccountActor {
    pub(super) fn on_control(&mut self, now: Now, control: Control, out: &mut Vec<Action>) {
        match control {
            Control::Pause | Control::Resume => {
                self.paused = control == Control::Pause;
                audit(out, None, AuditEvent::Paused { scope: "account".into(), paused: self.paused });
            }
            Control::PauseLink(link) | Control::ResumeLink(link) => {
                let paused = matches!(control, Control::PauseLink(_));
                if let Some(inbound) = self.inbound.iter_mut().find(|i| i.link.link == link) {
                    inbound.paused = paused;
                    audit(out, None, AuditEvent::Paused { scope: "link".into(), paused });
                }
            }
            Control::PauseAll | Control::ResumeAll => {
                self.globally_paused = control == Control::PauseAll;
                audit(out, None, AuditEvent::Paused { scope: "global".into(), paused: self.globally_paused });
            }
            Control::Flatten { id, reason, freeze } => self.flatten(id, reason, freeze, out),
            Control::NewDay => {
                let before = self.risk.mode;
                self.risk.new_day(self.equity);
                if before != self.risk.mode {
                    audit(out, None, AuditEvent::Mode { mode: self.risk.mode });
                }
            }
            Control::ResetRisk => {
                self.risk.reset();
                audit(out, None, AuditEvent::Mode { mode: self.risk.mode });
            }
            Control::CloseCopy { id, origin, leader } => {
                self.on_targeted(now, id, origin, SignalAction::Close { leader }, out)
            }
            Control::CopyOpen { id, origin, open } => self.on_targeted(now, id, origin, SignalAction::Open(open), out),
            Control::Restarted => {
                let mut submitted: Vec<ClientOrderId> = self
                    .orders
                    .iter()
                    .filter(|(_, e)| matches!(e.order.status, OrderStatus::Created | OrderStatus::Submitted))
                    .map(|(id, _)| *id)
                    .collect();
                submitted.sort_unstable();
                for client_id in submitted {
                    if let Some(entry) = self.orders.get_mut(&client_id)
                        && entry.order.apply(OrderUpdate::OutcomeUnknown).is_ok()
                    {
                        let error = "the engine stopped before the outcome was known".to_owned();
                        audit(out, Some(client_id.signal), AuditEvent::OutcomeUnknown { client_id, error });
                    }
                }
            }
        }
    }

    /// A signal for this account alone, handled exactly as the same signal on its link
    /// would be (filters, sizing, risk), dated now.
    fn on_targeted(&mut self, now: Now, id: SignalId, origin: Origin, action: SignalAction, out: &mut Vec<Action>) {
        let Some(link) = self.inbound.iter().find(|i| i.link.origin == origin).map(|i| i.link.link) else {
            audit(out, Some(id), AuditEvent::Skipped { action: action.name().into(), reason: SkipReason::NoCopy });
            return;
        };
        let signal = SignalView {
            id,
            origin,
            created_unix_ms: now.unix_ms,
            accepted_mono_ns: now.mono_ns,
            leader_balance: None,
            leader_equity: None,
            action,
            note: "",
        };
        self.on_signal(now, &signal, link, out);
    }

    pub(super) fn flatten(&mut self, id: SignalId, reason: FlattenReason, freeze: bool, out: &mut Vec<Action>) {
        if freeze && self.risk.mode != RiskMode::Frozen {
            self.risk.freeze();
            audit(out, Some(id), AuditEvent::Mode { mode: RiskMode::Frozen });
        }
        let mut positions: SmallVec<[(PositionId, Qty); 8]> = self.positions.values().map(|p| (p.id, p.qty)).collect();
        positions.sort_unstable();
        let mut working: SmallVec<[ClientOrderId; 8]> = self
            .orders
            .iter()
            .filter(|(_, e)| matches!(e.purpose, Purpose::Open(_)) && e.order.status.is_live())
            .map(|(id, _)| *id)
            .collect();
        working.sort_unstable();
        audit(
            out,
            Some(id),
            AuditEvent::Flattening {
                reason,
                positions: u32::try_from(positions.len()).unwrap_or(u32::MAX),
                orders: u32::try_from(working.len()).unwrap_or(u32::MAX),
            },
        );
        // The account is being emptied: no copy survives it. What is still in flight closes
        // as it fills.
        self.legs.clear_holdings();
        let mut next_leg = 1;
        for (position, qty) in positions {
            self.send_close(id, None, &mut next_leg, position, qty, None, out);
        }
        for client_id in working {
            let resting = self.orders.get(&client_id).is_some_and(|e| e.order.request.kind.is_pending());
            if resting {
                self.cancel_order(Some(id), client_id, out);
            }
        }
    }
}
