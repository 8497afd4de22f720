//! Orders, built from exact decimals.

use mirror_model::{Price, Qty};
use mirror_wire::proto::{OrderTicket, OrderType, Side, Tif};

use crate::SdkError;

/// An order for the token's source, built step by step from decimal text (parsed exactly,
/// never through floating point).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    ticket: OrderTicket,
}

fn qty(field: &str, text: &str) -> Result<Qty, SdkError> {
    Qty::parse(text).map_err(|e| SdkError::Config(format!("{field}: {e}")))
}

fn price(field: &str, text: &str) -> Result<i64, SdkError> {
    Price::parse(text).map(Price::raw).map_err(|e| SdkError::Config(format!("{field}: {e}")))
}

impl Order {
    /// A market order opening position `position` (the trader's own key, see
    /// [`crate::Client::next_position_key`]).
    pub fn market(position: u64, symbol: &str, side: Side, quantity: &str) -> Result<Self, SdkError> {
        Ok(Self {
            ticket: OrderTicket {
                position,
                symbol: symbol.to_owned(),
                side,
                qty: qty("qty", quantity)?.raw(),
                order_type: OrderType::Market,
                reference_price: None,
                stop_loss: None,
                take_profit: None,
                time_in_force: Tif::Gtc,
                contract_size: None,
                note: String::new(),
            },
        })
    }

    /// A limit order.
    pub fn limit(position: u64, symbol: &str, side: Side, quantity: &str, limit: &str) -> Result<Self, SdkError> {
        let mut order = Self::market(position, symbol, side, quantity)?;
        order.ticket.order_type = OrderType::Limit { price: price("limit", limit)? };
        Ok(order)
    }

    /// The price the trader expects (followers size stop-distance risk from it).
    pub fn reference(mut self, text: &str) -> Result<Self, SdkError> {
        self.ticket.reference_price = Some(price("reference_price", text)?);
        Ok(self)
    }

    /// Stop loss.
    pub fn stop_loss(mut self, text: &str) -> Result<Self, SdkError> {
        self.ticket.stop_loss = Some(price("stop_loss", text)?);
        Ok(self)
    }

    /// Take profit.
    pub fn take_profit(mut self, text: &str) -> Result<Self, SdkError> {
        self.ticket.take_profit = Some(price("take_profit", text)?);
        Ok(self)
    }

    /// The contract size of the symbol as the trader trades it (e.g. "50" for ES, "100000" for
    /// a standard FX lot): followers whose link sizes by notional need it to convert the
    /// quantity into their own contracts; without it such a link skips the order.
    pub fn contract_size(mut self, text: &str) -> Result<Self, SdkError> {
        let size = qty("contract_size", text)?;
        if size.raw() <= 0 {
            return Err(SdkError::Config(format!("contract_size: must be positive, got {text}")));
        }
        self.ticket.contract_size = Some(size.raw());
        Ok(self)
    }

    /// Time in force (pending orders).
    pub fn time_in_force(mut self, tif: Tif) -> Self {
        self.ticket.time_in_force = tif;
        self
    }

    /// A note for the logs (at most 256 bytes).
    pub fn note(mut self, text: &str) -> Self {
        self.ticket.note = text.to_owned();
        self
    }

    /// The wire ticket, checked as the server will check it.
    pub fn into_ticket(self) -> OrderTicket {
        self.ticket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_raw_fixed_point_and_bad_ones_name_their_field() {
        let ticket = Order::market(7, "ES", Side::Buy, "2")
            .unwrap()
            .contract_size("50")
            .unwrap()
            .stop_loss("4990.25")
            .unwrap()
            .into_ticket();
        assert_eq!(ticket.qty, Qty::parse("2").unwrap().raw());
        assert_eq!(ticket.contract_size, Some(Qty::parse("50").unwrap().raw()));
        assert_eq!(ticket.stop_loss, Some(Price::parse("4990.25").unwrap().raw()));
        let error = Order::market(1, "ES", Side::Buy, "1").unwrap().contract_size("0").unwrap_err();
        assert!(error.to_string().contains("contract_size: must be positive"), "{error}");
        let error = Order::market(1, "ES", Side::Buy, "1").unwrap().contract_size("NaN").unwrap_err();
        assert!(error.to_string().contains("contract_size"), "{error}");
        let error = Order::market(1, "ES", Side::Buy, "abc").unwrap_err();
        assert!(error.to_string().contains("qty"), "{error}");
    }
}
