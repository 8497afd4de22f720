//! Changing the copy map and risk settings over the API, one piece at a time: links added,
//! changed and removed, risk profiles set and removed, an account's profile chosen.
//!
//! Each change is an edit of the configuration file in force (through `toml_edit`, so the
//! file's comments and layout stay), checked and applied as a whole new configuration would be
//! (`PUT /api/v1/config`): refused whole, naming the field, or applied live, written back to
//! the file and recorded in the journal's audit log. Bodies use the configuration's own keys
//! (`[[links]]`, `[risk.<name>]`) in JSON. Every answer carries the configuration's version
//! (`ETag`); a change sent with `If-Match` is refused with 412 when someone else changed the
//! configuration in between, so that a link id read before still means the same link.

use actix_web::http::StatusCode;
use actix_web::http::header::{ETAG, IF_MATCH};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use toml_edit::{DocumentMut, InlineTable, Item, Table};

use super::Role;
use super::api::Query;
use super::catalog::{CatalogLink, link_json};
use super::limits::Route;
use super::problem::Problem;
use super::{State, fields};
use crate::gateway::ConfigService;
use crate::live_config::EditError;

/// Keys a link's change may not touch: they are the link.
const LINK_IDENTITY: [&str; 2] = ["leader", "follower"];

/// The routes.
pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/api/v1/links/{link}")
                .route(web::get().to(link_read))
                .route(web::patch().to(link_change))
                .route(web::delete().to(link_remove))
                .default_service(web::to(super::method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/risk/profiles/{profile}")
                .route(web::put().to(profile_set))
                .route(web::delete().to(profile_remove))
                .default_service(web::to(super::method_not_allowed)),
        );
}

/// A JSON value as a TOML value; `at` names it in errors. TOML has no null.
fn toml_value(value: &Value, at: &str) -> Result<toml_edit::Value, Problem> {
    Ok(match value {
        Value::Null => return Err(Problem::invalid(format!("{at}: null is not a value here"))),
        Value::Bool(flag) => (*flag).into(),
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(integer), _) => integer.into(),
            (None, Some(float)) if float.is_finite() && number.as_u64().is_none() => float.into(),
            _ => return Err(Problem::invalid(format!("{at}: {number} is out of range"))),
        },
        Value::String(text) => text.as_str().into(),
        Value::Array(items) => {
            let mut array = toml_edit::Array::new();
            for (index, item) in items.iter().enumerate() {
                array.push(toml_value(item, &format!("{at}[{index}]"))?);
            }
            array.into()
        }
        Value::Object(map) => {
            let mut table = InlineTable::new();
            for (key, item) in map {
                table.insert(key, toml_value(item, &format!("{at}.{key}"))?);
            }
            table.into()
        }
    })
}

/// A TOML table's keys as JSON (numbers as TOML wrote them, dates as text).
fn json_of(table: &toml::Table) -> Value {
    serde_json::to_value(table).unwrap_or(Value::Null)
}

fn document(text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>().map_err(|e| format!("the configuration in force is not TOML: {e}"))
}

/// The configuration's `[[links]]`, created when it has none.
fn links_of(document: &mut DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, String> {
    let item = document.entry("links").or_insert_with(|| Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    item.as_array_of_tables_mut().ok_or_else(|| {
        "the configuration writes `links` as an inline array; write them as [[links]] tables to change them over the \
         API"
        .to_owned()
    })
}

/// Adds `entry` to the configuration's links, right after the last one in the file (a new
/// table would otherwise go to the end, after `[http]` or `[storage]`).
fn append_link(document: &mut DocumentMut, mut entry: Table) -> Result<(), String> {
    let links = links_of(document)?;
    entry.set_position(links.iter().filter_map(Table::position).max());
    links.push(entry);
    Ok(())
}

/// The link at `index` of the configuration, as its `[[links]]` keys.
fn link_entry(text: &str, index: usize) -> Option<toml::Table> {
    let table = text.parse::<toml::Table>().ok()?;
    table.get("links")?.as_array()?.get(index)?.as_table().cloned()
}

/// `If-Match`: the version a change was made against (`*` or absent: any).
fn expected_version(request: &HttpRequest) -> Result<Option<String>, Problem> {
    let Some(header) = request.headers().get(IF_MATCH) else { return Ok(None) };
    let text = header.to_str().map_err(|_| Problem::malformed("If-Match: not text"))?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Problem::malformed(format!("If-Match: expected the ETag of a GET, got `{text}`")));
    }
    Ok(Some(tag.to_ascii_lowercase()))
}

