//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API, served by the
//! engine. It is written out here rather than derived, and a test requests every path it lists
//! from the real server, so a route that is documented but missing fails the build's tests.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::State;
use super::limits::Route;
use super::problem::Problem;

/// One documented operation.
pub(crate) struct Operation {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    /// `None`: no token needed.
    pub(crate) role: Option<&'static str>,
    pub(crate) summary: &'static str,
    /// Query parameters: name, description.
    pub(crate) query: &'static [(&'static str, &'static str)],
    /// Request body schema (a `#/components/schemas` name).
    pub(crate) body: Option<&'static str>,
    /// Success status and its schema name (`None`: free-form JSON).
    pub(crate) ok: (u16, Option<&'static str>),
}

const ACCOUNT_Q: (&str, &str) = ("account", "An account id or name.");
const SIGNAL_Q: (&str, &str) = ("signal", "A signal id.");
const LIMIT_Q: (&str, &str) = ("limit", "Rows at most.");

/// Every operation of the API, in the order the document lists them.
pub(crate) const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/api/v1/health",
        role: None,
        summary: "Liveness: uptime, accounts connected, signals.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/metrics",
        role: None,
        summary: "Prometheus counters and fan-out latency (text format).",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/openapi.json",
        role: None,
        summary: "This document.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/accounts",
        role: Some("viewer"),
        summary: "Every account: platform, groups, live state, latest copy status.",
        query: &[("group", "Only accounts of this group.")],
        body: None,
        ok: (200, Some("AccountList")),
    },
    Operation {
        method: "get",
        path: "/api/v1/accounts/{account}",
        role: Some("viewer"),
        summary: "One account with its positions, orders, inbound links and risk limits.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "post",
        path: "/api/v1/accounts/{account}/{control}",
        role: Some("admin"),
        summary: "pause, resume, flatten or reset-risk one account.",
        query: &[],
        body: None,
        ok: (202, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/positions",
        role: Some("viewer"),
        summary: "Open positions.",
        query: &[ACCOUNT_Q, ("symbol", "Only this symbol.")],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/orders",
        role: Some("viewer"),
        summary: "Live orders and the most recent finished ones.",
        query: &[ACCOUNT_Q, SIGNAL_Q, ("status", "live, finished, or one order status."), LIMIT_Q],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "post",
        path: "/api/v1/orders",
        role: Some("trader"),
        summary: "The manual trade ticket: to every follower of a source, or to named accounts or a group.",
        query: &[],
        body: Some("Ticket"),
        ok: (202, Some("Accepted")),
    },
    Operation {
        method: "get",
        path: "/api/v1/fills",
        role: Some("viewer"),
        summary: "Recent executions, newest first.",
        query: &[ACCOUNT_Q, SIGNAL_Q, LIMIT_Q],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/signals",
        role: Some("viewer"),
        summary: "Recent signals and how many followers copied, skipped or rejected each.",
        query: &[LIMIT_Q],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/signals/{signal}",
        role: Some("viewer"),
        summary: "One signal from the journal and its status on every follower, with reasons.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/sources",
        role: Some("viewer"),
        summary: "External sources, their symbols and followers.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "post",
        path: "/api/v1/sources/{source}/signals",
        role: Some("trader"),
        summary: "A signal as this source (the signed webhook's JSON, without signature).",
        query: &[],
        body: Some("SourceSignal"),
        ok: (202, Some("Accepted")),
    },
    Operation {
        method: "get",
        path: "/api/v1/links",
        role: Some("viewer"),
        summary: "The copy map: every link and its rules.",
        query: &[("follower", "Only links into this account."), ("leader", "Only links from this leader (name).")],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "post",
        path: "/api/v1/links",
        role: Some("admin"),
        summary: "Add a link (its [[links]] keys in JSON), applied live and written to the configuration file.",
        query: &[],
        body: Some("Link"),
        ok: (201, Some("ConfigChanged")),
    },
    Operation {
        method: "get",
        path: "/api/v1/links/{link}",
        role: Some("viewer"),
        summary: "One link: its rules as the engine reads them and its [[links]] entry as written (`config`).",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "patch",
        path: "/api/v1/links/{link}",
        role: Some("admin"),
        summary: "Change a link's keys (each given replaces that key whole; null removes it), applied live.",
        query: &[],
        body: Some("LinkChange"),
        ok: (200, Some("ConfigChanged")),
    },
    Operation {
        method: "delete",
        path: "/api/v1/links/{link}",
        role: Some("admin"),
        summary: "Remove a link, live; what the follower holds from it stays open.",
        query: &[],
        body: None,
        ok: (200, Some("ConfigChanged")),
    },
    Operation {
        method: "post",
        path: "/api/v1/links/{link}/{control}",
        role: Some("admin"),
        summary: "pause or resume one link.",
        query: &[],
        body: None,
        ok: (202, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/risk",
        role: Some("viewer"),
        summary: "Risk profiles and each account's limits and mode.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "put",
        path: "/api/v1/risk/profiles/{profile}",
        role: Some("admin"),
        summary: "Set a risk profile's limits whole (a new name adds one), applied live.",
        query: &[],
        body: Some("RiskLimits"),
        ok: (200, Some("ConfigChanged")),
    },
    Operation {
        method: "delete",
        path: "/api/v1/risk/profiles/{profile}",
        role: Some("admin"),
        summary: "Remove a risk profile no account uses (409 while one does).",
        query: &[],
        body: None,
        ok: (200, Some("ConfigChanged")),
    },
    Operation {
        method: "put",
        path: "/api/v1/accounts/{account}/risk",
        role: Some("admin"),
        summary: "Give the account a risk profile ({\"profile\": name}) or none (null), applied live.",
        query: &[],
        body: Some("AccountRisk"),
        ok: (200, Some("ConfigChanged")),
    },
    Operation {
        method: "get",
        path: "/api/v1/latency",
        role: Some("viewer"),
        summary: "Fan-out latency percentiles and counters.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/journal",
        role: Some("admin"),
        summary: "Durable journal entries from a position.",
        query: &[("from", "First position."), LIMIT_Q],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/config",
        role: Some("admin"),
        summary: "The configuration in force, as TOML (secrets as references).",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "put",
        path: "/api/v1/config",
        role: Some("admin"),
        summary: "Apply a whole configuration live (links, risk limits, account groups); refused whole otherwise.",
        query: &[],
        body: None,
        ok: (200, None),
    },
    Operation {
        method: "get",
        path: "/api/v1/stream",
        role: Some("viewer"),
        summary: "Live events over a WebSocket: a snapshot, then numbered events.",
        query: &[
            ("topics", "Comma-separated: accounts,positions,orders,fills,copies,logs,latency,quotes,signals."),
            ACCOUNT_Q,
            SIGNAL_Q,
            ("level", "Logs at least this severe: debug, info, warn."),
            ("access_token", "The bearer token, for clients that cannot set headers."),
        ],
        body: None,
        ok: (101, None),
    },
    Operation {
        method: "post",
        path: "/api/v1/pause",
        role: Some("admin"),
        summary: "Stop copying new opens to every account.",
        query: &[],
        body: None,
        ok: (202, None),
    },
    Operation {
        method: "post",
        path: "/api/v1/resume",
        role: Some("admin"),
        summary: "Copy again on every account.",
        query: &[],
        body: None,
        ok: (202, None),
    },
    Operation {
        method: "post",
        path: "/api/v1/flatten",
        role: Some("admin"),
        summary: "Close every position of every account.",
        query: &[],
        body: None,
        ok: (202, None),
    },
];

fn decimal() -> Value {
    json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": "An exact decimal." })
}

fn schemas() -> Value {
    json!({
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem document; detail names the field or check that failed.",
            "properties": {
                "type": { "type": "string" }, "title": { "type": "string" },
                "status": { "type": "integer" }, "detail": { "type": "string" }
            },
            "required": ["type", "title", "status", "detail"]
        },
        "AccountState": {
            "type": "object",
            "properties": {
                "id": { "type": "integer" }, "name": { "type": "string" },
                "balance": decimal(), "equity": decimal(),
                "positions": { "type": "integer" }, "live_orders": { "type": "integer" },
                "mode": { "type": "string", "enum": ["normal", "close_only", "frozen"] },
                "paused": { "type": "boolean" }, "connected": { "type": "boolean" }
            }
        },
        "AccountList": {
            "type": "object",
            "properties": { "accounts": { "type": "array", "items": { "type": "object", "properties": {
                "id": { "type": "integer" }, "name": { "type": "string" }, "platform": { "type": "string" },
                "venue": { "type": "string" }, "groups": { "type": "array", "items": { "type": "string" } },
                "state": { "$ref": "#/components/schemas/AccountState" }
            } } } }
        },
        "Ticket": {
            "type": "object",
            "additionalProperties": false,
            "required": ["symbol", "side", "qty"],
            "properties": {
                "source": { "type": "string", "default": "manual" },
                "symbol": { "type": "string" },
                "side": { "type": "string", "enum": ["buy", "sell"] },
                "qty": decimal(),
                "order_type": { "type": "string", "enum": ["market", "limit", "stop"], "default": "market" },
                "price": decimal(), "reference_price": decimal(), "stop_loss": decimal(), "take_profit": decimal(),
                "position": { "type": "integer", "minimum": 0 },
                "note": { "type": "string", "maxLength": 256 },
                "accounts": { "type": "array", "items": { "type": ["string", "integer"] } },
                "group": { "type": "string" },
                "risk_percent": { "type": ["string", "number"], "description": "Percent of each follower's equity at risk between entry and stop_loss; overrides the link's sizing." }
            }
        },
        "SourceSignal": {
            "type": "object",
            "additionalProperties": false,
            "required": ["v", "action"],
            "properties": {
                "v": { "const": 1 },
                "action": { "type": "string", "enum": ["open", "close", "close_all"] },
                "symbol": { "type": "string" }, "side": { "type": "string", "enum": ["buy", "sell"] },
                "qty": decimal(), "order_type": { "type": "string", "enum": ["market", "limit", "stop"] },
                "price": decimal(), "reference_price": decimal(), "stop_loss": decimal(), "take_profit": decimal(),
                "position": { "type": "integer", "minimum": 0 }, "note": { "type": "string" }
            }
        },
        "Link": {
            "type": "object",
            "description": "A [[links]] entry of the configuration, in JSON: leader and follower names, then any rule \
                            (sizing, rounding, below_minimum, max_qty, reverse, symbol_map, allow, deny, sides, \
                            stop_loss, take_profit, copy_pending, max_signal_age_ms, paused, …) as in the file.",
            "required": ["leader", "follower"],
            "properties": {
                "leader": { "type": "string" }, "follower": { "type": "string" },
                "paused": { "type": "boolean" },
                "sizing": { "type": "object", "properties": { "mode": { "type": "string", "enum": ["multiplier", "fixed", "balance_ratio", "equity_ratio", "risk_percent", "notional"] } } },
                "max_qty": { "type": ["string", "number"] }, "reverse": { "type": "boolean" },
                "allow": { "type": "array", "items": { "type": "string" } },
                "deny": { "type": "array", "items": { "type": "string" } },
                "sides": { "type": "string", "enum": ["both", "long_only", "short_only"] },
                "symbol_map": { "type": "object" }
            }
        },
        "LinkChange": {
            "type": "object",
            "description": "Keys of a [[links]] entry to replace (null: remove, back to the default); not leader or follower.",
            "not": { "anyOf": [{ "required": ["leader"] }, { "required": ["follower"] }] }
        },
        "RiskLimits": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "max_order_qty": { "type": ["string", "number"] }, "max_open_positions": { "type": "integer" },
                "max_symbol_exposure": { "type": ["string", "number"] }, "daily_loss_limit": { "type": ["string", "number"] },
                "max_daily_drawdown_pct": { "type": ["string", "number"] },
                "on_breach": { "type": "string", "enum": ["close_only", "freeze"] },
                "flatten_on_breach": { "type": "boolean" },
                "flatten_group_at_drawdown_pct": { "type": ["string", "number"] }
            }
        },
        "AccountRisk": {
            "type": "object",
            "additionalProperties": false,
            "required": ["profile"],
            "properties": { "profile": { "type": ["string", "null"] } }
        },
        "ConfigChanged": {
            "type": "object",
            "description": "The change is applied and written to the configuration file; version is its new ETag.",
            "properties": { "status": { "const": "applied" }, "version": { "type": "string" } }
        },
        "Accepted": {
            "type": "object",
            "properties": {
                "signal": { "type": "integer" }, "position": { "type": ["integer", "null"] },
                "source": { "type": "string" }, "targets": { "type": "array", "items": { "type": "string" } },
                "status": { "const": "accepted" }
            }
        }
    })
}

