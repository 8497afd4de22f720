//! The engine's JSON log files: a real excerpt (`tests/data/engine-demo.jsonl`, the first 320
//! lines a `mirror-engine run --config config/demo.toml` wrote with `file_level = "debug"`),
//! read, filtered, its signals' timelines assembled, exported; and the same with damaged lines.

use std::io::BufReader;

use mirror_logs::{
    Clock, Filter, FilteredIndex, HopKind, Level, LogStore, ReadSummary, TimeBound, Timeline, export_csv,
    read_json_lines,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/engine-demo.jsonl");
/// A GBPUSD buy of alpha-fx, fanned out to its ten FX followers; fx-eur-longs skips it.
const SIGNAL: u64 = 1_795_492_245_669_970;

fn fixture() -> (LogStore, ReadSummary) {
    let mut store = LogStore::default();
    let file = std::fs::File::open(FIXTURE).unwrap();
    let summary = read_json_lines(BufReader::new(file), &mut store).unwrap();
    (store, summary)
}

fn account_key(store: &LogStore, name: &str) -> u32 {
    *store.accounts().iter().find(|(_, n)| n.as_str() == name).unwrap_or_else(|| panic!("{name} is known")).0
}

#[test]
fn every_line_of_the_engine_file_is_read_with_its_fields() {
    let (store, summary) = fixture();
    assert_eq!(summary, ReadSummary { read: 320, unreadable: 0, blank: 0 });
    assert_eq!(store.len(), 320);
    let first = store.get(0).unwrap();
    assert_eq!(mirror_logs::iso_text(first.unix_ns), "2026-11-24T03:50:45.620907Z");
    assert_eq!((first.level, first.account, first.signal), (Level::Debug, None, 0));
    // A dependency's `log.*` fields are left out of the text.
    assert_eq!(first.text.as_ref(), "no previous snapshot found");

    let copied = store.get(165).unwrap();
    assert_eq!(copied.level, Level::Info);
    assert_eq!(copied.signal, SIGNAL);
    assert_eq!(store.account_name(copied.account.unwrap()), "fx-mirror");
    assert_eq!(
        copied.text.as_ref(),
        "copied client_id=m660fd9d800852.1e2bfd.0 symbol=GBPUSD side=buy qty=2 kind=Market adjustment=None"
    );
    assert_eq!(copied.hop.as_ref().unwrap().kind, HopKind::Copied);
    let skipped = store.get(172).unwrap();
    let hop = skipped.hop.as_ref().unwrap();
    assert_eq!((hop.kind, hop.detail.as_ref()), (HopKind::Skipped, "GBPUSD is not on the link's allow list"));
    // Lines without an account or signal are no hops.
    assert!(store.get(29).unwrap().hop.is_none());
    assert!(store.get(29).unwrap().text.starts_with("QUIC gateway listening local_addr=127.0.0.1:7443"));
}

#[test]
fn filters_on_the_file_combine() {
    let (store, _) = fixture();
    let mut index = FilteredIndex::default();
    index.sync(&store);
    assert_eq!(index.len(), 320);
    let count = |index: &mut FilteredIndex, filter: Filter| {
        index.set_filter(&filter, &store);
        index.len()
    };
    assert_eq!(count(&mut index, Filter { min_level: Some(Level::Info), ..Filter::default() }), 68);
    assert_eq!(count(&mut index, Filter { signal: Some(SIGNAL), ..Filter::default() }), 28);
    let fx_mirror = account_key(&store, "fx-mirror");
    let both = Filter { signal: Some(SIGNAL), account: Some(fx_mirror), ..Filter::default() };
    assert_eq!(count(&mut index, both), 3, "copied, accepted, filled");
    assert_eq!(count(&mut index, Filter { text: "ALLOW LIST".into(), ..Filter::default() }), 1);
    // Before the first copy (03:50:46.924292) there are 165 lines.
    let to = Some(TimeBound::parse("2026-11-24T03:50:46.924291Z").unwrap());
    assert_eq!(count(&mut index, Filter { to, ..Filter::default() }), 165);
    let from = Some(TimeBound::parse("03:50:46.924292").unwrap());
    let info = Filter { from, min_level: Some(Level::Info), signal: Some(SIGNAL), ..Filter::default() };
    assert_eq!(count(&mut index, info), 10, "nine copies and one skip");
}

#[test]
fn a_signals_timeline_lists_every_follower_from_the_file() {
    let (store, _) = fixture();
    let mut timeline = Timeline::new(SIGNAL);
    timeline.sync(&store);
    assert_eq!(timeline.clock(), Clock::LogWritten);
    let followers = timeline.followers();
    assert_eq!(followers.len(), 10);
    let names: Vec<String> = followers.iter().map(|f| store.account_name(f.account).into_owned()).collect();
    assert_eq!(names[0], "fx-mirror", "the first copy is the first hop: {names:?}");
    let filled = followers.iter().filter(|f| f.outcome().unwrap().kind == HopKind::Filled).count();
    assert_eq!(filled, 9);
    let skip = followers.iter().find(|f| f.outcome().unwrap().kind == HopKind::Skipped).unwrap();
    assert_eq!(store.account_name(skip.account), "fx-eur-longs");
    assert_eq!(followers[0].hops[0].at_ns, 0);
    for follower in followers.iter().filter(|f| f.hops.len() == 3) {
        let kinds: Vec<HopKind> = follower.hops.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, [HopKind::Copied, HopKind::Accepted, HopKind::Filled]);
        let fill = follower.between(HopKind::Copied, HopKind::Filled).unwrap();
        assert!(fill > 0 && fill < 1_000_000_000, "{fill} ns");
    }
}

