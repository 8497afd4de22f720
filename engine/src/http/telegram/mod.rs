//! Telegram webhooks (`kind = "telegram"`): a bot added to signal channels or groups gets
//! each message as a Bot API `Update` on `POST /webhooks/telegram/<name>`, and Mirror reads it
//! as a trade signal of the webhook's source.
//!
//! Telegram sends the `secret_token` given to `setWebhook` in `X-Telegram-Bot-Api-Secret-Token`;
//! it is compared with the webhook's secret in constant time. Messages from chats not listed in
//! `chats` are not executed. The text (or a photo's caption) goes through [`parse`]: an open
//! opens `qty` for the source at market or as a limit/stop order, with the stop loss and the
//! first take profit; `close`, `close half`, `move SL to entry`, `cancel the limit`… act on
//! the positions the chat's signals opened, kept in a [`book`] that survives restarts. An edit
//! of a message whose signal was executed moves that position's stop loss and take profit to
//! the edited ones; any other edit is not executed.
//!
//! # Status policy
//!
//! Telegram redelivers an update that is not answered 2xx (for up to a day) and holds every
//! later update behind it, so a message that is not a signal must not be answered 4xx: one
//! chatty message would stall the channel. Hence:
//!
//! - malformed JSON, or JSON that is not an `Update` → 400; a missing or wrong secret → 401;
//!   a client address outside `allow_ips` → 403; an unknown webhook name → 404; an oversized
//!   body → 413; too many requests → 429 (the server's limits);
//! - every well-formed update → 200 with `{"outcome": …, "confidence": 0.x, "reason": …}`:
//!   `accepted` (with the engine's `signal` id) when it was executed; `not_a_signal` when the
//!   text is not an instruction or too unsure (confidence below
//!   [`parse::CONFIDENCE_MIN`]); `ignored` when it reads as one but is not executed (another
//!   chat, an unknown symbol, inconsistent levels, nothing open to manage, the engine
//!   refusing it); `duplicate` when the update was handled before;
//! - the engine unable to say whether it took the signal (stopping, a journal failure, a
//!   timeout) → 5xx; Telegram redelivers it and the redelivery is answered `duplicate`.
//!
//! # Exactly once, or at most once
//!
//! Updates are idempotent by `update_id`: the last [`book::UPDATES_MAX`] handled ids are kept,
//! and a redelivered one executes nothing. Before an instruction is handed to the engine, its
//! update id and what it changes in the book are written to the webhook's state file, so a
//! redelivery after a crash or restart executes nothing either. The price is that a crash in
//! the instant between that write and the engine taking the signal loses that one signal: for
//! orders, at most once is the safe side.

pub(crate) mod book;
pub(crate) mod parse;

use std::path::{Path, PathBuf};

use actix_web::{HttpRequest, HttpResponse, web};
use mirror_model::{LeaderRef, OpenSignal, OrderKind, Qty, Side, SignalAction, Symbol, TimeInForce};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use super::fields;
use super::limits::Route;
use super::problem::Problem;
use super::submit::submit;
use super::{State, Webhook, WebhookKind, state_file};
use book::{Book, BookFile, Opened};
use mirror_model::fit_note;
use parse::{Intent, OpenIntent, Reading};

/// The header Telegram sends `setWebhook`'s `secret_token` in.
pub(crate) const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// The memory of every Telegram webhook, by the webhook's index.
pub(crate) struct Hooks {
    hooks: Vec<Option<Hook>>,
}

struct Hook {
    /// Held while an update is handled: updates of one webhook are handled one at a time,
    /// so the book and the handled ids always agree.
    book: Mutex<Book>,
    /// Where the book is kept (none: in memory only).
    file: Option<PathBuf>,
}