fn etag(version: &str) -> (actix_web::http::header::HeaderName, String) {
    (ETAG, format!("\"{version}\""))
}

/// The answer to an applied change: `body` with `"status": "applied"` and the new version,
/// which is also the `ETag`.
fn applied(mut response: actix_web::HttpResponseBuilder, version: &str, mut body: Value) -> HttpResponse {
    body["status"] = "applied".into();
    body["version"] = version.into();
    response.insert_header(etag(version)).json(body)
}

impl State {
    /// Admits a change of the configuration: an admin's token, no query parameters. Who made
    /// it, for the audit log (`api:<subject>`).
    async fn admin_change(&self, request: &HttpRequest) -> Result<String, Problem> {
        let principal = self.authorize(request, Route::Api, Role::Admin).await?;
        Query::read(request, &[])?;
        Ok(format!("api:{}", principal.subject))
    }

    pub(super) fn config_service(&self) -> Result<std::sync::Arc<dyn ConfigService>, Problem> {
        self.config.clone().ok_or_else(|| Problem::not_found("no configuration service"))
    }

    /// Applies `edit` to the configuration in force, as `who`; answers the new version.
    async fn edit_config(
        &self,
        request: &HttpRequest,
        who: String,
        mut edit: impl FnMut(&mut DocumentMut) -> Result<(), String> + Send + 'static,
    ) -> Result<String, Problem> {
        let expected = expected_version(request)?;
        let service = self.config_service()?;
        let mut edit_text = move |text: &str| {
            let mut document = document(text)?;
            edit(&mut document)?;
            Ok(document.to_string())
        };
        tokio::task::spawn_blocking(move || service.edit(expected.as_deref(), &who, &mut edit_text))
            .await
            .map_err(|e| Problem::internal(e.to_string()))?
            .map_err(|error| match error {
                EditError::Stale { .. } => Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "config-changed",
                    "The configuration changed",
                    error.to_string(),
                ),
                // What the change names is gone, or the file is written in a form this cannot edit.
                EditError::Edit(reason) => Problem::new(
                    StatusCode::CONFLICT,
                    "config-conflict",
                    "The change does not fit the configuration",
                    reason,
                ),
                EditError::NotApplied(reason) => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "config-not-applied",
                    "Configuration not applied",
                    reason,
                ),
            })
    }

    /// The configuration in force and its version.
    async fn config_versioned(&self) -> Result<(String, String), Problem> {
        let service = self.config_service()?;
        tokio::task::spawn_blocking(move || service.read_versioned())
            .await
            .map_err(|e| Problem::internal(e.to_string()))
    }

    /// The link with id `key` in the catalog in force (one reading of it: the catalog may be
    /// replaced meanwhile).
    fn link_at(&self, key: &str) -> Result<(usize, CatalogLink), Problem> {
        let index: usize = key.parse().map_err(|_| Problem::not_found(format!("`{key}` is not a link id")))?;
        let catalog = self.catalog();
        let link = catalog.links.get(index).ok_or_else(|| {
            Problem::not_found(format!("no link {index}; there are {} (GET /api/v1/links)", catalog.links.len()))
        })?;
        Ok((index, link.clone()))
    }

    /// The link between `leader` and `follower` as now in force, with its id.
    fn link_by_names(&self, leader: &str, follower: &str) -> Option<Value> {
        let catalog = self.catalog();
        let index = catalog.links.iter().position(|l| l.leader_name == leader && l.follower_name == follower)?;
        Some(link_json(index, &catalog.links[index]))
    }
}

/// `GET /api/v1/links/{link}`: one link, its rules as the engine reads them and its
/// `[[links]]` entry as written (`config`, what `PATCH` changes).
async fn link_read(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.authorize(&request, Route::Api, Role::Viewer).await?;
    Query::read(&request, &[])?;
    let (text, version) = state.config_versioned().await?;
    let (index, link) = state.link_at(request.match_info().get("link").unwrap_or_default())?;
    let mut link = link_json(index, &link);
    link["config"] = link_entry(&text, index).map_or(Value::Null, |entry| json_of(&entry));
    link["version"] = version.clone().into();
    Ok(HttpResponse::Ok().insert_header(etag(&version)).json(link))
}

