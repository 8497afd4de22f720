//! cTrader Open API connector (being built).
