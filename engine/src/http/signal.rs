//! What webhooks ask for, before it becomes an engine signal: an open at market or a close
//! of everything the source holds on a symbol (or, for signed webhooks, one position).

use mirror_model::{LeaderRef, OpenSignal, OrderKind, Price, Qty, Side, SignalAction, Symbol, TimeInForce};

/// One order from a webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Open (or add to) a position.
    Open {
        symbol: Symbol,
        side: Side,
        qty: Qty,
        kind: OrderKind,
        /// The sender's position key; a fresh one when absent.
        position: Option<u64>,
        reference_price: Option<Price>,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
    },
    /// Close one position the sender opened with `position`.
    Close { position: u64 },
    /// Close every copy of the source on this symbol (or on every symbol).
    CloseAll { symbol: Option<Symbol> },
}

impl Order {
    /// The engine's action; `fresh` gives a position key to an open that names none.
    pub(crate) fn into_action(self, fresh: impl FnOnce() -> u64) -> SignalAction {
        match self {
            Self::Open { symbol, side, qty, kind, position, reference_price, stop_loss, take_profit } => {
                SignalAction::Open(OpenSignal {
                    leader: LeaderRef(position.unwrap_or_else(fresh)),
                    symbol,
                    side,
                    qty,
                    kind,
                    reference_price,
                    stop_loss,
                    take_profit,
                    time_in_force: TimeInForce::Gtc,
                    contract_size: None,
                    from_pending: None,
                    risk_bp: None,
                })
            }
            Self::Close { position } => SignalAction::Close { leader: LeaderRef(position) },
            Self::CloseAll { symbol } => SignalAction::CloseAll { symbol },
        }
    }
}
