//! The configuration being edited: the engine's TOML text as a `toml_edit` document, so that an
//! edit changes only what it names and keeps every comment and the layout of the rest, and
//! the copy map read out of it ([`CopyMap`]).
//!
//! Rule values are kept as the text the user wrote (`"0.5"`, `"1"`): money and ratios are
//! exact decimals in Mirror, and they are parsed by `mirror-model`'s own parsers when checked,
//! never through floating point.

use std::collections::BTreeMap;

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

/// A configuration that does not read as TOML, or an edit that cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    /// Not TOML.
    #[error("not valid TOML: {0}")]
    Syntax(String),
    /// A section has the wrong shape (`links` is not an array of tables …).
    #[error("{0}")]
    Shape(String),
    /// The edit refers to a link that is not there.
    #[error("there is no link #{0}")]
    NoSuchLink(usize),
    /// The edit itself is refused (a link to itself, one already there …).
    #[error("{0}")]
    Refused(String),
}

/// What a node of the map is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    /// A source of signals (webhook, algo, manual): it only leads.
    Source,
    /// A trading account.
    Account,
}

/// An account or a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its unique name.
    pub name: String,
    /// Source or account.
    pub kind: NodeKind,
    /// The platform (`sim`, `ctrader`, `mt5` …), or `source`.
    pub platform: String,
    /// Catalog symbols it trades (`instruments` of an account, `symbols` of a source), when
    /// listed. `None`: the whole catalog.
    pub symbols: Option<Vec<String>>,
    /// Groups (accounts only).
    pub groups: Vec<String>,
}

/// Sizing modes, as the configuration names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SizingMode {
    /// `multiplier` (`ratio`): the default, ratio 1.
    #[default]
    Multiplier,
    /// `fixed` (`qty`).
    Fixed,
    /// `balance_ratio` (`multiplier`).
    BalanceRatio,
    /// `equity_ratio` (`multiplier`).
    EquityRatio,
    /// `risk_percent` (`percent`).
    RiskPercent,
    /// `notional` (`multiplier`).
    Notional,
}

impl SizingMode {
    /// Every mode, in the order the editor lists them.
    pub const ALL: [Self; 6] =
        [Self::Multiplier, Self::Fixed, Self::BalanceRatio, Self::EquityRatio, Self::RiskPercent, Self::Notional];

    /// The name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Multiplier => "multiplier",
            Self::Fixed => "fixed",
            Self::BalanceRatio => "balance_ratio",
            Self::EquityRatio => "equity_ratio",
            Self::RiskPercent => "risk_percent",
            Self::Notional => "notional",
        }
    }

    /// The one parameter it takes, and whether it may be left out.
    pub fn parameter(self) -> (&'static str, bool) {
        match self {
            Self::Fixed => ("qty", false),
            Self::RiskPercent => ("percent", false),
            // An empty multiplier ratio is the default sizing (×1): no `sizing` key at all.
            Self::Multiplier => ("ratio", true),
            Self::BalanceRatio | Self::EquityRatio | Self::Notional => ("multiplier", true),
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// How a follower's quantity is derived.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sizing {
    /// The mode.
    pub mode: SizingMode,
    /// Its parameter as written (empty: the mode's default).
    pub value: String,
}

impl Sizing {
    /// A short label for the map's edges: `×0.5`, `fixed 1`, `notional`.
    pub fn label(&self) -> String {
        let value = self.value.trim();
        match (self.mode, value.is_empty()) {
            (SizingMode::Multiplier, true) => "×1".into(),
            (SizingMode::Multiplier, false) => format!("×{value}"),
            (SizingMode::Fixed, _) => format!("fixed {value}"),
            (SizingMode::RiskPercent, _) => format!("risk {value}%"),
            (mode, true) => mode.name().replace('_', " "),
            (mode, false) => format!("{} ×{value}", mode.name().replace('_', " ")),
        }
    }
}

/// Sides copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sides {
    /// Both.
    #[default]
    Both,
    /// Long positions only.
    LongOnly,
    /// Short positions only.
    ShortOnly,
}

impl Sides {
    /// Every choice.
    pub const ALL: [Self; 3] = [Self::Both, Self::LongOnly, Self::ShortOnly];

    /// The name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::LongOnly => "long_only",
            Self::ShortOnly => "short_only",
        }
    }
}

