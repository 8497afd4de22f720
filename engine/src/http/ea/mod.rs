//! MetaTrader Expert Advisor webhooks (`kind = "metatrader_ea"`): for a terminal where a
//! local bridge is not possible, the reference EA (`clients/ea/MirrorWebhook.mq5`) posts its
//! account's trade events with MQL's `WebRequest` to `POST /webhooks/ea/<name>`, and they
//! are copied as the webhook's source, keyed by ticket.
//!
//! Authentication: the secret in `X-Mirror-Secret` (compared in constant time), or an
//! HMAC-SHA256 signature (`X-Mirror-Timestamp`, `X-Mirror-Signature`, as for signed
//! webhooks); whatever is sent must be right, and one of them must be sent.
//!
//! A batch (see [`events`]) is read and checked whole first: any bad event is refused with 422
//! naming `events[i].field`, and nothing of the batch runs. Then each event the terminal has
//! not sent before (by its `seq`) goes to the engine in order, and the answer is 202 with each
//! event's outcome: `accepted` with the signal id, `duplicate` when its `seq` was handled
//! before, or `refused` with the engine's reason.
//!
//! # Redelivery and restarts
//!
//! Per terminal (login and server) the highest `seq` handled is kept — bounded at
//! [`TERMINALS_MAX`] terminals per webhook, the least recently seen forgotten beyond — and
//! written to the webhook's state file (`<state dir>/ea-<name>.json`) before the batch is
//! handed to the engine. So a batch sent again, before or after a restart, executes nothing it
//! executed already; the reference EA numbers its events from its clock in milliseconds and
//! never reuses a number, even after it restarts. Without a state directory the numbers live in
//! memory only and a batch resent after a restart would run again. A crash between writing the
//! number and the engine taking an event loses that event (at most once: never doubled). When
//! the engine cannot say whether it took an event (stopping, a journal failure, a timeout), the
//! answer is 5xx naming what ran, the number stays at that event, and a resend runs the rest.

pub(crate) mod events;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::limits::Route;
use super::problem::Problem;
use super::submit::submit;
use super::{State, Webhook, WebhookKind, signed, state_file};
use events::Batch;
use mirror_model::fit_note;

/// The header the EA sends the webhook's secret in.
pub(crate) const SECRET_HEADER: &str = "x-mirror-secret";
/// Terminals remembered per webhook.
pub(crate) const TERMINALS_MAX: usize = 256;
/// Version of the file format.
const FORMAT: u32 = 1;

/// The memory of every EA webhook, by the webhook's index.
pub(crate) struct Hooks {
    hooks: Vec<Option<Hook>>,
}

struct Hook {
    /// Held while a batch is handled: one batch at a time per webhook keeps the numbers
    /// and the engine in step.
    terminals: Mutex<Terminals>,
    file: Option<PathBuf>,
}

/// The highest `seq` handled per terminal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Terminals {
    by_key: BTreeMap<(u64, String), Seen>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    seq: u64,
    /// When it was last heard from (the server's clock), for forgetting the least recent.
    at_unix_ms: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalsFile {
    format: u32,
    terminals: Vec<TerminalEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalEntry {
    login: u64,
    server: String,
    seq: u64,
    at_unix_ms: i64,
}

impl Terminals {
    fn last(&self, key: &(u64, String)) -> u64 {
        self.by_key.get(key).map_or(0, |seen| seen.seq)
    }

    fn set(&mut self, key: (u64, String), seq: u64, at_unix_ms: i64) {
        self.by_key.insert(key, Seen { seq, at_unix_ms });
        while self.by_key.len() > TERMINALS_MAX {
            let Some(oldest) = self.by_key.iter().min_by_key(|(_, seen)| seen.at_unix_ms).map(|(k, _)| k.clone())
            else {
                break;
            };
            tracing::warn!(login = oldest.0, server = %oldest.1, "EA webhook: more than {TERMINALS_MAX} terminals; the least recent is forgotten");
            self.by_key.remove(&oldest);
        }
    }

    fn to_file(&self) -> TerminalsFile {
        let terminals = self
            .by_key
            .iter()
            .map(|((login, server), seen)| TerminalEntry {
                login: *login,
                server: server.clone(),
                seq: seen.seq,
                at_unix_ms: seen.at_unix_ms,
            })
            .collect();
        TerminalsFile { format: FORMAT, terminals }
    }

    fn from_file(file: TerminalsFile) -> Result<Self, String> {
        if file.format != FORMAT {
            return Err(format!("format {} is not understood (this build reads {FORMAT})", file.format));
        }
        let mut terminals = Self::default();
        for entry in file.terminals {
            terminals.set((entry.login, entry.server), entry.seq, entry.at_unix_ms);
        }
        Ok(terminals)
    }
}

impl Hooks {
    /// Reads each EA webhook's numbers from `state_dir` (none: memory only).
    pub(crate) fn open(webhooks: &[Webhook], state_dir: Option<&Path>) -> Result<Self, String> {
        let mut hooks = Vec::with_capacity(webhooks.len());
        for webhook in webhooks {
            if webhook.kind != WebhookKind::MetatraderEa {
                hooks.push(None);
                continue;
            }
            let file = state_dir.map(|dir| state_file::path(dir, "ea", &webhook.name));
            let terminals = match &file {
                Some(path) => match state_file::load::<TerminalsFile>(path)? {
                    Some(saved) => Terminals::from_file(saved).map_err(|e| format!("{}: {e}", path.display()))?,
                    None => Terminals::default(),
                },
                None => Terminals::default(),
            };
            hooks.push(Some(Hook { terminals: Mutex::new(terminals), file }));
        }
        Ok(Self { hooks })
    }
}

pub(crate) async fn hook(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::MetatraderEa)?;
    let name = request.match_info().get("name").unwrap_or_default();
    let (index, webhook) = state
        .webhooks
        .iter()
        .enumerate()
        .find(|(_, w)| w.kind == WebhookKind::MetatraderEa && w.name == name)
        .ok_or_else(|| Problem::not_found(format!("no metatrader_ea webhook is named `{name}`")))?;
    State::allowed(webhook, &request)?;
    let body = state.body(payload).await?;
    authenticate(&state, webhook, &request, &body)?;
    let batch = events::read(&body, &webhook.symbols)?;
    let hook = state.ea.hooks.get(index).and_then(Option::as_ref).ok_or_else(|| {
        Problem::internal(format!("EA webhook `{name}` has no state; the server was not started with it"))
    })?;
    let outcomes = hook.handle(&state, webhook, batch).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "webhook": webhook.name,
        "status": "accepted",
        "events": outcomes,
    })))
}

