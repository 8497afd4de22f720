//! The REST API under `/api/v1`: what the engine holds (accounts, positions, orders, fills,
//! signals and what became of them on every follower, links, sources, risk limits, the
//! journal) and what an operator does (the manual trade ticket, signals as a source, pause,
//! resume, flatten, risk reset). Every route needs a bearer token with a role: viewer to read,
//! trader to send orders, admin for controls and the journal. Bodies and answers are JSON;
//! prices, quantities and money are decimal strings; refusals are problem documents.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use mirror_model::{AccountId, Origin, SignalId};
use mirror_wire::proto::Snapshot;
use serde_json::{Value, json};

use super::Role;
use super::catalog::{CatalogAccount, account_json, link_json, source_json};
use super::limits::Route;
use super::problem::Problem;
use super::{State, json as render, submit_problem, ticket};
use crate::account::Control;
use crate::runtime::ControlScope;

/// Rows a list answers at most (`limit` may ask for fewer).
pub(crate) const LIST_LIMIT_MAX: usize = 1_000;
/// Journal entries one query reads at most.
pub(crate) const JOURNAL_LIMIT_MAX: usize = 500;

/// The API's routes.
pub(super) fn routes(config: &mut web::ServiceConfig) {
    use super::resource;
    config
        .service(resource("/api/v1/openapi.json", web::get().to(super::openapi::document)))
        .service(resource("/api/v1/accounts", web::get().to(accounts)))
        .service(resource("/api/v1/accounts/{account}", web::get().to(account)))
        .service(
            web::resource("/api/v1/accounts/{account}/{control}")
                .route(web::post().to(account_control))
                .route(web::put().to(account_setting))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(resource("/api/v1/positions", web::get().to(positions)))
        .service(
            web::resource("/api/v1/orders")
                .route(web::get().to(orders))
                .route(web::post().to(ticket::place))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(resource("/api/v1/fills", web::get().to(fills)))
        .service(resource("/api/v1/signals", web::get().to(signals)))
        .service(resource("/api/v1/signals/{signal}", web::get().to(signal)))
        .service(resource("/api/v1/sources", web::get().to(sources)))
        .service(resource("/api/v1/sources/{source}/signals", web::post().to(ticket::source_signal)))
        .service(
            web::resource("/api/v1/links")
                .route(web::get().to(links))
                .route(web::post().to(super::config_edit::link_add))
                .default_service(web::to(super::method_not_allowed)),
        )
        .configure(super::config_edit::routes)
        .service(resource("/api/v1/links/{link}/{control}", web::post().to(link_control)))
        .service(resource("/api/v1/risk", web::get().to(risk)))
        .service(resource("/api/v1/latency", web::get().to(latency)))
        .service(resource("/api/v1/journal", web::get().to(journal)))
        .service(
            web::resource("/api/v1/config")
                .route(web::get().to(config_read))
                .route(web::put().to(config_apply))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(resource("/api/v1/stream", web::get().to(super::stream::stream)))
        .service(resource("/api/v1/pause", web::post().to(global_control)))
        .service(resource("/api/v1/resume", web::post().to(global_control)))
        .service(resource("/api/v1/flatten", web::post().to(global_control)));
}

/// Query parameters, every one named and checked: an unknown one is refused (a typo such as
/// `acount=3` must not silently list everything).
pub(crate) struct Query {
    pairs: HashMap<String, String>,
}

impl Query {
    pub(crate) fn read(request: &HttpRequest, known: &[&str]) -> Result<Self, Problem> {
        let pairs = web::Query::<HashMap<String, String>>::from_query(request.query_string())
            .map_err(|e| Problem::malformed(format!("query string: {e}")))?
            .into_inner();
        if let Some(unknown) = pairs.keys().find(|k| !known.contains(&k.as_str())) {
            let expected = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "unknown-parameter",
                "Unknown query parameter",
                format!("`{unknown}` is not a parameter of this route; expected {expected}"),
            ));
        }
        Ok(Self { pairs })
    }

    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.pairs.get(name).map(String::as_str)
    }

    pub(crate) fn number(&self, name: &str) -> Result<Option<u64>, Problem> {
        self.text(name)
            .map(|text| {
                text.parse::<u64>()
                    .map_err(|_| Problem::bad_parameter(format!("{name}: expected a whole number, got `{text}`")))
            })
            .transpose()
    }

    pub(crate) fn limit(&self, default: usize, max: usize) -> Result<usize, Problem> {
        match self.number("limit")? {
            None => Ok(default),
            Some(0) => Err(Problem::bad_parameter("limit: at least 1")),
            Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(max)),
        }
    }
}