fn operation(op: &Operation) -> Value {
    let mut parameters: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(op.query.iter().map(|(name, description)| {
        json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })
    }));
    let content = |schema: Option<&str>| match schema {
        Some(name) => json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } } }),
        None => json!({ "application/json": {} }),
    };
    let problem = json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } });
    let mut responses = Map::new();
    responses.insert(op.ok.0.to_string(), json!({ "description": "Success.", "content": content(op.ok.1) }));
    for (status, why) in [
        ("400", "Malformed request or query."),
        ("401", "No, expired or invalid bearer token."),
        ("403", "The token's role is not enough."),
        ("404", "Unknown resource."),
        ("422", "A field is invalid; detail names it."),
        ("429", "Rate limited; see Retry-After."),
    ] {
        if op.role.is_none() && matches!(status, "401" | "403") {
            continue;
        }
        responses.insert(status.into(), json!({ "description": why, "content": problem.clone() }));
    }
    if edits_config(op) {
        parameters.push(json!({
            "name": "If-Match", "in": "header", "required": false,
            "description": "The ETag of a GET: refused with 412 if the configuration changed since.",
            "schema": { "type": "string" }
        }));
        for (status, why) in [
            ("409", "The change conflicts with the configuration (a profile still in use)."),
            ("412", "The configuration changed since the If-Match version."),
        ] {
            responses.insert(status.into(), json!({ "description": why, "content": problem.clone() }));
        }
    }
    let mut value = json!({
        "summary": op.summary,
        "parameters": parameters,
        "responses": responses,
    });
    match op.role {
        Some(role) => {
            value["security"] = json!([{ "bearer": [] }]);
            value["x-mirror-role"] = json!(role);
        }
        None => value["security"] = json!([]),
    }
    if let Some(body) = op.body {
        value["requestBody"] = json!({ "required": true, "content": content(Some(body)) });
    }
    value
}

