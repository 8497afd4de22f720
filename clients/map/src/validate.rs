//! Checks of the copy map before it is applied. Errors stop an apply (the engine would refuse
//! the map or trade it wrongly); warnings are shown and must be acknowledged.
//!
//! - names: each link's leader is an account or a source, its follower an account; no pair
//!   twice; values that read (sizing, quantities, distances, ratios);
//! - cycles: accounts copying each other round (every copy would be copied back);
//! - unknown symbols: in the accounts' and sources' lists, allow/deny lists and symbol maps;
//! - futures/CFD mixing: a leader's futures going to an account that trades no futures (or
//!   CFD/forex to one that trades only futures) without a symbol map entry saying what they
//!   become;
//! - two leaders into one account on the same symbol (a warning: Mirror keeps each leader's
//!   copies as separate legs, but the account's exposure is their sum).

use std::collections::{BTreeMap, BTreeSet};

use mirror_model::{Price, Qty, Ratio};

use crate::doc::{CopyMap, Link, NodeKind, Protection, SizingMode};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Stops an apply.
    Error,
    /// Shown; an apply needs it acknowledged.
    Warning,
}

/// One thing found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The link it is about, by index.
    pub link: Option<usize>,
    /// What is wrong, naming the link, account or symbol.
    pub message: String,
}

/// Everything found in `map`: errors first, then warnings, each in the map's order.
pub fn validate(map: &CopyMap) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut error = |link: Option<usize>, message: String| {
        findings.push(Finding { severity: Severity::Error, link, message });
    };
    for node in &map.nodes {
        for symbol in node.symbols.iter().flatten() {
            if !map.instruments.contains_key(symbol) {
                error(None, format!("{} lists {symbol}, which is not in the instrument catalog", node.name));
            }
        }
    }
    let mut pairs = BTreeSet::new();
    for (index, link) in map.links.iter().enumerate() {
        let title = link.title();
        let at = Some(index);
        match map.node(&link.leader) {
            None => error(at, format!("{title}: there is no account or source called {}", link.leader)),
            Some(_) if link.leader == link.follower => error(at, format!("{title}: an account cannot copy itself")),
            Some(_) => {}
        }
        match map.node(&link.follower) {
            None => error(at, format!("{title}: there is no account called {}", link.follower)),
            Some(node) if node.kind == NodeKind::Source => {
                error(at, format!("{title}: {} is a source, and sources do not follow", link.follower));
            }
            Some(_) => {}
        }
        if !pairs.insert((link.leader.as_str(), link.follower.as_str())) {
            error(at, format!("{title}: linked twice"));
        }
        for problem in &link.unreadable {
            error(at, format!("{title}: {problem}"));
        }
        for problem in value_problems(link) {
            error(at, format!("{title}: {problem}"));
        }
        let rules = &link.rules;
        let listed = rules.allow.iter().map(|s| ("allow", s)).chain(rules.deny.iter().map(|s| ("deny", s)));
        let mapped = rules.symbol_map.iter().flat_map(|e| [("symbol_map", &e.from), ("symbol_map", &e.to)]);
        for (key, symbol) in listed.chain(mapped) {
            if !map.instruments.contains_key(symbol.trim()) {
                error(at, format!("{title}: {key} names {symbol}, which is not in the instrument catalog"));
            }
        }
    }
    for cycle in cycles(map) {
        let closing =
            map.links.iter().position(|l| l.leader == cycle[cycle.len() - 2] && l.follower == cycle[cycle.len() - 1]);
        error(closing, format!("a cycle: {} (each copy would be copied back round it)", cycle.join(" -> ")));
    }
    let mut warnings = Vec::new();
    for (index, link) in map.links.iter().enumerate() {
        symbol_flow(map, index, link, &mut findings, &mut warnings);
    }
    findings.extend(overlapping_leaders(map));
    findings.extend(warnings);
    findings.sort_by_key(|f| f.severity);
    findings
}