impl State {
    /// Accounts, sources and links in force.
    pub(crate) fn catalog(&self) -> Arc<super::Catalog> {
        self.catalog.load_full()
    }

    /// The account a path or query names (id or name), or 404 naming it.
    pub(crate) fn find_account(&self, key: &str) -> Result<CatalogAccount, Problem> {
        self.catalog()
            .account(key)
            .cloned()
            .ok_or_else(|| Problem::not_found(format!("no account `{key}` (by id or name)")))
    }

    /// The live state; absent only without `[http.auth]` (a request never gets this far then).
    pub(crate) fn live(&self) -> Result<&super::live::Live, Problem> {
        self.live.as_ref().ok_or_else(|| Problem::unauthorized("no [http.auth] configured"))
    }

    /// The state now, or 503 when the hub does not answer.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, Problem> {
        self.live()?.snapshot().await.ok_or_else(|| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopped",
                "State unavailable",
                "the state hub did not answer",
            )
        })
    }

    /// An account filter from `?account=`.
    fn account_filter(&self, query: &Query) -> Result<Option<u32>, Problem> {
        query.text("account").map(|key| self.find_account(key).map(|a| a.id.0)).transpose()
    }
}

fn ok(value: Value) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

async fn accounts(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    let query = Query::read(&request, &["group"])?;
    let snapshot = state.snapshot().await?;
    let group = query.text("group");
    let rows: Vec<Value> = state
        .catalog()
        .accounts
        .iter()
        .filter(|a| group.is_none_or(|g| a.groups.iter().any(|x| x == g)))
        .map(|a| account_row(a, &snapshot))
        .collect();
    Ok(ok(json!({ "accounts": rows })))
}

fn account_row(account: &CatalogAccount, snapshot: &Snapshot) -> Value {
    let mut row = account_json(account);
    let live = snapshot.accounts.iter().find(|s| s.id == account.id.0);
    row["state"] = live.map_or(Value::Null, render::account);
    row["copy"] = snapshot.copy.iter().find(|c| c.account == account.id.0).map_or(Value::Null, render::copy);
    row
}

async fn account(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    Query::read(&request, &[])?;
    let account = state.find_account(request.match_info().get("account").unwrap_or_default())?;
    let snapshot = state.snapshot().await?;
    let id = account.id.0;
    let mut row = account_row(&account, &snapshot);
    row["risk"] = serde_json::to_value(account.risk).unwrap_or(Value::Null);
    row["positions"] = snapshot.positions.iter().filter(|p| p.account == id).map(render::position).collect();
    row["orders"] = snapshot.orders.iter().filter(|o| o.account == id).map(render::order).collect();
    row["links_in"] = state
        .catalog()
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| l.follower == account.id)
        .map(|(i, l)| link_json(i, l))
        .collect();
    Ok(ok(row))
}

async fn positions(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    let query = Query::read(&request, &["account", "symbol"])?;
    let account = state.account_filter(&query)?;
    let symbol = query.text("symbol");
    let snapshot = state.snapshot().await?;
    let rows: Vec<Value> = snapshot
        .positions
        .iter()
        .filter(|p| account.is_none_or(|a| p.account == a) && symbol.is_none_or(|s| p.symbol == s))
        .map(render::position)
        .collect();
    Ok(ok(json!({ "positions": rows })))
}

async fn orders(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    let query = Query::read(&request, &["account", "signal", "status", "limit"])?;
    let account = state.account_filter(&query)?;
    let signal = query.number("signal")?;
    let status = query.text("status");
    if let Some(status) = status
        && !["live", "finished"].contains(&status)
        && !ORDER_STATUSES.contains(&status)
    {
        return Err(Problem::bad_parameter(format!(
            "status: expected live, finished or one of {}, got `{status}`",
            ORDER_STATUSES.join(", ")
        )));
    }
    let limit = query.limit(LIST_LIMIT_MAX, LIST_LIMIT_MAX)?;
    let snapshot = state.snapshot().await?;
    let rows: Vec<Value> = snapshot
        .orders
        .iter()
        .filter(|o| account.is_none_or(|a| o.account == a) && signal.is_none_or(|s| o.signal == s))
        .map(render::order)
        .filter(|o| match status {
            None => true,
            Some("live") => !FINISHED.contains(&o["status"].as_str().unwrap_or_default()),
            Some("finished") => FINISHED.contains(&o["status"].as_str().unwrap_or_default()),
            Some(status) => o["status"] == status,
        })
        .take(limit)
        .collect();
    Ok(ok(json!({ "orders": rows, "note": "live orders and the most recent finished ones" })))
}

