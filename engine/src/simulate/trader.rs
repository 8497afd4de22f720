//! What moves on the simulated platforms by itself: prices (one random walk per market,
//! pushed to every simulator that lists it) and the leaders with `autotrade`, trading by hand
//! at their simulated terminal as a user would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mirror_connector_ctrader::{CtraderSimulator, ManualOrder};
use mirror_connector_metatrader::sim::TerminalSim;
use mirror_connector_sim::{AutoTraderConfig, SimMarket};
use mirror_model::{InstrumentSpec, OrderKind, Price, Qty, Rounding, SCALE, Side, Symbol};
use tokio::task::JoinHandle;

/// A small deterministic generator (SplitMix64): the demo's moves repeat from one seed.
#[derive(Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        // n is small: the modulo bias is negligible for a demo.
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One market's price now.
#[derive(Clone, Copy, Debug)]
struct Quote {
    bid: Price,
    tick: i64,
    spread_ticks: i64,
    volatility_ticks: i64,
}

impl Quote {
    fn ask(self) -> Price {
        Price::from_raw(self.bid.raw() + self.spread_ticks * self.tick)
    }
}

/// Every market's price, shared by the walker, the simulators and the auto-traders.
#[derive(Clone, Debug, Default)]
pub(super) struct Markets(Arc<Mutex<BTreeMap<Symbol, Quote>>>);

impl Markets {
    pub(super) fn new(markets: &[SimMarket]) -> Self {
        let quotes = markets
            .iter()
            .map(|m| {
                let quote = Quote {
                    bid: m.bid,
                    tick: m.tick_size.raw(),
                    spread_ticks: i64::from(m.spread_ticks),
                    volatility_ticks: i64::from(m.volatility_ticks),
                };
                (m.symbol, quote)
            })
            .collect();
        Self(Arc::new(Mutex::new(quotes)))
    }

    /// Bid and ask of a feed now.
    pub(super) fn quote(&self, feed: &Symbol) -> Option<(Price, Price)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(feed).map(|q| (q.bid, q.ask()))
    }

    /// Moves every price by up to its volatility, in whole ticks, never to zero or below.
    fn step(&self, rng: &mut Rng) -> Vec<(Symbol, Price, Price)> {
        let mut quotes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        quotes
            .iter_mut()
            .map(|(symbol, quote)| {
                let span = usize::try_from(quote.volatility_ticks * 2 + 1).unwrap_or(1);
                let ticks = i64::try_from(rng.below(span)).unwrap_or(0) - quote.volatility_ticks;
                quote.bid = Price::from_raw((quote.bid.raw() + ticks * quote.tick).max(quote.tick));
                (*symbol, quote.bid, quote.ask())
            })
            .collect()
    }
}

/// A terminal's own symbols, each with its spec and the market that prices it.
pub(super) type TerminalSymbols = Arc<BTreeMap<Symbol, (InstrumentSpec, Symbol)>>;

/// A symbol of a cTrader simulator.
#[derive(Clone, Copy, Debug)]
pub(super) struct CtraderSymbol {
    pub(super) id: i64,
    pub(super) feed: Symbol,
    pub(super) spec: InstrumentSpec,
    /// Volume of one lot, in cents of a unit.
    pub(super) lot_size: i64,
}

impl CtraderSymbol {
    fn volume(&self, qty: Qty) -> Option<i64> {
        let cents = i128::from(qty.raw()) * i128::from(self.lot_size);
        (cents % i128::from(SCALE) == 0).then(|| i64::try_from(cents / i128::from(SCALE)).ok()).flatten()
    }
}

/// Where a simulated account's "user" trades by hand.
#[derive(Clone, Debug)]
pub(super) enum Desk {
    /// A cTrader account at a simulator.
    Ctrader { simulator: CtraderSimulator, account: i64, symbols: Arc<BTreeMap<Symbol, CtraderSymbol>> },
    /// A simulated MetaTrader terminal.
    Terminal { terminal: Arc<TerminalSim>, specs: TerminalSymbols },
}

/// An open position as the desk shows it: id, symbol, side, quantity.
type Held = (u64, Symbol, Side, Qty);

impl Desk {
    fn positions(&self) -> Vec<Held> {
        match self {
            Desk::Ctrader { simulator, account, .. } => {
                simulator.positions(*account).iter().map(|p| (p.id.0, p.symbol, p.side, p.qty)).collect()
            }
            Desk::Terminal { terminal, .. } => {
                terminal.positions().iter().map(|p| (p.ticket, p.symbol, p.side, p.qty)).collect()
            }
        }
    }

    /// The account's spec of `symbol` and the market that prices it.
    fn instrument(&self, symbol: &Symbol) -> Option<(InstrumentSpec, Symbol)> {
        match self {
            Desk::Ctrader { symbols, .. } => symbols.get(symbol).map(|s| (s.spec, s.feed)),
            Desk::Terminal { specs, .. } => specs.get(symbol).copied(),
        }
    }

