//! The manual trade ticket: what the trader typed, checked locally with the model's exact
//! decimal parsing before anything is sent.

use mirror_model::{Price, Qty, Symbol};
use mirror_sdk::{OrderTicket, OrderType, Side, Tif};

/// Market, limit or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// At the market.
    #[default]
    Market,
    /// Rests at the price or better.
    Limit,
    /// Triggers at the price.
    Stop,
}

/// What the ticket's fields hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketForm {
    /// Symbol, as the source's followers know it.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity, decimal text.
    pub qty: String,
    /// Market, limit or stop.
    pub kind: Kind,
    /// Limit or stop price, decimal text.
    pub price: String,
    /// Stop loss, decimal text (empty: none).
    pub stop_loss: String,
    /// Take profit, decimal text (empty: none).
    pub take_profit: String,
}

impl Default for TicketForm {
    fn default() -> Self {
        Self {
            symbol: String::new(),
            side: Side::Buy,
            qty: String::new(),
            kind: Kind::Market,
            price: String::new(),
            stop_loss: String::new(),
            take_profit: String::new(),
        }
    }
}

fn optional_price(field: &str, text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let price = Price::parse(text).map_err(|e| format!("{field}: {e}"))?;
    if !price.is_positive() {
        return Err(format!("{field}: must be above 0, got {text}"));
    }
    Ok(Some(price.raw()))
}

impl TicketForm {
    /// The wire ticket (position key 0: the backend gives it a fresh key), or what is wrong
    /// with a field, checked as the engine's gateway checks it.
    pub fn to_ticket(&self) -> Result<OrderTicket, String> {
        let symbol = self.symbol.trim();
        Symbol::new(symbol).map_err(|e| format!("symbol: {e}"))?;
        let qty = Qty::parse(self.qty.trim()).map_err(|e| format!("quantity: {e}"))?;
        if !qty.is_positive() {
            return Err(format!("quantity: must be above 0, got {}", self.qty.trim()));
        }
        let order_type = match self.kind {
            Kind::Market => OrderType::Market,
            Kind::Limit | Kind::Stop => {
                let price = optional_price("price", &self.price)?
                    .ok_or_else(|| "price: a limit or stop order needs one".to_owned())?;
                if self.kind == Kind::Limit { OrderType::Limit { price } } else { OrderType::Stop { price } }
            }
        };
        let ticket = OrderTicket {
            position: 0,
            symbol: symbol.to_owned(),
            side: self.side,
            qty: qty.raw(),
            order_type,
            reference_price: None,
            stop_loss: optional_price("stop loss", &self.stop_loss)?,
            take_profit: optional_price("take profit", &self.take_profit)?,
            time_in_force: Tif::Gtc,
            contract_size: None,
            note: "mirror-manager ticket".into(),
        };
        ticket.to_open().map_err(|e| e.to_string())?;
        Ok(ticket)
    }

    /// The order in words, for the confirmation (`BUY 1 ES at market, SL 4990`).
    pub fn describe(ticket: &OrderTicket) -> String {
        let side = match ticket.side {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        let how = match ticket.order_type {
            OrderType::Market => "at market".to_owned(),
            OrderType::Limit { price } => format!("limit {}", crate::format::price(price)),
            OrderType::Stop { price } => format!("stop {}", crate::format::price(price)),
        };
        let mut text = format!("{side} {} {} {how}", crate::format::qty(ticket.qty), ticket.symbol);
        if let Some(sl) = ticket.stop_loss {
            text.push_str(&format!(", SL {}", crate::format::price(sl)));
        }
        if let Some(tp) = ticket.take_profit {
            text.push_str(&format!(", TP {}", crate::format::price(tp)));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(symbol: &str, qty: &str) -> TicketForm {
        TicketForm { symbol: symbol.into(), qty: qty.into(), ..TicketForm::default() }
    }

    #[test]
    fn a_valid_ticket_is_exact_and_described_plainly() {
        let mut ticket = form("ES", "2");
        ticket.kind = Kind::Limit;
        ticket.price = "4999.75".into();
        ticket.stop_loss = "4990.25".into();
        let wire = ticket.to_ticket().unwrap();
        assert_eq!(wire.qty, Qty::parse("2").unwrap().raw());
        assert_eq!(wire.order_type, OrderType::Limit { price: Price::parse("4999.75").unwrap().raw() });
        assert_eq!(wire.stop_loss, Some(Price::parse("4990.25").unwrap().raw()));
        assert_eq!(wire.take_profit, None);
        assert_eq!(TicketForm::describe(&wire), "BUY 2 ES limit 4999.75, SL 4990.25");
    }

    #[test]
    fn bad_fields_are_refused_locally_naming_the_field() {
        let cases = [
            (form("", "1"), "symbol"),
            (form("ES", "abc"), "quantity"),
            (form("ES", "0"), "quantity: must be above 0"),
            (form("ES", "-1"), "quantity"),
            (form("ES", "0.000000001"), "quantity"),
            (TicketForm { kind: Kind::Stop, ..form("ES", "1") }, "price: a limit or stop order needs one"),
            (TicketForm { stop_loss: "1e3".into(), ..form("ES", "1") }, "stop loss"),
            (TicketForm { take_profit: "0".into(), ..form("ES", "1") }, "take profit: must be above 0"),
        ];
        for (ticket, expected) in cases {
            let error = ticket.to_ticket().expect_err(expected);
            assert!(error.starts_with(expected), "{expected}: {error}");
        }
    }
}