impl Hooks {
    /// Reads each Telegram webhook's book from `state_dir` (none: memory only).
    pub(crate) fn open(webhooks: &[Webhook], state_dir: Option<&Path>) -> Result<Self, String> {
        let mut hooks = Vec::with_capacity(webhooks.len());
        for webhook in webhooks {
            if webhook.kind != WebhookKind::Telegram {
                hooks.push(None);
                continue;
            }
            // Telegram accepts 1-256 characters A-Z, a-z, 0-9, `_` and `-` as secret_token.
            let secret = webhook.secret.expose();
            if secret.len() > 256 || !secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!(
                    "webhook `{}`: Telegram's secret_token is 1 to 256 characters A-Z, a-z, 0-9, `_` and `-`; this \
                     webhook's secret is not",
                    webhook.name
                ));
            }
            let file = state_dir.map(|dir| state_file::path(dir, "telegram", &webhook.name));
            let book = match &file {
                Some(path) => match state_file::load::<BookFile>(path)? {
                    Some(saved) => Book::from_file(saved).map_err(|e| format!("{}: {e}", path.display()))?,
                    None => Book::default(),
                },
                None => Book::default(),
            };
            hooks.push(Some(Hook { book: Mutex::new(book), file }));
        }
        Ok(Self { hooks })
    }
}

// ---------------------------------------------------------------------------------------
// The Bot API's Update, as much of it as is read (other fields are ignored)

#[derive(Debug, Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
    edited_message: Option<Message>,
    channel_post: Option<Message>,
    edited_channel_post: Option<Message>,
}

#[derive(Debug, Deserialize)]
struct Message {
    message_id: i64,
    /// Unix seconds.
    date: i64,
    edit_date: Option<i64>,
    chat: Chat,
    text: Option<String>,
    caption: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
    title: Option<String>,
}

impl Update {
    /// The message it carries, and whether it is an edit.
    fn message(&self) -> Option<(&Message, bool)> {
        match (&self.message, &self.channel_post, &self.edited_message, &self.edited_channel_post) {
            (Some(message), ..) | (_, Some(message), ..) => Some((message, false)),
            (.., Some(message), _) | (.., Some(message)) => Some((message, true)),
            _ => None,
        }
    }
}

fn read_update(body: &[u8]) -> Result<Update, Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Problem::malformed(format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(Problem::malformed(format!(
            "expected a Telegram Update (a JSON object), got {}",
            fields::kind_of(&value)
        )));
    }
    serde_json::from_value(value).map_err(|e| Problem::malformed(format!("not a Telegram Update: {e}")))
}

// ---------------------------------------------------------------------------------------
// Answers

/// The 200 answer to a well-formed update.
#[derive(Debug, Serialize)]
struct Answer {
    outcome: &'static str,
    confidence: f64,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<u64>,
    update_id: i64,
}

impl Answer {
    fn new(outcome: &'static str, confidence: f64, reason: impl Into<String>, update_id: i64) -> Self {
        Self { outcome, confidence, reason: reason.into(), signal: None, update_id }
    }
}

pub(crate) async fn hook(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Telegram)?;
    let name = request.match_info().get("name").unwrap_or_default();
    let (index, webhook) = state
        .webhooks
        .iter()
        .enumerate()
        .find(|(_, w)| w.kind == WebhookKind::Telegram && w.name == name)
        .ok_or_else(|| Problem::not_found(format!("no telegram webhook is named `{name}`")))?;
    State::allowed(webhook, &request)?;
    check_secret(webhook, request.headers().get(SECRET_HEADER).and_then(|v| v.to_str().ok()))?;
    let body = state.body(payload).await?;
    let update = read_update(&body)?;
    let hook = state.telegram.hooks.get(index).and_then(Option::as_ref).ok_or_else(|| {
        Problem::internal(format!("telegram webhook `{name}` has no state; the server was not started with it"))
    })?;
    let answer = hook.handle(&state, webhook, &update).await?;
    Ok(HttpResponse::Ok().json(answer))
}

