//! Configuration errors name the file, line, field and reason.

use std::path::Path;

use super::*;
use crate::config::{CtraderEndpoint, Venue};

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
    let error = one_error("\n[[accounts]]\nname = \"x\"\nplatform = \"dxtrade\"\n");
    assert_eq!(error.field, "accounts[2].platform");
    assert!(error.reason.contains("no connector in this build yet"), "{error}");

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

const PLATFORMS: &str = r#"
[connector]
boot_timeout_ms = 30000

[ctrader.main]
endpoint = "127.0.0.1:5035"
client_id = "env:CT_CLIENT_ID"
client_secret = "secret:ct.client_secret"
access_token = "env:CT_ACCESS_TOKEN"
refresh_token = "env:CT_REFRESH_TOKEN"
ca_file = "data/ctrader-ca.pem"
server_name = "localhost"

[ctrader.spotware]
endpoint = "demo"
client_id = "env:CT2_CLIENT_ID"
client_secret = "env:CT2_CLIENT_SECRET"
access_token = "env:CT2_ACCESS_TOKEN"

[metatrader]
listen = "127.0.0.1:5200"

[[accounts]]
name = "ct-a"
platform = "ctrader"
ctrader = "main"
ctrader_account = 1001

[[accounts]]
name = "ct-b"
platform = "ctrader"
ctrader = "spotware"
ctrader_account = 1001
instruments = ["EURUSD"]

[[accounts]]
name = "mt5-a"
platform = "mt5"
mode = "hedging"
credentials = "env:MT5_A_TOKEN"
login = 51234567

[[accounts]]
name = "mt4-a"
platform = "mt4"
credentials = "secret:mt4-a.token"
"#;

fn check_platforms(extra: &str) -> Result<Resolved, ConfigErrors> {
    check(&format!("{PLATFORMS}{extra}"))
}

/// Every error of `extra` after the platforms base, as `line:col: field: reason` lines.
fn platform_errors(extra: &str) -> Vec<String> {
    let errors = check_platforms(extra).expect_err("config must be refused");
    errors.0.iter().map(|e| e.to_string().trim_start_matches("config/test.toml:").to_owned()).collect()
}

fn platforms_line_of(extra: &str, needle: &str) -> usize {
    line_of(&format!("{PLATFORMS}{extra}"), needle)
}

#[test]
fn platform_sections_and_accounts_resolve() {
    let resolved =
        check_platforms("\n[[links]]\nleader = \"leader\"\nfollower = \"ct-a\"\nsymbol_map = { ES = \"ES.x\" }\n")
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolved.connector.boot_timeout, std::time::Duration::from_secs(30));
    let names: Vec<&str> = resolved.ctrader.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["main", "spotware"]);
    let main = &resolved.ctrader[0];
    assert_eq!(main.endpoint, CtraderEndpoint::Address { host: "127.0.0.1".into(), port: 5035 });
    assert_eq!(main.access_token, crate::secrets::CredentialRef::Env("CT_ACCESS_TOKEN".into()));
    assert_eq!(main.client_secret, crate::secrets::CredentialRef::Secret("ct.client_secret".into()));
    assert_eq!(main.server_name.as_deref(), Some("localhost"));
    assert_eq!(resolved.ctrader[1].endpoint.to_string(), "demo.ctraderapi.com:5035");
    let bridge = resolved.metatrader.as_ref().unwrap();
    assert_eq!(
        (bridge.listen.to_string().as_str(), bridge.tls.is_none(), bridge.allow_plain),
        ("127.0.0.1:5200", true, true)
    );
    let account = |name: &str| resolved.accounts.iter().find(|a| a.name == name).unwrap();
    assert_eq!(account("ct-a").venue, Venue::Ctrader { session: "main".into(), ctid_trader_account_id: 1001 });
    assert!(!account("ct-a").instruments_listed);
    assert!(account("ct-b").instruments_listed);
    assert_eq!(account("mt5-a").venue, Venue::MetaTrader { login: Some(51234567) });
    assert_eq!(account("mt4-a").credentials, Some(crate::secrets::CredentialRef::Secret("mt4-a.token".into())));
    assert_eq!((account("mt4-a").balance, account("mt4-a").currency.as_str()), (mirror_model::Money::ZERO, ""));
    assert_eq!(account("leader").venue, Venue::Sim);
}

