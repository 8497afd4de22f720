//! What brokers report: executions, positions, balance, the outcome of commands.

use super::*;

impl AccountActor {
    pub(super) fn on_event(&mut self, now: Now, event: ConnectorEvent, out: &mut Vec<Action>) {
        match event {
            ConnectorEvent::Order(report) => self.on_report(now, report, out),
            ConnectorEvent::Working(working) => self.on_working(now, &working, out),
            ConnectorEvent::Position(effect) => self.on_position(now, effect, out),
            ConnectorEvent::Account(snapshot) => {
                self.balance = snapshot.balance;
                self.equity = snapshot.equity;
                self.check_equity(out);
            }
            ConnectorEvent::Quote(_) => {}
            ConnectorEvent::Snapshot(snapshot) => self.on_snapshot(now, *snapshot, out),
            ConnectorEvent::Connection(state) => {
                self.connected = state == ConnectionState::Connected;
                audit(out, None, AuditEvent::Connection { state });
            }
        }
    }

    pub(super) fn check_equity(&mut self, out: &mut Vec<Action>) {
        let Some(breach) = self.risk.on_equity(self.equity) else {
            return;
        };
        audit(out, None, AuditEvent::Breach { breach });
        audit(out, None, AuditEvent::Mode { mode: breach.mode });
        if breach.flatten_group {
            out.push(Action::Flatten { group: true, reason: FlattenReason::GroupDrawdown });
        } else if breach.flatten {
            out.push(Action::Flatten { group: false, reason: FlattenReason::Breach });
        }
    }

    pub(super) fn on_report(&mut self, now: Now, report: OrderReport, out: &mut Vec<Action>) {
        if let OrderReportKind::Filled(fill) = report.kind {
            self.last_fill = Some((report.broker_id, fill.position, fill.price));
        }
        if self.is_leader
            && matches!(report.kind, OrderReportKind::Cancelled | OrderReportKind::Expired)
            && self.leader_pending.remove(&report.broker_id).is_some()
        {
            self.lead(now, SignalAction::CancelPending { leader: LeaderRef(report.broker_id.0) }, out);
        }
        let Some(client_id) = report.client_id else {
            // The user's own trade, or the broker's (a stop hit): seen through positions.
            return;
        };
        let update = match &report.kind {
            OrderReportKind::Filled(fill) => OrderUpdate::Fill(*fill),
            OrderReportKind::Cancelled => OrderUpdate::Cancelled,
            OrderReportKind::Expired => OrderUpdate::Expire,
            OrderReportKind::CancelRejected(_) => OrderUpdate::CancelRejected,
            OrderReportKind::Rejected(_) => OrderUpdate::Reject,
        };
        let Some(entry) = self.orders.get_mut(&client_id) else {
            let event = match self.finished.get(&client_id) {
                // A message about an order already finished: refused by the lifecycle (a
                // fill after a rejection is exactly what reconciliation must look at).
                Some(from) => AuditEvent::InvalidTransition {
                    error: OrderError::InvalidTransition { order: client_id, from: *from, event: update_event(update) },
                },
                None => AuditEvent::UnknownOrder { client_id },
            };
            return audit(out, Some(client_id.signal), event);
        };
        if entry.order.broker_id.is_none() {
            entry.order.broker_id = Some(report.broker_id);
        }
        if let Err(error) = entry.order.apply(update) {
            return audit(out, Some(client_id.signal), AuditEvent::InvalidTransition { error });
        }
        let signal = Some(client_id.signal);
        match report.kind {
            OrderReportKind::Filled(fill) => {
                audit(out, signal, AuditEvent::Filled { client_id, fill });
                if self.own_fills.len() == self.own_fills.inline_size() {
                    // A connector that never reports the position change: forget the oldest.
                    self.own_fills.remove(0);
                }
                self.own_fills.push(fill.position);
                self.on_fill(client_id, fill, out);
            }
            OrderReportKind::Cancelled => audit(out, signal, AuditEvent::Cancelled { client_id }),
            OrderReportKind::Expired => audit(out, signal, AuditEvent::Expired { client_id }),
            // Reconciliation found no trace of it: it never reached the broker (the engine
            // stopped first), which is not a refusal.
            OrderReportKind::Rejected(reason) if reason.code == mirror_connector::RejectCode::NeverReceived => {
                audit(out, signal, AuditEvent::NeverSent { client_id });
            }
            OrderReportKind::Rejected(reason) => {
                audit(out, signal, AuditEvent::Rejected { client_id, reason: reason.to_string() });
            }
            OrderReportKind::CancelRejected(reason) => {
                audit(out, signal, AuditEvent::CommandFailed { command: "cancel".into(), error: reason.to_string() })
            }
        }
        self.after_order_change(client_id);
    }