/// Stop loss or take profit of the copies.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Protection {
    /// The leader's, copied.
    #[default]
    Copy,
    /// None.
    None,
    /// The follower's own, this price distance from the entry.
    Distance(String),
}

/// One entry of a link's symbol map.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MapEntry {
    /// The leader's canonical symbol.
    pub from: String,
    /// The follower's.
    pub to: String,
    /// Quantity ratio as written (empty: 1).
    pub ratio: String,
}

/// The rules of one link that the editor edits. Keys it does not know stay as they are.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LinkRules {
    /// No new opens copied while paused.
    pub paused: bool,
    /// Sizing.
    pub sizing: Sizing,
    /// Copy in the opposite direction.
    pub reverse: bool,
    /// Sides copied.
    pub sides: Sides,
    /// Only these symbols (empty: all).
    pub allow: Vec<String>,
    /// Never these.
    pub deny: Vec<String>,
    /// Leader symbol -> follower symbol.
    pub symbol_map: Vec<MapEntry>,
    /// Largest quantity per order (empty: no limit).
    pub max_qty: String,
    /// Stop loss.
    pub stop_loss: Protection,
    /// Take profit.
    pub take_profit: Protection,
}

/// A leader copied to a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Leader account or source.
    pub leader: String,
    /// Follower account.
    pub follower: String,
    /// Its rules.
    pub rules: LinkRules,
    /// Other keys the link sets, which the editor shows but leaves alone.
    pub other_keys: Vec<String>,
    /// Values that do not read (`sizing.mode = "triple"`), each naming its key.
    pub unreadable: Vec<String>,
}

impl Link {
    /// `leader -> follower`.
    pub fn title(&self) -> String {
        format!("{} -> {}", self.leader, self.follower)
    }
}

/// The copy map as the configuration describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyMap {
    /// Catalog symbol -> its kind (`forex`, `cfd`, `future` …).
    pub instruments: BTreeMap<String, String>,
    /// Sources, then accounts, each in the file's order.
    pub nodes: Vec<Node>,
    /// Links in the file's order (the index is the link's identity while editing).
    pub links: Vec<Link>,
}

impl CopyMap {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// The document being edited.
#[derive(Clone, Debug)]
pub struct MapDoc {
    document: DocumentMut,
    text: String,
    map: CopyMap,
}

const LINK_KEYS: [&str; 12] = [
    "leader",
    "follower",
    "paused",
    "sizing",
    "reverse",
    "sides",
    "allow",
    "deny",
    "symbol_map",
    "max_qty",
    "stop_loss",
    "take_profit",
];

impl MapDoc {
    /// Reads a configuration's text.
    pub fn parse(text: &str) -> Result<Self, DocError> {
        let document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| DocError::Syntax(e.to_string()))?;
        let map = read_map(&document)?;
        Ok(Self { text: document.to_string(), document, map })
    }

    /// The text as it stands (what export writes and apply sends).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The copy map read from it.
    pub fn map(&self) -> &CopyMap {
        &self.map
    }

    /// Adds a link `leader -> follower` with default rules; its index.
    pub fn add_link(&mut self, leader: &str, follower: &str) -> Result<usize, DocError> {
        if leader == follower {
            return Err(DocError::Refused(format!("{leader} cannot copy itself")));
        }
        if self.map.node(leader).is_none() {
            return Err(DocError::Refused(format!("there is no account or source called {leader:?}")));
        }
        match self.map.node(follower) {
            None => return Err(DocError::Refused(format!("there is no account called {follower:?}"))),
            Some(node) if node.kind == NodeKind::Source => {
                return Err(DocError::Refused(format!("{follower} is a source: sources lead, they do not follow")));
            }
            Some(_) => {}
        }
        if self.map.links.iter().any(|l| l.leader == leader && l.follower == follower) {
            return Err(DocError::Refused(format!("{leader} -> {follower} is already linked")));
        }
        let links = self
            .document
            .entry("links")
            .or_insert_with(|| Item::ArrayOfTables(toml_edit::ArrayOfTables::new()))
            .as_array_of_tables_mut()
            .ok_or_else(|| DocError::Shape("links is not a list of [[links]] tables".into()))?;
        let mut table = Table::new();
        table.insert("leader", toml_edit::value(leader));
        table.insert("follower", toml_edit::value(follower));
        links.push(table);
        self.refresh()?;
        Ok(self.map.links.len() - 1)
    }