#[test]
fn platform_mistakes_are_all_reported_with_their_lines() {
    let extra = r#"
[ctrader.unused]
endpoint = "somewhere"
client_id = "env:X_ID"
client_secret = "env:X_SECRET"
access_token = "env:X_TOKEN"

[[accounts]]
name = "ct-no-keys"
platform = "ctrader"

[[accounts]]
name = "ct-ghost"
platform = "ctrader"
ctrader = "ghost"
ctrader_account = 7

[[accounts]]
name = "ct-twin"
platform = "ctrader"
ctrader = "main"
ctrader_account = 1001
balance = 5000
credentials = "env:NOT_USED"

[[accounts]]
name = "mt5-no-token"
platform = "mt5"
ctrader_account = 3

[[accounts]]
name = "mt4-shared"
platform = "mt4"
credentials = "env:MT5_A_TOKEN"

[[accounts]]
name = "sim-with-ctid"
platform = "sim"
balance = 1000
ctrader_account = 9
"#;
    let errors = platform_errors(extra);
    let at = |needle: &str| platforms_line_of(extra, needle);
    let expected = [
        format!(
            "{}:12: ctrader.unused.endpoint: must be `demo`, `live` or host:port, got `somewhere`",
            at("endpoint = \"somewhere\"")
        ),
        format!(
            "{}:1: accounts[6]: a cTrader account needs `ctrader = \"<session>\"`, the [ctrader.<session>] \
             connection it \
             trades through (defined: main, spotware, unused)",
            at("name = \"ct-no-keys\"") - 1
        ),
        format!(
            "{}:1: accounts[6]: a cTrader account needs `ctrader_account = <ctidTraderAccountId>` (the id the Open API \
             lists for the access token, not the login)",
            at("name = \"ct-no-keys\"") - 1
        ),
        format!(
            "{}:11: accounts[7].ctrader: no [ctrader.ghost] section (defined: main, spotware, unused)",
            at("ctrader = \"ghost\"")
        ),
        format!(
            "{}:11: accounts[8].balance: `balance` is for simulated accounts: a ctrader account's broker reports \
             its own",
            at("balance = 5000")
        ),
        format!(
            "{}:15: accounts[8].credentials: a cTrader account is authorised by its session's access_token \
             ([ctrader.<session>]); `credentials` is not used",
            at("credentials = \"env:NOT_USED\"")
        ),
        format!(
            "{}:19: accounts[8].ctrader_account: ctidTraderAccountId 1001 on 127.0.0.1:5035 is already account `ct-a`",
            at("name = \"ct-twin\"") + 3
        ),
        format!(
            "{}:19: accounts[9].ctrader_account: `ctrader_account` is for ctrader accounts; this one is mt5",
            at("ctrader_account = 3")
        ),
        format!(
            "{}:1: accounts[9]: an mt5 account needs `credentials = \"secret:<name>\"` or `\"env:<VAR>\"`: its \
             terminal's \
             token (the EA's Token input, at least 16 characters)",
            at("name = \"mt5-no-token\"") - 1
        ),
        format!(
            "{}:15: accounts[10].credentials: account `mt5-a` uses the same token (env:MT5_A_TOKEN); each terminal \
             needs its own",
            at("name = \"mt4-shared\"") + 2
        ),
        format!(
            "{}:19: accounts[11].ctrader_account: `ctrader_account` is for ctrader accounts; this one is sim",
            at("ctrader_account = 9")
        ),
        format!("{}:1: ctrader.unused: no account trades through cTrader session `unused`", at("[ctrader.unused]")),
    ];
    for line in &expected {
        assert!(errors.contains(line), "missing\n  {line}\namong\n  {}", errors.join("\n  "));
    }
    assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
}