#[test]
fn damaged_lines_are_counted_with_their_numbers_and_the_rest_is_read() {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[16] = lines[16][..40].to_owned(); // cut short, as a crash mid-write leaves it
    lines[99] = "[1, 2, 3]".into();
    lines[199] = lines[199].replace("\"level\":\"DEBUG\"", "\"level\":\"LOUD\"");
    lines.insert(50, String::new());
    let damaged = lines.join("\n");
    let mut store = LogStore::default();
    let summary = read_json_lines(damaged.as_bytes(), &mut store).unwrap();
    assert_eq!(summary, ReadSummary { read: 317, unreadable: 3, blank: 1 });
    let (count, first) = store.unreadable();
    assert_eq!(count, 3);
    let numbers: Vec<u64> = first.iter().map(|u| u.line).collect();
    assert_eq!(numbers, [17, 101, 201]);
    assert!(first[0].error.starts_with("not JSON: EOF while parsing"), "{}", first[0].error);
    assert_eq!(first[1].error, "expected a JSON object, got an array");
    assert_eq!(first[2].error, "level: `LOUD` is not TRACE, DEBUG, INFO, WARN or ERROR");
    let invalid_utf8 = [b"{\"timestamp\":\"".as_slice(), &[0xff, 0xfe], b"\"}\n"].concat();
    let mut store = LogStore::default();
    let summary = read_json_lines(invalid_utf8.as_slice(), &mut store).unwrap();
    assert_eq!(summary.unreadable, 1);
    assert!(store.unreadable().1[0].error.starts_with("not UTF-8"));
}

#[test]
fn the_csv_export_of_a_filter_reads_back_field_for_field() {
    let (store, _) = fixture();
    let mut index = FilteredIndex::default();
    index.set_filter(&Filter { signal: Some(SIGNAL), min_level: Some(Level::Info), ..Filter::default() }, &store);
    let mut out = Vec::new();
    assert_eq!(export_csv(&mut out, &store, &index).unwrap(), 10);
    let text = String::from_utf8(out).unwrap();
    let records: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(records.len(), 12, "header, 10 rows, and the empty rest after the last CRLF");
    assert_eq!(records[0], "time_utc,engine_mono_ns,level,account,signal,text");
    assert_eq!(
        records[1],
        "2026-11-24T03:50:46.924292Z,,INFO,fx-mirror,1795492245669970,copied client_id=m660fd9d800852.1e2bfd.0 \
         symbol=GBPUSD side=buy qty=2 kind=Market adjustment=None"
    );
    let skip = ",fx-eur-longs,1795492245669970,skipped action=open category=filter reason=GBPUSD is not on the link's \
                allow list";
    assert_eq!(records.iter().filter(|r| r.ends_with(skip)).count(), 1, "{text}");
}