    fn open(&self, symbol: Symbol, side: Side, qty: Qty, stop: Price, target: Price) -> Result<(), String> {
        match self {
            Desk::Ctrader { simulator, account, symbols } => {
                let info = symbols.get(&symbol).ok_or_else(|| format!("no symbol {symbol}"))?;
                let volume = info.volume(qty).ok_or_else(|| format!("{qty} is not a whole volume of {symbol}"))?;
                let order = ManualOrder {
                    symbol_id: info.id,
                    side,
                    volume,
                    kind: OrderKind::Market,
                    stop_loss: Some(stop),
                    take_profit: Some(target),
                    label: None,
                };
                simulator.trade_by_hand(*account, &order).map(|_| ())
            }
            Desk::Terminal { terminal, .. } => terminal
                .manual_open(symbol.as_str(), side, qty, Some(stop), Some(target))
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }

    fn close(&self, position: u64, symbol: Symbol, qty: Qty) -> Result<(), String> {
        match self {
            Desk::Ctrader { simulator, account, symbols } => {
                let info = symbols.get(&symbol).ok_or_else(|| format!("no symbol {symbol}"))?;
                let volume = info.volume(qty).ok_or_else(|| format!("{qty} is not a whole volume of {symbol}"))?;
                let id = i64::try_from(position).map_err(|_| "position id out of range".to_owned())?;
                simulator.close_by_hand(*account, id, volume)
            }
            Desk::Terminal { terminal, .. } => terminal.manual_close(position, qty).map_err(|e| e.to_string()),
        }
    }
}

/// Moves every market every `every` and pushes the prices to the simulators.
pub(super) fn spawn_market(
    markets: Markets,
    every: Duration,
    seed: u64,
    ctrader: Vec<(CtraderSimulator, Arc<BTreeMap<Symbol, CtraderSymbol>>)>,
    terminals: Vec<(Arc<TerminalSim>, TerminalSymbols)>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = Rng::new(seed);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticker.tick().await;
            for (feed, bid, ask) in markets.step(&mut rng) {
                for (simulator, symbols) in &ctrader {
                    for symbol in symbols.values().filter(|s| s.feed == feed) {
                        if let Err(error) = simulator.set_quote(symbol.id, bid, ask) {
                            tracing::debug!(%error, symbol = %symbol.spec.symbol, "cTrader quote refused");
                        }
                    }
                }
                for (terminal, specs) in &terminals {
                    for (symbol, _) in specs.iter().filter(|(_, (_, f))| *f == feed) {
                        if let Err(error) = terminal.set_price(symbol.as_str(), bid) {
                            tracing::debug!(%error, %symbol, "terminal price refused");
                        }
                    }
                }
            }
        }
    })
}

/// Trades an account by hand on its own, as the simulated broker's auto-trader does: opens
/// (with a stop and a target) while under its position limit, otherwise closes half or all
/// of a position.
pub(super) fn spawn_trader(
    name: String,
    desk: Desk,
    markets: Markets,
    config: AutoTraderConfig,
    seed: u64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = Rng::new(seed);
        let mut ticker = tokio::time::interval(config.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(error) = trade_once(&desk, &markets, &config, &mut rng) {
                tracing::debug!(account = %name, %error, "simulated trade refused");
            }
        }
    })
}

fn trade_once(desk: &Desk, markets: &Markets, config: &AutoTraderConfig, rng: &mut Rng) -> Result<(), String> {
    let positions = desk.positions();
    let open_more = positions.len() < config.max_positions && (positions.is_empty() || rng.chance(40));
    if open_more && !config.symbols.is_empty() && !config.quantities.is_empty() {
        let symbol = config.symbols[rng.below(config.symbols.len())];
        let qty = config.quantities[rng.below(config.quantities.len())];
        let side = if rng.chance(50) { Side::Buy } else { Side::Sell };
        let (spec, feed) = desk.instrument(&symbol).ok_or_else(|| format!("the account does not list {symbol}"))?;
        let (bid, ask) = markets.quote(&feed).ok_or("no market")?;
        let entry = if side == Side::Buy { ask } else { bid };
        let tick = spec.tick_size.raw();
        let stop = Price::from_raw(entry.raw() - side.sign() * i64::from(config.stop_ticks) * tick);
        let target = Price::from_raw(entry.raw() + side.sign() * i64::from(config.profit_ticks) * tick);
        let stop = spec.round_price(stop, Rounding::Nearest);
        let target = spec.round_price(target, Rounding::Nearest);
        return desk.open(symbol, side, qty, stop, target);
    }
    let Some((id, symbol, _, qty)) = positions.get(rng.below(positions.len().max(1))).copied() else {
        return Ok(());
    };
    let (spec, _) = desk.instrument(&symbol).ok_or("unknown symbol")?;
    if rng.chance(50) {
        // Half, in whole lot steps, unless that leaves or closes less than the minimum.
        let step = spec.lot_step.raw();
        let half = qty.raw() / step / 2 * step;
        if half >= spec.min_qty.raw() && qty.raw() - half >= spec.min_qty.raw() {
            return desk.close(id, symbol, Qty::from_raw(half));
        }
    }
    desk.close(id, symbol, qty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_walk_in_whole_ticks_and_stay_positive() {
        let market = SimMarket {
            symbol: Symbol::new("EURUSD").unwrap(),
            bid: Price::parse("0.00003").unwrap(),
            tick_size: Price::parse("0.00001").unwrap(),
            spread_ticks: 8,
            volatility_ticks: 5,
        };
        let markets = Markets::new(&[market]);
        let mut rng = Rng::new(7);
        for _ in 0..1_000 {
            let moved = markets.step(&mut rng);
            let (_, bid, ask) = moved[0];
            assert!(bid.raw() >= 1_000 && bid.raw() % 1_000 == 0, "{bid}");
            assert_eq!(ask.raw() - bid.raw(), 8_000);
        }
        assert_eq!(Rng::new(1).next(), Rng::new(1).next(), "one seed, one sequence");
    }
}
