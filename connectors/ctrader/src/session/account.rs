//! Bringing one account up on a connection: authorise it, read the trader and (once) the
//! symbol catalog, settle what happened while it was away, resubscribe its quotes.

use std::collections::HashMap;
use std::sync::Arc;

use mirror_connector::{ConnectionState, ConnectorError, SessionInfo};
use mirror_model::AccountMode;
use tokio::time::Instant;

use super::scheduler::Lane;
use super::{AccountStatus, Meta, Shared, Tokens, connection_event, expect, unix_ms};
use crate::error::{CtraderError, is_auth_code};
use crate::proto::{
    OpenApiMessage, ProtoOAAccountAuthReq, ProtoOAAccountAuthRes, ProtoOAAccountType, ProtoOAAssetListReq,
    ProtoOAAssetListRes, ProtoOAOrderListReq, ProtoOAOrderListRes, ProtoOAReconcileReq, ProtoOAReconcileRes,
    ProtoOARefreshTokenReq, ProtoOARefreshTokenRes, ProtoOASubscribeSpotsReq, ProtoOASubscribeSpotsRes,
    ProtoOASymbolByIdReq, ProtoOASymbolByIdRes, ProtoOASymbolsListReq, ProtoOASymbolsListRes, ProtoOATrader,
    ProtoOATraderReq, ProtoOATraderRes,
};
use crate::tracker::{Catalog, SymbolInfo};
use crate::units::{instrument_spec, money_from_scaled};

/// How far the order-history window reaches around the gap, for clocks that disagree.
const HISTORY_MARGIN_MS: i64 = 60_000;
/// Symbol ids asked for in one `ProtoOASymbolByIdReq`.
const SYMBOLS_PER_REQUEST: usize = 500;

/// Sends a request and waits for an `R` (or the server's refusal) until `deadline`.
pub(crate) async fn call<M: OpenApiMessage, R: OpenApiMessage>(
    shared: &Arc<Shared>,
    lane: Lane,
    message: &M,
    meta: Meta,
    operation: &'static str,
    deadline: Instant,
) -> Result<R, CtraderError> {
    let reply = shared.enqueue(lane, message, meta, operation)?.wait(deadline).await?;
    expect::<R>(&reply, operation)
}

/// Exchanges the refresh token for new tokens, once for all callers that saw `stale`.
pub(crate) async fn refresh_tokens(shared: &Arc<Shared>, stale: &str) -> Result<Tokens, CtraderError> {
    let _single_flight = shared.refresh_lock.lock().await;
    let current = shared.lock().tokens.clone();
    if current.access_token != stale {
        // Someone refreshed while we waited.
        return Ok(current);
    }
    let Some(refresh_token) = current.refresh_token.clone() else {
        return Err(CtraderError::Refused {
            operation: "token refresh",
            code: "OA_AUTH_TOKEN_EXPIRED".into(),
            description: "the access token expired and no refresh token was configured".into(),
        });
    };
    let request = ProtoOARefreshTokenReq { payload_type: None, refresh_token };
    let deadline = Instant::now() + shared.config.request_timeout;
    let fresh: ProtoOARefreshTokenRes =
        call(shared, Lane::Session, &request, Meta::Plain, "token refresh", deadline).await?;
    let tokens = Tokens {
        access_token: fresh.access_token,
        refresh_token: Some(fresh.refresh_token),
        expires_in_s: Some(fresh.expires_in),
    };
    shared.lock().tokens = tokens.clone();
    tracing::info!("cTrader access token refreshed");
    Ok(tokens)
}

/// Brings `account` up on connection `generation`; on failure either gives up for good (the
/// account or the credentials were refused) or tries again shortly on the same connection.
pub(crate) async fn restore(shared: Arc<Shared>, account: i64, generation: u64) {
    let outcome = steps(&shared, account, generation).await;
    let retry = {
        let mut core = shared.lock();
        let current = core.generation;
        let Some(slot) = core.accounts.get_mut(&account) else { return };
        if slot.restoring == Some(generation) {
            slot.restoring = None;
        }
        match outcome {
            Ok(()) => false,
            Err(CtraderError::Refused { code, description, .. }) if is_auth_code(&code) => {
                let reason = format!("{code}: {description}");
                tracing::error!(account, %reason, "cTrader refused the account");
                slot.wanted = false;
                slot.emit(
                    connection_event(ConnectionState::Disconnected { reason: reason.clone() }),
                    &shared.counters(),
                );
                slot.set_status(AccountStatus::Failed(ConnectorError::Auth(reason)));
                false
            }
            Err(error) => {
                tracing::warn!(account, %error, "authorising the account failed; trying again");
                slot.wanted && current == generation
            }
        }
    };
    if retry {
        tokio::time::sleep(shared.config.reconnect_min).await;
        super::driver::start_restore(&shared, account, generation);
    }
}

