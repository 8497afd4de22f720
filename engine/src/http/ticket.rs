//! Orders from the API: the manual trade ticket (`POST /api/v1/orders`) and signals sent as a
//! source (`POST /api/v1/sources/{source}/signals`).
//!
//! The ticket: `{"source":"manual", "symbol":"ES", "side":"buy", "qty":"2",
//! "order_type":"market"|"limit"|"stop", "price", "reference_price", "stop_loss",
//! "take_profit", "position", "note", "accounts":["alice", 17], "group":"prop-a",
//! "risk_percent":"0.5"}`. With `risk_percent`, each follower's quantity risks that percent of
//! its own equity between the entry and the stop loss (its link's sizing rule is not used;
//! `qty` is still required as the signal's nominal size); a market ticket then needs
//! `reference_price`.
//! Without `accounts` or `group` it is a signal of the source and fans out to every follower
//! of the source, each sized by its link. With them it goes to those followers only (each
//! still sized, symbol-mapped and risk-checked by its own link); a named account that does
//! not copy the source is refused before anything is sent. The answer carries the signal id
//! and the position key a later close names.
//!
//! Source signals take the signed webhook's JSON (`{"v":1,"action":"open"|"close"|"close_all",…}`).

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use actix_web::{HttpRequest, HttpResponse, web};
use mirror_model::{AccountId, Origin, Ratio, SignalAction};
use serde_json::{Map, Value, json};

use super::Role;
use super::catalog::CatalogSource;
use super::limits::Route;
use super::problem::Problem;
use super::{State, fields, signed, submit_problem};
use crate::account::Control;
use crate::runtime::ControlScope;

/// The source a ticket names none of.
pub(crate) const DEFAULT_SOURCE: &str = "manual";
/// Most accounts one ticket names.
const TARGETS_MAX: usize = 1_000;

const TICKET_FIELDS: [&str; 14] = [
    "source",
    "symbol",
    "side",
    "qty",
    "order_type",
    "price",
    "reference_price",
    "stop_loss",
    "take_profit",
    "position",
    "note",
    "accounts",
    "group",
    "risk_percent",
];

impl State {
    fn source_named(&self, name: &str) -> Result<CatalogSource, Problem> {
        let catalog = self.catalog();
        catalog.source(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = catalog.sources.iter().map(|s| s.name.as_str()).collect();
            known.sort_unstable();
            Problem::invalid(format!("source: no source `{name}`; configured sources: {}", known.join(", ")))
        })
    }
}

/// `risk_percent`: percent of each follower's equity at risk, above 0 and at most 100, in
/// steps of 0.01 (a basis point); as basis points.
fn risk_percent(value: &Value) -> Result<NonZeroU32, Problem> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(text) => text.trim().to_owned(),
        other => {
            return Err(Problem::invalid(format!("risk_percent: expected a number, got {}", fields::kind_of(other))));
        }
    };
    let percent = Ratio::parse(&text).map_err(|e| Problem::invalid(format!("risk_percent: {e}")))?;
    if !percent.is_positive() || percent.num() > percent.den().saturating_mul(100) {
        return Err(Problem::invalid(format!("risk_percent: must be above 0 and at most 100, got {text}")));
    }
    let basis_points = percent.num().saturating_mul(100);
    if basis_points % percent.den() != 0 {
        return Err(Problem::invalid(format!("risk_percent: at most two decimal places (0.01 %), got {text}")));
    }
    u32::try_from(basis_points / percent.den())
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| Problem::invalid(format!("risk_percent: must be above 0 and at most 100, got {text}")))
}

/// `POST /api/v1/orders`.
pub(super) async fn place(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    let principal = state.authorize(&request, Route::Api, Role::Trader).await?;
    let body = state.body(payload).await?;
    let map = fields::json_object(&body)?;
    if let Some(unknown) = map.keys().find(|k| !TICKET_FIELDS.contains(&k.as_str())) {
        return Err(Problem::invalid(format!(
            "{unknown}: unknown field; expected one of {}",
            TICKET_FIELDS.join(", ")
        )));
    }
    let source_name = match map.get("source") {
        Some(value) => fields::text("source", value)?,
        None => DEFAULT_SOURCE,
    };
    let source = state.source_named(source_name)?;
    let origin = Origin::Source(source.id);
    let order = signed::open(&map, &source.symbols)?;
    let note = match signed::note(&map)? {
        Some(note) => format!("ticket:{}: {note}", principal.subject),
        None => format!("ticket:{}", principal.subject),
    };
    let targets = targets(&state, &map, origin, source_name)?;
    let risk_percent = map.get("risk_percent").map(risk_percent).transpose()?;
    let action = order.into_action(|| state.engine.next_signal_id().0);
    let SignalAction::Open(mut open) = action else { return Err(Problem::internal("a ticket is an open")) };
    if let Some(percent) = risk_percent {
        if open.stop_loss.is_none() {
            return Err(Problem::invalid("stop_loss: missing; a ticket sized by risk_percent needs its stop"));
        }
        if open.entry().is_none() {
            return Err(Problem::invalid(
                "reference_price: missing; a market ticket sized by risk_percent needs the entry its risk is \
                 measured from (or use a limit or stop order)",
            ));
        }
        open.risk_bp = Some(percent);
    }
    let action = SignalAction::Open(open);
    let position = open.leader.0;
    let Some(targets) = targets else {
        let signal = state.submit_action(origin, source_name, action, note).await?;
        let followers: Vec<String> =
            state.engine.followers(origin).iter().map(|id| state.catalog().origin_name(Origin::Account(*id))).collect();
        return Ok(HttpResponse::Accepted().json(json!({
            "signal": signal.0,
            "position": position,
            "source": source_name,
            "targets": followers,
            "status": "accepted",
        })));
    };
    // Targeted: checked as the signal would be, then sent to each named follower alone.
    let engine = state.engine.clone();
    let check = {
        let note = note.clone();
        move || engine.precheck(origin, action, &note)
    };
    tokio::task::spawn_blocking(check)
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| submit_problem(&e))?;
    let signal = state.engine.next_signal_id();
    let who = format!("api:{}", principal.subject);
    let mut sent = Vec::new();
    for account in &targets {
        let control = Control::CopyOpen { id: signal, origin, open };
        state.control(&who, ControlScope::Account(*account), control).await?;
        sent.push(state.catalog().origin_name(Origin::Account(*account)));
    }
    // Acknowledged once on disk, as a source's signal is (with the journal on).
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.confirm_controls(signal))
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| submit_problem(&e))?;
    tracing::info!(who, %signal, source = source_name, targets = sent.len(), "manual ticket sent to named followers");
    Ok(HttpResponse::Accepted().json(json!({
        "signal": signal.0,
        "position": position,
        "source": source_name,
        "targets": sent,
        "status": "accepted",
    })))
}

