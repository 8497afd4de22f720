//! What the edited configuration changes against the one the engine runs: a summary a trader
//! reads (links added, removed, changed and which rules; other sections) and the line diff.

use std::collections::BTreeMap;

use crate::doc::{CopyMap, Link};

/// One change, as the summary lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A link that the engine does not have.
    LinkAdded(String),
    /// A link the engine has that the edit drops.
    LinkRemoved(String),
    /// A link whose rules differ, with the keys that do.
    LinkChanged {
        /// `leader -> follower`.
        title: String,
        /// The rules that differ (`sizing`, `paused` …).
        keys: Vec<String>,
    },
    /// A top-level section other than the links differs (`risk`, `accounts` …).
    Section(String),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LinkAdded(title) => write!(f, "link added: {title}"),
            Self::LinkRemoved(title) => write!(f, "link removed: {title}"),
            Self::LinkChanged { title, keys } => write!(f, "link changed: {title} ({})", keys.join(", ")),
            Self::Section(name) => match name.as_str() {
                "risk" | "accounts" => write!(
                    f,
                    "[{name}] changed (risk limits and account groups apply live; anything else needs a restart)"
                ),
                _ => write!(f, "[{name}] changed (needs a restart: the engine will refuse it live)"),
            },
        }
    }
}

/// The changes from `running` to `edited`, links first in the edited file's order.
pub fn changes(running: &CopyMap, running_text: &str, edited: &CopyMap, edited_text: &str) -> Vec<Change> {
    let by_pair = |map: &CopyMap| -> BTreeMap<(String, String), Link> {
        map.links.iter().map(|l| ((l.leader.clone(), l.follower.clone()), l.clone())).collect()
    };
    let before = by_pair(running);
    let mut out = Vec::new();
    for link in &edited.links {
        match before.get(&(link.leader.clone(), link.follower.clone())) {
            None => out.push(Change::LinkAdded(link.title())),
            Some(old) => {
                let keys = changed_rules(old, link);
                if !keys.is_empty() {
                    out.push(Change::LinkChanged { title: link.title(), keys });
                }
            }
        }
    }
    let after = by_pair(edited);
    for link in &running.links {
        if !after.contains_key(&(link.leader.clone(), link.follower.clone())) {
            out.push(Change::LinkRemoved(link.title()));
        }
    }
    let sections = |text: &str| -> BTreeMap<String, toml::Value> {
        text.parse::<toml::Table>().map(|t| t.into_iter().filter(|(k, _)| k != "links").collect()).unwrap_or_default()
    };
    let (old_sections, new_sections) = (sections(running_text), sections(edited_text));
    let names: std::collections::BTreeSet<&String> = old_sections.keys().chain(new_sections.keys()).collect();
    for name in names {
        if old_sections.get(name) != new_sections.get(name) {
            out.push(Change::Section(name.clone()));
        }
    }
    out
}

fn changed_rules(old: &Link, new: &Link) -> Vec<String> {
    let (a, b) = (&old.rules, &new.rules);
    let mut keys = Vec::new();
    let mut differs = |key: &str, changed: bool| {
        if changed {
            keys.push(key.to_owned());
        }
    };
    differs("paused", a.paused != b.paused);
    differs("sizing", a.sizing != b.sizing);
    differs("reverse", a.reverse != b.reverse);
    differs("sides", a.sides != b.sides);
    differs("allow", a.allow != b.allow);
    differs("deny", a.deny != b.deny);
    differs("symbol_map", a.symbol_map != b.symbol_map);
    differs("max_qty", a.max_qty != b.max_qty);
    differs("stop_loss", a.stop_loss != b.stop_loss);
    differs("take_profit", a.take_profit != b.take_profit);
    differs("other keys", old.other_keys != new.other_keys);
    keys
}

/// One line of the line diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// In both.
    Same,
    /// Only in the edited text.
    Added,
    /// Only in the running text.
    Removed,
}

