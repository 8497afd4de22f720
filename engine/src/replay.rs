//! `mirror-engine replay`: rebuild every account's state from the journal alone and print
//! it, for audits; optionally check that the journal reproduces the latest snapshots byte for
//! byte, and print the log itself.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use crate::journal::{Entry, Journal, JournalSettings};
use crate::runtime::{Verification, replay_journal};

/// Options of `mirror-engine replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The configuration whose `[storage]` names the journal.
    #[arg(long, short, value_name = "FILE", conflicts_with = "journal")]
    pub config: Option<PathBuf>,
    /// The journal directory itself (`<storage.dir>/journal`).
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Only this account.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Rebuild from the earliest kept snapshot and check that the inputs lead exactly to the
    /// latest one (exit status 1 if not).
    #[arg(long)]
    pub verify: bool,
    /// Also print every entry of the log, one JSON object per line.
    #[arg(long)]
    pub log: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
#[allow(clippy::print_stdout)]
pub fn run(args: &ReplayArgs) -> ExitCode {
    let dir = match (&args.journal, &args.config) {
        (Some(dir), _) => dir.clone(),
        (None, Some(config)) => match crate::config::load(config) {
            Ok(resolved) => match resolved.journal {
                Some(settings) => settings.dir,
                None => {
                    eprintln!("{}: the journal is turned off ([storage] journal = false)", config.display());
                    return ExitCode::from(2);
                }
            },
            Err(errors) => {
                eprintln!("{errors}");
                return ExitCode::from(2);
            }
        },
        (None, None) => {
            eprintln!("name the journal: --config <file> or --journal <dir>");
            return ExitCode::from(2);
        }
    };
    if !dir.join("conf").exists() && !dir.join("db").exists() {
        eprintln!("{}: no journal here", dir.display());
        return ExitCode::from(2);
    }
    match replay(&dir, args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // The reader went away (`| head`): not an error.
        Err(error)
            if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns whether every verification (if asked) matched.
#[allow(clippy::print_stdout)]
fn replay(dir: &std::path::Path, args: &ReplayArgs) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let (journal, recovery) = Journal::open(JournalSettings { write_ahead: false, ..JournalSettings::in_dir(dir) })
        .with_context(|| format!("opening {} (is mirror-engine running on it?)", dir.display()))?;
    let summary = recovery.summary.clone();
    if args.log {
        let mut from = journal.first_position();
        loop {
            let entries = journal.read(from, 1_024)?;
            let Some((last, _)) = entries.last() else { break };
            from = last + 1;
            for (seq, entry) in entries {
                writeln!(out, "{}", entry_json(&journal, seq, &entry)?)?;
            }
        }
    }
    let (actors, stats) = replay_journal(&journal, recovery, args.verify)?;
    journal.close();
    let selected: Vec<_> =
        actors.iter().filter(|(actor, _)| args.account.as_deref().is_none_or(|name| &**actor.name() == name)).collect();
    if let Some(name) = &args.account
        && selected.is_empty()
    {
        anyhow::bail!("the journal has no account named {name}");
    }
    let all_match = selected.iter().all(|(_, v)| !matches!(v, Verification::Differs { .. }));
    if args.json {
        let accounts: Vec<_> = selected
            .iter()
            .map(|(actor, verification)| {
                let summary = actor.summary();
                json!({
                    "id": actor.id(),
                    "name": &**actor.name(),
                    "balance": summary.balance.to_string(),
                    "equity": summary.equity.to_string(),
                    "risk_mode": summary.mode.to_string(),
                    "paused": summary.paused,
                    "connected": summary.connected,
                    "legs": summary.legs,
                    "positions": actor.positions(),
                    "copies": actor.copies(),
                    "live_orders": actor.live_order_ids().iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "verification": verification_text(verification),
                })
            })
            .collect();
        let document = json!({
            "journal": {
                "dir": dir.display().to_string(),
                "first": summary.first_seq,
                "durable_end": summary.durable_end,
                "entries": summary.entries,
                "dropped_after_gap": summary.dropped_after_gap,
                "snapshots": summary.snapshots,
                "corrupt_snapshots": summary.corrupt_snapshots,
                "inputs_replayed": stats.inputs,
                "inputs_skipped": stats.skipped,
            },
            "accounts": accounts,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        return Ok(all_match);
    }
    writeln!(
        out,
        "journal {}: positions {}–{} ({} entries), {} dropped after a gap; {} accounts with snapshots ({} corrupt)",
        dir.display(),
        summary.first_seq,
        summary.durable_end,
        summary.entries,
        summary.dropped_after_gap,
        summary.snapshots,
        summary.corrupt_snapshots
    )?;
    writeln!(
        out,
        "replayed {} inputs ({} accounts from a snapshot, {} inputs skipped, {} holes)",
        stats.inputs, stats.from_snapshot, stats.skipped, stats.holes
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<16} {:>12} {:>12} {:>9} {:>5} {:>5}  {:<11} replay check",
        "account", "balance", "equity", "positions", "live", "legs", "risk"
    )?;
    for (actor, verification) in &selected {
        let summary = actor.summary();
        writeln!(
            out,
            "{:<16} {:>12} {:>12} {:>9} {:>5} {:>5}  {:<11} {}",
            actor.name(),
            summary.balance.to_string(),
            summary.equity.to_string(),
            summary.positions,
            summary.live_orders,
            summary.legs,
            format!("{}{}", summary.mode, if summary.paused { ",paused" } else { "" }),
            verification_text(verification)
        )?;
        for position in actor.positions() {
            writeln!(
                out,
                "    position {:<10} {:<10} {:<4} {:>10} @ {}",
                position.id.to_string(),
                position.symbol.to_string(),
                position.side.to_string(),
                position.qty.to_string(),
                position.open_price
            )?;
        }
        for order in actor.live_order_ids() {
            writeln!(out, "    live order {order}")?;
        }
    }
    if args.verify {
        let (matched, differ) = selected.iter().fold((0, 0), |(m, d), (_, v)| match v {
            Verification::Matches { .. } => (m + 1, d),
            Verification::Differs { .. } => (m, d + 1),
            Verification::NothingToCompare => (m, d),
        });
        writeln!(out)?;
        if differ == 0 {
            writeln!(
                out,
                "✓ verify: {matched} accounts rebuilt from their earliest snapshot reproduce the latest one exactly"
            )?;
        } else {
            writeln!(out, "✗ verify: {differ} accounts do not reproduce their latest snapshot")?;
        }
    }
    Ok(all_match)
}

fn verification_text(verification: &Verification) -> String {
    match verification {
        Verification::NothingToCompare => "—".into(),
        Verification::Matches { input_seq } => format!("✓ reproduces input {input_seq}"),
        Verification::Differs { input_seq, replayed_seq } => {
            format!("✗ differs at input {input_seq} (replayed {replayed_seq})")
        }
    }
}

fn entry_json(journal: &Journal, seq: u64, entry: &Entry) -> anyhow::Result<serde_json::Value> {
    Ok(match entry {
        Entry::Signal(mark) => json!({
            "seq": seq,
            "signal": journal.signal(mark.id)?,
            "id": mark.id,
            "parts": mark.parts,
        }),
        Entry::Shard(shard) => json!({
            "seq": seq,
            "shard": shard.shard,
            "deliveries": shard.deliveries.as_ref().map(|d| json!({
                "signal": d.signal,
                "followers": d.followers.len(),
            })),
            "inputs": shard.inputs,
            "emitted": shard.emitted.iter().map(|e| journal.signal(e.id).ok().flatten()).collect::<Vec<_>>(),
            "audits": shard.audits,
        }),
        Entry::Snapshot { account, input_seq } => {
            json!({ "seq": seq, "snapshot": { "account": account, "input_seq": input_seq } })
        }
        Entry::Admin(admin) => json!({ "seq": seq, "admin": admin }),
    })
}