#[test]
fn the_bridge_and_timeouts_are_checked() {
    let without_bridge = PLATFORMS.replace("[metatrader]\nlisten = \"127.0.0.1:5200\"\n", "");
    let errors = check(&without_bridge).unwrap_err();
    assert!(
        errors.0.iter().any(|e| e.field == "accounts[4].platform"
            && e.reason.starts_with("mt5 accounts trade through the MetaTrader bridge")),
        "{errors}"
    );

    let open = PLATFORMS.replace("listen = \"127.0.0.1:5200\"", "listen = \"0.0.0.0:5200\"");
    let error = check(&open).unwrap_err().0.remove(0);
    assert_eq!(error.field, "metatrader.listen");
    assert!(error.reason.contains("give tls_cert and tls_key, or allow_plain = true"), "{error}");
    let allowed = open.replace("listen = \"0.0.0.0:5200\"", "listen = \"0.0.0.0:5200\"\nallow_plain = true");
    assert!(check(&allowed).is_ok());
    let half = open.replace("listen = \"0.0.0.0:5200\"", "listen = \"0.0.0.0:5200\"\ntls_cert = \"bridge.pem\"");
    let errors = check(&half).unwrap_err();
    assert!(
        errors.0.iter().any(|e| e.field == "metatrader.tls_cert" && e.reason.starts_with("needs tls_key")),
        "{errors}"
    );
    let tls = open
        .replace("listen = \"0.0.0.0:5200\"", "listen = \"0.0.0.0:5200\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"");
    let bridge = check(&tls).unwrap().metatrader.unwrap();
    assert_eq!((bridge.tls.is_some(), bridge.allow_plain), (true, false));
    let named = PLATFORMS.replace("listen = \"127.0.0.1:5200\"", "listen = \"mirror.example.com:5200\"");
    assert!(check(&named).unwrap_err().0[0].reason.starts_with("must be an IP address and port"));

    let unused = "\n[metatrader]\nlisten = \"127.0.0.1:5200\"\n";
    let error = one_error(unused);
    assert_eq!((error.field.as_str(), error.reason.as_str()), ("metatrader", "no mt4 or mt5 account uses the bridge"));

    let error = one_error("\n[connector]\nboot_timeout_ms = 10\n");
    assert_eq!(error.field, "connector.boot_timeout_ms");
    assert_eq!(error.reason, "must be at least 1000 ms, got 10");
    assert_eq!(check("").unwrap().connector.boot_timeout, std::time::Duration::from_secs(60));
}

#[test]
fn a_credential_written_in_the_clear_is_refused_without_repeating_it() {
    let text = PLATFORMS.replace("access_token = \"env:CT_ACCESS_TOKEN\"", "access_token = \"eyJhbGciOi-very-secret\"");
    let error = check(&text).unwrap_err().0.remove(0);
    assert_eq!(error.field, "ctrader.main.access_token");
    assert_eq!(error.position.unwrap().0, line_of(&text, "access_token = \"eyJ"));
    assert!(error.reason.contains("plain-text credentials are not accepted"), "{error}");
    assert!(!error.to_string().contains("very-secret"), "{error}");

    let error = one_error("\n[[accounts]]\nname = \"x\"\nplatform = \"sim\"\n");
    assert_eq!(
        (error.field.as_str(), error.reason.as_str()),
        ("accounts[2]", "a simulated account needs a starting `balance`")
    );
}

const GATEWAY: &str = r#"
[[sources]]
name = "algo"
symbols = ["ES"]

[gateway]
listen = "127.0.0.1:7443"
cert_dir = "data/gateway"
names = ["localhost", "127.0.0.1"]
connections_max = 8
pair_settle_ms = 2000

[[gateway.tokens]]
name = "bot"
token = "env:BOT_TOKEN"
role = "trader"
source = "algo"

[[gateway.tokens]]
name = "screen"
token = "secret:gateway.screen"
role = "viewer"
optional = true
"#;

#[test]
fn a_gateway_resolves_its_certificate_limits_and_tokens() {
    use crate::gateway::{GatewayLimits, Identity, Role};
    use crate::secrets::CredentialRef;

    assert!(check("").unwrap().gateway.is_none());
    let gateway = check(GATEWAY).unwrap_or_else(|e| panic!("{e}")).gateway.unwrap();
    assert_eq!(gateway.listen.to_string(), "127.0.0.1:7443");
    assert_eq!(
        gateway.identity,
        Identity::Generated { dir: "data/gateway".into(), names: vec!["localhost".into(), "127.0.0.1".into()] }
    );
    let defaults = GatewayLimits::default();
    assert_eq!(gateway.limits.connections_max, 8);
    assert_eq!(gateway.limits.pair_settle, std::time::Duration::from_secs(2));
    assert_eq!(gateway.limits.idle_timeout, defaults.idle_timeout);
    let [bot, screen] = &gateway.tokens[..] else { panic!("{:?}", gateway.tokens) };
    assert_eq!((bot.name.as_str(), bot.role, bot.optional), ("bot", Role::Trader, false));
    assert_eq!(bot.token, CredentialRef::Env("BOT_TOKEN".into()));
    let algo = mirror_model::Origin::Source(mirror_model::SourceId::from_name("algo"));
    assert_eq!(bot.source, Some((algo, "algo".into())));
    assert_eq!((screen.role, screen.source.clone(), screen.optional), (Role::Viewer, None, true));

    let files = GATEWAY.replace(
        "cert_dir = \"data/gateway\"\nnames = [\"localhost\", \"127.0.0.1\"]",
        "cert = \"gw.pem\"\nkey = \"gw.key\"",
    );
    let gateway = check(&files).unwrap_or_else(|e| panic!("{e}")).gateway.unwrap();
    assert_eq!(gateway.identity, Identity::Files { cert: "gw.pem".into(), key: "gw.key".into() });
    let defaulted = GATEWAY.replace("names = [\"localhost\", \"127.0.0.1\"]\n", "");
    let gateway = check(&defaulted).unwrap().gateway.unwrap();
    assert_eq!(gateway.identity, Identity::Generated { dir: "data/gateway".into(), names: vec!["localhost".into()] });
}

#[test]
fn gateway_mistakes_are_all_reported_with_their_lines() {
    let extra = r#"
[[sources]]
name = "algo"

[gateway]
listen = "localhost:7443"
cert_dir = "data/gateway"
cert = "gw.pem"
key = "gw.key"
idle_timeout_ms = 500

[[gateway.tokens]]
name = "bot"
token = "env:BOT_TOKEN"
role = "trader"

[[gateway.tokens]]
name = "bot"
token = "env:BOT_TOKEN"
role = "admin"
source = "nowhere"

[[gateway.tokens]]
name = "screen"
token = "env:SCREEN_TOKEN"
role = "viewer"
source = "algo"

[[gateway.tokens]]
name = "acct"
token = "env:ACCT_TOKEN"
role = "trader"
source = "leader"
"#;
    let errors = check(extra).expect_err("config must be refused");
    let errors: Vec<String> =
        errors.0.iter().map(|e| e.to_string().trim_start_matches("config/test.toml:").to_owned()).collect();
    let at = |needle: &str| line_of(extra, needle);
    let nth = |needle: &str, n: usize| {
        let text = format!("{BASE}{extra}");
        text.lines().enumerate().filter(|(_, l)| l.contains(needle)).nth(n).map(|(i, _)| i + 1).unwrap()
    };
    let expected = [
        format!(
            "{}:10: gateway.listen: must be an IP address and UDP port such as 127.0.0.1:7443, got `localhost:7443`",
            at("listen = ")
        ),
        format!(
            "{}:12: gateway.cert_dir: give either cert_dir (a self-signed certificate generated there) or cert and \
             key, not both",
            at("cert_dir = ")
        ),
        format!(
            "{}:19: gateway.idle_timeout_ms: must be between 10000 and 3600000 ms (clients keep alive every 5 s), got \
             500",
            at("idle_timeout_ms")
        ),
        format!(
            "{}:1: gateway.tokens[0]: a trader token needs `source = \"<name>\"`, the [[sources]] entry its orders \
             are sent as (defined: algo)",
            nth("[[gateway.tokens]]", 0)
        ),
        format!("{}:8: gateway.tokens[1].name: token `bot` is already gateway.tokens[0]", nth("name = \"bot\"", 1)),
        format!(
            "{}:9: gateway.tokens[1].token: token `bot` uses the same reference (env:BOT_TOKEN); each token needs its \
             own value",
            nth("token = \"env:BOT_TOKEN\"", 1)
        ),
        format!(
            "{}:10: gateway.tokens[1].source: no [[sources]] entry is named `nowhere` (defined: algo)",
            at("source = \"nowhere\"")
        ),
        format!(
            "{}:10: gateway.tokens[2].source: a viewer token sends no orders; `source` is not used",
            at("source = \"algo\"")
        ),
        format!(
            "{}:10: gateway.tokens[3].source: `leader` is an account; a token's orders are sent as a source: add a \
             [[sources]] entry and link it to the followers (defined: algo)",
            at("source = \"leader\"")
        ),
    ];
    for line in &expected {
        assert!(errors.contains(line), "missing\n  {line}\namong\n  {}", errors.join("\n  "));
    }
    assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));

    let bare = "\n[gateway]\nlisten = \"127.0.0.1:7443\"\n";
    let errors = check(bare).unwrap_err();
    let reasons: Vec<(&str, &str)> = errors.0.iter().map(|e| (e.field.as_str(), e.reason.as_str())).collect();
    assert_eq!(reasons.len(), 2, "{errors}");
    assert!(reasons[0].1.starts_with("needs a certificate: cert_dir = \"<directory>\""), "{errors}");
    assert!(reasons[1].1.starts_with("needs at least one [[gateway.tokens]] entry"), "{errors}");
    assert!(errors.0.iter().all(|e| e.field == "gateway" && e.position == Some((line_of(bare, "[gateway]"), 1))));

    let half =
        GATEWAY.replace("cert_dir = \"data/gateway\"\nnames = [\"localhost\", \"127.0.0.1\"]", "cert = \"gw.pem\"");
    let error = one_error(&half);
    assert_eq!(
        (error.field.as_str(), error.reason.as_str()),
        ("gateway.cert", "needs key (the certificate's private key, PEM)")
    );
    let named = GATEWAY.replace("\"127.0.0.1\"]", "\"not a name\"]");
    let error = one_error(&named);
    assert_eq!(
        (error.field.as_str(), error.reason.as_str()),
        ("gateway.names[1]", "`not a name` is not a DNS name or an IP address")
    );
}

