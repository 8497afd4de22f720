//! MetaTrader 4/5 bridge (being built).