    pub(super) fn on_fill(&mut self, client_id: ClientOrderId, fill: Fill, out: &mut Vec<Action>) {
        let entry = self.orders.get_mut(&client_id).expect("caller found it");
        entry.fills = entry.fills.saturating_add(1);
        let (purpose, fill_number, signal_t_in) = (entry.purpose, entry.fills, entry.signal_t_in);
        let first_fill = fill_number == 1;
        let holding = self.holding_of(fill.position);
        match purpose {
            Purpose::Close(Some(key)) => {
                let held = self.legs.get(&key).map_or(Qty::ZERO, |leg| leg.held(holding));
                if let Some(leg) = self.legs.get_mut(&key) {
                    leg.reduce(holding, fill.qty);
                }
                self.legs.prune(&key);
                if holding == NET && fill.qty > held {
                    self.take_back(client_id, fill_number, fill.qty - held, out);
                }
            }
            Purpose::Close(None) => {}
            Purpose::Open(key) => {
                let Some(leg) = self.legs.get_mut(&key) else { return };
                leg.add(holding, fill.qty);
                // Each fill of an open gets its own deferred close id: (the open's signal,
                // this account, 1 + number of the fill), never used by anything else.
                let mut next_leg = fill_number;
                if leg.close_on_fill {
                    self.close_holding(client_id.signal, signal_t_in, &mut next_leg, key, holding, fill.qty, out);
                    return;
                }
                if leg.keep_fraction != Ratio::ONE {
                    let keep = leg.keep_fraction;
                    if let Some(spec) = self.instruments.get(&leg.symbol).copied() {
                        let drop_part = Qty::from_raw(keep.den() - keep.num());
                        let whole = Qty::from_raw(keep.den());
                        if let Ok(qty) =
                            proportional_close(fill.qty, drop_part, whole, &spec, mirror_model::Rounding::Nearest)
                        {
                            self.close_holding(client_id.signal, signal_t_in, &mut next_leg, key, holding, qty, out);
                        }
                    }
                }
                self.amend_after_fill(key, client_id, fill, first_fill, out);
            }
        }
    }

    /// A netting offset executed for more than its copy still held (the broker closed the copy
    /// by itself meanwhile): the excess is new exposure nobody asked for, so it is taken back
    /// off with an order on the other side of the offset. Numbered
    /// `(signal, account, 0x8000 + fill)` so it never collides with the signal's other orders.
    pub(super) fn take_back(&mut self, offset: ClientOrderId, fill_number: u16, excess: Qty, out: &mut Vec<Action>) {
        let request = self.orders.get(&offset).expect("the offset being filled is live").order.request;
        let mut leg = 0x8000u16.saturating_add(fill_number);
        let intent = OrderIntent::Open;
        let Some(back) = self.taking_off(offset.signal, &mut leg, request.symbol, request.side, excess, excess, intent)
        else {
            return;
        };
        let client_id = back.client_id;
        self.send_order(back, Purpose::Close(None), None, out);
        audit(out, Some(offset.signal), AuditEvent::Corrected { client_id, symbol: request.symbol, qty: excess });
    }

