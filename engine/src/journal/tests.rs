//! The journal on a real sled directory: durability order, recovery, gaps, checksums,
//! compaction.

use std::sync::Arc;

use mirror_model::{
    AccountMode, InstrumentTable, Money, OpenSignal, OrderKind, Origin, Qty, Side, Signal, SignalAction, SourceId,
    Symbol, TimeInForce,
};

use super::*;
use crate::LinkId;
use crate::account::{AccountActor, AccountSetup, Control, Input, Now, RiskLimits};

const NOW: Now = Now { mono_ns: 7, unix_ms: 1_700_000_000_000 };
const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

fn settings(dir: &Path) -> JournalSettings {
    JournalSettings { compact_interval: Duration::from_millis(20), ..JournalSettings::in_dir(dir.join("journal")) }
}

fn signal(id: u64) -> Signal {
    Signal {
        id: SignalId(id),
        origin: Origin::Source(SourceId(3)),
        created_unix_ms: NOW.unix_ms,
        accepted_mono_ns: 1,
        leader_balance: None,
        leader_equity: None,
        action: SignalAction::Open(OpenSignal {
            leader: mirror_model::LeaderRef(9),
            symbol: Symbol::new("EURUSD").unwrap(),
            side: Side::Buy,
            qty: Qty::parse("1.5").unwrap(),
            kind: OrderKind::Market,
            reference_price: None,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Gtc,
            contract_size: None,
            from_pending: None,
            risk_bp: None,
        }),
        note: "tv".into(),
    }
}

fn control(account: u32, seq: u64) -> InputRecord {
    InputRecord { account: AccountId(account), seq, now: NOW, input: JournalInput::Control(Control::Pause) }
}

fn inputs(records: Vec<InputRecord>) -> Record {
    Record::Entry(Entry::Shard(ShardEntry { inputs: records, ..ShardEntry::default() }))
}

fn actor(account: u32) -> AccountActor {
    AccountActor::new(AccountSetup {
        id: AccountId(account),
        name: Arc::from("a"),
        mode: AccountMode::Hedging,
        instruments: InstrumentTable::default(),
        balance: Money::parse("1000").unwrap(),
        equity: Money::parse("1000").unwrap(),
        risk: RiskLimits::default(),
        inbound: Vec::new(),
        is_leader: false,
        connected: true,
        positions: Vec::new(),
    })
}

fn step(actor: &mut AccountActor) {
    actor.on_input(NOW, Input::Control(Control::Pause), &mut Vec::new());
}

fn open(dir: &Path) -> (Journal, Recovery) {
    Journal::open(settings(dir)).unwrap()
}

#[test]
fn entries_become_durable_in_position_order_whatever_order_they_arrive_in() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    let (a, b, c) = (journal.reserve(), journal.reserve(), journal.reserve());
    assert_eq!((a, b, c), (1, 2, 3));
    journal.write(c, inputs(vec![control(1, 3)])).unwrap();
    journal.write(a, inputs(vec![control(1, 1)])).unwrap();
    journal.wait_durable(a, LONG).unwrap();
    // Position 3 is written but 2 is not: 3 must not count as durable.
    assert_eq!(journal.wait_durable(c, SHORT), Err(JournalError::NotDurable { seq: c, waited: SHORT }));
    assert_eq!(journal.durable(), a);
    journal.write(b, inputs(vec![control(1, 2)])).unwrap();
    journal.wait_durable(c, LONG).unwrap();
    let read: Vec<u64> = journal.read(1, 10).unwrap().into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(read, vec![1, 2, 3]);
    journal.close();
}

