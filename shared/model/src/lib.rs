//! Mirror's domain model: identifiers, instruments, exact fixed-point prices and quantities,
//! orders and their lifecycle, positions, signals, copy rules and sizing.
//!
//! Pure: no I/O, no clocks, no threads. Everything here is deterministic, so the engine, the
//! simulators and the desktop apps agree on every number.

#![warn(missing_docs)]

mod fixed;
mod ids;
mod instrument;
mod order;
mod position;
mod rules;
mod signal;
mod sizing;
mod symbol;

pub use fixed::{ArchivedMoney, ArchivedPrice, ArchivedQty, ArchivedRatio, ArchivedRounding};
pub use fixed::{DECIMALS, DecimalError, MAX_WHOLE_UNITS, Money, Price, Qty, Ratio, Rounding, SCALE};
pub use ids::{
    AccountId, AccountMode, ArchivedAccountId, ArchivedClientOrderId, ArchivedLeaderRef, ArchivedOrigin,
    ArchivedPlatform, ArchivedSignalId, ArchivedSourceId, BrokerOrderId, ClientOrderId, ClientOrderIdError, LeaderRef,
    Origin, Platform, PositionId, SignalId, SourceId,
};
pub use instrument::{InstrumentKind, InstrumentSpec, InstrumentTable, SpecError};
pub use order::{
    ArchivedOrderKind, ArchivedSide, ArchivedTimeInForce, Fill, ORDER_EVENTS, ORDER_STATUSES, Order, OrderError,
    OrderEvent, OrderIntent, OrderKind, OrderRequest, OrderStatus, OrderUpdate, Side, TimeInForce,
};
pub use position::{BookError, Position, PositionBook, PositionChange, PositionEffect};
pub use rules::{
    BelowMinimum, FollowerContext, LinkRules, MappedSymbol, PlannedOpen, ProtectionRule, ReconcilePolicy,
    SKIP_CATEGORIES, SideFilter, SizeAdjustment, SizingRule, SkipCategory, SkipReason, SymbolMapping,
};
pub use signal::{
    ArchivedOpenSignal, ArchivedSignal, ArchivedSignalAction, NOTE_LEN_MAX, OpenSignal, Signal, SignalAction,
    SignalError, SignalView, fit_note,
};
pub use sizing::proportional_close;
pub use symbol::{ArchivedSymbol, SYMBOL_LEN_MAX, Symbol, SymbolError};