async fn steps(shared: &Arc<Shared>, account: i64, generation: u64) -> Result<(), CtraderError> {
    let deadline = || Instant::now() + shared.config.request_timeout;
    authorize(shared, account, deadline()).await?;
    let trader_request = ProtoOATraderReq { payload_type: None, ctid_trader_account_id: account };
    let trader: ProtoOATraderRes =
        call(shared, Lane::Session, &trader_request, Meta::Plain, "trader", deadline()).await?;
    let trader = trader.trader.ok_or_else(|| CtraderError::Protocol("ProtoOATraderRes without a trader".into()))?;
    let needs_catalog = {
        let core = shared.lock();
        core.accounts.get(&account).is_none_or(|slot| slot.tracker.catalog.is_empty() || slot.symbols_stale)
    };
    let catalog = if needs_catalog { Some(load_catalog(shared, account, &trader).await?) } else { None };
    // What the connection missed: orders in doubt and resting orders are looked up in the
    // order history of the gap (a historical request), then the snapshot is compared.
    let (baselined, history_from) = {
        let mut core = shared.lock();
        let went_down = core.went_down_unix_ms;
        let slot = core.accounts.get_mut(&account).ok_or_else(|| CtraderError::Down("account removed".into()))?;
        apply_trader(slot, &trader, catalog);
        let earliest_doubt = slot.in_doubt.values().min().copied();
        let wants_history = !slot.in_doubt.is_empty() || slot.tracker.has_pending();
        let from = [earliest_doubt, went_down].into_iter().flatten().min();
        (slot.tracker.baselined(), from.filter(|_| wants_history))
    };
    let meta = if baselined {
        let history = match history_from {
            Some(from) => {
                let request = ProtoOAOrderListReq {
                    payload_type: None,
                    ctid_trader_account_id: account,
                    from_timestamp: from - HISTORY_MARGIN_MS,
                    to_timestamp: unix_ms() + HISTORY_MARGIN_MS,
                };
                let list: ProtoOAOrderListRes =
                    call(shared, Lane::Session, &request, Meta::Plain, "order history", deadline()).await?;
                list.order
            }
            None => Vec::new(),
        };
        let in_doubt =
            shared.lock().accounts.get(&account).map(|s| s.in_doubt.keys().copied().collect()).unwrap_or_default();
        Meta::Restore { history: Arc::new(history), in_doubt }
    } else {
        Meta::Baseline
    };
    let reconcile = ProtoOAReconcileReq { payload_type: None, ctid_trader_account_id: account };
    // The reader applies the snapshot the moment it arrives, between the events before it
    // and the events after it.
    let _: ProtoOAReconcileRes = call(shared, Lane::Session, &reconcile, meta, "reconcile", deadline()).await?;
    let spots: Vec<i64> =
        shared.lock().accounts.get(&account).map(|slot| slot.spots.iter().copied().collect()).unwrap_or_default();
    if !spots.is_empty() {
        let subscribe = ProtoOASubscribeSpotsReq {
            payload_type: None,
            ctid_trader_account_id: account,
            symbol_id: spots,
            subscribe_to_spot_timestamp: Some(true),
        };
        match call::<_, ProtoOASubscribeSpotsRes>(
            shared,
            Lane::Session,
            &subscribe,
            Meta::Plain,
            "resubscribe",
            deadline(),
        )
        .await
        {
            Ok(_) => {}
            Err(CtraderError::Refused { code, .. }) if code == "ALREADY_SUBSCRIBED" => {}
            Err(error) => return Err(error),
        }
    }
    let mut core = shared.lock();
    if core.generation != generation || !core.app_authed {
        return Err(CtraderError::ConnectionLost { operation: "restore", sent: false });
    }
    let counters = shared.counters();
    let slot = core.accounts.get_mut(&account).ok_or_else(|| CtraderError::Down("account removed".into()))?;
    if !slot.wanted {
        return Ok(());
    }
    slot.ready_generation = Some(generation);
    slot.restoring = None;
    let info = slot.info.clone().unwrap_or_else(|| SessionInfo {
        broker_account: account.to_string(),
        currency: String::new(),
        mode: AccountMode::Hedging,
    });
    slot.emit(connection_event(ConnectionState::Connected), &counters);
    slot.set_status(AccountStatus::Ready(info));
    drop(core);
    shared.wake_writer();
    Ok(())
}

