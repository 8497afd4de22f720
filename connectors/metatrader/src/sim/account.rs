//! The simulated terminal's trading core: an account at its trade server, plus what the EA
//! does around it (the journal of executed commands, the events it reports). Pure: no I/O;
//! every operation returns the frames the EA would send.
//!
//! Positions are kept by the model's `PositionBook` under a stable id, and given the tickets
//! MetaTrader shows: on MT5 the id is the position ticket (a netting position keeps it
//! through a reversal); on MT4 a partial close moves the remainder to a new ticket whose
//! comment is `from #<old>`.

use std::collections::{BTreeMap, VecDeque};

use mirror_model::{
    AccountMode, InstrumentSpec, Money, OrderIntent, Platform, PositionBook, PositionChange, PositionEffect,
    PositionId, Price, Qty, Rounding, Side, Symbol,
};

use crate::protocol::{
    AccountUpdate, Ack, Cmd, CmdOrderType, Deal, Done, Entry, Op, PendingAdd, PendingDel, PendingEnd, PendingType,
    QuoteUpdate, Sltp, Snapshot, TerminalMessage, WireOrder, WirePosition, WireSymbol,
};
use crate::sim::{SimDeal, SimError, SimPosition};

/// Journal entries the EA keeps (and sends in each snapshot's `done`).
pub(crate) const JOURNAL_KEPT: usize = 64;

/// Money is booked in cents.
const MONEY_DECIMALS: u32 = 2;

/// Why a request fails, as MetaTrader would code it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownSymbol,
    InvalidVolume,
    InvalidPrice,
    InvalidStops,
    PositionNotFound,
    OrderNotFound,
}

impl Refusal {
    /// MT5 trade server return code / MQL5 error, or MT4 `GetLastError` code.
    pub(crate) fn code(self, platform: Platform) -> i64 {
        let mt4 = platform == Platform::Mt4;
        match self {
            Self::UnknownSymbol => {
                if mt4 {
                    4106
                } else {
                    4301
                }
            }
            Self::InvalidVolume => {
                if mt4 {
                    131
                } else {
                    10014
                }
            }
            Self::InvalidPrice => {
                if mt4 {
                    129
                } else {
                    10015
                }
            }
            Self::InvalidStops => {
                if mt4 {
                    130
                } else {
                    10016
                }
            }
            Self::PositionNotFound => {
                if mt4 {
                    4108
                } else {
                    4753
                }
            }
            Self::OrderNotFound => {
                if mt4 {
                    4108
                } else {
                    4754
                }
            }
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::UnknownSymbol => "unknown symbol",
            Self::InvalidVolume => "invalid volume",
            Self::InvalidPrice => "invalid price",
            Self::InvalidStops => "invalid stops",
            Self::PositionNotFound => "position not found",
            Self::OrderNotFound => "order not found",
        }
    }
}

/// One symbol the simulated terminal trades, and its market.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimSymbol {
    /// The specification (as the terminal's broker sets it).
    pub spec: InstrumentSpec,
    /// Bid now.
    pub bid: Price,
    /// Ask minus bid.
    pub spread: Price,
}

#[derive(Clone, Debug)]
struct Meta {
    ticket: u64,
    comment: String,
    magic: u64,
    time_msc: i64,
}

#[derive(Clone, Debug)]
struct Resting {
    wire: WireOrder,
}

/// What one execution was, before it becomes frames.
struct Execution<'a> {
    symbol: Symbol,
    side: Side,
    qty: Qty,
    price: Price,
    intent: OrderIntent,
    new_id: PositionId,
    protection: (Option<Price>, Option<Price>),
    order: u64,
    cid: &'a str,
    comment: &'a str,
    magic: u64,
    reason: &'static str,
}

pub(crate) struct SimAccount {
    platform: Platform,
    mode: AccountMode,
    balance: Money,
    symbols: BTreeMap<Symbol, SimSymbol>,
    book: PositionBook,
    meta: BTreeMap<PositionId, Meta>,
    orders: BTreeMap<u64, Resting>,
    next_ticket: u64,
    next_deal: u64,
    journal: VecDeque<Done>,
    history: Vec<SimDeal>,
    magic: u64,
}