    /// Removes link `index`.
    pub fn remove_link(&mut self, index: usize) -> Result<Link, DocError> {
        let link = self.map.links.get(index).cloned().ok_or(DocError::NoSuchLink(index))?;
        let links = self.links_mut()?;
        links.remove(index);
        if links.is_empty() {
            self.document.remove("links");
        }
        self.refresh()?;
        Ok(link)
    }

    /// Writes `rules` into link `index`, changing only the keys whose value differs (so an
    /// untouched key keeps its formatting and comment).
    pub fn set_rules(&mut self, index: usize, rules: &LinkRules) -> Result<(), DocError> {
        let current = self.map.links.get(index).ok_or(DocError::NoSuchLink(index))?.rules.clone();
        let table = self.links_mut()?.get_mut(index).ok_or(DocError::NoSuchLink(index))?;
        if rules.paused != current.paused {
            set_or_remove(table, "paused", rules.paused.then(|| Value::from(true)));
        }
        if rules.sizing != current.sizing {
            let sizing = (rules.sizing != Sizing::default()).then(|| sizing_value(&rules.sizing));
            set_or_remove(table, "sizing", sizing);
        }
        if rules.reverse != current.reverse {
            set_or_remove(table, "reverse", rules.reverse.then(|| Value::from(true)));
        }
        if rules.sides != current.sides {
            set_or_remove(table, "sides", (rules.sides != Sides::Both).then(|| Value::from(rules.sides.name())));
        }
        if rules.allow != current.allow {
            set_or_remove(table, "allow", (!rules.allow.is_empty()).then(|| string_array(&rules.allow)));
        }
        if rules.deny != current.deny {
            set_or_remove(table, "deny", (!rules.deny.is_empty()).then(|| string_array(&rules.deny)));
        }
        if rules.symbol_map != current.symbol_map {
            let map = (!rules.symbol_map.is_empty()).then(|| symbol_map_value(&rules.symbol_map));
            set_or_remove(table, "symbol_map", map);
        }
        if rules.max_qty != current.max_qty {
            let qty = rules.max_qty.trim();
            set_or_remove(table, "max_qty", (!qty.is_empty()).then(|| decimal_value(qty)));
        }
        if rules.stop_loss != current.stop_loss {
            set_or_remove(table, "stop_loss", protection_value(&rules.stop_loss));
        }
        if rules.take_profit != current.take_profit {
            set_or_remove(table, "take_profit", protection_value(&rules.take_profit));
        }
        self.refresh()
    }

    fn links_mut(&mut self) -> Result<&mut toml_edit::ArrayOfTables, DocError> {
        self.document
            .get_mut("links")
            .and_then(Item::as_array_of_tables_mut)
            .ok_or_else(|| DocError::Shape("links is not a list of [[links]] tables".into()))
    }

    fn refresh(&mut self) -> Result<(), DocError> {
        self.map = read_map(&self.document)?;
        self.text = self.document.to_string();
        Ok(())
    }
}

fn set_or_remove(table: &mut Table, key: &str, value: Option<Value>) {
    match value {
        Some(value) => {
            table.insert(key, Item::Value(value));
        }
        None => {
            table.remove(key);
        }
    }
}

/// Integers as TOML integers (`1`), anything else as a decimal string (`"0.5"`): both read
/// exactly, and a string never goes through binary floating point.
fn decimal_value(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(text),
    }
}

fn string_array(items: &[String]) -> Value {
    Value::Array(items.iter().map(String::as_str).collect::<Array>())
}

fn sizing_value(sizing: &Sizing) -> Value {
    let mut table = InlineTable::new();
    table.insert("mode", Value::from(sizing.mode.name()));
    let value = sizing.value.trim();
    if !value.is_empty() {
        table.insert(sizing.mode.parameter().0, decimal_value(value));
    }
    Value::InlineTable(table)
}

fn symbol_map_value(entries: &[MapEntry]) -> Value {
    let mut table = InlineTable::new();
    for entry in entries {
        let ratio = entry.ratio.trim();
        let target = if ratio.is_empty() {
            Value::from(entry.to.trim())
        } else {
            let mut mapped = InlineTable::new();
            mapped.insert("symbol", Value::from(entry.to.trim()));
            mapped.insert("ratio", decimal_value(ratio));
            Value::InlineTable(mapped)
        };
        table.insert(entry.from.trim(), target);
    }
    Value::InlineTable(table)
}

