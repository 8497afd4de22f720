//! Following: what a follower does with a signal, and the orders it sends.

use super::*;

impl AccountActor {
    pub(super) fn on_signal(&mut self, now: Now, signal: &SignalView<'_>, _link: LinkId, out: &mut Vec<Action>) {
        // By origin (one link per origin and follower): a signal routed just before a live
        // change of the copy map carries the link's old number, and finds its link all the same.
        let Some(inbound) = self.inbound.iter().find(|i| i.link.origin == signal.origin) else {
            // Only while links change live: the link was just removed (or is not in yet).
            audit(
                out,
                Some(signal.id),
                AuditEvent::Skipped { action: signal.action.name().into(), reason: SkipReason::NotLinked },
            );
            return;
        };
        let (rules, link_paused) = (Arc::clone(&inbound.link.rules), inbound.paused);
        let skip = |out: &mut Vec<Action>, reason| {
            audit(out, Some(signal.id), AuditEvent::Skipped { action: signal.action.name().into(), reason });
        };
        if self.risk.mode == RiskMode::Frozen {
            return skip(out, SkipReason::Frozen);
        }
        match signal.action {
            SignalAction::Open(open) => {
                let gate = if self.globally_paused {
                    Some(SkipReason::GloballyPaused)
                } else if self.paused {
                    Some(SkipReason::AccountPaused)
                } else if link_paused {
                    Some(SkipReason::LinkPaused)
                } else if self.risk.mode == RiskMode::CloseOnly {
                    Some(SkipReason::CloseOnly)
                } else if !self.connected {
                    Some(SkipReason::AccountDisconnected)
                } else {
                    None
                };
                match gate {
                    Some(reason) => skip(out, reason),
                    None => self.copy_open(now, signal, &open, &rules, out),
                }
            }
            SignalAction::Modify { leader, stop_loss, take_profit } => {
                self.copy_modify(signal, (signal.origin, leader), stop_loss, take_profit, &rules, out)
            }
            SignalAction::Close { leader } => {
                let key = (signal.origin, leader);
                self.forget_closed_by_hand(&key);
                self.remember_leader_closed(key);
                if self.legs.get(&key).is_none() {
                    return skip(out, SkipReason::NoCopy);
                }
                let mut next_leg = 1;
                self.close_leg(signal.id, signal.accepted_mono_ns, key, &mut next_leg, out);
            }
            SignalAction::PartialClose { leader, closed_qty, qty_before } => {
                self.copy_partial_close(signal, (signal.origin, leader), closed_qty, qty_before, &rules, out)
            }
            SignalAction::CloseAll { symbol } => {
                let canonical = symbol.map(|s| rules.symbols.canonical(&s));
                let keys = self.legs.keys_of(signal.origin, canonical);
                if keys.is_empty() {
                    return skip(out, SkipReason::NoCopy);
                }
                let mut next_leg = 1;
                for key in keys {
                    self.remember_leader_closed(key);
                    self.close_leg(signal.id, signal.accepted_mono_ns, key, &mut next_leg, out);
                }
            }
            SignalAction::CancelPending { leader } => {
                let key = (signal.origin, leader);
                let Some(leg) = self.legs.get(&key) else {
                    return skip(out, SkipReason::NoCopy);
                };
                let working: SmallVec<[ClientOrderId; 2]> = leg.working.clone();
                for client_id in working {
                    self.cancel_order(Some(signal.id), client_id, out);
                }
            }
        }
    }

    pub(super) fn copy_open(
        &mut self,
        now: Now,
        signal: &SignalView<'_>,
        open: &OpenSignal,
        rules: &LinkRules,
        out: &mut Vec<Action>,
    ) {
        let key = (signal.origin, open.leader);
        if let Some(pending) = open.from_pending
            && pending != open.leader
            && self.legs.rekey(&(signal.origin, pending), key)
        {
            // The leader's pending order filled; our copy of it is already working (or
            // filled) at our broker and now follows the leader's position.
            return;
        }
        if open.from_pending.is_some() && self.legs.get(&key).is_some() {
            // Same id for order and position (MetaTrader numbers them alike): the pending
            // order was copied already.
            return;
        }
        let context = FollowerContext {
            instruments: &self.instruments,
            balance: self.balance,
            equity: self.equity,
            now_unix_ms: now.unix_ms,
        };
        let planned = match rules.plan_open(signal, open, &context) {
            Ok(planned) => planned,
            Err(reason) => {
                return audit(
                    out,
                    Some(signal.id),
                    AuditEvent::Skipped { action: signal.action.name().into(), reason },
                );
            }
        };
        if let Err(reason) = self.check_order_risk(&planned.spec.symbol, planned.qty) {
            return audit(out, Some(signal.id), AuditEvent::Skipped { action: signal.action.name().into(), reason });
        }
        let client_id = ClientOrderId::new(signal.id, self.id, 0);
        let request = OrderRequest {
            client_id,
            symbol: planned.spec.symbol,
            side: planned.side,
            qty: planned.qty,
            kind: planned.kind,
            stop_loss: planned.stop_loss,
            take_profit: planned.take_profit,
            time_in_force: planned.time_in_force,
            intent: OrderIntent::Open,
        };
        let canonical = planned.leader_symbol;
        let leg = self.legs.entry(key, || CopyLeg::new(planned.spec.symbol, canonical, planned.side));
        leg.working.push(client_id);
        leg.leader_levels =
            if rules.reverse { (open.take_profit, open.stop_loss) } else { (open.stop_loss, open.take_profit) };
        self.send_order(request, Purpose::Open(key), Some(signal.accepted_mono_ns), out);
        audit(
            out,
            Some(signal.id),
            AuditEvent::Copied {
                client_id,
                symbol: request.symbol,
                side: request.side,
                qty: request.qty,
                kind: request.kind,
                adjustment: planned.adjustment,
            },
        );
    }