fn pending_type(side: Side, kind: CmdOrderType) -> Option<PendingType> {
    Some(match (side, kind) {
        (Side::Buy, CmdOrderType::Limit) => PendingType::BuyLimit,
        (Side::Sell, CmdOrderType::Limit) => PendingType::SellLimit,
        (Side::Buy, CmdOrderType::Stop) => PendingType::BuyStop,
        (Side::Sell, CmdOrderType::Stop) => PendingType::SellStop,
        (_, CmdOrderType::Market) => return None,
    })
}

fn pending_side(order_type: PendingType) -> Side {
    match order_type {
        PendingType::BuyLimit | PendingType::BuyStop => Side::Buy,
        PendingType::SellLimit | PendingType::SellStop => Side::Sell,
    }
}

impl SimAccount {
    pub(crate) fn new(
        platform: Platform,
        mode: AccountMode,
        balance: Money,
        symbols: &[SimSymbol],
        first_ticket: u64,
        magic: u64,
    ) -> Self {
        Self {
            platform,
            mode,
            balance,
            symbols: symbols.iter().map(|s| (s.spec.symbol, *s)).collect(),
            book: PositionBook::new(mode),
            meta: BTreeMap::new(),
            orders: BTreeMap::new(),
            next_ticket: first_ticket,
            next_deal: first_ticket * 10,
            journal: VecDeque::new(),
            history: Vec::new(),
            magic,
        }
    }

    fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn deal_ticket(&mut self) -> u64 {
        if self.platform == Platform::Mt4 {
            return 0;
        }
        self.next_deal += 1;
        self.next_deal
    }

    fn market(&self, symbol: &Symbol) -> Option<(InstrumentSpec, Price, Price)> {
        let s = self.symbols.get(symbol)?;
        Some((s.spec, s.bid, s.bid + s.spread))
    }

    fn equity(&self) -> Money {
        let unrealized = self.book.unrealized_pnl(|symbol| self.market(symbol));
        self.balance + unrealized.round_dp(MONEY_DECIMALS, Rounding::Nearest)
    }

    fn account_frame(&self) -> TerminalMessage {
        TerminalMessage::Account(AccountUpdate { balance: self.balance, equity: self.equity(), margin: Money::ZERO })
    }

    fn check_volume(&self, spec: &InstrumentSpec, volume: Option<Qty>) -> Result<Qty, Refusal> {
        match volume {
            Some(qty) if spec.qty_is_tradable(qty) => Ok(qty),
            _ => Err(Refusal::InvalidVolume),
        }
    }

    /// SL below and TP above the price a long closes at (the reverse for a short).
    fn check_stops(side: Side, close_at: Price, sl: Option<Price>, tp: Option<Price>) -> Result<(), Refusal> {
        let sign = side.sign();
        let sl_ok = sl.is_none_or(|level| (close_at.raw() - level.raw()) * sign > 0);
        let tp_ok = tp.is_none_or(|level| (level.raw() - close_at.raw()) * sign > 0);
        if sl_ok && tp_ok { Ok(()) } else { Err(Refusal::InvalidStops) }
    }

    fn close_price(&self, symbol: &Symbol, side: Side) -> Option<Price> {
        let (_, bid, ask) = self.market(symbol)?;
        Some(if side == Side::Buy { bid } else { ask })
    }