/// Whether an operation changes the configuration file (and so takes `If-Match`).
fn edits_config(op: &Operation) -> bool {
    op.method == "delete" || matches!(op.body, Some("Link" | "LinkChange" | "RiskLimits" | "AccountRisk"))
}

/// The document.
pub(crate) fn build() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let entry = paths.entry(op.path).or_insert_with(|| json!({}));
        entry[op.method] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Mirror engine API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accounts, positions, orders, fills, signals, the copy map and controls of a running \
                            Mirror engine. Prices, quantities and money are exact decimal strings. Roles: viewer \
                            reads, trader sends orders, admin controls."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "From POST /oauth/token (client credentials) or the configured OIDC provider."
                }
            }
        }
    })
}

pub(super) async fn document(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Other)?;
    Ok(HttpResponse::Ok().json(&state.openapi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => out.push(target),
                        _ => refs(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_path_parameter_is_declared() {
        let document = build();
        let mut targets = Vec::new();
        refs(&document, &mut targets);
        assert!(targets.len() > 20, "{}", targets.len());
        for target in targets {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(document.pointer(pointer).is_some(), "{target} does not resolve");
        }
        for (path, operations) in document["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let declared: Vec<&str> = operation["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                let templated: Vec<&str> =
                    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
                assert_eq!(declared, templated, "{method} {path}");
            }
        }
    }

    #[test]
    fn every_operation_is_in_the_document_with_its_parameters() {
        let document = build();
        for op in OPERATIONS {
            let entry = &document["paths"][op.path][op.method];
            assert!(entry.is_object(), "{} {} missing", op.method, op.path);
            let names: Vec<&str> =
                entry["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
            for (name, _) in op.query {
                assert!(names.contains(name), "{} {}: {name}", op.method, op.path);
            }
            if let Some(body) = op.body {
                assert!(document["components"]["schemas"][body].is_object(), "schema {body}");
            }
        }
    }
}