fn check_secret(webhook: &Webhook, presented: Option<&str>) -> Result<(), Problem> {
    let presented = presented.ok_or_else(|| {
        Problem::unauthorized(format!(
            "{SECRET_HEADER}: missing; call setWebhook with secret_token set to this webhook's secret"
        ))
    })?;
    let expected = crate::gateway::token_digest(webhook.secret.expose().as_bytes());
    if !crate::gateway::digests_equal(&expected, &crate::gateway::token_digest(presented.as_bytes())) {
        return Err(Problem::unauthorized(format!("{SECRET_HEADER}: does not match this webhook's secret")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Handling one update

/// What an instruction does: the engine's action, and the book's change once it is taken.
struct Plan {
    action: SignalAction,
    change: Change,
    summary: String,
}

enum Change {
    Open(Opened),
    Levels { leader: u64, stop_loss: Option<mirror_model::Price>, take_profit: Option<mirror_model::Price> },
    Close(u64),
    CloseSymbol(Symbol),
    CloseChat,
    Nothing,
}

impl Change {
    fn apply(&self, book: &mut Book, chat: i64) {
        match self {
            Self::Open(opened) => book.open(chat, opened.clone()),
            Self::Levels { leader, stop_loss, take_profit } => book.update(chat, *leader, |o| {
                (o.stop_loss, o.take_profit) = (*stop_loss, *take_profit);
            }),
            Self::Close(leader) => book.remove(chat, |o| o.leader == *leader),
            Self::CloseSymbol(symbol) => book.remove(chat, |o| o.symbol == *symbol),
            Self::CloseChat => book.remove(chat, |_| true),
            Self::Nothing => {}
        }
    }
}

impl Hook {
    async fn handle(&self, state: &State, webhook: &Webhook, update: &Update) -> Result<Answer, Problem> {
        let id = update.update_id;
        let mut book = self.book.lock().await;
        if book.seen(id) {
            tracing::info!(webhook = %webhook.name, update = id, "telegram update delivered again; nothing executed");
            return Ok(Answer::new("duplicate", 0.0, format!("update {id} was handled before; nothing executed"), id));
        }
        let Some((message, edited)) = update.message() else {
            book.remember(id);
            return Ok(Answer::new("ignored", 0.0, "the update carries no message or channel post", id));
        };
        let chat = message.chat.id;
        if !webhook.chats.is_empty() && !webhook.chats.contains(&chat) {
            let title = message.chat.title.as_deref().unwrap_or("");
            tracing::warn!(webhook = %webhook.name, chat, title, "telegram message from a chat not in `chats`; not executed");
            book.remember(id);
            let reason = format!("chat {chat} ({title}) is not in this webhook's chats; not executed");
            return Ok(Answer::new("ignored", 0.0, reason, id));
        }
        let Some(text) = message.text.as_deref().or(message.caption.as_deref()) else {
            book.remember(id);
            let reason = "no text to read (a sticker, a photo without a caption, or a service message)";
            return Ok(Answer::new("not_a_signal", 0.0, reason, id));
        };
        let parsed = parse::parse(text, &webhook.symbols);
        let confidence = parsed.confidence();
        let planned = match parsed.reading {
            Reading::NotASignal => {
                book.remember(id);
                tracing::debug!(webhook = %webhook.name, chat, reason = %parsed.reason, "telegram message: not a signal");
                return Ok(Answer::new("not_a_signal", confidence, parsed.reason, id));
            }
            Reading::Refused => Err(parsed.reason),
            Reading::Signal(intent) => {
                let positions = book.positions(chat);
                if edited {
                    plan_edit(intent, positions, message.message_id)
                } else {
                    plan(intent, positions, webhook, message.message_id, || state.engine.next_signal_id().0)
                }
            }
        };
        let plan = match planned {
            Ok(plan) => plan,
            Err(reason) => {
                book.remember(id);
                tracing::info!(webhook = %webhook.name, chat, %reason, "telegram signal not executed");
                return Ok(Answer::new("ignored", confidence, reason, id));
            }
        };
        // Recorded before the engine sees it: a redelivery, even after a crash, executes
        // nothing (see the module's notes).
        let saved = book.chat(chat);
        plan.change.apply(&mut book, chat);
        book.remember(id);
        if let Err(error) = self.persist(&book).await {
            book.restore(chat, saved);
            book.forget(id);
            tracing::error!(webhook = %webhook.name, %error, "telegram book not saved; the update is not executed");
            return Err(Problem::internal(format!(
                "the webhook's state could not be saved ({error}); nothing executed"
            )));
        }
        let time = message.edit_date.filter(|_| edited).unwrap_or(message.date).saturating_mul(1000);
        let created = time.min(state.engine.clock().now().unix_ms);
        let note =
            fit_note(format!("telegram:{} chat {chat} message {}: {}", webhook.name, message.message_id, plan.summary));
        match submit(state, webhook.origin, plan.action, Some(created), note).await {
            Ok(signal) => {
                tracing::info!(webhook = %webhook.name, chat, %signal, summary = %plan.summary, "telegram signal accepted");
                Ok(Answer { signal: Some(signal.0), ..Answer::new("accepted", confidence, plan.summary, id) })
            }
            Err(refusal) if refusal.not_taken() => {
                book.restore(chat, saved);
                if let Err(error) = self.persist(&book).await {
                    tracing::error!(webhook = %webhook.name, %error, "telegram book not saved after a refused signal");
                }
                tracing::info!(webhook = %webhook.name, chat, %refusal, "telegram signal refused by the engine");
                Ok(Answer::new("ignored", confidence, format!("the engine refused it: {refusal}"), id))
            }
            Err(refusal) => {
                tracing::warn!(webhook = %webhook.name, chat, %refusal, "telegram signal not confirmed; kept as handled");
                Err(refusal.problem())
            }
        }
    }

    async fn persist(&self, book: &Book) -> Result<(), String> {
        let Some(path) = self.file.clone() else { return Ok(()) };
        let file = book.to_file();
        tokio::task::spawn_blocking(move || state_file::save(&path, &file)).await.map_err(|e| e.to_string())?
    }
}

/// What an instruction of a new message does, given the chat's positions (most recent
/// first); `fresh` gives a new position key. `Err`: why it is not executed.
fn plan(
    intent: Intent,
    positions: &[Opened],
    webhook: &Webhook,
    message_id: i64,
    fresh: impl FnOnce() -> u64,
) -> Result<Plan, String> {
    if let Intent::Open(open) = intent {
        return plan_open(open, webhook, message_id, fresh);
    }
    let nothing = || "nothing open from this chat".to_owned();
    let latest = positions.first().ok_or_else(nothing)?;
    let about = |o: &Opened| format!("{} {} of message {}", o.side, o.symbol, o.message_id);
    let modify = |o: &Opened, stop_loss, take_profit, summary: String| Plan {
        action: SignalAction::Modify { leader: LeaderRef(o.leader), stop_loss, take_profit },
        change: Change::Levels { leader: o.leader, stop_loss, take_profit },
        summary,
    };
    let plan = match intent {
        Intent::Open(_) => unreachable!("handled above"),
        Intent::Close => Plan {
            action: SignalAction::Close { leader: LeaderRef(latest.leader) },
            change: Change::Close(latest.leader),
            summary: format!("close the {}", about(latest)),
        },
        Intent::CloseSymbol(symbol) => {
            if !positions.iter().any(|o| o.symbol == symbol) {
                return Err(format!("nothing open on {symbol} from this chat"));
            }
            Plan {
                action: SignalAction::CloseAll { symbol: Some(symbol) },
                change: Change::CloseSymbol(symbol),
                summary: format!("close everything the source holds on {symbol}"),
            }
        }
        Intent::CloseAll => Plan {
            action: SignalAction::CloseAll { symbol: None },
            change: Change::CloseChat,
            summary: "close everything the source holds".to_owned(),
        },
        Intent::PartialClose { closed, of } => Plan {
            action: SignalAction::PartialClose {
                leader: LeaderRef(latest.leader),
                closed_qty: Qty::from_units(i64::from(closed)).ok_or("the part closed is out of range")?,
                qty_before: Qty::from_units(i64::from(of)).ok_or("the whole is out of range")?,
            },
            change: Change::Nothing,
            summary: format!("close {closed}/{of} of the {}", about(latest)),
        },
        Intent::StopToEntry => {
            let entry = latest
                .entry
                .ok_or_else(|| format!("the {} gave no entry price to move the stop loss to", about(latest)))?;
            let summary = format!("move the stop loss of the {} to its entry {entry}", about(latest));
            modify(latest, Some(entry), latest.take_profit, summary)
        }
        Intent::MoveStop(price) => {
            if let Some(tp) = latest.take_profit
                && !beyond(latest.side, tp, price)
            {
                return Err(format!("a stop loss {price} past the take profit {tp} of the {}", about(latest)));
            }
            let summary = format!("move the stop loss of the {} to {price}", about(latest));
            modify(latest, Some(price), latest.take_profit, summary)
        }
        Intent::MoveTarget(price) => {
            if let Some(sl) = latest.stop_loss
                && !beyond(latest.side, price, sl)
            {
                return Err(format!("a take profit {price} past the stop loss {sl} of the {}", about(latest)));
            }
            let summary = format!("move the take profit of the {} to {price}", about(latest));
            modify(latest, latest.stop_loss, Some(price), summary)
        }
        Intent::CancelPending => {
            let pending = positions.iter().find(|o| o.pending).ok_or("no pending order from this chat")?;
            Plan {
                action: SignalAction::CancelPending { leader: LeaderRef(pending.leader) },
                change: Change::Close(pending.leader),
                summary: format!("cancel the pending {}", about(pending)),
            }
        }
    };
    Ok(plan)
}

/// Whether `upper` is on the winning side of `lower` for `side` (above for a buy).
fn beyond(side: Side, upper: mirror_model::Price, lower: mirror_model::Price) -> bool {
    match side {
        Side::Buy => upper > lower,
        Side::Sell => upper < lower,
    }
}

fn plan_open(
    open: OpenIntent,
    webhook: &Webhook,
    message_id: i64,
    fresh: impl FnOnce() -> u64,
) -> Result<Plan, String> {
    let qty = webhook.qty.unwrap_or_else(|| Qty::from_units(1).expect("1 is in range"));
    let leader = fresh();
    let signal = OpenSignal {
        leader: LeaderRef(leader),
        symbol: open.symbol,
        side: open.side,
        qty,
        kind: open.kind,
        reference_price: if open.kind == OrderKind::Market { open.entry } else { None },
        stop_loss: open.stop_loss,
        take_profit: open.take_profit,
        time_in_force: TimeInForce::Gtc,
        contract_size: None,
        from_pending: None,
        risk_bp: None,
    };
    let action = SignalAction::Open(signal);
    action.validate().map_err(|e| e.to_string())?;
    let opened = Opened {
        leader,
        message_id,
        symbol: open.symbol,
        side: open.side,
        pending: open.kind.is_pending(),
        entry: open.entry,
        stop_loss: open.stop_loss,
        take_profit: open.take_profit,
    };
    Ok(Plan { action, change: Change::Open(opened), summary: format!("{} {}", qty, open.summary()) })
}

/// An edited message: when it opened a position and still reads as the same open, its new
/// stop loss and take profit are applied; anything else is not executed.
fn plan_edit(intent: Intent, positions: &[Opened], message_id: i64) -> Result<Plan, String> {
    let Some(opened) = positions.iter().find(|o| o.message_id == message_id) else {
        return Err(format!("an edit of message {message_id}, which opened nothing; send a new message to trade"));
    };
    let Intent::Open(open) = intent else {
        return Err(format!("the edit of message {message_id} no longer reads as its open; not executed"));
    };
    if (open.symbol, open.side) != (opened.symbol, opened.side) {
        return Err(format!(
            "the edit of message {message_id} reads as {} {}, not the {} {} it opened; not executed",
            open.side, open.symbol, opened.side, opened.symbol
        ));
    }
    if (open.stop_loss, open.take_profit) == (opened.stop_loss, opened.take_profit) {
        return Err(format!("the edit of message {message_id} changes nothing that was copied"));
    }
    let (stop_loss, take_profit) = (open.stop_loss, open.take_profit);
    let shown = |p: Option<mirror_model::Price>| p.map_or_else(|| "none".to_owned(), |p| p.to_string());
    Ok(Plan {
        action: SignalAction::Modify { leader: LeaderRef(opened.leader), stop_loss, take_profit },
        change: Change::Levels { leader: opened.leader, stop_loss, take_profit },
        summary: format!(
            "message {message_id} edited: stop loss {}, take profit {}",
            shown(stop_loss),
            shown(take_profit)
        ),
    })
}

#[cfg(test)]
mod tests;
