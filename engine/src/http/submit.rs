//! Handing an engine action to the engine from a webhook that keeps state of its own
//! (Telegram, the EA), with the answer saying whether the signal may have been taken: such a
//! webhook must not forget what it recorded for a signal the engine may be fanning out.

use std::time::Duration;

use actix_web::http::StatusCode;
use mirror_model::{Origin, SignalAction, SignalId};

use super::State;
use super::problem::Problem;
use crate::runtime::SubmitError;

/// Why a submit did not return a signal id.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The engine refused it, or failed, as the error says.
    Engine(SubmitError),
    /// No answer within the limit.
    Timeout(Duration),
    /// The blocking call itself failed.
    Failed(String),
}

impl Refusal {
    /// Whether the signal certainly never reached a follower or the journal: it was refused
    /// before it was routed. Everything else may have been taken (with the journal on, an
    /// interrupted fan-out resumes on the next start).
    pub(crate) fn not_taken(&self) -> bool {
        matches!(
            self,
            Self::Engine(
                SubmitError::Invalid(_)
                    | SubmitError::UnknownSymbol { .. }
                    | SubmitError::UnknownOrigin(_)
                    | SubmitError::Encode(_)
            )
        )
    }

    /// The refusal as a problem document.
    pub(crate) fn problem(&self) -> Problem {
        match self {
            Self::Engine(error) => super::submit_problem(error),
            Self::Timeout(limit) => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "unconfirmed",
                "Not confirmed",
                format!("no answer from the engine in {limit:?}; the signal may have been taken: do not resend"),
            ),
            Self::Failed(error) => Problem::internal(format!("the engine call failed: {error}")),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Engine(error) => write!(f, "{error}"),
            Self::Timeout(limit) => write!(f, "no answer from the engine in {limit:?}"),
            Self::Failed(error) => write!(f, "the engine call failed: {error}"),
        }
    }
}

/// Submits `action` as `origin`, made at `created_unix_ms` (the source's time, or now).
pub(crate) async fn submit(
    state: &State,
    origin: Origin,
    action: SignalAction,
    created_unix_ms: Option<i64>,
    note: String,
) -> Result<SignalId, Refusal> {
    let engine = state.engine.clone();
    let call = move || engine.submit(origin, action, created_unix_ms, &note);
    let limit = state.limits.submit_timeout;
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(call)).await {
        Ok(Ok(result)) => result.map_err(Refusal::Engine),
        Ok(Err(error)) => Err(Refusal::Failed(error.to_string())),
        Err(_) => Err(Refusal::Timeout(limit)),
    }
}