fn protection_value(protection: &Protection) -> Option<Value> {
    match protection {
        Protection::Copy => None,
        Protection::None => Some(Value::from("none")),
        Protection::Distance(distance) => {
            let mut table = InlineTable::new();
            table.insert("distance", Value::from(distance.trim()));
            Some(Value::InlineTable(table))
        }
    }
}

/// The text of a decimal written as a string or a TOML number, exactly as written.
fn decimal_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.value().clone()),
        Value::Integer(n) => Some(n.value().to_string()),
        Value::Float(f) => Some(f.display_repr().trim().to_owned()),
        _ => None,
    }
}

fn strings(item: Option<&Item>, key: &str, unreadable: &mut Vec<String>) -> Vec<String> {
    let Some(item) = item else { return Vec::new() };
    match item.as_array() {
        Some(array) => array
            .iter()
            .filter_map(|v| match v.as_str() {
                Some(s) => Some(s.to_owned()),
                None => {
                    unreadable.push(format!("{key}: {} is not a symbol name", v.to_string().trim()));
                    None
                }
            })
            .collect(),
        None => {
            unreadable.push(format!("{key} must be a list of symbols"));
            Vec::new()
        }
    }
}

fn read_map(document: &DocumentMut) -> Result<CopyMap, DocError> {
    let mut map = CopyMap::default();
    if let Some(instruments) = document.get("instruments").and_then(Item::as_table_like) {
        for (symbol, spec) in instruments.iter() {
            let kind = spec.get("kind").and_then(Item::as_str).unwrap_or("forex");
            map.instruments.insert(symbol.to_owned(), kind.to_owned());
        }
    }
    for (section, kind) in [("sources", NodeKind::Source), ("accounts", NodeKind::Account)] {
        let Some(item) = document.get(section) else { continue };
        let tables = item
            .as_array_of_tables()
            .ok_or_else(|| DocError::Shape(format!("{section} is not a list of [[{section}]] tables")))?;
        for (index, table) in tables.iter().enumerate() {
            let name = table
                .get("name")
                .and_then(Item::as_str)
                .ok_or_else(|| DocError::Shape(format!("{section}[{index}] has no name")))?;
            let mut ignored = Vec::new();
            let symbols_key = if kind == NodeKind::Source { "symbols" } else { "instruments" };
            let symbols = table.get(symbols_key).map(|item| strings(Some(item), symbols_key, &mut ignored));
            map.nodes.push(Node {
                name: name.to_owned(),
                kind,
                platform: match kind {
                    NodeKind::Source => "source".into(),
                    NodeKind::Account => table.get("platform").and_then(Item::as_str).unwrap_or("?").to_owned(),
                },
                symbols,
                groups: strings(table.get("groups"), "groups", &mut ignored),
            });
        }
    }
    if let Some(item) = document.get("links") {
        let tables = item
            .as_array_of_tables()
            .ok_or_else(|| DocError::Shape("links is not a list of [[links]] tables".into()))?;
        for (index, table) in tables.iter().enumerate() {
            map.links.push(read_link(index, table)?);
        }
    }
    Ok(map)
}

