//! An auto-trader: a leader account that trades on its own, for the demo.
//!
//! It trades by hand at the broker (orders with no Mirror client id), exactly as a person at
//! the leader's terminal would, so Mirror sees it only through the account's position events.

use mirror_model::{OrderKind, Price, Rounding, Side};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::broker::SimBroker;
use crate::config::AutoTraderConfig;

/// Starts trading `account` on its own; abort the task to stop.
pub fn spawn_autotrader(
    broker: SimBroker,
    account: String,
    config: AutoTraderConfig,
    seed: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut ticker = tokio::time::interval(config.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(error) = trade_once(&broker, &account, &config, &mut rng) {
                tracing::debug!(%account, %error, "auto-trader action refused");
            }
        }
    })
}

/// One decision: open when below the position limit (or by chance), otherwise manage a
/// position: move its stops, close half, or close it.
fn trade_once(
    broker: &SimBroker,
    account: &str,
    config: &AutoTraderConfig,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<(), String> {
    let positions = broker.positions(account).map_err(|e| e.to_string())?;
    let open_more = positions.len() < config.max_positions && (positions.is_empty() || rng.random_bool(0.4));
    if open_more && !config.symbols.is_empty() && !config.quantities.is_empty() {
        let symbol = config.symbols[rng.random_range(0..config.symbols.len())];
        let qty = config.quantities[rng.random_range(0..config.quantities.len())];
        let side = if rng.random_bool(0.5) { Side::Buy } else { Side::Sell };
        let instrument =
            broker.instrument(account, &symbol).ok_or_else(|| format!("{account} does not trade {symbol}"))?;
        let (bid, ask) = broker.quote(&instrument.feed).ok_or("no market")?;
        let entry = if side == Side::Buy { ask } else { bid };
        let tick = instrument.spec.tick_size.raw();
        let stop = Price::from_raw(entry.raw() - side.sign() * i64::from(config.stop_ticks) * tick);
        let target = Price::from_raw(entry.raw() + side.sign() * i64::from(config.profit_ticks) * tick);
        let stop = instrument.spec.round_price(stop, Rounding::Nearest);
        let target = instrument.spec.round_price(target, Rounding::Nearest);
        broker
            .manual_order(account, symbol, side, qty, OrderKind::Market, Some(stop), Some(target))
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let Some(position) = positions.get(rng.random_range(0..positions.len().max(1))).copied() else {
        return Ok(());
    };
    let instrument = broker.instrument(account, &position.symbol).ok_or("unknown symbol")?;
    let spec = instrument.spec;
    match rng.random_range(0..10) {
        0..=2 => {
            // Trail the stop to a fresh distance from the market.
            let (bid, ask) = broker.quote(&instrument.feed).ok_or("no market")?;
            let mark = if position.side == Side::Buy { bid } else { ask };
            let distance = i64::from(config.stop_ticks) * spec.tick_size.raw();
            let stop =
                spec.round_price(Price::from_raw(mark.raw() - position.side.sign() * distance), Rounding::Nearest);
            broker.manual_modify(account, position.id, Some(stop), position.take_profit).map_err(|e| e.to_string())
        }
        3..=5 => {
            // Close half (in whole lot steps), or everything when half would leave or
            // close less than the minimum.
            let steps = position.qty.raw() / spec.lot_step.raw();
            let close_steps = steps / 2;
            let remaining = position.qty.raw() - close_steps * spec.lot_step.raw();
            if close_steps == 0
                || remaining < spec.min_qty.raw()
                || close_steps * spec.lot_step.raw() < spec.min_qty.raw()
            {
                return broker.manual_close(account, position.id, position.qty).map_err(|e| e.to_string());
            }
            let qty = mirror_model::Qty::from_raw(close_steps * spec.lot_step.raw());
            broker.manual_close(account, position.id, qty).map_err(|e| e.to_string())
        }
        _ => broker.manual_close(account, position.id, position.qty).map_err(|e| e.to_string()),
    }
}