    /// Levels that depend on the fill price (fixed distances), or that a modify asked for
    /// while the open was in flight, are set once the copy has filled.
    pub(super) fn amend_after_fill(
        &mut self,
        key: LegKey,
        client_id: ClientOrderId,
        fill: Fill,
        first_fill: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get_mut(&key) else { return };
        let pending = leg.pending_levels.take();
        let Some(inbound) = self.inbound.iter().find(|i| i.link.origin == key.0) else {
            return;
        };
        let rules = &inbound.link.rules;
        if pending.is_none() && !(first_fill && rules.protection_follows_fill()) {
            return;
        }
        let Some(spec) = self.instruments.get(&leg.symbol).copied() else {
            return;
        };
        let sources = pending.unwrap_or(leg.leader_levels);
        let levels = rules.protection_levels(leg.side, Some(fill.price), &spec, sources.0, sources.1);
        // The position is usually not reported yet (the fill comes first); then it carries
        // the levels the order was sent with.
        let known =
            self.positions.get(&fill.position).map(|p| (p.stop_loss, p.take_profit)).or_else(|| {
                self.orders.get(&client_id).map(|e| (e.order.request.stop_loss, e.order.request.take_profit))
            });
        if known != Some(levels) {
            self.send_modify(Some(client_id.signal), None, fill.position, spec.symbol, levels, out);
        }
    }

    /// Keeps legs in step with an order that moved: a finished open stops being working,
    /// and a finished order leaves the live set for the finished ring.
    pub(super) fn after_order_change(&mut self, client_id: ClientOrderId) {
        let Some(entry) = self.orders.get(&client_id) else {
            return;
        };
        if entry.order.status.is_live() {
            return;
        }
        let (purpose, status) = (entry.purpose, entry.order.status);
        self.orders.remove(&client_id);
        if self.finished_order.len() >= FINISHED_REMEMBERED
            && let Some(oldest) = self.finished_order.pop_front()
        {
            self.finished.remove(&oldest);
        }
        self.finished.insert(client_id, status);
        self.finished_order.push_back(client_id);
        if let Purpose::Open(key) = purpose {
            if let Some(leg) = self.legs.get_mut(&key) {
                leg.forget_order(client_id);
            }
            self.legs.prune(&key);
        }
    }

    pub(super) fn on_working(&mut self, now: Now, working: &WorkingOrder, out: &mut Vec<Action>) {
        if !self.is_leader || self.leader_pending.insert(working.broker_id, (working.symbol, working.side)).is_some() {
            return;
        }
        let Some(spec) = self.instruments.get(&working.symbol).copied() else {
            return;
        };
        let open = OpenSignal {
            leader: LeaderRef(working.broker_id.0),
            symbol: working.symbol,
            side: working.side,
            qty: working.qty,
            kind: working.kind,
            reference_price: working.kind.price(),
            stop_loss: working.stop_loss,
            take_profit: working.take_profit,
            time_in_force: working.time_in_force,
            contract_size: Some(spec.contract_size),
            from_pending: None,
            risk_bp: None,
        };
        self.lead(now, SignalAction::Open(open), out);
    }

    pub(super) fn on_position(&mut self, now: Now, effect: PositionEffect, out: &mut Vec<Action>) {
        let position = effect.position;
        let before = self.positions.get(&position.id).copied();
        let after = match effect.change {
            PositionChange::Closed { .. } => None,
            _ => Some(position),
        };
        match after {
            None => self.positions.remove(&position.id),
            Some(after) => self.positions.insert(position.id, after),
        };
        // A change our own execution caused is already in the legs (through its fill). One the
        // broker made by itself (a stop or target hit, the user closing by hand) cuts the
        // copies it touched.
        match self.own_fills.iter().position(|id| *id == position.id) {
            Some(index) => {
                self.own_fills.remove(index);
            }
            None => self.external_change(&effect),
        }
        audit(out, None, AuditEvent::Position { effect });
        if self.is_leader {
            let from_pending = if before.is_none() { self.pending_source(position.id) } else { None };
            self.lead_change(now, before, after, from_pending, out);
        }
    }

