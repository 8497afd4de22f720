//! Configuration errors name the file, line, field and reason.

use std::path::Path;

use super::*;

const BASE: &str = r#"
[engine]
shards = 1

[instruments.EURUSD]
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 100
price = "1.08500"

[instruments.ES]
kind = "future"
contract_size = 50
tick_size = "0.25"
lot_step = 1
min_qty = 1
max_qty = 200
price = 5000

[instruments.MES]
kind = "future"
contract_size = 5
tick_size = "0.25"
lot_step = 1
min_qty = 1
max_qty = 2000
price = 5000

[risk.prop]
max_daily_drawdown_pct = 3
on_breach = "freeze"
flatten_on_breach = true

[[accounts]]
name = "leader"
platform = "sim"
mode = "hedging"
balance = 100000

[[accounts]]
name = "follower"
platform = "sim"
balance = 25000
risk = "prop"
symbol_suffix = ".r"
"#;

fn check(extra: &str) -> Result<Resolved, ConfigErrors> {
    load_str(Path::new("config/test.toml"), &format!("{BASE}{extra}"))
}

fn line_of(text: &str, needle: &str) -> usize {
    format!("{BASE}{text}").lines().position(|l| l.contains(needle)).expect("needle present") + 1
}

fn one_error(extra: &str) -> ConfigError {
    let errors = check(extra).expect_err("config must be refused");
    assert_eq!(errors.0.len(), 1, "{errors}");
    errors.0[0].clone()
}

#[test]
fn a_valid_config_resolves_names_and_defaults() {
    let resolved = check(
        r#"
[[links]]
leader = "leader"
follower = "follower"
sizing = { mode = "multiplier", ratio = 0.5 }
symbol_map = { ES = { symbol = "MES.r", ratio = 10 } }
"#,
    )
    .unwrap();
    assert_eq!(resolved.accounts.len(), 2);
    let follower = &resolved.accounts[1];
    assert!(follower.instruments.iter().any(|i| i.spec.symbol.as_str() == "EURUSD.r" && i.feed.as_str() == "EURUSD"));
    assert_eq!(follower.risk.max_daily_drawdown_pct, Some(mirror_model::Ratio::integer(3).unwrap()));
    let link = &resolved.links[0];
    assert_eq!(link.rules.symbols.suffix, ".r", "the follower's suffix is the link's default");
    // EURUSD tick value defaults to tick × contract size = 1.
    assert_eq!(resolved.catalog[&"EURUSD".parse().unwrap()].tick_value, mirror_model::Money::parse("1").unwrap());
    assert_eq!(resolved.catalog[&"ES".parse().unwrap()].tick_value, mirror_model::Money::parse("12.5").unwrap());
}

#[test]
fn syntax_errors_have_a_line() {
    let error = one_error("\n[[links]\nleader = 1\n");
    assert_eq!(error.position.map(|p| p.0), Some(line_of("\n[[links]\nleader = 1\n", "[[links]")));
    assert_eq!(error.file, Path::new("config/test.toml"));
}

#[test]
fn type_errors_name_the_field() {
    let extra = "\n[[links]]\nleader = \"leader\"\nfollower = \"follower\"\nsizing = { mode = \"multiplier\", ratio = \"-1\" }\n";
    let error = one_error(extra);
    assert_eq!(error.field, "links[0].sizing");
    assert_eq!(error.position.unwrap().0, line_of(extra, "sizing ="));
    assert!(error.reason.contains("a ratio cannot be negative"), "{error}");

    let extra = "\n[[links]]\nleader = \"leader\"\nfollower = \"follower\"\nrounding = \"sideways\"\n";
    let error = one_error(extra);
    assert_eq!(error.field, "links[0].rounding");
    assert!(error.reason.contains("unknown variant `sideways`"), "{error}");

    let extra = "\n[[links]]\nleader = \"leader\"\nfollower = \"follower\"\nmultiplier = 2\n";
    let error = one_error(extra);
    assert!(error.reason.contains("unknown field `multiplier`"), "{error}");
    assert_eq!(error.position.unwrap().0, line_of(extra, "multiplier = 2"));
}