/// `POST /api/v1/links`: a new link, `{"leader", "follower", …its rules}`.
pub(super) async fn link_add(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    let who = state.admin_change(&request).await?;
    let body = fields::json_object(&state.body(payload).await?)?;
    let mut entry = Table::new();
    let mut names = Vec::new();
    for key in LINK_IDENTITY {
        match body.get(key) {
            Some(Value::String(name)) if !name.trim().is_empty() => {
                entry.insert(key, toml_edit::value(name.as_str()));
                names.push(name.clone());
            }
            Some(other) => {
                return Err(Problem::invalid(format!(
                    "{key}: expected an account or source name, got {}",
                    describe(other)
                )));
            }
            None => return Err(Problem::invalid(format!("{key}: missing"))),
        }
    }
    for (key, value) in body.iter().filter(|(key, _)| !LINK_IDENTITY.contains(&key.as_str())) {
        entry.insert(key, Item::Value(toml_value(value, key)?));
    }
    let version =
        state.edit_config(&request, who.clone(), move |document| append_link(document, entry.clone())).await?;
    let (leader, follower) = (&names[0], &names[1]);
    let link = state.link_by_names(leader, follower).unwrap_or(Value::Null);
    tracing::info!(who, leader, follower, "link added over the API");
    let location = format!("/api/v1/links/{}", link["id"]);
    let mut response = HttpResponse::Created();
    response.insert_header((actix_web::http::header::LOCATION, location));
    Ok(applied(response, &version, json!({ "link": link })))
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("`{text}`"),
        other => fields::kind_of(other).to_owned(),
    }
}

/// `PATCH /api/v1/links/{link}`: each key given replaces that key of the link's entry whole;
/// `null` removes it (back to its default). The leader and follower stay.
async fn link_change(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    let who = state.admin_change(&request).await?;
    let (index, link) = state.link_at(request.match_info().get("link").unwrap_or_default())?;
    let body = fields::json_object(&state.body(payload).await?)?;
    let mut changes: Vec<(String, Option<toml_edit::Value>)> = Vec::new();
    for (key, value) in &body {
        if LINK_IDENTITY.contains(&key.as_str()) {
            return Err(Problem::invalid(format!(
                "{key}: a link's leader and follower are what it is; remove it (DELETE) and add the new one (POST)"
            )));
        }
        changes.push((key.clone(), if value.is_null() { None } else { Some(toml_value(value, key)?) }));
    }
    if changes.is_empty() {
        return Err(Problem::invalid("nothing to change: the body names no key"));
    }
    let CatalogLink { leader_name: leader, follower_name: follower, .. } = link;
    let version = state
        .edit_config(&request, who.clone(), {
            let (leader, follower) = (leader.clone(), follower.clone());
            move |document| {
                let entry = links_of(document)?
                    .get_mut(index)
                    .filter(|entry| names_link(entry, &leader, &follower))
                    .ok_or_else(|| {
                        format!("link {index} ({leader} -> {follower}) is no longer in the configuration")
                    })?;
                for (key, value) in &changes {
                    match value {
                        Some(value) => {
                            entry.insert(key, Item::Value(value.clone()));
                        }
                        None => {
                            entry.remove(key);
                        }
                    }
                }
                Ok(())
            }
        })
        .await?;
    let link = state.link_by_names(&leader, &follower).unwrap_or(Value::Null);
    tracing::info!(who, leader, follower, "link changed over the API");
    Ok(applied(HttpResponse::Ok(), &version, json!({ "link": link })))
}

/// Whether a `[[links]]` entry is the link from `leader` to `follower`.
fn names_link(entry: &Table, leader: &str, follower: &str) -> bool {
    entry.get("leader").and_then(Item::as_str) == Some(leader)
        && entry.get("follower").and_then(Item::as_str) == Some(follower)
}

/// `DELETE /api/v1/links/{link}`: the follower stops copying the leader; what it holds from
/// the link stays open (close it first, or flatten the account, to leave nothing behind).
async fn link_remove(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    let who = state.admin_change(&request).await?;
    let (index, link) = state.link_at(request.match_info().get("link").unwrap_or_default())?;
    let removed = link_json(index, &link);
    let CatalogLink { leader_name: leader, follower_name: follower, .. } = link;
    let version = state
        .edit_config(&request, who.clone(), {
            let (leader, follower) = (leader.clone(), follower.clone());
            move |document| {
                let links = links_of(document)?;
                if !links.get(index).is_some_and(|entry| names_link(entry, &leader, &follower)) {
                    return Err(format!("link {index} ({leader} -> {follower}) is no longer in the configuration"));
                }
                links.remove(index);
                Ok(())
            }
        })
        .await?;
    tracing::info!(who, leader, follower, "link removed over the API");
    Ok(applied(HttpResponse::Ok(), &version, json!({ "removed": removed })))
}