fn authenticate(state: &State, webhook: &Webhook, request: &HttpRequest, body: &[u8]) -> Result<(), Problem> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let secret = header(SECRET_HEADER);
    let (timestamp, signature) = (header(signed::TIMESTAMP_HEADER), header(signed::SIGNATURE_HEADER));
    if secret.is_none() && timestamp.is_none() && signature.is_none() {
        return Err(Problem::unauthorized(format!(
            "{SECRET_HEADER}: missing; send the webhook's secret (or sign the body with {} and {})",
            signed::TIMESTAMP_HEADER,
            signed::SIGNATURE_HEADER
        )));
    }
    if let Some(presented) = secret {
        let expected = crate::gateway::token_digest(webhook.secret.expose().as_bytes());
        if !crate::gateway::digests_equal(&expected, &crate::gateway::token_digest(presented.as_bytes())) {
            return Err(Problem::unauthorized(format!("{SECRET_HEADER}: does not match this webhook's secret")));
        }
    }
    if timestamp.is_some() || signature.is_some() {
        let now_s = state.engine.clock().now().unix_ms.div_euclid(1000);
        let key = signed::verify(webhook.secret.expose().as_bytes(), timestamp, signature, body, now_s)?;
        state.replays.check(key, now_s, signed::REPLAY_CACHE_MAX)?;
    }
    Ok(())
}

/// One event's outcome in the answer.
#[derive(Debug, Serialize)]
struct Outcome {
    seq: u64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl Hook {
    async fn handle(&self, state: &State, webhook: &Webhook, batch: Batch) -> Result<Vec<Outcome>, Problem> {
        let mut terminals = self.terminals.lock().await;
        let key = (batch.login, batch.server.clone());
        let before = terminals.last(&key);
        let now_ms = state.engine.clock().now().unix_ms;
        let newest = batch.events.last().map_or(0, |e| e.seq);
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.events.len());
        if newest <= before {
            tracing::info!(webhook = %webhook.name, login = batch.login, "EA batch delivered again; nothing executed");
        } else {
            // Recorded before the engine sees any of it (see the module's notes).
            let saved = terminals.clone();
            terminals.set(key.clone(), newest, now_ms);
            if let Err(error) = self.persist(&terminals).await {
                *terminals = saved;
                return Err(Problem::internal(format!(
                    "the webhook's state could not be saved ({error}); nothing executed"
                )));
            }
        }
        for (index, event) in batch.events.into_iter().enumerate() {
            if event.seq <= before {
                outcomes.push(Outcome { seq: event.seq, status: "duplicate", signal: None, reason: None });
                continue;
            }
            let note = fit_note(format!(
                "ea:{} {}@{} {} ticket {} seq {}",
                webhook.name, batch.login, batch.server, event.kind, event.ticket, event.seq
            ));
            let created = event.time_unix_ms.map(|t| t.min(now_ms));
            match submit(state, webhook.origin, event.action, created, note).await {
                Ok(signal) => {
                    tracing::info!(webhook = %webhook.name, login = batch.login, seq = event.seq, %signal, kind = event.kind, "EA event accepted");
                    outcomes.push(Outcome { seq: event.seq, status: "accepted", signal: Some(signal.0), reason: None });
                }
                Err(refusal) if refusal.not_taken() => {
                    tracing::warn!(webhook = %webhook.name, login = batch.login, seq = event.seq, %refusal, "EA event refused by the engine");
                    let reason = Some(format!("events[{index}]: the engine refused it: {refusal}"));
                    outcomes.push(Outcome { seq: event.seq, status: "refused", signal: None, reason });
                }
                Err(refusal) => {
                    // It may have been taken: the number stays at it, and a resend runs the rest.
                    terminals.set(key.clone(), event.seq, now_ms);
                    if let Err(error) = self.persist(&terminals).await {
                        tracing::error!(webhook = %webhook.name, %error, "EA numbers not saved after an unconfirmed event");
                    }
                    let ran: Vec<String> = outcomes
                        .iter()
                        .filter_map(|o| o.signal.map(|signal| format!("seq {} as signal {signal}", o.seq)))
                        .collect();
                    let mut problem = refusal.problem();
                    problem.detail = format!(
                        "events[{index}] (seq {}): {}; executed before it: {}; resend the batch: what ran is skipped",
                        event.seq,
                        problem.detail,
                        if ran.is_empty() { "none".to_owned() } else { ran.join(", ") }
                    );
                    return Err(problem);
                }
            }
        }
        Ok(outcomes)
    }

    async fn persist(&self, terminals: &Terminals) -> Result<(), String> {
        let Some(path) = self.file.clone() else { return Ok(()) };
        let file = terminals.to_file();
        tokio::task::spawn_blocking(move || state_file::save(&path, &file)).await.map_err(|e| e.to_string())?
    }
}

#[cfg(test)]
mod tests;