async fn authorize(shared: &Arc<Shared>, account: i64, deadline: Instant) -> Result<(), CtraderError> {
    for attempt in 0..2 {
        let access_token = shared.lock().tokens.access_token.clone();
        let request = ProtoOAAccountAuthReq {
            payload_type: None,
            ctid_trader_account_id: account,
            access_token: access_token.clone(),
        };
        match call::<_, ProtoOAAccountAuthRes>(shared, Lane::Session, &request, Meta::Plain, "account auth", deadline)
            .await
        {
            Ok(_) => return Ok(()),
            // Authorised already on this connection (a second restore): nothing to do.
            Err(CtraderError::Refused { code, .. }) if code == "ALREADY_LOGGED_IN" => return Ok(()),
            Err(CtraderError::Refused { code, .. })
                if attempt == 0 && (code == "OA_AUTH_TOKEN_EXPIRED" || code == "CH_ACCESS_TOKEN_INVALID") =>
            {
                refresh_tokens(shared, &access_token).await?;
            }
            Err(error) => return Err(error),
        }
    }
    Err(CtraderError::Protocol("account auth failed after a token refresh".into()))
}

/// Fetches assets and symbols and builds the catalog of what Mirror can trade.
async fn load_catalog(
    shared: &Arc<Shared>,
    account: i64,
    trader: &ProtoOATrader,
) -> Result<(Catalog, String), CtraderError> {
    let deadline = || Instant::now() + shared.config.request_timeout;
    let assets_request = ProtoOAAssetListReq { payload_type: None, ctid_trader_account_id: account };
    let assets: ProtoOAAssetListRes =
        call(shared, Lane::Session, &assets_request, Meta::Plain, "assets", deadline()).await?;
    let names: HashMap<i64, String> = assets.asset.into_iter().map(|a| (a.asset_id, a.name)).collect();
    let currency = names.get(&trader.deposit_asset_id).cloned().unwrap_or_default();
    let list_request = ProtoOASymbolsListReq {
        payload_type: None,
        ctid_trader_account_id: account,
        include_archived_symbols: Some(false),
    };
    let list: ProtoOASymbolsListRes =
        call(shared, Lane::Session, &list_request, Meta::Plain, "symbols", deadline()).await?;
    let light: HashMap<i64, _> =
        list.symbol.into_iter().filter(|s| s.enabled != Some(false)).map(|s| (s.symbol_id, s)).collect();
    let mut ids: Vec<i64> = light.keys().copied().collect();
    ids.sort_unstable();
    let mut catalog = Catalog::default();
    for chunk in ids.chunks(SYMBOLS_PER_REQUEST) {
        let request =
            ProtoOASymbolByIdReq { payload_type: None, ctid_trader_account_id: account, symbol_id: chunk.to_vec() };
        let full: ProtoOASymbolByIdRes =
            call(shared, Lane::Session, &request, Meta::Plain, "symbol specs", deadline()).await?;
        for symbol in &full.symbol {
            let Some(summary) = light.get(&symbol.symbol_id) else { continue };
            let name = summary.symbol_name.clone().unwrap_or_default();
            let base = summary.base_asset_id.and_then(|id| names.get(&id)).map(String::as_str);
            let quote = summary.quote_asset_id.and_then(|id| names.get(&id)).map(String::as_str);
            match instrument_spec(&name, symbol, base, quote) {
                Ok((spec, scale)) => catalog.insert(SymbolInfo { id: symbol.symbol_id, spec, scale }),
                Err(error) => tracing::warn!(account, %error, "symbol left out of the catalog"),
            }
        }
    }
    Ok((catalog, currency))
}

fn apply_trader(slot: &mut super::AccountSlot, trader: &ProtoOATrader, catalog: Option<(Catalog, String)>) {
    let mode = match ProtoOAAccountType::try_from(trader.account_type.unwrap_or(0)) {
        Ok(ProtoOAAccountType::Netted) => AccountMode::Netting,
        _ => AccountMode::Hedging,
    };
    let money_digits = trader.money_digits.unwrap_or(2);
    slot.tracker.mode = mode;
    slot.tracker.money_digits = money_digits;
    if let Some(balance) = money_from_scaled(trader.balance, money_digits) {
        slot.tracker.set_balance(balance);
    }
    let currency = match catalog {
        Some((catalog, currency)) => {
            slot.tracker.catalog = catalog;
            slot.symbols_stale = false;
            currency
        }
        None => slot.info.as_ref().map(|i| i.currency.clone()).unwrap_or_default(),
    };
    let login = trader.trader_login.unwrap_or(trader.ctid_trader_account_id);
    slot.info = Some(SessionInfo { broker_account: login.to_string(), currency, mode });
}