#[test]
fn a_gateway_token_written_in_the_clear_is_refused_without_repeating_it() {
    let text = GATEWAY.replace("token = \"env:BOT_TOKEN\"", "token = \"hunter2-very-secret-token\"");
    let error = one_error(&text);
    assert_eq!(error.field, "gateway.tokens[0].token");
    assert_eq!(error.position.unwrap().0, line_of(&text, "token = \"hunter2"));
    assert!(error.reason.contains("plain-text credentials are not accepted"), "{error}");
    assert!(!error.to_string().contains("very-secret"), "{error}");
}

const WEBHOOKS: &str = r#"
[[sources]]
name = "channel"
symbols = ["EURUSD"]

[http]
listen = "127.0.0.1:8080"

[[http.webhooks]]
name = "gold-channel"
kind = "telegram"
secret = "env:TG_SECRET"
source = "channel"
chats = [-1001234567890, -1009876543210]
qty = "0.5"

[[http.webhooks]]
name = "fx-room"
kind = "telegram"
secret = "env:TG_ROOM_SECRET"
source = "channel"

[[http.webhooks]]
name = "vps-terminal"
kind = "metatrader_ea"
secret = "env:EA_SECRET"
source = "channel"
allow_ips = ["203.0.113.7"]
"#;

#[test]
fn telegram_and_ea_webhooks_resolve_their_options() {
    use crate::http::WebhookKind;
    use mirror_model::Qty;

    let http = check(WEBHOOKS).unwrap_or_else(|e| panic!("{e}")).http.unwrap();
    let [channel, room, terminal] = &http.webhooks[..] else { panic!("{:?}", http.webhooks) };
    assert_eq!(
        (channel.kind, channel.chats.as_slice()),
        (WebhookKind::Telegram, &[-1001234567890, -1009876543210][..])
    );
    assert_eq!(channel.qty, Some(Qty::parse("0.5").unwrap()));
    assert_eq!((room.chats.is_empty(), room.qty), (true, Some(Qty::parse("1").unwrap())), "any chat, 1 by default");
    assert_eq!((terminal.kind, terminal.chats.is_empty(), terminal.qty), (WebhookKind::MetatraderEa, true, None));
    assert_eq!(terminal.allow_ips.len(), 1);
}