/// Values that do not parse as what they are, or that are out of range.
fn value_problems(link: &Link) -> Vec<String> {
    let rules = &link.rules;
    let mut problems = Vec::new();
    let (parameter, optional) = rules.sizing.mode.parameter();
    let value = rules.sizing.value.trim();
    if value.is_empty() {
        if !optional {
            problems.push(format!("sizing {} needs its {parameter}", rules.sizing.mode.name()));
        }
    } else if rules.sizing.mode == SizingMode::Fixed {
        match Qty::parse(value) {
            Ok(qty) if qty > Qty::ZERO => {}
            Ok(_) => problems.push(format!("sizing qty must be more than zero, not {value}")),
            Err(e) => problems.push(format!("sizing qty {value:?}: {e}")),
        }
    } else {
        match Ratio::parse(value) {
            Ok(ratio) if ratio.is_positive() => {}
            Ok(_) => problems.push(format!("sizing {parameter} must be more than zero, not {value}")),
            Err(e) => problems.push(format!("sizing {parameter} {value:?}: {e}")),
        }
    }
    let max_qty = rules.max_qty.trim();
    if !max_qty.is_empty() {
        match Qty::parse(max_qty) {
            Ok(qty) if qty > Qty::ZERO => {}
            Ok(_) => problems.push(format!("max_qty must be more than zero, not {max_qty}")),
            Err(e) => problems.push(format!("max_qty {max_qty:?}: {e}")),
        }
    }
    for (key, protection) in [("stop_loss", &rules.stop_loss), ("take_profit", &rules.take_profit)] {
        if let Protection::Distance(distance) = protection {
            match Price::parse(distance.trim()) {
                Ok(price) if price > Price::ZERO => {}
                Ok(_) => problems.push(format!("{key} distance must be more than zero, not {distance}")),
                Err(e) => problems.push(format!("{key} distance {distance:?}: {e}")),
            }
        }
    }
    for entry in &rules.symbol_map {
        let ratio = entry.ratio.trim();
        if !ratio.is_empty() {
            match Ratio::parse(ratio) {
                Ok(r) if r.is_positive() => {}
                Ok(_) => problems.push(format!("symbol_map.{} ratio must be more than zero, not {ratio}", entry.from)),
                Err(e) => problems.push(format!("symbol_map.{} ratio {ratio:?}: {e}", entry.from)),
            }
        }
        if entry.from.trim().is_empty() || entry.to.trim().is_empty() {
            problems.push("symbol_map has an entry without both symbols".into());
        }
    }
    for symbol in &rules.allow {
        if rules.deny.contains(symbol) {
            problems.push(format!("{symbol} is both allowed and denied"));
        }
    }
    problems
}