    /// Applies one execution to the book and returns the deal frames (an `out` before an `in`
    /// when a netting position reverses) and the position id touched last.
    fn execute(&mut self, execution: &Execution<'_>, now: i64) -> Result<(Vec<TerminalMessage>, u64), Refusal> {
        let (spec, _, _) = self.market(&execution.symbol).ok_or(Refusal::UnknownSymbol)?;
        let mut effects: Vec<PositionEffect> = Vec::with_capacity(2);
        self.book
            .apply_execution(
                &spec,
                execution.intent,
                execution.side,
                execution.qty,
                execution.price,
                execution.new_id,
                execution.protection,
                &mut effects,
            )
            .map_err(|_| Refusal::PositionNotFound)?;
        let mut frames = Vec::with_capacity(effects.len() + 1);
        let mut last_ticket = 0;
        for effect in effects {
            let position = effect.position;
            let pnl = effect.realized_pnl.round_dp(MONEY_DECIMALS, Rounding::Nearest);
            self.balance += pnl;
            let (entry, volume) = match effect.change {
                PositionChange::Opened => {
                    self.meta.insert(
                        position.id,
                        Meta {
                            ticket: position.id.0,
                            comment: execution.comment.to_owned(),
                            magic: execution.magic,
                            time_msc: now,
                        },
                    );
                    (Entry::In, position.qty)
                }
                PositionChange::Increased { added } => (Entry::In, added),
                PositionChange::Reduced { closed, .. } | PositionChange::Closed { closed } => (Entry::Out, closed),
                PositionChange::ProtectionChanged => continue,
            };
            let ticket = self.meta.get(&position.id).map_or(position.id.0, |m| m.ticket);
            let mut new_ticket = 0;
            if matches!(effect.change, PositionChange::Reduced { .. }) && self.platform == Platform::Mt4 {
                // MT4 closes the whole ticket and opens the remainder under a new one.
                new_ticket = self.ticket();
                let meta = self.meta.get_mut(&position.id).expect("an open position has its ticket");
                meta.ticket = new_ticket;
                meta.comment = format!("from #{ticket}");
            }
            if matches!(effect.change, PositionChange::Closed { .. }) {
                self.meta.remove(&position.id);
            }
            last_ticket = if new_ticket != 0 { new_ticket } else { ticket };
            let side = if entry == Entry::In { position.side } else { position.side.opposite() };
            self.history.push(SimDeal {
                ticket,
                symbol: execution.symbol,
                side,
                qty: volume,
                price: execution.price,
                opening: entry == Entry::In,
                cid: execution.cid.to_owned(),
            });
            frames.push(TerminalMessage::Deal(Deal {
                position: ticket,
                new_ticket,
                order: execution.order,
                deal: self.deal_ticket(),
                symbol: execution.symbol,
                side,
                entry,
                volume,
                price: execution.price,
                profit: pnl,
                sl: position.stop_loss,
                tp: position.take_profit,
                pos_price: (entry == Entry::In).then_some(position.open_price),
                cid: execution.cid.to_owned(),
                reason: execution.reason.to_owned(),
                time_msc: now,
            }));
        }
        frames.push(self.account_frame());
        Ok((frames, last_ticket))
    }

    /// The id a new open on `symbol` gets: a new ticket, or the net position's on netting.
    fn open_id(&mut self, symbol: &Symbol) -> (u64, PositionId) {
        let order = self.ticket();
        let id = match self.mode {
            AccountMode::Netting => self.book.net_position(symbol).map_or(PositionId(order), |p| p.id),
            AccountMode::Hedging => PositionId(order),
        };
        (order, id)
    }

    /// The position with this ticket now.
    fn position_by_ticket(&self, ticket: u64) -> Option<mirror_model::Position> {
        let (id, _) = self.meta.iter().find(|(_, m)| m.ticket == ticket)?;
        self.book.get(*id).copied()
    }

    // ----- the EA's command handling ---------------------------------------------------------

    /// Carries out a command as the EA does: a command whose client id is in the journal is
    /// answered from it and not executed again.
    pub(crate) fn command(&mut self, cmd: &Cmd, now: i64) -> (Ack, Vec<TerminalMessage>) {
        let journaled = self.journal.iter().find(|d| {
            d.cmd == cmd.cmd || (!cmd.cid.is_empty() && matches!(cmd.op, Op::Open | Op::Close) && d.cid == cmd.cid)
        });
        if let Some(done) = journaled {
            let ack = Ack {
                cmd: cmd.cmd,
                ok: true,
                retcode: self.done_code(),
                message: "already executed".into(),
                order: done.order,
                position: done.position,
                price: done.price,
                volume: done.volume,
                dup: true,
            };
            return (ack, Vec::new());
        }
        let result = match cmd.op {
            Op::Open => self.open(cmd, now),
            Op::Close => self.close(cmd, now),
            Op::Modify => self.modify(cmd, now),
            Op::Cancel => self.cancel(cmd, now),
        };
        match result {
            Ok((ack, frames)) => {
                if matches!(cmd.op, Op::Open | Op::Close) {
                    if self.journal.len() >= JOURNAL_KEPT {
                        self.journal.pop_front();
                    }
                    self.journal.push_back(Done {
                        cmd: cmd.cmd,
                        cid: cmd.cid.clone(),
                        order: ack.order,
                        position: ack.position,
                        price: ack.price,
                        volume: ack.volume,
                    });
                }
                (ack, frames)
            }
            Err(refusal) => {
                let ack = Ack {
                    cmd: cmd.cmd,
                    ok: false,
                    retcode: refusal.code(self.platform),
                    message: refusal.message().into(),
                    order: 0,
                    position: 0,
                    price: None,
                    volume: None,
                    dup: false,
                };
                (ack, Vec::new())
            }
        }
    }

