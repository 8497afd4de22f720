//! Updates as Telegram sends them (`engine/tests/data/telegram/*.json`) and what each
//! instruction does to the chat's book.

use std::path::Path;

use mirror_model::Price;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/telegram").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn price(text: &str) -> Price {
    Price::parse(text).unwrap()
}

#[test]
fn real_updates_are_read_with_their_message_and_kind() {
    let read = |name: &str| read_update(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let post = read("channel_post.json");
    let (message, edited) = post.message().unwrap();
    assert_eq!((message.chat.id, message.message_id, edited), (-1001234567890, 1842, false));
    assert!(message.text.as_deref().unwrap().starts_with("BUY XAUUSD @ 2350"));

    let group = read("group_message.json");
    let (message, edited) = group.message().unwrap();
    assert_eq!((message.chat.id, edited, message.text.as_deref()), (-1009876543210, false, Some("close half")));

    let edit = read("edited_channel_post.json");
    let (message, edited) = edit.message().unwrap();
    assert_eq!((message.message_id, edited, message.edit_date), (1842, true, Some(1767226500)));

    let photo = read("photo_caption.json");
    let (message, _) = photo.message().unwrap();
    assert_eq!(
        (message.text.as_deref(), message.caption.as_deref().map(|c| c.starts_with("GOLD sell"))),
        (None, Some(true))
    );

    for name in ["sticker.json", "service_message.json"] {
        let update = read(name);
        let (message, _) = update.message().unwrap();
        assert_eq!((message.text.as_deref(), message.caption.as_deref()), (None, None), "{name}");
    }
}

#[test]
fn what_is_not_an_update_is_named() {
    assert!(read_update(b"{").unwrap_err().detail.starts_with("malformed JSON"));
    assert_eq!(read_update(b"[1]").unwrap_err().detail, "expected a Telegram Update (a JSON object), got an array");
    let missing = read_update(br#"{"ok":true,"result":[]}"#).unwrap_err();
    assert_eq!(missing.status.as_u16(), 400);
    assert!(missing.detail.contains("missing field `update_id`"), "{}", missing.detail);
}

fn gold(leader: u64, message_id: i64, pending: bool) -> Opened {
    Opened {
        leader,
        message_id,
        symbol: Symbol::new("XAUUSD").unwrap(),
        side: Side::Buy,
        pending,
        entry: Some(price("2350")),
        stop_loss: Some(price("2340")),
        take_profit: Some(price("2360")),
    }
}

fn webhook() -> Webhook {
    Webhook {
        name: "signals".into(),
        kind: WebhookKind::Telegram,
        secret: crate::secrets::Secret::new("telegram-secret-0123456789".to_owned()),
        origin: mirror_model::Origin::Source(mirror_model::SourceId::from_name("signals")),
        symbols: vec![Symbol::new("XAUUSD").unwrap()],
        allow_ips: Vec::new(),
        chats: Vec::new(),
        qty: Some(Qty::parse("0.5").unwrap()),
    }
}

fn planned(text: &str, positions: &[Opened]) -> Result<Plan, String> {
    let Reading::Signal(intent) = parse::parse(text, &webhook().symbols).reading else { panic!("{text}") };
    plan(intent, positions, &webhook(), 99, || 777)
}

#[test]
fn management_acts_on_the_most_recent_position_of_the_chat() {
    let open = [gold(2, 12, false), gold(1, 11, true)];
    let half = planned("close half", &open).unwrap();
    assert_eq!(
        half.action,
        SignalAction::PartialClose {
            leader: LeaderRef(2),
            closed_qty: Qty::parse("1").unwrap(),
            qty_before: Qty::parse("2").unwrap()
        }
    );
    // The entry becomes the stop loss; the take profit stays (a Modify sets both).
    let entry = planned("move SL to entry", &open).unwrap();
    assert_eq!(
        entry.action,
        SignalAction::Modify { leader: LeaderRef(2), stop_loss: Some(price("2350")), take_profit: Some(price("2360")) }
    );
    assert_eq!(
        planned("Move TP to 2390", &open).unwrap().action,
        SignalAction::Modify { leader: LeaderRef(2), stop_loss: Some(price("2340")), take_profit: Some(price("2390")) }
    );
    assert_eq!(planned("close", &open).unwrap().action, SignalAction::Close { leader: LeaderRef(2) });
    assert_eq!(
        planned("cancel the limit", &open).unwrap().action,
        SignalAction::CancelPending { leader: LeaderRef(1) }
    );
    assert_eq!(
        planned("close gold", &open).unwrap().action,
        SignalAction::CloseAll { symbol: Some(Symbol::new("XAUUSD").unwrap()) }
    );
    assert_eq!(planned("close all", &open).unwrap().action, SignalAction::CloseAll { symbol: None });
    assert!(planned("move stop to 2365", &open).err().unwrap().contains("past the take profit 2360"));
    assert!(planned("cancel the limit", &open[..1]).err().unwrap().contains("no pending order"));
    for text in ["close half", "move SL to entry", "close all", "close"] {
        assert_eq!(planned(text, &[]).err().as_deref(), Some("nothing open from this chat"), "{text}");
    }
}

#[test]
fn an_open_carries_the_webhook_quantity_and_a_fresh_key() {
    let plan = planned("BUY XAUUSD @ 2350 SL 2340 TP 2360 TP2 2370", &[]).unwrap();
    let SignalAction::Open(open) = plan.action else { panic!("{:?}", plan.action) };
    assert_eq!((open.leader, open.qty, open.kind), (LeaderRef(777), Qty::parse("0.5").unwrap(), OrderKind::Market));
    assert_eq!(
        (open.reference_price, open.stop_loss, open.take_profit),
        (Some(price("2350")), Some(price("2340")), Some(price("2360")))
    );
    assert!(plan.summary.contains("TP1 used, 2370 not copied"), "{}", plan.summary);
    let Change::Open(opened) = plan.change else { panic!() };
    assert_eq!((opened.leader, opened.message_id, opened.pending), (777, 99, false));
    let limit = planned("GOLD sell limit 2365", &[]).unwrap();
    let SignalAction::Open(open) = limit.action else { panic!() };
    assert_eq!((open.kind, open.reference_price), (OrderKind::Limit { price: price("2365") }, None));
}

#[test]
fn an_edit_moves_the_levels_of_what_its_message_opened_and_nothing_else() {
    let open = [gold(2, 12, false)];
    let edit = |text: &str, message: i64| {
        let Reading::Signal(intent) = parse::parse(text, &webhook().symbols).reading else { panic!("{text}") };
        plan_edit(intent, &open, message)
    };
    let moved = edit("BUY XAUUSD @ 2350 SL 2345 TP 2360", 12).unwrap();
    assert_eq!(
        moved.action,
        SignalAction::Modify { leader: LeaderRef(2), stop_loss: Some(price("2345")), take_profit: Some(price("2360")) }
    );
    assert!(edit("BUY XAUUSD @ 2350 SL 2340 TP 2360", 12).err().unwrap().contains("changes nothing"));
    assert!(edit("BUY XAUUSD @ 2350 SL 2345 TP 2360", 13).err().unwrap().contains("opened nothing"));
    assert!(edit("close half", 12).err().unwrap().contains("no longer reads as its open"));
}

#[test]
fn the_book_is_read_back_at_start_and_a_secret_telegram_refuses_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut book = Book::default();
    book.open(-100, gold(5, 12, false));
    book.remember(843215671);
    state_file::save(&state_file::path(dir.path(), "telegram", "signals"), &book.to_file()).unwrap();
    let hooks = Hooks::open(&[webhook()], Some(dir.path())).unwrap();
    let hook = hooks.hooks[0].as_ref().unwrap();
    let restored = hook.book.try_lock().unwrap();
    assert!(restored.seen(843215671), "a redelivery after a restart is recognised");
    assert_eq!(restored.positions(-100), [gold(5, 12, false)]);
    drop(restored);

    let spaced = Webhook { secret: crate::secrets::Secret::new("has spaces in it 0123456789".to_owned()), ..webhook() };
    let error = Hooks::open(&[spaced], None).err().unwrap();
    assert!(error.starts_with("webhook `signals`: Telegram's secret_token is 1 to 256 characters"), "{error}");
    std::fs::write(state_file::path(dir.path(), "telegram", "signals"), "{\"format\":1}").unwrap();
    let error = Hooks::open(&[webhook()], Some(dir.path())).err().unwrap();
    assert!(error.contains("telegram-signals.json: not a webhook state file"), "{error}");
}