fn read_link(index: usize, table: &Table) -> Result<Link, DocError> {
    let name = |key: &str| {
        table
            .get(key)
            .and_then(Item::as_str)
            .map(str::to_owned)
            .ok_or_else(|| DocError::Shape(format!("links[{index}] has no {key}")))
    };
    let (leader, follower) = (name("leader")?, name("follower")?);
    let mut unreadable = Vec::new();
    let mut flag = |key: &str| match table.get(key) {
        None => false,
        Some(item) => item.as_bool().unwrap_or_else(|| {
            unreadable.push(format!("{key} must be true or false"));
            false
        }),
    };
    let (paused, reverse) = (flag("paused"), flag("reverse"));
    let mut rules = LinkRules { paused, reverse, ..LinkRules::default() };
    if let Some(item) = table.get("sizing") {
        match item.as_table_like() {
            Some(sizing) => match sizing.get("mode").and_then(Item::as_str).and_then(SizingMode::from_name) {
                Some(mode) => {
                    let value = sizing.get(mode.parameter().0).and_then(Item::as_value).and_then(decimal_text);
                    rules.sizing = Sizing { mode, value: value.unwrap_or_default() };
                }
                None => unreadable.push(
                    "sizing.mode is not one of multiplier, fixed, balance_ratio, equity_ratio, risk_percent, notional"
                        .into(),
                ),
            },
            None => unreadable.push("sizing must be a table such as { mode = \"multiplier\", ratio = 0.5 }".into()),
        }
    }
    if let Some(item) = table.get("sides") {
        match item.as_str().and_then(|s| Sides::ALL.into_iter().find(|side| side.name() == s)) {
            Some(sides) => rules.sides = sides,
            None => unreadable.push("sides must be both, long_only or short_only".into()),
        }
    }
    rules.allow = strings(table.get("allow"), "allow", &mut unreadable);
    rules.deny = strings(table.get("deny"), "deny", &mut unreadable);
    if let Some(item) = table.get("symbol_map") {
        match item.as_table_like() {
            Some(entries) => {
                for (from, target) in entries.iter() {
                    let entry = match (target.as_str(), target.as_table_like()) {
                        (Some(to), _) => Some(MapEntry { from: from.into(), to: to.into(), ratio: String::new() }),
                        (None, Some(mapped)) => mapped.get("symbol").and_then(Item::as_str).map(|to| MapEntry {
                            from: from.into(),
                            to: to.into(),
                            ratio: mapped
                                .get("ratio")
                                .and_then(Item::as_value)
                                .and_then(decimal_text)
                                .unwrap_or_default(),
                        }),
                        _ => None,
                    };
                    match entry {
                        Some(entry) => rules.symbol_map.push(entry),
                        None => unreadable.push(format!("symbol_map.{from} must be a symbol or {{ symbol, ratio }}")),
                    }
                }
            }
            None => unreadable.push("symbol_map must be a table such as { NQ = \"MNQ\" }".into()),
        }
    }
    if let Some(item) = table.get("max_qty") {
        match item.as_value().and_then(decimal_text) {
            Some(qty) => rules.max_qty = qty,
            None => unreadable.push("max_qty must be a quantity".into()),
        }
    }
    for (key, slot) in [("stop_loss", &mut rules.stop_loss), ("take_profit", &mut rules.take_profit)] {
        let Some(item) = table.get(key) else { continue };
        *slot = match (item.as_str(), item.as_table_like()) {
            (Some("copy"), _) => Protection::Copy,
            (Some("none"), _) => Protection::None,
            (None, Some(t)) => match t.get("distance").and_then(Item::as_value).and_then(decimal_text) {
                Some(distance) => Protection::Distance(distance),
                None => {
                    unreadable.push(format!("{key} must be \"copy\", \"none\" or {{ distance = \"…\" }}"));
                    Protection::Copy
                }
            },
            _ => {
                unreadable.push(format!("{key} must be \"copy\", \"none\" or {{ distance = \"…\" }}"));
                Protection::Copy
            }
        };
    }
    let other_keys =
        table.iter().map(|(key, _)| key.to_owned()).filter(|key| !LINK_KEYS.contains(&key.as_str())).collect();
    Ok(Link { leader, follower, rules, other_keys, unreadable })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SMALL: &str = r#"# The desk's map.
[instruments.ES]
kind = "future"

[instruments.MES]
kind = "future"

[instruments.XAUUSD]
kind = "cfd"

[[sources]]
name = "algo"
symbols = ["ES"]

[[accounts]]
name = "lead"
platform = "sim"
instruments = ["ES", "XAUUSD"]

[[accounts]]
name = "f1"
platform = "sim"
groups = ["desk"]

[[links]]
leader = "lead"
follower = "f1"   # half size
sizing = { mode = "multiplier", ratio = 0.5 }
reconcile = "alert"
"#;

    #[test]
    fn the_map_reads_nodes_links_and_rules_as_written() {
        let doc = MapDoc::parse(SMALL).unwrap();
        let map = doc.map();
        assert_eq!(map.instruments.get("XAUUSD").map(String::as_str), Some("cfd"));
        let names: Vec<_> = map.nodes.iter().map(|n| (n.name.as_str(), n.kind)).collect();
        assert_eq!(names, [("algo", NodeKind::Source), ("lead", NodeKind::Account), ("f1", NodeKind::Account)]);
        let link = &map.links[0];
        assert_eq!(link.title(), "lead -> f1");
        assert_eq!(link.rules.sizing, Sizing { mode: SizingMode::Multiplier, value: "0.5".into() });
        assert_eq!(link.rules.sizing.label(), "×0.5");
        assert_eq!(link.other_keys, ["reconcile"]);
        assert!(link.unreadable.is_empty());
        assert_eq!(doc.text(), SMALL, "reading changes nothing");
    }

    #[test]
    fn edits_change_only_what_they_name_and_keep_comments() {
        let mut doc = MapDoc::parse(SMALL).unwrap();
        let index = doc.add_link("algo", "f1").unwrap();
        assert_eq!(index, 1);
        let mut rules = doc.map().links[1].rules.clone();
        rules.sizing = Sizing { mode: SizingMode::Fixed, value: "2".into() };
        rules.deny = vec!["XAUUSD".into()];
        rules.symbol_map = vec![MapEntry { from: "ES".into(), to: "MES".into(), ratio: "10".into() }];
        rules.stop_loss = Protection::Distance("2.5".into());
        doc.set_rules(1, &rules).unwrap();
        let text = doc.text();
        assert!(text.starts_with("# The desk's map."), "{text}");
        assert!(text.contains("follower = \"f1\"   # half size"), "{text}");
        assert!(text.contains("sizing = { mode = \"fixed\", qty = 2 }"), "{text}");
        assert!(text.contains("symbol_map = { ES = { symbol = \"MES\", ratio = 10 } }"), "{text}");
        assert!(text.contains("stop_loss = { distance = \"2.5\" }"), "{text}");
        // What was written reads back as the same rules.
        let back = MapDoc::parse(text).unwrap();
        assert_eq!(back.map().links[1].rules, rules);
        // Back to the defaults: the keys go away.
        doc.set_rules(1, &LinkRules::default()).unwrap();
        let link_text = doc.text().split("[[links]]").nth(2).unwrap().to_owned();
        assert_eq!(link_text.trim(), "leader = \"algo\"\nfollower = \"f1\"");
        let removed = doc.remove_link(0).unwrap();
        assert_eq!(removed.title(), "lead -> f1");
        assert_eq!(doc.map().links.len(), 1);
        assert!(!doc.text().contains("half size"));
    }

    #[test]
    fn impossible_links_are_refused_naming_why() {
        let mut doc = MapDoc::parse(SMALL).unwrap();
        let refused = |doc: &mut MapDoc, leader: &str, follower: &str| doc.add_link(leader, follower).unwrap_err();
        assert!(refused(&mut doc, "f1", "f1").to_string().contains("cannot copy itself"));
        assert!(refused(&mut doc, "lead", "algo").to_string().contains("sources lead"));
        assert!(refused(&mut doc, "lead", "f1").to_string().contains("already linked"));
        assert!(refused(&mut doc, "ghost", "f1").to_string().contains("\"ghost\""));
        assert!(refused(&mut doc, "lead", "ghost").to_string().contains("\"ghost\""));
        assert_eq!(doc.text(), SMALL);
    }

    #[test]
    fn values_that_do_not_read_are_named() {
        let text = SMALL.replace("mode = \"multiplier\", ratio = 0.5", "mode = \"triple\"")
            + "sides = \"up\"\nstop_loss = 3\nallow = [1]\n";
        let doc = MapDoc::parse(&text).unwrap();
        let unreadable = &doc.map().links[0].unreadable;
        assert_eq!(unreadable.len(), 4, "{unreadable:?}");
        assert!(unreadable[0].starts_with("sizing.mode"), "{unreadable:?}");
        assert!(unreadable.iter().any(|u| u.starts_with("sides")), "{unreadable:?}");
        assert!(unreadable.iter().any(|u| u.starts_with("allow: 1")), "{unreadable:?}");
        assert!(matches!(MapDoc::parse("[[links]\n"), Err(DocError::Syntax(_))));
        assert!(
            MapDoc::parse("[[links]]\nleader = \"a\"\n").unwrap_err().to_string().contains("links[0] has no follower")
        );
    }
}