/// A risk profile's name: what a `[risk.<name>]` key may be.
fn profile_name(request: &HttpRequest) -> Result<String, Problem> {
    let name = request.match_info().get("profile").unwrap_or_default();
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Problem::invalid(format!(
            "profile: `{name}` is not a profile name (1 to 64 letters, digits, `-` and `_`)"
        )));
    }
    Ok(name.to_owned())
}

/// The configuration's `[risk]` table, created when it has none.
fn risk_of(document: &mut DocumentMut) -> Result<&mut dyn toml_edit::TableLike, String> {
    let item = document.entry("risk").or_insert_with(|| {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    });
    item.as_table_like_mut().ok_or_else(|| "the configuration's `risk` is not a table".to_owned())
}

/// `PUT /api/v1/risk/profiles/{profile}`: a risk profile's limits, whole (`{"max_order_qty": 10,
/// "daily_loss_limit": "2000", …}`); a new name adds a profile.
async fn profile_set(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    let who = state.admin_change(&request).await?;
    let name = profile_name(&request)?;
    let body = fields::json_object(&state.body(payload).await?)?;
    let mut limits = Table::new();
    for (key, value) in &body {
        limits.insert(key, Item::Value(toml_value(value, key)?));
    }
    let version = state
        .edit_config(&request, who.clone(), {
            let name = name.clone();
            move |document| {
                let risk = risk_of(document)?;
                match risk.get_mut(&name) {
                    // Keep the table where it stands in the file: only its keys change.
                    Some(Item::Table(table)) => {
                        table.clear();
                        for (key, item) in limits.iter() {
                            table.insert(key, item.clone());
                        }
                    }
                    _ => {
                        risk.insert(&name, Item::Table(limits.clone()));
                    }
                }
                Ok(())
            }
        })
        .await?;
    tracing::info!(who, profile = name, "risk profile set over the API");
    let profile = state
        .catalog()
        .risk_profiles
        .get(&name)
        .map_or(Value::Null, |l| serde_json::to_value(l).unwrap_or(Value::Null));
    Ok(applied(HttpResponse::Ok(), &version, json!({ "profile": name, "limits": profile })))
}

/// `DELETE /api/v1/risk/profiles/{profile}`: refused while an account uses it.
async fn profile_remove(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    let who = state.admin_change(&request).await?;
    let name = profile_name(&request)?;
    if !state.catalog().risk_profiles.contains_key(&name) {
        return Err(Problem::not_found(format!("no risk profile `{name}` (GET /api/v1/risk)")));
    }
    let users: Vec<String> = state
        .catalog()
        .accounts
        .iter()
        .filter(|a| a.risk_profile.as_deref() == Some(name.as_str()))
        .map(|a| a.name.clone())
        .collect();
    if !users.is_empty() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "profile-in-use",
            "The risk profile is in use",
            format!(
                "risk profile `{name}` is used by {}; give them another (PUT /api/v1/accounts/{{account}}/risk) first",
                users.join(", ")
            ),
        ));
    }
    let version = state
        .edit_config(&request, who.clone(), {
            let name = name.clone();
            move |document| {
                risk_of(document)?.remove(&name).map(|_| ()).ok_or_else(|| format!("no risk profile `{name}`"))
            }
        })
        .await?;
    tracing::info!(who, profile = name, "risk profile removed over the API");
    Ok(applied(HttpResponse::Ok(), &version, json!({ "removed": name })))
}