/// The followers a ticket names (`accounts`, `group`), each checked to copy the source; `None`
/// when it names none (every follower).
fn targets(
    state: &State,
    map: &Map<String, Value>,
    origin: Origin,
    source: &str,
) -> Result<Option<Vec<AccountId>>, Problem> {
    let followers = state.engine.followers(origin);
    let catalog = state.catalog();
    let mut chosen: BTreeSet<AccountId> = BTreeSet::new();
    let mut named = false;
    if let Some(value) = map.get("accounts") {
        named = true;
        let Value::Array(items) = value else {
            return Err(Problem::invalid(format!(
                "accounts: expected an array of account names or ids, got {}",
                fields::kind_of(value)
            )));
        };
        if items.is_empty() || items.len() > TARGETS_MAX {
            return Err(Problem::invalid(format!("accounts: 1 to {TARGETS_MAX} accounts, got {}", items.len())));
        }
        for (index, item) in items.iter().enumerate() {
            let key = match item {
                Value::String(name) => name.clone(),
                Value::Number(n) if n.as_u64().is_some() => n.to_string(),
                other => {
                    return Err(Problem::invalid(format!(
                        "accounts[{index}]: expected an account name or id, got {}",
                        fields::kind_of(other)
                    )));
                }
            };
            let account = catalog
                .account(&key)
                .ok_or_else(|| Problem::invalid(format!("accounts[{index}]: no account `{key}`")))?;
            if !followers.contains(&account.id) {
                return Err(Problem::invalid(format!(
                    "accounts[{index}]: `{}` does not copy source `{source}` (no link from it)",
                    account.name
                )));
            }
            chosen.insert(account.id);
        }
    }
    if let Some(value) = map.get("group") {
        named = true;
        let group = fields::text("group", value)?;
        let members: Vec<&super::catalog::CatalogAccount> =
            catalog.accounts.iter().filter(|a| a.groups.iter().any(|g| g == group)).collect();
        if members.is_empty() {
            return Err(Problem::invalid(format!("group: no account is in group `{group}`")));
        }
        let copying: Vec<AccountId> = members.iter().map(|a| a.id).filter(|id| followers.contains(id)).collect();
        if copying.is_empty() {
            return Err(Problem::invalid(format!(
                "group: no account of group `{group}` copies source `{source}` (no link from it)"
            )));
        }
        chosen.extend(copying);
    }
    Ok(named.then(|| chosen.into_iter().collect()))
}

/// `POST /api/v1/sources/{source}/signals`: the signed webhook's JSON, sent as the source.
pub(super) async fn source_signal(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    let principal = state.authorize(&request, Route::Api, Role::Trader).await?;
    let name = request.match_info().get("source").unwrap_or_default().to_owned();
    let catalog = state.catalog();
    let source = catalog.source(&name).ok_or_else(|| Problem::not_found(format!("no source `{name}`")))?;
    let (origin, symbols) = (Origin::Source(source.id), source.symbols.clone());
    let body = state.body(payload).await?;
    let (order, note) = signed::parse(&body, &symbols)?;
    let position = match &order {
        super::signal::Order::Open { position, .. } => *position,
        super::signal::Order::Close { position } => Some(*position),
        super::signal::Order::CloseAll { .. } => None,
    };
    let action = order.into_action(|| state.engine.next_signal_id().0);
    let position = position.or(match action {
        SignalAction::Open(open) => Some(open.leader.0),
        _ => None,
    });
    let note = if note.is_empty() {
        format!("api:{}", principal.subject)
    } else {
        format!("api:{}: {note}", principal.subject)
    };
    let signal = state.submit_action(origin, &name, action, note).await?;
    Ok(HttpResponse::Accepted().json(json!({
        "signal": signal.0,
        "position": position,
        "source": name,
        "status": "accepted",
    })))
}