#[test]
fn semantic_errors_are_all_reported_with_their_lines() {
    let extra = r#"
[[links]]
leader = "leader"
follower = "nobody"

[[links]]
leader = "follower"
follower = "follower"

[[links]]
leader = "leader"
follower = "follower"
sizing = { mode = "risk_percent", percent = 150 }
symbol_map = { ES = "MNQ" }
"#;
    let errors = check(extra).unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
    let follower_line = line_of(extra, "follower = \"nobody\"");
    assert!(
        lines
            .contains(&format!("config/test.toml:{follower_line}:12: links[0].follower: no account is named `nobody`")),
        "{errors}"
    );
    assert!(
        errors.0.iter().any(|e| e.field == "links[1].follower" && e.reason == "an account cannot copy itself"),
        "{errors}"
    );
    assert!(
        errors.0.iter().any(|e| e.field == "links[2].sizing.percent" && e.reason.contains("at most 100")),
        "{errors}"
    );
    assert!(
        errors.0.iter().any(|e| e.field == "links[2].symbol_map.ES" && e.reason.contains("does not trade MNQ")),
        "{errors}"
    );
}

#[test]
fn copy_cycles_are_refused_at_the_closing_link() {
    let extra = r#"
[[accounts]]
name = "third"
platform = "sim"
balance = 1000

[[links]]
leader = "leader"
follower = "follower"

[[links]]
leader = "follower"
follower = "third"

[[links]]
leader = "third"
follower = "leader"
"#;
    let error = one_error(extra);
    assert_eq!(error.field, "links[2]");
    assert_eq!(error.reason, "this link closes a copy cycle: leader → follower → third → leader");
    assert_eq!(error.position.unwrap().0, line_of(extra, "leader = \"third\"") - 1);
}

#[test]
fn bad_accounts_and_instruments_are_located() {
    let error = one_error("\n[[accounts]]\nname = \"x\"\nplatform = \"ctrader\"\nbalance = 1\n");
    assert_eq!(error.field, "accounts[2].platform");
    assert!(error.reason.contains("no connector in this build yet"));

    let error = one_error("\n[[accounts]]\nname = \"leader\"\nplatform = \"sim\"\nbalance = 1\n");
    assert_eq!(error.field, "accounts[2].name");
    assert!(error.reason.starts_with("account `leader` is already defined (line "), "{error}");

    let error = one_error("\n[[accounts]]\nname = \"y\"\nplatform = \"sim\"\nbalance = 1\nrisk = \"nope\"\n");
    assert_eq!(error.field, "accounts[2].risk");
    assert_eq!(error.reason, "no risk profile is named `nope` (known: prop)");

    let error = one_error(
        "\n[instruments.GBPUSD]\ncontract_size = 100000\ntick_size = \"0.00001\"\nlot_step = \"0.01\"\nmin_qty = \"0.015\"\nmax_qty = 10\nprice = \"1.25\"\n",
    );
    assert_eq!(error.field, "instruments.GBPUSD.min_qty");
    assert_eq!(error.reason, "GBPUSD: min_qty 0.015 is not a multiple of lot_step 0.01");

    let error = one_error(
        "\n[[accounts]]\nname = \"z\"\nplatform = \"sim\"\nbalance = 1\n[accounts.autotrade]\nevery_ms = 500\nquantities = [\"0.5\"]\nsymbols = [\"ES\"]\n",
    );
    assert_eq!(error.field, "accounts[2].autotrade.quantities[0]");
    assert!(error.reason.starts_with("0.5 is not a tradable quantity of ES"), "{error}");
}

#[test]
fn nan_and_infinite_numbers_are_refused() {
    let error = one_error("\n[[links]]\nleader = \"leader\"\nfollower = \"follower\"\nmax_qty = nan\n");
    assert_eq!(error.field, "links[0].max_qty");
    assert!(error.reason.contains("expected a finite number"), "{error}");
    let error = one_error("\n[[links]]\nleader = \"leader\"\nfollower = \"follower\"\nmax_qty = inf\n");
    assert!(error.reason.contains("expected a finite number"), "{error}");
}