const ORDER_STATUSES: [&str; 9] =
    ["submitted", "accepted", "partly_filled", "filled", "rejected", "cancelled", "expired", "unknown", "not_sent"];
const FINISHED: [&str; 5] = ["filled", "rejected", "cancelled", "expired", "not_sent"];

async fn fills(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    let query = Query::read(&request, &["account", "signal", "limit"])?;
    let account = state.account_filter(&query)?;
    let signal = query.number("signal")?;
    let limit = query.limit(LIST_LIMIT_MAX, LIST_LIMIT_MAX)?;
    let snapshot = state.snapshot().await?;
    let rows: Vec<Value> = snapshot
        .fills
        .iter()
        .rev()
        .filter(|f| account.is_none_or(|a| f.account == a) && signal.is_none_or(|s| f.signal == s))
        .take(limit)
        .map(render::fill)
        .collect();
    Ok(ok(json!({ "fills": rows, "note": "most recent first" })))
}

async fn signals(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    let query = Query::read(&request, &["limit"])?;
    let limit = query.limit(50, LIST_LIMIT_MAX)?;
    let latest = state.live()?.board().latest(limit);
    let rows: Vec<Value> = latest
        .iter()
        .map(|(id, copies)| {
            let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
            for status in copies.by_account.values() {
                *counts.entry(render::copy_state(status.state)).or_default() += 1;
            }
            json!({ "signal": id, "followers": copies.by_account.len(), "by_state": counts })
        })
        .collect();
    Ok(ok(
        json!({ "signals": rows, "note": "newest first; copy status per follower is kept for the latest 10000 signals" }),
    ))
}

async fn signal(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    Query::read(&request, &[])?;
    let text = request.match_info().get("signal").unwrap_or_default();
    let id: u64 =
        text.parse().map_err(|_| Problem::not_found(format!("`{text}` is not a signal id (a whole number)")))?;
    // A journal read is storage I/O: off the server's worker thread, as `/journal` reads it.
    let stored = match state.engine.journal().cloned() {
        Some(journal) => tokio::task::spawn_blocking(move || journal.signal(SignalId(id)))
            .await
            .map_err(|e| Problem::internal(e.to_string()))?
            .map_err(|e| Problem::internal(format!("journal: {e}")))?,
        None => None,
    };
    let copies = state.live()?.board().get(id);
    if stored.is_none() && copies.is_none() {
        return Err(Problem::not_found(format!(
            "signal {id}: not in the journal and no copy status kept (unknown, compacted, or older than the latest {})",
            super::live::SIGNALS_KEPT
        )));
    }
    let followers: Vec<Value> = copies
        .iter()
        .flat_map(|c| c.by_account.values())
        .map(|status| {
            let mut row = render::copy(status);
            row["account_name"] =
                json!(state.catalog().accounts.iter().find(|a| a.id.0 == status.account).map(|a| a.name.as_str()));
            row
        })
        .collect();
    let signal = stored.map(|signal| {
        json!({
            "origin": state.catalog().origin_name(signal.origin),
            "created_unix_ms": signal.created_unix_ms,
            "action": serde_json::to_value(signal.action).unwrap_or(Value::Null),
            "note": signal.note,
        })
    });
    Ok(ok(json!({ "signal": id, "journal": signal, "followers": followers })))
}

async fn sources(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    Query::read(&request, &[])?;
    let rows: Vec<Value> = state
        .catalog()
        .sources
        .iter()
        .map(|source| {
            let mut row = source_json(source);
            row["followers"] = state
                .engine
                .followers(Origin::Source(source.id))
                .iter()
                .map(|id| state.catalog().origin_name(Origin::Account(*id)))
                .collect();
            row
        })
        .collect();
    Ok(ok(json!({ "sources": rows })))
}