/// The edit script from `old` to `new`, line by line (longest common subsequence, after the
/// common head and tail are set aside, so a config-sized edit costs little).
pub fn line_diff<'a>(old: &'a str, new: &'a str) -> Vec<(LineKind, &'a str)> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..].iter().rev().zip(b[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (mid_a, mid_b) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out: Vec<(LineKind, &str)> = a[..head].iter().map(|l| (LineKind::Same, *l)).collect();
    // lengths[i][j]: the LCS of mid_a[i..] and mid_b[j..].
    let width = mid_b.len() + 1;
    let mut lengths = vec![0u32; (mid_a.len() + 1) * width];
    for i in (0..mid_a.len()).rev() {
        for j in (0..mid_b.len()).rev() {
            lengths[i * width + j] = if mid_a[i] == mid_b[j] {
                lengths[(i + 1) * width + j + 1] + 1
            } else {
                lengths[(i + 1) * width + j].max(lengths[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < mid_a.len() || j < mid_b.len() {
        if i < mid_a.len() && j < mid_b.len() && mid_a[i] == mid_b[j] {
            out.push((LineKind::Same, mid_a[i]));
            i += 1;
            j += 1;
        } else if i < mid_a.len() && (j == mid_b.len() || lengths[(i + 1) * width + j] >= lengths[i * width + j + 1]) {
            // Removed lines before the added ones that replace them.
            out.push((LineKind::Removed, mid_a[i]));
            i += 1;
        } else {
            out.push((LineKind::Added, mid_b[j]));
            j += 1;
        }
    }
    out.extend(a[a.len() - tail..].iter().map(|l| (LineKind::Same, *l)));
    out
}

/// The diff as unified-diff-like hunks with `context` lines around each change
/// (`+` added, `-` removed, ` ` kept); empty when nothing differs.
pub fn hunks(old: &str, new: &str, context: usize) -> Vec<String> {
    let lines = line_diff(old, new);
    let changed: Vec<usize> =
        lines.iter().enumerate().filter(|(_, (k, _))| *k != LineKind::Same).map(|(i, _)| i).collect();
    let mut out = Vec::new();
    let mut shown_to = 0;
    for &index in &changed {
        let from = index.saturating_sub(context).max(shown_to);
        if from > shown_to && shown_to > 0 {
            out.push("…".to_owned());
        }
        let to = (index + context + 1).min(lines.len());
        // `from` is at least where the last hunk stopped, and `to` past `index`, so `from <= to`.
        for (kind, text) in &lines[from..to] {
            let mark = match kind {
                LineKind::Same => ' ',
                LineKind::Added => '+',
                LineKind::Removed => '-',
            };
            out.push(format!("{mark} {text}"));
        }
        shown_to = shown_to.max(to);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{LinkRules, MapDoc, Sizing, SizingMode};

    const RUNNING: &str = r#"[[accounts]]
name = "lead"
platform = "sim"

[[accounts]]
name = "f1"
platform = "sim"

[[accounts]]
name = "f2"
platform = "sim"

[risk.standard]
daily_loss_limit = 2000

[[links]]
leader = "lead"
follower = "f1"
"#;

    #[test]
    fn the_summary_names_each_link_and_rule_that_changes() {
        let running = MapDoc::parse(RUNNING).unwrap();
        let mut edited = running.clone();
        assert_eq!(changes(running.map(), running.text(), edited.map(), edited.text()), []);
        edited.add_link("lead", "f2").unwrap();
        let rules = LinkRules {
            paused: true,
            sizing: Sizing { mode: SizingMode::Fixed, value: "1".into() },
            ..LinkRules::default()
        };
        edited.set_rules(0, &rules).unwrap();
        let text = edited.text().replace("daily_loss_limit = 2000", "daily_loss_limit = 1500");
        let edited = MapDoc::parse(&text).unwrap();
        let summary: Vec<String> = changes(running.map(), running.text(), edited.map(), edited.text())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            summary,
            [
                "link changed: lead -> f1 (paused, sizing)",
                "link added: lead -> f2",
                "[risk] changed (risk limits and account groups apply live; anything else needs a restart)"
            ]
        );
        let mut dropped = running.clone();
        dropped.remove_link(0).unwrap();
        assert_eq!(
            changes(running.map(), running.text(), dropped.map(), dropped.text()),
            [Change::LinkRemoved("lead -> f1".into())]
        );
    }

    #[test]
    fn the_line_diff_marks_only_what_changed() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\n";
        let lines = line_diff(old, new);
        let changed: Vec<_> = lines.iter().filter(|(k, _)| *k != LineKind::Same).collect();
        assert_eq!(changed, [&(LineKind::Removed, "d"), &(LineKind::Added, "D"), &(LineKind::Added, "i")]);
        assert_eq!(hunks(old, new, 1), ["  c", "- d", "+ D", "  e", "…", "  h", "+ i"]);
        assert!(hunks(old, old, 3).is_empty());
    }
}