/// `PUT /api/v1/accounts/{account}/risk`: `{"profile": "<name>"}` gives the account that
/// profile's limits; `{"profile": null}` leaves it without limits.
pub(super) async fn account_risk(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    let who = state.admin_change(&request).await?;
    let account = state.find_account(request.match_info().get("account").unwrap_or_default())?;
    let body = fields::json_object(&state.body(payload).await?)?;
    if let Some(key) = body.keys().find(|k| *k != "profile") {
        return Err(Problem::invalid(format!("{key}: unknown field; expected `profile`")));
    }
    let profile = match body.get("profile") {
        None => return Err(Problem::invalid("profile: missing (null: no limits)")),
        Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(other) => {
            return Err(Problem::invalid(format!("profile: expected a profile name or null, got {}", describe(other))));
        }
    };
    let name = account.name.clone();
    let version = state
        .edit_config(&request, who.clone(), {
            let (name, profile) = (name.clone(), profile.clone());
            move |document| {
                let accounts = document.get_mut("accounts").and_then(Item::as_array_of_tables_mut).ok_or(
                    "the configuration writes `accounts` as an inline array; write them as [[accounts]] tables",
                )?;
                let entry = accounts
                    .iter_mut()
                    .find(|a| a.get("name").and_then(Item::as_str) == Some(name.as_str()))
                    .ok_or_else(|| format!("no account `{name}` in the configuration"))?;
                match &profile {
                    Some(profile) => {
                        entry.insert("risk", toml_edit::value(profile.as_str()));
                    }
                    None => {
                        entry.remove("risk");
                    }
                }
                Ok(())
            }
        })
        .await?;
    tracing::info!(
        who,
        account = name,
        profile = profile.as_deref().unwrap_or("none"),
        "account risk set over the API"
    );
    let limits = state
        .catalog()
        .accounts
        .iter()
        .find(|a| a.name == name)
        .map_or(Value::Null, |a| serde_json::to_value(a.risk).unwrap_or(Value::Null));
    Ok(applied(HttpResponse::Ok(), &version, json!({ "account": name, "profile": profile, "limits": limits })))
}

/// `GET /api/v1/links` and `GET /api/v1/risk` carry the configuration's version.
pub(super) async fn version_header(state: &State) -> Option<(actix_web::http::header::HeaderName, String)> {
    state.config_versioned().await.ok().map(|(_, version)| etag(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_toml_and_null_is_named() {
        // Keys in sorted order: serde_json keeps either that or the text's (`preserve_order`).
        let value: Value = serde_json::from_str(r#"{"mode":"multiplier","n":[1,"x",true],"ratio":0.5}"#).unwrap();
        let toml = toml_value(&value, "sizing").unwrap();
        assert_eq!(toml.to_string(), r#"{ mode = "multiplier", n = [1, "x", true], ratio = 0.5 }"#);
        let error = toml_value(&json!({ "a": [1, null] }), "symbol_map").unwrap_err();
        assert_eq!(error.detail, "symbol_map.a[1]: null is not a value here");
        let error = toml_value(&json!(u64::MAX), "max_qty").unwrap_err();
        assert_eq!(error.detail, format!("max_qty: {} is out of range", u64::MAX));
    }

    #[test]
    fn links_are_appended_as_tables_keeping_the_files_comments() {
        let text = "# the desk\n[[links]] # first\nleader = \"a\"\nfollower = \"b\"\n\n[http] # web\nlisten = \"x\"\n";
        let mut doc = document(text).unwrap();
        let mut entry = Table::new();
        entry.insert("leader", toml_edit::value("a"));
        entry.insert("follower", toml_edit::value("c"));
        append_link(&mut doc, entry.clone()).unwrap();
        assert_eq!(
            doc.to_string(),
            "# the desk\n[[links]] # first\nleader = \"a\"\nfollower = \"b\"\n\n[[links]]\nleader = \"a\"\nfollower = \"c\"\n\n\
             [http] # web\nlisten = \"x\"\n"
        );
        // A configuration without links gets its first.
        let mut empty = document("[http]\nlisten = \"x\"\n").unwrap();
        append_link(&mut empty, entry).unwrap();
        assert_eq!(empty.to_string(), "[http]\nlisten = \"x\"\n\n[[links]]\nleader = \"a\"\nfollower = \"c\"\n");
        let mut inline = document("links = [{ leader = \"a\", follower = \"b\" }]\n").unwrap();
        assert!(links_of(&mut inline).unwrap_err().contains("inline array"));
    }

    #[test]
    fn if_match_takes_an_etag_or_a_star() {
        let request =
            |value: &str| actix_web::test::TestRequest::default().insert_header((IF_MATCH, value)).to_http_request();
        assert_eq!(expected_version(&request("\"AB12\"")).unwrap().as_deref(), Some("ab12"));
        assert_eq!(expected_version(&request("W/\"ab12\"")).unwrap().as_deref(), Some("ab12"));
        assert_eq!(expected_version(&request("*")).unwrap(), None);
        assert!(expected_version(&request("\"v1\"")).unwrap_err().detail.contains("expected the ETag"));
        assert_eq!(expected_version(&actix_web::test::TestRequest::default().to_http_request()).unwrap(), None);
    }
}