#[test]
fn recovery_returns_each_accounts_inputs_in_order_and_the_unfinished_fan_outs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (journal, recovery) = open(dir.path());
        assert_eq!(recovery.summary.entries, 0);
        let shared = mirror_wire::SharedSignal::encode(&signal(500)).unwrap();
        let mark = journal.append_signal(&shared, 2).unwrap();
        // One of its two shard messages was handled: accounts 10 and 11 took it.
        let deliveries = Deliveries {
            signal: SignalId(500),
            now: NOW,
            followers: vec![(AccountId(10), 1, LinkId(0)), (AccountId(11), 1, LinkId(1))],
        };
        let entry = ShardEntry { deliveries: Some(deliveries), inputs: vec![control(10, 2)], ..ShardEntry::default() };
        let last = journal.append(Record::Entry(Entry::Shard(entry))).unwrap();
        assert!(mark < last);
        journal.wait_durable(last, LONG).unwrap();
        journal.close();
    }
    let (journal, mut recovery) = open(dir.path());
    assert_eq!(recovery.summary.durable_end, 2);
    assert_eq!(recovery.summary.next_seq, 3);
    assert_eq!(recovery.summary.max_signal_id, Some(SignalId(500)));
    let (snapshot, records) = recovery.take_account(AccountId(10));
    assert!(snapshot.is_none());
    assert_eq!(
        records,
        vec![
            Replayed::Signal { seq: 1, now: NOW, signal: SignalId(500), link: LinkId(0) },
            Replayed::Input(control(10, 2)),
        ]
    );
    let unfinished: Vec<&UnfinishedFanout> = recovery.unfinished().collect();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].signal, SignalId(500));
    assert_eq!(unfinished[0].first_seq, 1);
    let expected: rustc_hash::FxHashSet<AccountId> = [AccountId(10), AccountId(11)].into_iter().collect();
    assert_eq!(unfinished[0].delivered, expected);
    assert_eq!(journal.signal(SignalId(500)).unwrap(), Some(signal(500)));
    assert_eq!(journal.reserve(), 3, "positions continue after the recovered ones");
    journal.close();
}

#[test]
fn entries_after_a_gap_were_never_durable_and_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (journal, _) = open(dir.path());
        let (a, _lost, c) = (journal.reserve(), journal.reserve(), journal.reserve());
        journal.write(a, inputs(vec![control(1, 1)])).unwrap();
        journal.write(c, inputs(vec![control(1, 3)])).unwrap();
        journal.close();
    }
    let (journal, mut recovery) = open(dir.path());
    assert_eq!(recovery.summary.durable_end, 1);
    assert_eq!(recovery.summary.dropped_after_gap, 1);
    assert_eq!(recovery.take_account(AccountId(1)).1, vec![Replayed::Input(control(1, 1))]);
    // Position 2 is free again, and the dropped entry is gone from the log.
    assert_eq!(journal.reserve(), 2);
    assert_eq!(journal.read(1, 10).unwrap().len(), 1);
    journal.close();
}

#[test]
fn a_snapshot_that_fails_its_checksum_gives_way_to_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut account = actor(4);
    {
        let (journal, _) = open(dir.path());
        step(&mut account);
        journal.append(Record::Snapshot(Box::new(account.snapshot()))).unwrap();
        step(&mut account);
        step(&mut account);
        let last = journal.append(Record::Snapshot(Box::new(account.snapshot()))).unwrap();
        journal.wait_durable(last, LONG).unwrap();
        journal.close();
    }
    {
        // Flip one byte of the newer snapshot, as a torn write would.
        let db = sled::open(dir.path().join("journal")).unwrap();
        let tree = db.open_tree("snapshots").unwrap();
        let (key, value) = tree.last().unwrap().unwrap();
        let mut stored: StoredSnapshot = decode(&value).unwrap();
        let middle = stored.bytes.len() / 2;
        stored.bytes[middle] ^= 0x40;
        tree.insert(key, encode(&stored).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let (journal, mut recovery) = open(dir.path());
    assert_eq!(recovery.summary.corrupt_snapshots, 1);
    let (snapshot, _) = recovery.take_account(AccountId(4));
    assert_eq!(snapshot.expect("the older snapshot").input_seq(), 1);
    journal.close();
}

#[test]
fn compaction_keeps_what_recovery_needs_and_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    journal.attach(vec![AccountId(1)], None);
    let mut account = actor(1);
    let mut last = 0;
    for _ in 0..3 {
        step(&mut account);
        last = journal.append(inputs(vec![control(1, account.input_seq())])).unwrap();
    }
    // Positions 1-3 inputs, 4 snapshot, 5-6 inputs, 7 snapshot, 8 input.
    let older = journal.append(Record::Snapshot(Box::new(account.snapshot()))).unwrap();
    for _ in 0..2 {
        step(&mut account);
        journal.append(inputs(vec![control(1, account.input_seq())])).unwrap();
    }
    journal.append(Record::Snapshot(Box::new(account.snapshot()))).unwrap();
    step(&mut account);
    last = last.max(journal.append(inputs(vec![control(1, account.input_seq())])).unwrap());
    journal.wait_durable(last, LONG).unwrap();
    let deadline = std::time::Instant::now() + LONG;
    while journal.first_position() < older && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Cut at the older of the two snapshots: a corrupt newer one still has its inputs.
    assert_eq!(journal.first_position(), older, "durable {}, last {last}", journal.durable());
    assert_eq!(journal.read(1, 100).unwrap().first().map(|(seq, _)| *seq), Some(older));
    journal.close();
    drop(journal);
    let (journal, mut recovery) = open(dir.path());
    let (snapshot, records) = recovery.take_account(AccountId(1));
    assert_eq!(snapshot.unwrap().input_seq(), 5);
    assert_eq!(records, vec![Replayed::Input(control(1, 6))]);
    journal.close();
}