    fn done_code(&self) -> i64 {
        if self.platform == Platform::Mt4 { 0 } else { 10009 }
    }

    fn ok(&self, cmd: &Cmd, order: u64, position: u64, fill: Option<(Price, Qty)>) -> Ack {
        Ack {
            cmd: cmd.cmd,
            ok: true,
            retcode: self.done_code(),
            message: "done".into(),
            order,
            position,
            price: fill.map(|f| f.0),
            volume: fill.map(|f| f.1),
            dup: false,
        }
    }

    fn open(&mut self, cmd: &Cmd, now: i64) -> Result<(Ack, Vec<TerminalMessage>), Refusal> {
        let symbol = Symbol::new(&cmd.symbol).map_err(|_| Refusal::UnknownSymbol)?;
        let (spec, bid, ask) = self.market(&symbol).ok_or(Refusal::UnknownSymbol)?;
        let side = cmd.side.ok_or(Refusal::InvalidPrice)?;
        let qty = self.check_volume(&spec, cmd.volume)?;
        match cmd.order_type.unwrap_or(CmdOrderType::Market) {
            CmdOrderType::Market => {
                let price = if side == Side::Buy { ask } else { bid };
                Self::check_stops(side, if side == Side::Buy { bid } else { ask }, cmd.sl, cmd.tp)?;
                let (order, id) = self.open_id(&symbol);
                let execution = Execution {
                    symbol,
                    side,
                    qty,
                    price,
                    intent: OrderIntent::Open,
                    new_id: id,
                    protection: (cmd.sl, cmd.tp),
                    order,
                    cid: &cmd.cid,
                    comment: &cmd.cid,
                    magic: self.magic,
                    reason: "expert",
                };
                let (frames, position) = self.execute(&execution, now)?;
                Ok((self.ok(cmd, order, position, Some((price, qty))), frames))
            }
            kind => {
                let price =
                    cmd.price.filter(|p| p.is_positive() && spec.price_is_on_tick(*p)).ok_or(Refusal::InvalidPrice)?;
                let order_type = pending_type(side, kind).ok_or(Refusal::InvalidPrice)?;
                let rests = match order_type {
                    PendingType::BuyLimit => price < ask,
                    PendingType::SellLimit => price > bid,
                    PendingType::BuyStop => price > ask,
                    PendingType::SellStop => price < bid,
                };
                if !rests {
                    return Err(Refusal::InvalidPrice);
                }
                Self::check_stops(side, price, cmd.sl, cmd.tp)?;
                let ticket = self.ticket();
                let wire = WireOrder {
                    ticket,
                    symbol,
                    order_type,
                    volume: qty,
                    price,
                    sl: cmd.sl,
                    tp: cmd.tp,
                    magic: self.magic,
                    comment: cmd.cid.clone(),
                    expiration: cmd.expiration,
                };
                let frame = self.rest(wire, &cmd.cid, now);
                let mut ack = self.ok(cmd, ticket, 0, None);
                if self.platform == Platform::Mt5 {
                    ack.retcode = 10008;
                }
                Ok((ack, vec![frame]))
            }
        }
    }

    fn rest(&mut self, wire: WireOrder, cid: &str, now: i64) -> TerminalMessage {
        let frame = TerminalMessage::PendingAdd(PendingAdd {
            ticket: wire.ticket,
            symbol: wire.symbol,
            order_type: wire.order_type,
            volume: wire.volume,
            price: wire.price,
            sl: wire.sl,
            tp: wire.tp,
            cid: cid.to_owned(),
            expiration: wire.expiration,
            time_msc: now,
        });
        self.orders.insert(wire.ticket, Resting { wire });
        frame
    }