    /// Per-order guards: quantity, number of positions, exposure on the symbol.
    pub(super) fn check_order_risk(&self, symbol: &Symbol, qty: Qty) -> Result<(), SkipReason> {
        let limits = &self.risk.limits;
        if let Some(max) = limits.max_order_qty
            && qty > max
        {
            return Err(SkipReason::MaxOrderQty { qty, max });
        }
        let live_opens =
            || self.orders.values().filter(|e| matches!(e.purpose, Purpose::Open(_)) && e.order.status.is_live());
        if let Some(max) = limits.max_open_positions {
            let unfilled_opens = live_opens().filter(|e| e.order.filled_qty.is_zero());
            let (open, adds) = match self.mode {
                AccountMode::Hedging => (self.positions.len() + unfilled_opens.count(), 1),
                AccountMode::Netting => {
                    let mut symbols: SmallVec<[Symbol; 16]> = self.positions.values().map(|p| p.symbol).collect();
                    symbols.extend(unfilled_opens.map(|e| e.order.request.symbol));
                    symbols.sort_unstable();
                    symbols.dedup();
                    let adds = usize::from(!symbols.contains(symbol));
                    (symbols.len(), adds)
                }
            };
            if open + adds > max as usize {
                return Err(SkipReason::MaxOpenPositions { open: u32::try_from(open).unwrap_or(u32::MAX), max });
            }
        }
        if let Some(max) = limits.max_symbol_exposure {
            let held = self.positions.values().filter(|p| p.symbol == *symbol).fold(Qty::ZERO, |sum, p| sum + p.qty);
            let working = live_opens()
                .filter(|e| e.order.request.symbol == *symbol)
                .fold(Qty::ZERO, |sum, e| sum + e.order.remaining_qty());
            let after = held + working + qty;
            if after > max {
                return Err(SkipReason::SymbolExposure { symbol: *symbol, after, max });
            }
        }
        Ok(())
    }

    pub(super) fn copy_modify(
        &mut self,
        signal: &SignalView<'_>,
        key: LegKey,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
        rules: &LinkRules,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get_mut(&key) else {
            return audit(
                out,
                Some(signal.id),
                AuditEvent::Skipped { action: "modify".into(), reason: SkipReason::NoCopy },
            );
        };
        leg.leader_levels = if rules.reverse { (take_profit, stop_loss) } else { (stop_loss, take_profit) };
        let Some(spec) = self.instruments.get(&leg.symbol).copied() else {
            let reason = SkipReason::UnknownSymbol { symbol: leg.symbol };
            return audit(out, Some(signal.id), AuditEvent::Skipped { action: "modify".into(), reason });
        };
        let (side, sources) = (leg.side, leg.leader_levels);
        if !leg.working.is_empty() {
            // Opens still in flight take these levels once they fill.
            leg.pending_levels = Some(sources);
        }
        // A hedging copy has positions of its own; a netting copy shares the symbol's net
        // position (the last leader to move its levels sets them).
        let (symbol, holdings) = (leg.symbol, leg.positions.clone());
        let positions: SmallVec<[PositionId; 2]> = match self.mode {
            AccountMode::Hedging => holdings.iter().map(|(id, _)| *id).collect(),
            AccountMode::Netting if holdings.is_empty() => SmallVec::new(),
            AccountMode::Netting => self.net_position(&symbol).map(|p| p.id).into_iter().collect(),
        };
        for position_id in positions {
            let Some(position) = self.positions.get(&position_id) else { continue };
            let levels = rules.protection_levels(side, Some(position.open_price), &spec, sources.0, sources.1);
            if levels == (position.stop_loss, position.take_profit) {
                continue;
            }
            self.send_modify(Some(signal.id), Some(signal.accepted_mono_ns), position_id, spec.symbol, levels, out);
        }
    }