#[test]
fn an_unfinished_fan_out_and_a_lagging_consumer_hold_compaction_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.consumers = vec!["postgres".into()];
    let (journal, _) = Journal::open(settings).unwrap();
    journal.attach(vec![AccountId(1)], None);
    let mut account = actor(1);
    // 1 input, 2 signal mark, 3-4 inputs, 5 snapshot, 6-8 inputs, 9 snapshot, 10 empty.
    step(&mut account);
    journal.append(inputs(vec![control(1, account.input_seq())])).unwrap();
    let shared = mirror_wire::SharedSignal::encode(&signal(77)).unwrap();
    let mark = journal.append_signal(&shared, 1).unwrap();
    assert_eq!(mark, 2);
    for rounds in [2, 3] {
        for _ in 0..rounds {
            step(&mut account);
            journal.append(inputs(vec![control(1, account.input_seq())])).unwrap();
        }
        journal.append(Record::Snapshot(Box::new(account.snapshot()))).unwrap();
    }
    let last = journal.append(inputs(vec![])).unwrap();
    assert_eq!(last, 10);
    journal.wait_durable(last, LONG).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // The consumer has no checkpoint yet: nothing may go.
    assert_eq!(journal.first_position(), 1);
    journal.set_consumer_checkpoint("postgres", last).unwrap();
    let deadline = std::time::Instant::now() + LONG;
    while journal.first_position() < mark && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    // Signal 77 is still being fanned out: its mark and everything after it stay.
    assert_eq!(journal.first_position(), mark);
    // Its fan-out completes: the cut moves to the older snapshot.
    let done = ShardEntry {
        deliveries: Some(Deliveries { signal: SignalId(77), now: NOW, followers: Vec::new() }),
        ..ShardEntry::default()
    };
    let done = journal.append(Record::Entry(Entry::Shard(done))).unwrap();
    journal.wait_durable(done, LONG).unwrap();
    let deadline = std::time::Instant::now() + LONG;
    while journal.first_position() <= mark && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(journal.first_position(), 5, "cut at the older snapshot");
    assert_eq!(journal.signal(SignalId(77)).unwrap(), Some(signal(77)), "signals are kept for their retention");
    journal.close();
}

#[test]
fn a_failed_journal_refuses_every_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    let seq = journal.reserve();
    journal.inner.watermark.fail("disk full".into());
    assert_eq!(journal.wait_durable(seq, LONG), Err(JournalError::Failed("disk full".into())));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(journal.wait_durable_async(seq)), Err(JournalError::Failed("disk full".into())));
    assert!(matches!(journal.write(seq, inputs(vec![])), Err(JournalError::Failed(_))));
    journal.close();
}
