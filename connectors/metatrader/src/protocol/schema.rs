//! The protocol's vocabulary as data: every message type, who sends it, and its fields.
//!
//! The Expert Advisors are written in MQL and cannot share Rust types, so the tests hold both
//! sides to this list: a unit test checks that it matches the Rust messages field for field,
//! and `tests/mql_schema.rs` checks that the `.mq4`/`.mq5` sources build and read exactly
//! these names.

/// Who sends a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The Expert Advisor.
    FromTerminal,
    /// The bridge.
    FromEngine,
}

/// One message type: its tag and its fields (besides `type` and `seq`, which every frame has).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageSchema {
    /// The `type` tag.
    pub tag: &'static str,
    /// Who sends it.
    pub direction: Direction,
    /// Field names.
    pub fields: &'static [&'static str],
}

/// An object nested in a message (an element of a snapshot's lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectSchema {
    /// The object's name (the message field holding a list of them, in the singular).
    pub name: &'static str,
    /// Field names.
    pub fields: &'static [&'static str],
}

use Direction::{FromEngine, FromTerminal};

/// Every message type.
pub const MESSAGES: &[MessageSchema] = &[
    MessageSchema {
        tag: "hello",
        direction: FromTerminal,
        fields: &[
            "proto",
            "platform",
            "build",
            "ea_version",
            "login",
            "server",
            "company",
            "currency",
            "margin_mode",
            "leverage",
            "token",
        ],
    },
    MessageSchema {
        tag: "snapshot",
        direction: FromTerminal,
        fields: &[
            "sync",
            "time_msc",
            "balance",
            "equity",
            "margin",
            "trade_allowed",
            "positions",
            "orders",
            "symbols",
            "done",
        ],
    },
    MessageSchema {
        tag: "deal",
        direction: FromTerminal,
        fields: &[
            "position",
            "new_ticket",
            "order",
            "deal",
            "symbol",
            "side",
            "entry",
            "volume",
            "price",
            "profit",
            "sl",
            "tp",
            "pos_price",
            "cid",
            "reason",
            "time_msc",
        ],
    },
    MessageSchema { tag: "sltp", direction: FromTerminal, fields: &["position", "symbol", "sl", "tp", "time_msc"] },
    MessageSchema {
        tag: "pending_add",
        direction: FromTerminal,
        fields: &["ticket", "symbol", "order_type", "volume", "price", "sl", "tp", "cid", "expiration", "time_msc"],
    },
    MessageSchema { tag: "pending_del", direction: FromTerminal, fields: &["ticket", "state", "cid", "time_msc"] },
    MessageSchema { tag: "account", direction: FromTerminal, fields: &["balance", "equity", "margin"] },
    MessageSchema { tag: "quote", direction: FromTerminal, fields: &["symbol", "bid", "ask", "time_msc"] },
    MessageSchema {
        tag: "ack",
        direction: FromTerminal,
        fields: &["cmd", "ok", "retcode", "message", "order", "position", "price", "volume", "dup"],
    },
    MessageSchema { tag: "pong", direction: FromTerminal, fields: &["t", "connected", "trade_allowed"] },
    MessageSchema { tag: "welcome", direction: FromEngine, fields: &["proto", "session", "heartbeat_ms"] },
    MessageSchema { tag: "error", direction: FromEngine, fields: &["code", "message"] },
    MessageSchema {
        tag: "cmd",
        direction: FromEngine,
        fields: &[
            "cmd",
            "op",
            "cid",
            "symbol",
            "side",
            "order_type",
            "volume",
            "price",
            "sl",
            "tp",
            "position",
            "order",
            "expiration",
            "deviation",
            "tif",
        ],
    },
    MessageSchema { tag: "ping", direction: FromEngine, fields: &["t"] },
    MessageSchema { tag: "subscribe", direction: FromEngine, fields: &["symbols"] },
    MessageSchema { tag: "sync", direction: FromEngine, fields: &["id", "symbols"] },
];