    pub(super) fn copy_partial_close(
        &mut self,
        signal: &SignalView<'_>,
        key: LegKey,
        closed: Qty,
        before: Qty,
        rules: &LinkRules,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get_mut(&key) else {
            let reason = SkipReason::NoCopy;
            return audit(out, Some(signal.id), AuditEvent::Skipped { action: "partial_close".into(), reason });
        };
        if !leg.working.is_empty() {
            // Fills still to come keep only what the leader kept.
            let kept = Ratio::new((before - closed).raw(), before.raw()).unwrap_or(Ratio::ONE);
            leg.keep_fraction = leg.keep_fraction.checked_mul(kept).unwrap_or(Ratio::ZERO);
        }
        let Some(spec) = self.instruments.get(&leg.symbol).copied() else { return };
        let open = leg.open_qty();
        if open.is_zero() {
            return;
        }
        let mut to_close = match proportional_close(open, closed, before, &spec, rules.rounding) {
            Ok(qty) => qty,
            Err(reason) => {
                return audit(out, Some(signal.id), AuditEvent::Skipped { action: "partial_close".into(), reason });
            }
        };
        let holdings: SmallVec<[(PositionId, Qty); 2]> = leg.positions.clone();
        let mut next_leg = 1;
        for (holding, held) in holdings {
            if to_close.is_zero() {
                break;
            }
            let qty = to_close.min(held);
            to_close -= qty;
            self.close_holding(signal.id, Some(signal.accepted_mono_ns), &mut next_leg, key, holding, qty, out);
        }
    }

    /// Closes everything a leg holds, cancels its resting opens and closes whatever of its
    /// in-flight opens fills later.
    pub(super) fn close_leg(
        &mut self,
        signal: SignalId,
        t_in: u64,
        key: LegKey,
        next_leg: &mut u16,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get_mut(&key) else { return };
        if !leg.working.is_empty() {
            leg.close_on_fill = true;
        }
        let holdings: SmallVec<[(PositionId, Qty); 2]> = leg.positions.clone();
        let working: SmallVec<[ClientOrderId; 2]> = leg.working.clone();
        for (holding, qty) in holdings {
            self.close_holding(signal, Some(t_in), next_leg, key, holding, qty, out);
        }
        for client_id in working {
            let resting = self.orders.get(&client_id).is_some_and(|e| e.order.request.kind.is_pending());
            if resting {
                self.cancel_order(Some(signal), client_id, out);
            }
        }
    }