#[test]
fn telegram_options_are_checked_and_refused_where_they_mean_nothing() {
    let extra = WEBHOOKS
        .replace("chats = [-1001234567890, -1009876543210]", "chats = [-1001234567890, 0, -1001234567890]")
        .replace("qty = \"0.5\"", "qty = \"-1\"")
        .replace(
            "source = \"channel\"\n\n[[http.webhooks]]\nname = \"vps-terminal\"",
            "source = \"channel\"\nchats = []\n\n[[http.webhooks]]\nname = \"vps-terminal\"",
        )
        .replace("allow_ips = [\"203.0.113.7\"]", "allow_ips = [\"203.0.113.7\"]\nqty = 7\nchats = [1]");
    let errors = check(&extra).expect_err("config must be refused");
    let errors: Vec<String> =
        errors.0.iter().map(|e| e.to_string().trim_start_matches("config/test.toml:").to_owned()).collect();
    let at = |needle: &str| line_of(&extra, needle);
    let expected = [
        format!("{}:26: http.webhooks[0].chats[1]: 0 is not a Telegram chat id", at("chats = [-100")),
        format!("{}:29: http.webhooks[0].chats[2]: chat -1001234567890 is already chats[0]", at("chats = [-100")),
        format!("{}:7: http.webhooks[0].qty: must be above 0, got -1", at("qty = \"-1\"")),
        format!(
            "{}:9: http.webhooks[1].chats: list at least one chat id (such as -1001234567890), or leave `chats` out \
             to accept every chat the bot is in",
            at("chats = []")
        ),
        format!(
            "{}:7: http.webhooks[2].qty: only telegram webhooks read `qty`; a metatrader_ea webhook's signals carry \
             their own",
            at("qty = 7")
        ),
        format!(
            "{}:9: http.webhooks[2].chats: only telegram webhooks read `chats`; a metatrader_ea webhook's signals \
             carry their own",
            at("chats = [1]")
        ),
    ];
    for line in &expected {
        assert!(errors.contains(line), "missing\n  {line}\namong\n  {}", errors.join("\n  "));
    }
    assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
    let unknown = WEBHOOKS.replace("kind = \"metatrader_ea\"", "kind = \"metatrader\"");
    let error = one_error(&unknown);
    assert_eq!(error.field, "http.webhooks[2].kind");
    assert!(error.reason.contains("telegram") && error.reason.contains("metatrader_ea"), "{error}");
}