    fn close(&mut self, cmd: &Cmd, now: i64) -> Result<(Ack, Vec<TerminalMessage>), Refusal> {
        let position = self.position_by_ticket(cmd.position).ok_or(Refusal::PositionNotFound)?;
        let (spec, _, _) = self.market(&position.symbol).ok_or(Refusal::UnknownSymbol)?;
        let qty = cmd.volume.ok_or(Refusal::InvalidVolume)?;
        let remainder = position.qty - qty.min(position.qty);
        let whole = qty == position.qty;
        if !qty.is_positive()
            || qty > position.qty
            || (!whole && (!spec.qty_is_tradable(qty) || remainder < spec.min_qty))
        {
            return Err(Refusal::InvalidVolume);
        }
        let side = position.side.opposite();
        let price = self.close_price(&position.symbol, position.side).ok_or(Refusal::UnknownSymbol)?;
        // MT5 sends a closing order with its own ticket; MT4 closes the ticket itself.
        let order = if self.platform == Platform::Mt4 { cmd.position } else { self.ticket() };
        let execution = Execution {
            symbol: position.symbol,
            side,
            qty,
            price,
            intent: OrderIntent::Close { position: position.id },
            new_id: position.id,
            protection: (None, None),
            order,
            cid: &cmd.cid,
            comment: &cmd.cid,
            magic: self.magic,
            reason: "expert",
        };
        let (frames, _) = self.execute(&execution, now)?;
        Ok((self.ok(cmd, order, cmd.position, Some((price, qty))), frames))
    }

    fn modify(&mut self, cmd: &Cmd, now: i64) -> Result<(Ack, Vec<TerminalMessage>), Refusal> {
        let position = self.position_by_ticket(cmd.position).ok_or(Refusal::PositionNotFound)?;
        let (spec, _, _) = self.market(&position.symbol).ok_or(Refusal::UnknownSymbol)?;
        if [cmd.sl, cmd.tp].into_iter().flatten().any(|level| !spec.price_is_on_tick(level)) {
            return Err(Refusal::InvalidPrice);
        }
        let close_at = self.close_price(&position.symbol, position.side).ok_or(Refusal::UnknownSymbol)?;
        Self::check_stops(position.side, close_at, cmd.sl, cmd.tp)?;
        let frames = self.set_protection(position.id, cmd.sl, cmd.tp, now);
        Ok((self.ok(cmd, 0, cmd.position, None), frames))
    }

    fn set_protection(
        &mut self,
        id: PositionId,
        sl: Option<Price>,
        tp: Option<Price>,
        now: i64,
    ) -> Vec<TerminalMessage> {
        let Some(before) = self.book.get(id).copied() else { return Vec::new() };
        if (before.stop_loss, before.take_profit) == (sl, tp) {
            // MT5 answers TRADE_RETCODE_NO_CHANGES, which the EA counts as done.
            return Vec::new();
        }
        let Ok(effect) = self.book.set_protection(id, sl, tp) else { return Vec::new() };
        let ticket = self.meta.get(&id).map_or(id.0, |m| m.ticket);
        vec![TerminalMessage::Sltp(Sltp { position: ticket, symbol: effect.position.symbol, sl, tp, time_msc: now })]
    }

    fn cancel(&mut self, cmd: &Cmd, now: i64) -> Result<(Ack, Vec<TerminalMessage>), Refusal> {
        let ticket = if cmd.order != 0 && self.orders.contains_key(&cmd.order) {
            cmd.order
        } else {
            let by_comment = self.orders.values().find(|o| !cmd.cid.is_empty() && o.wire.comment == cmd.cid);
            by_comment.map(|o| o.wire.ticket).ok_or(Refusal::OrderNotFound)?
        };
        let frame = self.delete(ticket, PendingEnd::Cancelled, now).ok_or(Refusal::OrderNotFound)?;
        Ok((self.ok(cmd, ticket, 0, None), vec![frame]))
    }

    fn delete(&mut self, ticket: u64, state: PendingEnd, now: i64) -> Option<TerminalMessage> {
        let resting = self.orders.remove(&ticket)?;
        Some(TerminalMessage::PendingDel(PendingDel { ticket, state, cid: resting.wire.comment, time_msc: now }))
    }

    // ----- the user at the terminal ----------------------------------------------------------