async fn links(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    let query = Query::read(&request, &["follower", "leader"])?;
    let follower = state.account_filter_named(&query, "follower")?;
    let leader = query.text("leader");
    let rows: Vec<Value> = state
        .catalog()
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| follower.is_none_or(|f| l.follower == f) && leader.is_none_or(|name| l.leader_name == name))
        .map(|(i, l)| link_json(i, l))
        .collect();
    let mut response = HttpResponse::Ok();
    if let Some(etag) = super::config_edit::version_header(&state).await {
        response.insert_header(etag);
    }
    Ok(response.json(json!({ "links": rows })))
}

impl State {
    fn account_filter_named(&self, query: &Query, name: &str) -> Result<Option<AccountId>, Problem> {
        query.text(name).map(|key| self.find_account(key).map(|a| a.id)).transpose()
    }
}

async fn risk(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    Query::read(&request, &[])?;
    let snapshot = state.snapshot().await?;
    let accounts: Vec<Value> = state
        .catalog()
        .accounts
        .iter()
        .map(|a| {
            let live = snapshot.accounts.iter().find(|s| s.id == a.id.0);
            json!({
                "account": a.id.0,
                "name": a.name,
                "profile": a.risk_profile,
                "limits": serde_json::to_value(a.risk).unwrap_or(Value::Null),
                "mode": live.map(|s| s.mode.as_str()),
                "paused": live.map(|s| s.paused),
            })
        })
        .collect();
    let profiles = serde_json::to_value(&state.catalog().risk_profiles).unwrap_or(Value::Null);
    let mut response = HttpResponse::Ok();
    if let Some(etag) = super::config_edit::version_header(&state).await {
        response.insert_header(etag);
    }
    Ok(response.json(json!({ "profiles": profiles, "accounts": accounts })))
}

async fn latency(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    Query::read(&request, &[])?;
    let feed = state.engine.audit_feed();
    Ok(ok(render::latency(&crate::gateway::state::latency_stats(&state.engine, feed.as_ref()))))
}

async fn journal(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Admin).await?;
    let query = Query::read(&request, &["from", "limit"])?;
    let Some(journal) = state.engine.journal() else {
        return Err(Problem::not_found("the journal is off ([storage] journal = false)"));
    };
    let first = journal.first_position();
    let from = query.number("from")?.unwrap_or(first).max(first);
    let limit = query.limit(100, JOURNAL_LIMIT_MAX)?;
    let journal = journal.clone();
    let entries = tokio::task::spawn_blocking(move || journal.read(from, limit))
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| Problem::internal(format!("journal: {e}")))?;
    let next = entries.last().map_or(from, |(seq, _)| seq + 1);
    let rows: Vec<Value> = entries
        .iter()
        .map(|(seq, entry)| json!({ "seq": seq, "entry": serde_json::to_value(entry).unwrap_or(Value::Null) }))
        .collect();
    Ok(ok(
        json!({ "first": first, "durable": state.engine.journal().map(|j| j.durable()), "next": next, "entries": rows }),
    ))
}

/// `POST /api/v1/accounts/{account}/{pause|resume|flatten|reset-risk}`.
async fn account_control(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    let principal = state.authorize(&request, Route::Api, Role::Admin).await?;
    Query::read(&request, &[])?;
    let account = state.find_account(request.match_info().get("account").unwrap_or_default())?;
    let (id, name) = (account.id, account.name.clone());
    let control = request.match_info().get("control").unwrap_or_default().to_owned();
    let scope = ControlScope::Account(id);
    let who = format!("api:{}", principal.subject);
    let signal = match control.as_str() {
        "pause" => state.control(&who, scope, Control::Pause).await.map(|()| None),
        "resume" => state.control(&who, scope, Control::Resume).await.map(|()| None),
        "reset-risk" => state.control(&who, scope, Control::ResetRisk).await.map(|()| None),
        "flatten" => state.flatten(&who, scope).await.map(Some),
        other => {
            return Err(Problem::not_found(format!(
                "no control `{other}` for an account; expected pause, resume, flatten or reset-risk"
            )));
        }
    }?;
    tracing::info!(who, account = %name, control, "API control");
    Ok(HttpResponse::Accepted().json(json!({ "account": name, "control": control, "signal": signal.map(|s| s.0) })))
}