/// Every nested object.
pub const OBJECTS: &[ObjectSchema] = &[
    ObjectSchema {
        name: "position",
        fields: &["ticket", "symbol", "side", "volume", "price_open", "sl", "tp", "magic", "comment", "time_msc"],
    },
    ObjectSchema {
        name: "order",
        fields: &["ticket", "symbol", "order_type", "volume", "price", "sl", "tp", "magic", "comment", "expiration"],
    },
    ObjectSchema {
        name: "symbol",
        fields: &[
            "name",
            "kind",
            "digits",
            "tick_size",
            "tick_value",
            "contract_size",
            "volume_min",
            "volume_max",
            "volume_step",
        ],
    },
    ObjectSchema { name: "done", fields: &["cmd", "cid", "order", "position", "price", "volume"] },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use mirror_model::{InstrumentKind, Money, Price, Qty, Side, Symbol};

    use super::*;
    use crate::protocol::codec::Message;
    use crate::protocol::*;

    fn p(text: &str) -> Price {
        Price::parse(text).unwrap()
    }
    fn q(text: &str) -> Qty {
        Qty::parse(text).unwrap()
    }
    fn m(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn eurusd() -> Symbol {
        Symbol::new("EURUSD").unwrap()
    }

    /// One message of every type, with every optional value present.
    fn samples() -> (Vec<TerminalMessage>, Vec<EngineMessage>) {
        let position = WirePosition {
            ticket: 1,
            symbol: eurusd(),
            side: Side::Buy,
            volume: q("1"),
            price_open: p("1.1"),
            sl: Some(p("1")),
            tp: Some(p("1.2")),
            magic: 7,
            comment: "x".into(),
            time_msc: 1,
        };
        let order = WireOrder {
            ticket: 2,
            symbol: eurusd(),
            order_type: PendingType::BuyLimit,
            volume: q("1"),
            price: p("1"),
            sl: None,
            tp: None,
            magic: 7,
            comment: String::new(),
            expiration: 0,
        };
        let symbol = WireSymbol {
            name: "EURUSD".into(),
            kind: InstrumentKind::Forex,
            digits: 5,
            tick_size: p("0.00001"),
            tick_value: m("1"),
            contract_size: q("100000"),
            volume_min: q("0.01"),
            volume_max: q("100"),
            volume_step: q("0.01"),
        };
        let done = Done { cmd: 1, cid: String::new(), order: 1, position: 1, price: None, volume: None };
        let terminal = vec![
            TerminalMessage::Hello(Hello {
                proto: 1,
                platform: WirePlatform::Mt5,
                build: 1,
                ea_version: String::new(),
                login: 1,
                server: String::new(),
                company: String::new(),
                currency: "USD".into(),
                margin_mode: MarginMode::Hedging,
                leverage: 100,
                token: String::new(),
            }),
            TerminalMessage::Snapshot(Snapshot {
                sync: 0,
                time_msc: 0,
                balance: m("1"),
                equity: m("1"),
                margin: m("0"),
                trade_allowed: true,
                positions: vec![position],
                orders: vec![order],
                symbols: vec![symbol],
                done: vec![done],
            }),
            TerminalMessage::Deal(Deal {
                position: 1,
                new_ticket: 0,
                order: 1,
                deal: 1,
                symbol: eurusd(),
                side: Side::Buy,
                entry: Entry::In,
                volume: q("1"),
                price: p("1"),
                profit: m("0"),
                sl: None,
                tp: None,
                pos_price: None,
                cid: String::new(),
                reason: String::new(),
                time_msc: 0,
            }),
            TerminalMessage::Sltp(Sltp { position: 1, symbol: eurusd(), sl: None, tp: None, time_msc: 0 }),
            TerminalMessage::PendingAdd(PendingAdd {
                ticket: 1,
                symbol: eurusd(),
                order_type: PendingType::SellStop,
                volume: q("1"),
                price: p("1"),
                sl: None,
                tp: None,
                cid: String::new(),
                expiration: 0,
                time_msc: 0,
            }),
            TerminalMessage::PendingDel(PendingDel {
                ticket: 1,
                state: PendingEnd::Expired,
                cid: String::new(),
                time_msc: 0,
            }),
            TerminalMessage::Account(AccountUpdate { balance: m("1"), equity: m("1"), margin: m("0") }),
            TerminalMessage::Quote(QuoteUpdate { symbol: eurusd(), bid: p("1"), ask: p("1"), time_msc: 0 }),
            TerminalMessage::Ack(Ack {
                cmd: 1,
                ok: true,
                retcode: 10009,
                message: String::new(),
                order: 1,
                position: 1,
                price: None,
                volume: None,
                dup: false,
            }),
            TerminalMessage::Pong(Pong { t: 0, connected: true, trade_allowed: true }),
        ];
        let engine = vec![
            EngineMessage::Welcome(Welcome { proto: 1, session: 1, heartbeat_ms: 1000 }),
            EngineMessage::Error(ErrorFrame { code: String::new(), message: String::new() }),
            EngineMessage::Cmd(Cmd {
                cmd: 1,
                op: Op::Open,
                cid: String::new(),
                symbol: String::new(),
                side: None,
                order_type: None,
                volume: None,
                price: None,
                sl: None,
                tp: None,
                position: 0,
                order: 0,
                expiration: 0,
                deviation: 0,
                tif: None,
            }),
            EngineMessage::Ping(Ping { t: 0 }),
            EngineMessage::Subscribe(Subscribe { symbols: Vec::new() }),
            EngineMessage::Sync(SyncRequest { id: 1, symbols: true }),
        ];
        (terminal, engine)
    }

    fn keys(value: &serde_json::Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    fn check(message: &impl Message, direction: Direction) {
        let json: serde_json::Value = serde_json::from_slice(&message.to_json(1).unwrap()).unwrap();
        let schema = MESSAGES.iter().find(|s| s.tag == message.tag()).expect("every type is in the schema");
        assert_eq!(schema.direction, direction, "{}", schema.tag);
        let mut expected: BTreeSet<String> = schema.fields.iter().map(|f| (*f).to_owned()).collect();
        expected.extend(["type".to_owned(), "seq".to_owned()]);
        assert_eq!(keys(&json), expected, "fields of `{}`", schema.tag);
        for object in OBJECTS {
            let list = format!("{}s", object.name);
            let first = json.get(list.as_str()).and_then(|v| v.as_array()).and_then(|items| items.first());
            if let Some(item) = first.filter(|item| item.is_object()) {
                let expected: BTreeSet<String> = object.fields.iter().map(|f| (*f).to_owned()).collect();
                assert_eq!(keys(item), expected, "fields of `{}`", object.name);
            }
        }
    }

    #[test]
    fn the_schema_lists_exactly_the_fields_of_the_rust_messages() {
        let (terminal, engine) = samples();
        for message in &terminal {
            check(message, Direction::FromTerminal);
        }
        for message in &engine {
            check(message, Direction::FromEngine);
        }
        let tags: BTreeSet<&str> = terminal.iter().map(Message::tag).chain(engine.iter().map(Message::tag)).collect();
        assert_eq!(tags, MESSAGES.iter().map(|s| s.tag).collect(), "every schema entry is a message");
        // `done` is listed as `done`, not `dones`: check it by hand.
        let snapshot: serde_json::Value = serde_json::from_slice(&terminal[1].to_json(1).unwrap()).unwrap();
        let done = OBJECTS.iter().find(|o| o.name == "done").unwrap();
        assert_eq!(keys(&snapshot["done"][0]), done.fields.iter().map(|f| (*f).to_owned()).collect());
    }
}