    pub(crate) fn manual_open(
        &mut self,
        symbol: Symbol,
        side: Side,
        qty: Qty,
        sl: Option<Price>,
        tp: Option<Price>,
        now: i64,
    ) -> Result<(u64, Vec<TerminalMessage>), SimError> {
        let (spec, bid, ask) = self.market(&symbol).ok_or(SimError::UnknownSymbol(symbol))?;
        let refused = |refusal: Refusal| SimError::Refused(refusal.message());
        let qty = self.check_volume(&spec, Some(qty)).map_err(refused)?;
        Self::check_stops(side, if side == Side::Buy { bid } else { ask }, sl, tp).map_err(refused)?;
        let price = if side == Side::Buy { ask } else { bid };
        let (order, id) = self.open_id(&symbol);
        let execution = Execution {
            symbol,
            side,
            qty,
            price,
            intent: OrderIntent::Open,
            new_id: id,
            protection: (sl, tp),
            order,
            cid: "",
            comment: "",
            magic: 0,
            reason: "client",
        };
        let (frames, ticket) = self.execute(&execution, now).map_err(refused)?;
        Ok((ticket, frames))
    }

    pub(crate) fn manual_close(&mut self, ticket: u64, qty: Qty, now: i64) -> Result<Vec<TerminalMessage>, SimError> {
        let position = self.position_by_ticket(ticket).ok_or(SimError::UnknownTicket(ticket))?;
        let price =
            self.close_price(&position.symbol, position.side).ok_or(SimError::UnknownSymbol(position.symbol))?;
        let order = if self.platform == Platform::Mt4 { ticket } else { self.ticket() };
        let execution = Execution {
            symbol: position.symbol,
            side: position.side.opposite(),
            qty,
            price,
            intent: OrderIntent::Close { position: position.id },
            new_id: position.id,
            protection: (None, None),
            order,
            cid: "",
            comment: "",
            magic: 0,
            reason: "client",
        };
        self.execute(&execution, now).map(|(frames, _)| frames).map_err(|r| SimError::Refused(r.message()))
    }

    pub(crate) fn manual_modify(
        &mut self,
        ticket: u64,
        sl: Option<Price>,
        tp: Option<Price>,
        now: i64,
    ) -> Result<Vec<TerminalMessage>, SimError> {
        let position = self.position_by_ticket(ticket).ok_or(SimError::UnknownTicket(ticket))?;
        Ok(self.set_protection(position.id, sl, tp, now))
    }

    pub(crate) fn manual_pending(
        &mut self,
        symbol: Symbol,
        order_type: PendingType,
        qty: Qty,
        price: Price,
        now: i64,
    ) -> Result<(u64, TerminalMessage), SimError> {
        self.market(&symbol).ok_or(SimError::UnknownSymbol(symbol))?;
        let ticket = self.ticket();
        let wire = WireOrder {
            ticket,
            symbol,
            order_type,
            volume: qty,
            price,
            sl: None,
            tp: None,
            magic: 0,
            comment: String::new(),
            expiration: 0,
        };
        Ok((ticket, self.rest(wire, "", now)))
    }

    pub(crate) fn manual_cancel(&mut self, ticket: u64, now: i64) -> Result<TerminalMessage, SimError> {
        self.delete(ticket, PendingEnd::Cancelled, now).ok_or(SimError::UnknownTicket(ticket))
    }