    pub(super) fn external_change(&mut self, effect: &PositionEffect) {
        let position = effect.position;
        let remaining = match effect.change {
            PositionChange::Closed { .. } => Qty::ZERO,
            PositionChange::Reduced { .. } => position.qty,
            _ => return,
        };
        match self.mode {
            AccountMode::Hedging => self.legs.clamp_all(position.id, remaining),
            AccountMode::Netting => {
                let closed = match effect.change {
                    PositionChange::Reduced { closed, .. } => Some(closed),
                    _ => None,
                };
                self.legs.cut_netted(position.symbol, position.side, closed);
            }
        }
    }

    pub(super) fn on_outcome(&mut self, outcome: Outcome, out: &mut Vec<Action>) {
        match outcome {
            Outcome::Order { client_id, result } => {
                let signal = Some(client_id.signal);
                let Some(entry) = self.orders.get_mut(&client_id) else {
                    // An answer that arrives after the order finished (a market order's ack
                    // after its fill) changes nothing.
                    if self.finished.contains_key(&client_id) {
                        if let Ok(ack) = result {
                            audit(out, signal, AuditEvent::Accepted { client_id, broker_id: ack.broker_id });
                        }
                        return;
                    }
                    return audit(out, signal, AuditEvent::UnknownOrder { client_id });
                };
                match result {
                    Ok(ack) => {
                        entry.order.broker_id = Some(ack.broker_id);
                        // An ack that arrives after the fills (market orders fill at once)
                        // changes nothing in the lifecycle.
                        if matches!(entry.order.status, OrderStatus::Submitted | OrderStatus::InFlightUnknown)
                            && let Err(error) = entry.order.apply(OrderUpdate::Accept(Some(ack.broker_id)))
                        {
                            audit(out, signal, AuditEvent::InvalidTransition { error });
                        }
                        audit(out, signal, AuditEvent::Accepted { client_id, broker_id: ack.broker_id });
                    }
                    Err(error) if error.outcome_unknown() => {
                        if let Err(error) = entry.order.apply(OrderUpdate::OutcomeUnknown) {
                            audit(out, signal, AuditEvent::InvalidTransition { error });
                        }
                        audit(out, signal, AuditEvent::OutcomeUnknown { client_id, error: error.to_string() });
                    }
                    Err(error) => {
                        if let Err(error) = entry.order.apply(OrderUpdate::Reject) {
                            audit(out, signal, AuditEvent::InvalidTransition { error });
                        }
                        audit(out, signal, AuditEvent::Rejected { client_id, reason: error.to_string() });
                    }
                }
                self.after_order_change(client_id);
            }
            Outcome::Modify { result: Err(error), .. } => {
                audit(out, None, AuditEvent::CommandFailed { command: "modify".into(), error: error.to_string() });
            }
            Outcome::Cancel { client_id, result: Err(error) } => {
                audit(
                    out,
                    Some(client_id.signal),
                    AuditEvent::CommandFailed { command: "cancel".into(), error: error.to_string() },
                );
            }
            Outcome::Modify { result: Ok(()), .. } | Outcome::Cancel { result: Ok(()), .. } => {}
        }
    }

    pub(super) fn on_not_sent(&mut self, command: Command, out: &mut Vec<Action>) {
        match command {
            Command::Place(OrderRequest { client_id, .. }) | Command::Close(CloseRequest { client_id, .. }) => {
                if let Some(entry) = self.orders.get_mut(&client_id) {
                    let _ = entry.order.apply(OrderUpdate::Reject);
                }
                audit(
                    out,
                    Some(client_id.signal),
                    AuditEvent::Skipped { action: "send".into(), reason: SkipReason::ConnectorQueueFull },
                );
                self.after_order_change(client_id);
            }
            Command::Modify(_) => audit(out, None, AuditEvent::NotSent { command: "modify".into() }),
            Command::Cancel(request) => {
                if let Some(entry) = self.orders.get_mut(&request.client_id) {
                    let _ = entry.order.apply(OrderUpdate::CancelRejected);
                }
                audit(out, Some(request.client_id.signal), AuditEvent::NotSent { command: "cancel".into() });
            }
        }
    }
}