/// Each cycle among accounts once, as the names round it with the first repeated at the end.
fn cycles(map: &CopyMap) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for link in &map.links {
        next.entry(link.leader.as_str()).or_default().push(link.follower.as_str());
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
        found: &mut Vec<Vec<String>>,
    ) {
        marks.insert(node, Mark::Open);
        path.push(node);
        for &follower in next.get(node).into_iter().flatten() {
            match marks.get(follower) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|n| *n == follower).unwrap_or(0);
                    let mut cycle: Vec<String> = path[start..].iter().map(|n| (*n).to_owned()).collect();
                    cycle.push(follower.to_owned());
                    found.push(cycle);
                }
                Some(Mark::Done) => {}
                None => visit(follower, next, marks, path, found),
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for link in &map.links {
        if !marks.contains_key(link.leader.as_str()) {
            visit(link.leader.as_str(), &next, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// The canonical symbols a link's leader sends it: the leader's list (or the whole catalog),
/// narrowed by the link's allow and deny lists. `explicit` says whether a list narrowed it.
fn leader_symbols(map: &CopyMap, link: &Link) -> (BTreeSet<String>, bool) {
    let listed = map.node(&link.leader).and_then(|n| n.symbols.clone());
    let explicit = listed.is_some() || !link.rules.allow.is_empty();
    let mut symbols: BTreeSet<String> =
        listed.unwrap_or_else(|| map.instruments.keys().cloned().collect()).into_iter().collect();
    if !link.rules.allow.is_empty() {
        symbols.retain(|s| link.rules.allow.contains(s));
    }
    symbols.retain(|s| !link.rules.deny.contains(s));
    (symbols, explicit)
}

fn is_future(map: &CopyMap, symbol: &str) -> bool {
    map.instruments.get(symbol).is_some_and(|kind| kind == "future")
}

/// What each symbol becomes for the follower, and the futures/CFD checks.
fn symbol_flow(map: &CopyMap, index: usize, link: &Link, errors: &mut Vec<Finding>, warnings: &mut Vec<Finding>) {
    let (Some(_), Some(follower)) = (map.node(&link.leader), map.node(&link.follower)) else { return };
    let (symbols, explicit) = leader_symbols(map, link);
    let Some(traded) = follower.symbols.as_ref() else { return };
    if !explicit {
        return;
    }
    let follower_futures = traded.iter().any(|s| is_future(map, s));
    let follower_others = traded.iter().any(|s| !is_future(map, s));
    let mut mixed: BTreeMap<bool, Vec<&str>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for symbol in &symbols {
        let target = match link.rules.symbol_map.iter().find(|e| e.from.trim() == symbol) {
            Some(entry) => entry.to.trim(),
            None => {
                if traded.contains(symbol) {
                    continue;
                }
                let future = is_future(map, symbol);
                if (future && !follower_futures && follower_others) || (!future && follower_futures && !follower_others)
                {
                    mixed.entry(future).or_default().push(symbol);
                    continue;
                }
                symbol.as_str()
            }
        };
        if !traded.iter().any(|t| t == target) {
            skipped.push(target.to_owned());
        }
    }
    let title = link.title();
    for (future, leader_symbols) in mixed {
        let (theirs, ours) = if future { ("futures", "CFD/forex only") } else { ("CFD/forex", "futures only") };
        errors.push(Finding {
            severity: Severity::Error,
            link: Some(index),
            message: format!(
                "{title}: futures/CFD mixing without a mapping: {} sends {theirs} ({}) and {} trades {ours}; map each in symbol_map or deny it",
                link.leader,
                leader_symbols.join(", "),
                link.follower
            ),
        });
    }
    if !skipped.is_empty() {
        warnings.push(Finding {
            severity: Severity::Warning,
            link: Some(index),
            message: format!(
                "{title}: {} does not trade {}; those copies will be skipped",
                link.follower,
                skipped.join(", ")
            ),
        });
    }
}

/// Followers that two active leaders send the same symbol.
fn overlapping_leaders(map: &CopyMap) -> Vec<Finding> {
    /// A link into a follower, with the follower symbols it sends.
    type Inbound<'a> = (usize, &'a Link, BTreeSet<String>);
    let mut into: BTreeMap<&str, Vec<Inbound<'_>>> = BTreeMap::new();
    for (index, link) in map.links.iter().enumerate() {
        if link.rules.paused || map.node(&link.leader).is_none() {
            continue;
        }
        let traded = map.node(&link.follower).and_then(|n| n.symbols.clone());
        let targets: BTreeSet<String> = leader_symbols(map, link)
            .0
            .into_iter()
            .map(|s| link.rules.symbol_map.iter().find(|e| e.from.trim() == s).map_or(s, |e| e.to.trim().to_owned()))
            .filter(|t| traded.as_ref().is_none_or(|traded| traded.contains(t)))
            .collect();
        into.entry(link.follower.as_str()).or_default().push((index, link, targets));
    }
    let mut findings = Vec::new();
    for (follower, inbound) in into {
        for (n, (_, first, first_targets)) in inbound.iter().enumerate() {
            for (index, second, second_targets) in &inbound[n + 1..] {
                let shared: Vec<&str> = first_targets.intersection(second_targets).map(String::as_str).collect();
                if shared.is_empty() {
                    continue;
                }
                findings.push(Finding {
                    severity: Severity::Warning,
                    link: Some(*index),
                    message: format!(
                        "{follower} receives {} from both {} and {}: each leader's copies are kept as separate legs, and the account's exposure is their sum",
                        shared.join(", "),
                        first.leader,
                        second.leader
                    ),
                });
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{LinkRules, MapDoc, MapEntry, Sizing};

    const MAP: &str = r#"
[instruments.ES]
kind = "future"
[instruments.MES]
kind = "future"
[instruments.XAUUSD]
kind = "cfd"
[instruments.EURUSD]
kind = "forex"

[[sources]]
name = "algo"
symbols = ["ES"]

[[accounts]]
name = "fut"
platform = "sim"
instruments = ["ES"]

[[accounts]]
name = "micro"
platform = "sim"
instruments = ["MES"]

[[accounts]]
name = "cfd"
platform = "sim"
instruments = ["XAUUSD", "EURUSD"]

[[links]]
leader = "algo"
follower = "fut"
"#;

    fn with_link(doc: &mut MapDoc, leader: &str, follower: &str, rules: LinkRules) {
        let index = doc.add_link(leader, follower).unwrap();
        doc.set_rules(index, &rules).unwrap();
    }

    fn messages(doc: &MapDoc, severity: Severity) -> Vec<String> {
        validate(doc.map()).into_iter().filter(|f| f.severity == severity).map(|f| f.message).collect()
    }

    #[test]
    fn a_clean_map_has_nothing_to_say() {
        let doc = MapDoc::parse(MAP).unwrap();
        assert_eq!(validate(doc.map()), []);
    }

    #[test]
    fn the_demo_configuration_has_no_errors() {
        let doc = MapDoc::parse(include_str!("../../../config/demo.toml")).unwrap();
        let findings = validate(doc.map());
        assert!(findings.iter().all(|f| f.severity == Severity::Warning), "{findings:#?}");
        // algo and bravo-fut both send ES to fut-one-lot: said, as a warning.
        assert!(
            findings.iter().any(|f| f.message.starts_with("fut-one-lot receives ES, NQ from both bravo-fut and algo")),
            "{findings:#?}"
        );
    }

    #[test]
    fn cycles_are_found_and_named() {
        let mut doc = MapDoc::parse(MAP).unwrap();
        with_link(&mut doc, "fut", "micro", LinkRules { symbol_map: vec![map("ES", "MES")], ..LinkRules::default() });
        assert_eq!(messages(&doc, Severity::Error), Vec::<String>::new());
        with_link(&mut doc, "micro", "fut", LinkRules { symbol_map: vec![map("MES", "ES")], ..LinkRules::default() });
        let errors = messages(&doc, Severity::Error);
        assert_eq!(errors, ["a cycle: fut -> micro -> fut (each copy would be copied back round it)"]);
        let findings = validate(doc.map());
        assert_eq!(findings[0].link, Some(2), "the link that closes it");
    }

    #[test]
    fn futures_to_a_cfd_account_need_a_mapping() {
        let mut doc = MapDoc::parse(MAP).unwrap();
        with_link(&mut doc, "fut", "cfd", LinkRules::default());
        assert_eq!(
            messages(&doc, Severity::Error),
            [
                "fut -> cfd: futures/CFD mixing without a mapping: fut sends futures (ES) and cfd trades CFD/forex only; map each in symbol_map or deny it"
            ]
        );
        // Said explicitly, it is allowed.
        let rules = LinkRules { symbol_map: vec![map("ES", "XAUUSD")], ..LinkRules::default() };
        doc.set_rules(1, &rules).unwrap();
        assert_eq!(messages(&doc, Severity::Error), Vec::<String>::new());
        // A micro account without a map: the same family, so only skipped copies are said.
        with_link(&mut doc, "algo", "micro", LinkRules::default());
        assert_eq!(
            messages(&doc, Severity::Warning),
            ["algo -> micro: micro does not trade ES; those copies will be skipped"]
        );
    }

    #[test]
    fn two_leaders_on_one_symbol_are_a_warning() {
        let mut doc = MapDoc::parse(MAP).unwrap();
        with_link(&mut doc, "micro", "fut", LinkRules { symbol_map: vec![map("MES", "ES")], ..LinkRules::default() });
        assert_eq!(
            messages(&doc, Severity::Warning),
            [
                "fut receives ES from both algo and micro: each leader's copies are kept as separate legs, and the account's exposure is their sum"
            ]
        );
        // Paused, it sends nothing.
        doc.set_rules(1, &LinkRules { paused: true, symbol_map: vec![map("MES", "ES")], ..LinkRules::default() })
            .unwrap();
        assert_eq!(messages(&doc, Severity::Warning), Vec::<String>::new());
    }

    #[test]
    fn unknown_symbols_and_bad_values_are_named() {
        let text = MAP.replace("symbols = [\"ES\"]", "symbols = [\"ES\", \"YM\"]");
        let mut doc = MapDoc::parse(&text).unwrap();
        let rules = LinkRules {
            sizing: Sizing { mode: SizingMode::Fixed, value: "-1".into() },
            allow: vec!["ES".into(), "NQ".into()],
            deny: vec!["ES".into()],
            max_qty: "lots".into(),
            symbol_map: vec![MapEntry { from: "ES".into(), to: "MES".into(), ratio: "0".into() }],
            stop_loss: Protection::Distance("NaN".into()),
            ..LinkRules::default()
        };
        doc.set_rules(0, &rules).unwrap();
        let errors = messages(&doc, Severity::Error);
        for expected in [
            "algo lists YM, which is not in the instrument catalog",
            "algo -> fut: allow names NQ, which is not in the instrument catalog",
            "algo -> fut: sizing qty must be more than zero, not -1",
            "algo -> fut: max_qty \"lots\"",
            "algo -> fut: stop_loss distance \"NaN\"",
            "algo -> fut: symbol_map.ES ratio must be more than zero, not 0",
            "algo -> fut: ES is both allowed and denied",
        ] {
            assert!(errors.iter().any(|e| e.starts_with(expected)), "{expected} not in {errors:#?}");
        }
        let mut doc = MapDoc::parse(MAP).unwrap();
        doc.set_rules(
            0,
            &LinkRules {
                sizing: Sizing { mode: SizingMode::RiskPercent, value: String::new() },
                ..LinkRules::default()
            },
        )
        .unwrap();
        assert_eq!(messages(&doc, Severity::Error), ["algo -> fut: sizing risk_percent needs its percent"]);
    }

    fn map(from: &str, to: &str) -> MapEntry {
        MapEntry { from: from.into(), to: to.into(), ratio: String::new() }
    }
}