    /// Moves a market: pending orders that trigger fill, stops and targets that are reached
    /// close, and subscribed quotes go out.
    pub(crate) fn set_price(&mut self, symbol: Symbol, bid: Price, now: i64) -> Result<Vec<TerminalMessage>, SimError> {
        let market = self.symbols.get_mut(&symbol).ok_or(SimError::UnknownSymbol(symbol))?;
        market.bid = bid;
        let ask = bid + market.spread;
        let mut frames = Vec::new();
        let due: Vec<WireOrder> = self
            .orders
            .values()
            .map(|o| o.wire.clone())
            .filter(|o| {
                o.symbol == symbol
                    && match o.order_type {
                        PendingType::BuyLimit => ask <= o.price,
                        PendingType::SellLimit => bid >= o.price,
                        PendingType::BuyStop => ask >= o.price,
                        PendingType::SellStop => bid <= o.price,
                    }
            })
            .collect();
        for order in due {
            self.orders.remove(&order.ticket);
            let side = pending_side(order.order_type);
            let new_id = match self.mode {
                AccountMode::Netting => self.book.net_position(&symbol).map_or(PositionId(order.ticket), |p| p.id),
                AccountMode::Hedging => PositionId(order.ticket),
            };
            let execution = Execution {
                symbol,
                side,
                qty: order.volume,
                price: if side == Side::Buy { ask } else { bid },
                intent: OrderIntent::Open,
                new_id,
                protection: (order.sl, order.tp),
                order: order.ticket,
                cid: &order.comment,
                comment: &order.comment,
                magic: order.magic,
                reason: "pending",
            };
            if let Ok((more, _)) = self.execute(&execution, now) {
                frames.extend(more);
            }
        }
        let hits: Vec<(mirror_model::Position, &'static str)> = self
            .book
            .positions()
            .filter(|p| p.symbol == symbol)
            .filter_map(|p| {
                let close_at = if p.side == Side::Buy { bid } else { ask };
                let sign = p.side.sign();
                if p.stop_loss.is_some_and(|sl| (close_at.raw() - sl.raw()) * sign <= 0) {
                    Some((*p, "sl"))
                } else if p.take_profit.is_some_and(|tp| (close_at.raw() - tp.raw()) * sign >= 0) {
                    Some((*p, "tp"))
                } else {
                    None
                }
            })
            .collect();
        for (position, reason) in hits {
            let close_at = if position.side == Side::Buy { bid } else { ask };
            let order = self.ticket();
            let execution = Execution {
                symbol,
                side: position.side.opposite(),
                qty: position.qty,
                price: close_at,
                intent: OrderIntent::Close { position: position.id },
                new_id: position.id,
                protection: (None, None),
                order,
                cid: "",
                comment: "",
                magic: 0,
                reason,
            };
            if let Ok((more, _)) = self.execute(&execution, now) {
                frames.extend(more);
            }
        }
        Ok(frames)
    }

    pub(crate) fn quote(&self, symbol: &Symbol, now: i64) -> Option<TerminalMessage> {
        let (_, bid, ask) = self.market(symbol)?;
        Some(TerminalMessage::Quote(QuoteUpdate { symbol: *symbol, bid, ask, time_msc: now }))
    }

    // ----- what the terminal shows ----------------------------------------------------------

    pub(crate) fn snapshot(&self, sync: u64, with_symbols: bool, now: i64) -> Snapshot {
        let positions = self
            .book
            .positions()
            .map(|p| {
                let meta = self.meta.get(&p.id);
                WirePosition {
                    ticket: meta.map_or(p.id.0, |m| m.ticket),
                    symbol: p.symbol,
                    side: p.side,
                    volume: p.qty,
                    price_open: p.open_price,
                    sl: p.stop_loss,
                    tp: p.take_profit,
                    magic: meta.map_or(0, |m| m.magic),
                    comment: meta.map(|m| m.comment.clone()).unwrap_or_default(),
                    time_msc: meta.map_or(now, |m| m.time_msc),
                }
            })
            .collect();
        let symbols = if with_symbols {
            self.symbols
                .values()
                .map(|s| WireSymbol {
                    name: s.spec.symbol.to_string(),
                    kind: s.spec.kind,
                    digits: s.spec.digits,
                    tick_size: s.spec.tick_size,
                    tick_value: s.spec.tick_value,
                    contract_size: s.spec.contract_size,
                    volume_min: s.spec.min_qty,
                    volume_max: s.spec.max_qty,
                    volume_step: s.spec.lot_step,
                })
                .collect()
        } else {
            Vec::new()
        };
        Snapshot {
            sync,
            time_msc: now,
            balance: self.balance,
            equity: self.equity(),
            margin: Money::ZERO,
            trade_allowed: true,
            positions,
            orders: self.orders.values().map(|o| o.wire.clone()).collect(),
            symbols,
            done: self.journal.iter().cloned().collect(),
        }
    }

    pub(crate) fn positions(&self) -> Vec<SimPosition> {
        self.book
            .positions()
            .map(|p| {
                let meta = self.meta.get(&p.id);
                SimPosition {
                    ticket: meta.map_or(p.id.0, |m| m.ticket),
                    symbol: p.symbol,
                    side: p.side,
                    qty: p.qty,
                    open_price: p.open_price,
                    stop_loss: p.stop_loss,
                    take_profit: p.take_profit,
                    comment: meta.map(|m| m.comment.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }

    pub(crate) fn pending_tickets(&self) -> Vec<u64> {
        self.orders.keys().copied().collect()
    }

    pub(crate) fn history(&self) -> &[SimDeal] {
        &self.history
    }
}