/// `PUT /api/v1/accounts/{account}/{setting}`: `risk` (its risk profile).
async fn account_setting(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    match request.match_info().get("control").unwrap_or_default() {
        "risk" => super::config_edit::account_risk(request, payload, state).await,
        other => {
            state.admit(&request, Route::Other)?;
            Err(Problem::not_found(format!("no setting `{other}` for an account; expected risk")))
        }
    }
}

/// `POST /api/v1/{pause|resume|flatten}`: every account.
async fn global_control(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    let control = request.path().rsplit('/').next().unwrap_or_default().to_owned();
    let principal = state.authorize(&request, Route::Api, Role::Admin).await?;
    Query::read(&request, &[])?;
    let who = format!("api:{}", principal.subject);
    let signal = match control.as_str() {
        "pause" => state.control(&who, ControlScope::All, Control::PauseAll).await.map(|()| None),
        "resume" => state.control(&who, ControlScope::All, Control::ResumeAll).await.map(|()| None),
        _ => state.flatten(&who, ControlScope::All).await.map(Some),
    }?;
    tracing::warn!(who, control, "API control on every account");
    Ok(HttpResponse::Accepted().json(json!({ "scope": "all", "control": control, "signal": signal.map(|s| s.0) })))
}

/// `POST /api/v1/links/{link}/{pause|resume}`.
async fn link_control(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    let principal = state.authorize(&request, Route::Api, Role::Admin).await?;
    Query::read(&request, &[])?;
    let text = request.match_info().get("link").unwrap_or_default();
    let index: usize = text.parse().map_err(|_| Problem::not_found(format!("`{text}` is not a link id")))?;
    let catalog = state.catalog();
    let link = catalog.links.get(index).ok_or_else(|| {
        Problem::not_found(format!("no link {index}; there are {} (GET /api/v1/links)", catalog.links.len()))
    })?;
    let id = crate::LinkId(u32::try_from(index).unwrap_or(u32::MAX));
    let control = match request.match_info().get("control").unwrap_or_default() {
        "pause" => Control::PauseLink(id),
        "resume" => Control::ResumeLink(id),
        other => return Err(Problem::not_found(format!("no control `{other}` for a link; expected pause or resume"))),
    };
    let who = format!("api:{}", principal.subject);
    state.control(&who, ControlScope::Account(link.follower), control).await?;
    Ok(HttpResponse::Accepted()
        .json(json!({ "link": link_json(index, link), "paused": matches!(control, Control::PauseLink(_)) })))
}

impl State {
    /// Sends a control, recording who gave it.
    pub(crate) async fn control(&self, who: &str, scope: ControlScope, control: Control) -> Result<(), Problem> {
        let engine = self.engine.clone();
        let who = who.to_owned();
        tokio::task::spawn_blocking(move || engine.control_by(&who, scope, control))
            .await
            .map_err(|e| Problem::internal(e.to_string()))?
            .map_err(|e| submit_problem(&e))
    }

    async fn flatten(&self, who: &str, scope: ControlScope) -> Result<SignalId, Problem> {
        let id = self.engine.next_signal_id();
        let control = Control::Flatten { id, reason: crate::account::FlattenReason::Operator, freeze: false };
        self.control(who, scope, control).await.map(|()| id)
    }
}

/// `GET /api/v1/config`: the configuration in force, as TOML (secrets are references only).
async fn config_read(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Admin).await?;
    Query::read(&request, &[])?;
    let service = state.config_service()?;
    let text = tokio::task::spawn_blocking(move || service.read())
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(Problem::internal)?;
    Ok(HttpResponse::Ok().content_type("application/toml; charset=utf-8").body(text))
}

/// `PUT /api/v1/config`: a whole new configuration (TOML), applied live when only links, risk
/// limits and account groups change; refused whole otherwise, naming why.
async fn config_apply(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    let principal = state.authorize(&request, Route::Api, Role::Admin).await?;
    Query::read(&request, &[])?;
    let service = state.config_service()?;
    let body = state.body(payload).await?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| Problem::malformed("the configuration is not UTF-8"))?;
    let who = format!("api:{}", principal.subject);
    let applied = tokio::task::spawn_blocking(move || service.apply(&text, &who))
        .await
        .map_err(|e| Problem::internal(e.to_string()))?;
    match applied {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({ "status": "applied" }))),
        Err(reason) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "config-not-applied",
            "Configuration not applied",
            reason,
        )),
    }
}