    /// Closes `qty` of one of a leg's holdings: a hedging position by its id, or, on a
    /// netting account, the leg's contribution by an offsetting order (whatever side the net
    /// position is on now).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn close_holding(
        &mut self,
        signal: SignalId,
        signal_t_in: Option<u64>,
        next_leg: &mut u16,
        key: LegKey,
        holding: PositionId,
        qty: Qty,
        out: &mut Vec<Action>,
    ) {
        if holding == NET {
            self.send_offset(signal, signal_t_in, next_leg, key, qty, out);
        } else {
            self.send_close(signal, signal_t_in, next_leg, holding, qty, Some(key), out);
        }
    }

    /// Takes `qty` of a netting leg's contribution off the net position with a market order
    /// on the other side, never more than the leg holds beyond offsets already in flight.
    pub(super) fn send_offset(
        &mut self,
        signal: SignalId,
        signal_t_in: Option<u64>,
        next_leg: &mut u16,
        key: LegKey,
        qty: Qty,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get(&key) else { return };
        let (symbol, side, held) = (leg.symbol, leg.side, leg.open_qty());
        let in_flight = self.in_flight(|e| e.purpose == Purpose::Close(Some(key)));
        let Some(request) =
            self.taking_off(signal, next_leg, symbol, side, held - held.min(in_flight), qty, OrderIntent::Open)
        else {
            return;
        };
        let client_id = request.client_id;
        self.send_order(request, Purpose::Close(Some(key)), signal_t_in, out);
        let position = self.net_position(&symbol).map_or(NET, |p| p.id);
        audit(out, Some(signal), AuditEvent::Closing { client_id, position, qty });
    }

    /// The net position on `symbol` of a netting account.
    pub(super) fn net_position(&self, symbol: &Symbol) -> Option<&Position> {
        self.positions.values().find(|p| p.symbol == *symbol)
    }

    /// Where a fill on `position` is held in a leg: the position itself on a hedging account,
    /// the leg's contribution to the net position on a netting account.
    pub(super) fn holding_of(&self, position: PositionId) -> PositionId {
        match self.mode {
            AccountMode::Hedging => position,
            AccountMode::Netting => NET,
        }
    }

    pub(super) fn send_order(
        &mut self,
        request: OrderRequest,
        purpose: Purpose,
        signal_t_in: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        self.register(request, purpose, signal_t_in);
        out.push(Action::Send { command: Command::Place(request), signal_t_in });
    }

    /// Quantity still to fill of the live orders `matching` picks.
    pub(super) fn in_flight(&self, matching: impl Fn(&OrderEntry) -> bool) -> Qty {
        self.orders
            .values()
            .filter(|e| e.order.status.is_live() && matching(e))
            .fold(Qty::ZERO, |sum, e| sum + e.order.remaining_qty())
    }

    /// A market order (immediate or cancel) on the other side of a holding on `side`, for
    /// `qty` but never more than `available`; `None` when nothing is available. Numbered
    /// `(signal, this account, next_leg)`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn taking_off(
        &self,
        signal: SignalId,
        next_leg: &mut u16,
        symbol: Symbol,
        side: mirror_model::Side,
        available: Qty,
        qty: Qty,
        intent: OrderIntent,
    ) -> Option<OrderRequest> {
        let qty = qty.min(available);
        if qty.is_zero() {
            return None;
        }
        let client_id = ClientOrderId::new(signal, self.id, *next_leg);
        *next_leg = next_leg.saturating_add(1);
        Some(OrderRequest {
            client_id,
            symbol,
            side: side.opposite(),
            qty,
            kind: OrderKind::Market,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Ioc,
            intent,
        })
    }

    /// Records a new order as submitted (it is handed to the connector right after).
    pub(super) fn register(&mut self, request: OrderRequest, purpose: Purpose, signal_t_in: Option<u64>) {
        let mut order = Order::new(request);
        let submitted = order.apply(OrderUpdate::Submit);
        debug_assert!(submitted.is_ok(), "a new order can always be submitted");
        self.orders.insert(request.client_id, OrderEntry { order, purpose, fills: 0, signal_t_in });
    }

    /// Closes `qty` of `position`, never more than is open and not already being closed by
    /// closes in flight. A position the broker has not reported yet (its open just filled)
    /// is closed on the strength of the leg that filled it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_close(
        &mut self,
        signal: SignalId,
        signal_t_in: Option<u64>,
        next_leg: &mut u16,
        position: PositionId,
        qty: Qty,
        leg: Option<LegKey>,
        out: &mut Vec<Action>,
    ) {
        // A leg's own holding is the most current figure: it counts each fill as it comes,
        // while the broker's position change for that fill may still be on its way.
        let (symbol, side, held) = match (leg.and_then(|key| self.legs.get(&key)), self.positions.get(&position)) {
            (Some(leg), _) => (leg.symbol, leg.side, leg.held(position)),
            (None, Some(known)) => (known.symbol, known.side, known.qty),
            (None, None) => return,
        };
        let in_flight = self.in_flight(|e| e.order.request.intent == OrderIntent::Close { position });
        let intent = OrderIntent::Close { position };
        let Some(request) = self.taking_off(signal, next_leg, symbol, side, held - held.min(in_flight), qty, intent)
        else {
            return;
        };
        let (client_id, qty) = (request.client_id, request.qty);
        self.register(request, Purpose::Close(leg), signal_t_in);
        let close = CloseRequest { client_id, position, symbol, qty };
        out.push(Action::Send { command: Command::Close(close), signal_t_in });
        audit(out, Some(signal), AuditEvent::Closing { client_id, position, qty });
    }

    pub(super) fn send_modify(
        &mut self,
        signal: Option<SignalId>,
        signal_t_in: Option<u64>,
        position: PositionId,
        symbol: Symbol,
        (stop_loss, take_profit): (Option<Price>, Option<Price>),
        out: &mut Vec<Action>,
    ) {
        let request = ModifyRequest { position, symbol, stop_loss, take_profit };
        out.push(Action::Send { command: Command::Modify(request), signal_t_in });
        audit(out, signal, AuditEvent::Modifying { position, stop_loss, take_profit });
    }

    pub(super) fn cancel_order(&mut self, signal: Option<SignalId>, client_id: ClientOrderId, out: &mut Vec<Action>) {
        let Some(entry) = self.orders.get_mut(&client_id) else {
            return;
        };
        if entry.order.apply(OrderUpdate::CancelRequest).is_err() {
            return;
        }
        let request = CancelRequest { client_id, broker_id: entry.order.broker_id };
        out.push(Action::Send { command: Command::Cancel(request), signal_t_in: None });
        audit(out, signal, AuditEvent::Cancelling { client_id });
    }
}
