//! The statements that write a batch: one multi-row statement per table (`unnest` of one
//! array per column), all in one transaction that also moves the checkpoint.
//!
//! Decimals travel as text and are cast to `numeric` by Postgres, so nothing passes through
//! a float.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement, Transaction};

use super::postgres::{PgError, PgSettings, Scrubber, answer};
use super::rows::{Batch, SetupRows};

const LOCK_CHECKPOINT: &str = "SELECT checkpoint FROM journals WHERE id = $1 FOR UPDATE";
const READ_CHECKPOINT: &str = "SELECT id, checkpoint FROM journals WHERE uid = $1";
const ENSURE_JOURNAL: &str = "INSERT INTO journals (uid) VALUES ($1) ON CONFLICT (uid) DO NOTHING";
const SET_CHECKPOINT: &str = "UPDATE journals SET checkpoint = $2, updated_at = now() WHERE id = $1";

const SIGNALS: &str =
    "INSERT INTO signals (journal, id, journal_pos, origin_kind, origin_id, action, leader_ref, symbol, side,
        qty, signal, created_at, accepted_mono_ns)
    SELECT $13::int, id, journal_pos, origin_kind, origin_id, action, leader_ref::numeric, symbol, side, qty::numeric,
        signal::jsonb, created_at, accepted_mono_ns
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[], $10::text[], $11::timestamptz[], $12::bigint[])
        AS u(id, journal_pos, origin_kind, origin_id, action, leader_ref, symbol, side, qty, signal, created_at,
            accepted_mono_ns)
    ON CONFLICT DO NOTHING";

const DELIVERIES: &str = "INSERT INTO deliveries (journal, journal_pos, idx, signal_id, account, link, input_seq,
        handled_at)
    SELECT $8::int, * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
        $7::timestamptz[])
    ON CONFLICT DO NOTHING";

/// Closes take their symbol and side from the position when the batch did not know them,
/// corrections theirs from the close they correct.
const ORDERS: &str =
    "INSERT INTO orders (journal, client_id, account, signal_id, leg, kind, symbol, side, qty, order_type,
        order_price, adjustment, position_id, corrects, status, journal_pos, created_at, updated_at)
    SELECT $16::int, u.client_id, u.account, u.signal_id, u.leg, u.kind, COALESCE(u.symbol, p.symbol, c.symbol),
        COALESCE(u.side, CASE COALESCE(p.side, c.side) WHEN 'buy' THEN 'sell' WHEN 'sell' THEN 'buy' END),
        u.qty::numeric, u.order_type, u.order_price::numeric, u.adjustment, u.position_id::numeric, u.corrects,
        'submitted', u.journal_pos, u.created_at, u.created_at
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::timestamptz[])
        AS u(client_id, account, signal_id, leg, kind, symbol, side, qty, order_type, order_price, adjustment,
            position_id, corrects, journal_pos, created_at)
    LEFT JOIN positions p ON u.kind = 'close' AND p.account = u.account AND p.position_id = u.position_id::numeric
    LEFT JOIN orders c ON u.kind = 'correction' AND c.journal = $16::int AND c.client_id = u.corrects
    ON CONFLICT DO NOTHING";

/// One row per order (folded by the batch); a `NULL` status means the last event was an
/// execution, and the status follows from the quantity filled in all. `trim_scale` keeps the
/// sum in the engine's own notation (0.6, not 0.60), however the batches fell.
const ORDER_UPDATES: &str = "UPDATE orders o SET
        status = COALESCE(u.status,
            CASE WHEN o.filled_qty + u.filled_add::numeric >= o.qty THEN 'filled' ELSE 'partially_filled' END),
        broker_id = COALESCE(u.broker_id::numeric, o.broker_id),
        reject_reason = COALESCE(u.reject_reason, o.reject_reason),
        filled_qty = trim_scale(o.filled_qty + u.filled_add::numeric),
        updated_at = u.updated_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
        AS u(client_id, status, broker_id, reject_reason, filled_add, updated_at)
    WHERE o.journal = $7::int AND o.client_id = u.client_id";

/// Closes sent before their position was seen take its symbol and the other side once it is.
const RESOLVE_CLOSES: &str = "UPDATE orders o SET symbol = u.symbol,
        side = CASE u.side WHEN 'buy' THEN 'sell' ELSE 'buy' END
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(account, position_id, symbol, side)
    WHERE o.journal = $5::int AND o.kind = 'close' AND (o.symbol IS NULL OR o.side IS NULL)
        AND o.account = u.account AND o.position_id = u.position_id::numeric";

/// Corrections take the other side of the close they correct once that one is known.
const RESOLVE_CORRECTIONS: &str = "UPDATE orders c SET symbol = COALESCE(c.symbol, o.symbol),
        side = CASE o.side WHEN 'buy' THEN 'sell' ELSE 'buy' END
    FROM orders o
    WHERE c.journal = $1::int AND c.kind = 'correction' AND c.side IS NULL
        AND o.journal = c.journal AND o.client_id = c.corrects AND o.side IS NOT NULL";

const FILLS: &str = "INSERT INTO fills (journal, journal_pos, idx, client_id, account, signal_id, qty, price, position_id,
        filled_at)
    SELECT $10::int, journal_pos, idx, client_id, account, signal_id, qty::numeric, price::numeric, position_id::numeric,
        filled_at
    FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[],
        $9::timestamptz[])
        AS u(journal_pos, idx, client_id, account, signal_id, qty, price, position_id, filled_at)
    ON CONFLICT DO NOTHING";

const POSITIONS_RESET: &str = "DELETE FROM positions WHERE account = ANY($1::bigint[])";

const POSITIONS_CLOSE: &str = "DELETE FROM positions p
    USING unnest($1::bigint[], $2::text[]) AS u(account, position_id)
    WHERE p.account = u.account AND p.position_id = u.position_id::numeric";

const POSITIONS_OPEN: &str =
    "INSERT INTO positions (journal, account, position_id, symbol, side, qty, open_price, stop_loss,
        take_profit, journal_pos, updated_at)
    SELECT $11::int, account, position_id::numeric, symbol, side, qty::numeric, open_price::numeric, stop_loss::numeric,
        take_profit::numeric, journal_pos, updated_at
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::bigint[], $10::timestamptz[])
        AS u(account, position_id, symbol, side, qty, open_price, stop_loss, take_profit, journal_pos, updated_at)
    ON CONFLICT (account, position_id) DO UPDATE SET symbol = EXCLUDED.symbol, side = EXCLUDED.side,
        qty = EXCLUDED.qty, open_price = EXCLUDED.open_price, stop_loss = EXCLUDED.stop_loss,
        take_profit = EXCLUDED.take_profit, journal = EXCLUDED.journal, journal_pos = EXCLUDED.journal_pos,
        updated_at = EXCLUDED.updated_at";

const POSITION_EVENTS: &str = "INSERT INTO position_events (journal, journal_pos, idx, account, position_id, change,
        change_qty, symbol, side, qty, open_price, stop_loss, take_profit, realized_pnl, at)
    SELECT $15::int, journal_pos, idx, account, position_id::numeric, change, change_qty::numeric, symbol, side, qty::numeric,
        open_price::numeric, stop_loss::numeric, take_profit::numeric, realized_pnl::numeric, at
    FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[])
        AS u(journal_pos, idx, account, position_id, change, change_qty, symbol, side, qty, open_price, stop_loss,
            take_profit, realized_pnl, at)
    ON CONFLICT DO NOTHING";

const EQUITY: &str =
    "INSERT INTO equity_history (journal, journal_pos, idx, account, balance, equity, margin_used, source, at)
    SELECT $9::int, journal_pos, idx, account, balance::numeric, equity::numeric, margin_used::numeric, source, at
    FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::timestamptz[])
        AS u(journal_pos, idx, account, balance, equity, margin_used, source, at)
    ON CONFLICT DO NOTHING";

const COPY_EVENTS: &str =
    "INSERT INTO copy_events (journal, journal_pos, idx, account, signal_id, kind, client_id, reason,
        detail, at)
    SELECT $10::int, journal_pos, idx, account, signal_id, kind, client_id, reason, detail::jsonb, at
    FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::timestamptz[])
        AS u(journal_pos, idx, account, signal_id, kind, client_id, reason, detail, at)
    ON CONFLICT DO NOTHING";

const AUDIT_LOG: &str = "INSERT INTO audit_log (journal, journal_pos, idx, who, what, account, detail, at)
    SELECT $8::int, journal_pos, idx, who, what, account, detail::jsonb, at
    FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[])
        AS u(journal_pos, idx, who, what, account, detail, at)
    ON CONFLICT DO NOTHING";

/// Only a changed account moves its `updated_at`.
const ACCOUNTS: &str = "INSERT INTO accounts (id, name, mode, is_leader, risk, updated_at)
    SELECT id, name, mode, is_leader, risk::jsonb, now()
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bool[], $5::text[]) AS u(id, name, mode, is_leader, risk)
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, mode = EXCLUDED.mode, is_leader = EXCLUDED.is_leader,
        risk = EXCLUDED.risk, updated_at = EXCLUDED.updated_at
    WHERE (accounts.name, accounts.mode, accounts.is_leader, accounts.risk)
        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.mode, EXCLUDED.is_leader, EXCLUDED.risk)";

/// A follower's links are exactly those of its latest setup.
const LINKS_PRUNE: &str = "DELETE FROM links l WHERE l.follower = ANY($1::bigint[])
    AND NOT EXISTS (SELECT 1 FROM unnest($2::bigint[], $3::bigint[]) AS k(follower, id)
        WHERE k.follower = l.follower AND k.id = l.id)";

const LINKS: &str = "INSERT INTO links (follower, id, origin_kind, origin_id, rules, updated_at)
    SELECT follower, id, origin_kind, origin_id, rules::jsonb, now()
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])
        AS u(follower, id, origin_kind, origin_id, rules)
    ON CONFLICT (follower, id) DO UPDATE SET origin_kind = EXCLUDED.origin_kind, origin_id = EXCLUDED.origin_id,
        rules = EXCLUDED.rules, updated_at = EXCLUDED.updated_at
    WHERE (links.origin_kind, links.origin_id, links.rules)
        IS DISTINCT FROM (EXCLUDED.origin_kind, EXCLUDED.origin_id, EXCLUDED.rules)";

/// Every statement, prepared once per connection.
pub(crate) struct Statements {
    lock_checkpoint: Statement,
    set_checkpoint: Statement,
    signals: Statement,
    deliveries: Statement,
    orders: Statement,
    order_updates: Statement,
    resolve_closes: Statement,
    resolve_corrections: Statement,
    fills: Statement,
    positions_reset: Statement,
    positions_close: Statement,
    positions_open: Statement,
    position_events: Statement,
    equity: Statement,
    copy_events: Statement,
    audit_log: Statement,
    accounts: Statement,
    links_prune: Statement,
    links: Statement,
}

impl Statements {
    pub(crate) async fn prepare(client: &Client, settings: &PgSettings, scrubber: &Scrubber) -> Result<Self, PgError> {
        let prepare = |sql: &'static str| answer(settings, scrubber, "preparing statements", client.prepare(sql));
        Ok(Self {
            lock_checkpoint: prepare(LOCK_CHECKPOINT).await?,
            set_checkpoint: prepare(SET_CHECKPOINT).await?,
            signals: prepare(SIGNALS).await?,
            deliveries: prepare(DELIVERIES).await?,
            orders: prepare(ORDERS).await?,
            order_updates: prepare(ORDER_UPDATES).await?,
            resolve_closes: prepare(RESOLVE_CLOSES).await?,
            resolve_corrections: prepare(RESOLVE_CORRECTIONS).await?,
            fills: prepare(FILLS).await?,
            positions_reset: prepare(POSITIONS_RESET).await?,
            positions_close: prepare(POSITIONS_CLOSE).await?,
            positions_open: prepare(POSITIONS_OPEN).await?,
            position_events: prepare(POSITION_EVENTS).await?,
            equity: prepare(EQUITY).await?,
            copy_events: prepare(COPY_EVENTS).await?,
            audit_log: prepare(AUDIT_LOG).await?,
            accounts: prepare(ACCOUNTS).await?,
            links_prune: prepare(LINKS_PRUNE).await?,
            links: prepare(LINKS).await?,
        })
    }
}

/// Registers the journal `uid` (once) and returns its number in the database and its
/// checkpoint: the last journal position whose rows are in Postgres.
pub(crate) async fn read_checkpoint(
    client: &Client,
    settings: &PgSettings,
    scrubber: &Scrubber,
    uid: &str,
) -> Result<(i32, u64), PgError> {
    answer(settings, scrubber, "registering the journal", client.execute(ENSURE_JOURNAL, &[&uid])).await?;
    let row = answer(settings, scrubber, "reading the checkpoint", client.query_one(READ_CHECKPOINT, &[&uid])).await?;
    Ok((row.get(0), position(row.get(1))?))
}

fn position(value: i64) -> Result<u64, PgError> {
    u64::try_from(value).map_err(|_| PgError::Statement {
        during: "reading the checkpoint",
        reason: format!("negative position {value}"),
    })
}

/// One transaction's statements, each bounded by the answer timeout.
struct Tx<'a> {
    transaction: &'a Transaction<'a>,
    /// The journal's number in the database: every row carries it.
    journal: i32,
    settings: &'a PgSettings,
    scrubber: &'a Scrubber,
}

impl Tx<'_> {
    async fn exec(
        &self,
        during: &'static str,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError> {
        answer(self.settings, self.scrubber, during, self.transaction.execute(statement, params)).await
    }
}

/// Writes one batch and moves the checkpoint from `expected` to `batch.last`, in one
/// transaction. Returns the rows inserted, updated or deleted.
pub(crate) async fn write_batch(
    client: &mut Client,
    statements: &Statements,
    settings: &PgSettings,
    scrubber: &Scrubber,
    journal: i32,
    batch: &Batch,
    expected: u64,
) -> Result<u64, PgError> {
    let transaction = answer(settings, scrubber, "beginning a batch", client.transaction()).await?;
    let tx = Tx { transaction: &transaction, journal, settings, scrubber };
    let locked = answer(
        settings,
        scrubber,
        "locking the checkpoint",
        transaction.query_opt(&statements.lock_checkpoint, &[&journal]),
    )
    .await?;
    let found = match locked {
        Some(row) => position(row.get(0))?,
        None => return Err(PgError::CheckpointMoved { expected, found: 0 }),
    };
    if found != expected {
        return Err(PgError::CheckpointMoved { expected, found });
    }
    let mut rows = 0;
    rows += signals(&tx, statements, batch).await?;
    rows += deliveries(&tx, statements, batch).await?;
    rows += orders(&tx, statements, batch).await?;
    rows += fills(&tx, statements, batch).await?;
    rows += positions(&tx, statements, batch).await?;
    rows += equity(&tx, statements, batch).await?;
    rows += copy_events(&tx, statements, batch).await?;
    rows += audit_log(&tx, statements, batch).await?;
    if let Some(setups) = &batch.setups {
        rows += setups_in(&tx, statements, setups).await?;
    }
    let last = super::rows::big("journal position", batch.last)?;
    tx.exec("moving the checkpoint", &statements.set_checkpoint, &[&journal, &last]).await?;
    answer(settings, scrubber, "committing a batch", transaction.commit()).await?;
    Ok(rows)
}

/// Upserts accounts and links, in a transaction of their own.
pub(crate) async fn write_setups(
    client: &mut Client,
    statements: &Statements,
    settings: &PgSettings,
    scrubber: &Scrubber,
    setups: &SetupRows,
) -> Result<u64, PgError> {
    let transaction = answer(settings, scrubber, "beginning the setups", client.transaction()).await?;
    let rows = setups_in(&Tx { transaction: &transaction, journal: 0, settings, scrubber }, statements, setups).await?;
    answer(settings, scrubber, "committing the setups", transaction.commit()).await?;
    Ok(rows)
}

async fn setups_in(tx: &Tx<'_>, statements: &Statements, setups: &SetupRows) -> Result<u64, PgError> {
    let mut rows = 0;
    if !setups.accounts.is_empty() {
        let a = &setups.accounts;
        let id: Vec<i64> = a.iter().map(|r| r.id).collect();
        let name: Vec<&str> = a.iter().map(|r| r.name.as_str()).collect();
        let mode: Vec<&str> = a.iter().map(|r| r.mode).collect();
        let is_leader: Vec<bool> = a.iter().map(|r| r.is_leader).collect();
        let risk: Vec<&str> = a.iter().map(|r| r.risk.as_str()).collect();
        rows += tx.exec("writing accounts", &statements.accounts, &[&id, &name, &mode, &is_leader, &risk]).await?;
        let l = &setups.links;
        let follower: Vec<i64> = l.iter().map(|r| r.follower).collect();
        let link: Vec<i64> = l.iter().map(|r| r.id).collect();
        rows += tx.exec("pruning links", &statements.links_prune, &[&id, &follower, &link]).await?;
        if !l.is_empty() {
            let origin_kind: Vec<&str> = l.iter().map(|r| r.origin_kind).collect();
            let origin_id: Vec<i64> = l.iter().map(|r| r.origin_id).collect();
            let rules: Vec<&str> = l.iter().map(|r| r.rules.as_str()).collect();
            rows += tx
                .exec("writing links", &statements.links, &[&follower, &link, &origin_kind, &origin_id, &rules])
                .await?;
        }
    }
    Ok(rows)
}

async fn signals(tx: &Tx<'_>, statements: &Statements, batch: &Batch) -> Result<u64, PgError> {
    let r = &batch.signals;
    if r.is_empty() {
        return Ok(0);
    }
    let id: Vec<i64> = r.iter().map(|r| r.id).collect();
    let journal_pos: Vec<i64> = r.iter().map(|r| r.journal_pos).collect();
    let origin_kind: Vec<&str> = r.iter().map(|r| r.origin_kind).collect();
    let origin_id: Vec<i64> = r.iter().map(|r| r.origin_id).collect();
    let action: Vec<&str> = r.iter().map(|r| r.action).collect();
    let leader_ref: Vec<Option<&str>> = r.iter().map(|r| r.leader_ref.as_deref()).collect();
    let symbol: Vec<Option<&str>> = r.iter().map(|r| r.symbol.as_deref()).collect();
    let side: Vec<Option<&str>> = r.iter().map(|r| r.side).collect();
    let qty: Vec<Option<&str>> = r.iter().map(|r| r.qty.as_deref()).collect();
    let signal: Vec<&str> = r.iter().map(|r| r.signal.as_str()).collect();
    let created_at: Vec<_> = r.iter().map(|r| r.created_at).collect();
    let accepted: Vec<i64> = r.iter().map(|r| r.accepted_mono_ns).collect();
    tx.exec(
        "writing signals",
        &statements.signals,
        &[
            &id,
            &journal_pos,
            &origin_kind,
            &origin_id,
            &action,
            &leader_ref,
            &symbol,
            &side,
            &qty,
            &signal,
            &created_at,
            &accepted,
            &tx.journal,
        ],
    )
    .await
}

async fn deliveries(tx: &Tx<'_>, statements: &Statements, batch: &Batch) -> Result<u64, PgError> {
    let r = &batch.deliveries;
    if r.is_empty() {
        return Ok(0);
    }
    let journal_pos: Vec<i64> = r.iter().map(|r| r.journal_pos).collect();
    let idx: Vec<i32> = r.iter().map(|r| r.idx).collect();
    let signal_id: Vec<i64> = r.iter().map(|r| r.signal_id).collect();
    let account: Vec<i64> = r.iter().map(|r| r.account).collect();
    let link: Vec<i64> = r.iter().map(|r| r.link).collect();
    let input_seq: Vec<i64> = r.iter().map(|r| r.input_seq).collect();
    let handled_at: Vec<_> = r.iter().map(|r| r.handled_at).collect();
    tx.exec(
        "writing deliveries",
        &statements.deliveries,
        &[&journal_pos, &idx, &signal_id, &account, &link, &input_seq, &handled_at, &tx.journal],
    )
    .await
}

/// New orders first, then the folded updates (which may be to orders inserted just now).
async fn orders(tx: &Tx<'_>, statements: &Statements, batch: &Batch) -> Result<u64, PgError> {
    let mut rows = 0;
    let r = &batch.orders;
    if !r.is_empty() {
        let client_id: Vec<&str> = r.iter().map(|r| r.client_id.as_str()).collect();
        let account: Vec<i64> = r.iter().map(|r| r.account).collect();
        let signal_id: Vec<i64> = r.iter().map(|r| r.signal_id).collect();
        let leg: Vec<i32> = r.iter().map(|r| r.leg).collect();
        let kind: Vec<&str> = r.iter().map(|r| r.kind).collect();
        let symbol: Vec<Option<&str>> = r.iter().map(|r| r.symbol.as_deref()).collect();
        let side: Vec<Option<&str>> = r.iter().map(|r| r.side).collect();
        let qty: Vec<&str> = r.iter().map(|r| r.qty.as_str()).collect();
        let order_type: Vec<Option<&str>> = r.iter().map(|r| r.order_type).collect();
        let order_price: Vec<Option<&str>> = r.iter().map(|r| r.order_price.as_deref()).collect();
        let adjustment: Vec<Option<&str>> = r.iter().map(|r| r.adjustment.as_deref()).collect();
        let position_id: Vec<Option<&str>> = r.iter().map(|r| r.position_id.as_deref()).collect();
        let corrects: Vec<Option<&str>> = r.iter().map(|r| r.corrects.as_deref()).collect();
        let journal_pos: Vec<i64> = r.iter().map(|r| r.journal_pos).collect();
        let created_at: Vec<_> = r.iter().map(|r| r.created_at).collect();
        rows += tx
            .exec(
                "writing orders",
                &statements.orders,
                &[
                    &client_id,
                    &account,
                    &signal_id,
                    &leg,
                    &kind,
                    &symbol,
                    &side,
                    &qty,
                    &order_type,
                    &order_price,
                    &adjustment,
                    &position_id,
                    &corrects,
                    &journal_pos,
                    &created_at,
                    &tx.journal,
                ],
            )
            .await?;
    }
    let u = &batch.order_updates;
    if !u.is_empty() {
        let client_id: Vec<&str> = u.iter().map(|u| u.client_id.as_str()).collect();
        let status: Vec<Option<&str>> = u.iter().map(|u| u.status).collect();
        let broker_id: Vec<Option<&str>> = u.iter().map(|u| u.broker_id.as_deref()).collect();
        let reject_reason: Vec<Option<&str>> = u.iter().map(|u| u.reject_reason.as_deref()).collect();
        let filled_add: Vec<&str> = u.iter().map(|u| u.filled_add.as_str()).collect();
        let updated_at: Vec<_> = u.iter().map(|u| u.updated_at).collect();
        rows += tx
            .exec(
                "updating orders",
                &statements.order_updates,
                &[&client_id, &status, &broker_id, &reject_reason, &filled_add, &updated_at, &tx.journal],
            )
            .await?;
    }
    if !batch.position_sides.is_empty() {
        let sides = &batch.position_sides;
        let account: Vec<i64> = sides.iter().map(|(account, ..)| *account).collect();
        let position_id: Vec<&str> = sides.iter().map(|(_, id, ..)| id.as_str()).collect();
        let symbol: Vec<&str> = sides.iter().map(|(_, _, symbol, _)| symbol.as_str()).collect();
        let side: Vec<&str> = sides.iter().map(|(.., side)| *side).collect();
        rows += tx
            .exec(
                "resolving closes",
                &statements.resolve_closes,
                &[&account, &position_id, &symbol, &side, &tx.journal],
            )
            .await?;
        rows += tx.exec("resolving corrections", &statements.resolve_corrections, &[&tx.journal]).await?;
    }
    Ok(rows)
}

async fn fills(tx: &Tx<'_>, statements: &Statements, batch: &Batch) -> Result<u64, PgError> {
    let r = &batch.fills;
    if r.is_empty() {
        return Ok(0);
    }
    let journal_pos: Vec<i64> = r.iter().map(|r| r.journal_pos).collect();
    let idx: Vec<i32> = r.iter().map(|r| r.idx).collect();
    let client_id: Vec<&str> = r.iter().map(|r| r.client_id.as_str()).collect();
    let account: Vec<i64> = r.iter().map(|r| r.account).collect();
    let signal_id: Vec<Option<i64>> = r.iter().map(|r| r.signal_id).collect();
    let qty: Vec<&str> = r.iter().map(|r| r.qty.as_str()).collect();
    let price: Vec<&str> = r.iter().map(|r| r.price.as_str()).collect();
    let position_id: Vec<&str> = r.iter().map(|r| r.position_id.as_str()).collect();
    let filled_at: Vec<_> = r.iter().map(|r| r.filled_at).collect();
    tx.exec(
        "writing fills",
        &statements.fills,
        &[&journal_pos, &idx, &client_id, &account, &signal_id, &qty, &price, &position_id, &filled_at, &tx.journal],
    )
    .await
}

/// Snapshot resets, then closes, then the positions open after the batch; then the history.
async fn positions(tx: &Tx<'_>, statements: &Statements, batch: &Batch) -> Result<u64, PgError> {
    let mut rows = 0;
    if !batch.position_resets.is_empty() {
        rows += tx.exec("resetting positions", &statements.positions_reset, &[&batch.position_resets]).await?;
    }
    if !batch.positions_closed.is_empty() {
        let account: Vec<i64> = batch.positions_closed.iter().map(|(account, _)| *account).collect();
        let position_id: Vec<&str> = batch.positions_closed.iter().map(|(_, id)| id.as_str()).collect();
        rows += tx.exec("deleting positions", &statements.positions_close, &[&account, &position_id]).await?;
    }
    let r = &batch.positions_open;
    if !r.is_empty() {
        let account: Vec<i64> = r.iter().map(|r| r.account).collect();
        let position_id: Vec<&str> = r.iter().map(|r| r.position_id.as_str()).collect();
        let symbol: Vec<&str> = r.iter().map(|r| r.symbol.as_str()).collect();
        let side: Vec<&str> = r.iter().map(|r| r.side).collect();
        let qty: Vec<&str> = r.iter().map(|r| r.qty.as_str()).collect();
        let open_price: Vec<&str> = r.iter().map(|r| r.open_price.as_str()).collect();
        let stop_loss: Vec<Option<&str>> = r.iter().map(|r| r.stop_loss.as_deref()).collect();
        let take_profit: Vec<Option<&str>> = r.iter().map(|r| r.take_profit.as_deref()).collect();
        let journal_pos: Vec<i64> = r.iter().map(|r| r.journal_pos).collect();
        let updated_at: Vec<_> = r.iter().map(|r| r.updated_at).collect();
        rows += tx
            .exec(
                "writing positions",
                &statements.positions_open,
                &[
                    &account,
                    &position_id,
                    &symbol,
                    &side,
                    &qty,
                    &open_price,
                    &stop_loss,
                    &take_profit,
                    &journal_pos,
                    &updated_at,
                    &tx.journal,
                ],
            )
            .await?;
    }
    let e = &batch.position_events;
    if !e.is_empty() {
        let journal_pos: Vec<i64> = e.iter().map(|e| e.journal_pos).collect();
        let idx: Vec<i32> = e.iter().map(|e| e.idx).collect();
        let account: Vec<i64> = e.iter().map(|e| e.position.account).collect();
        let position_id: Vec<&str> = e.iter().map(|e| e.position.position_id.as_str()).collect();
        let change: Vec<&str> = e.iter().map(|e| e.change).collect();
        let change_qty: Vec<Option<&str>> = e.iter().map(|e| e.change_qty.as_deref()).collect();
        let symbol: Vec<&str> = e.iter().map(|e| e.position.symbol.as_str()).collect();
        let side: Vec<&str> = e.iter().map(|e| e.position.side).collect();
        let qty: Vec<&str> = e.iter().map(|e| e.position.qty.as_str()).collect();
        let open_price: Vec<&str> = e.iter().map(|e| e.position.open_price.as_str()).collect();
        let stop_loss: Vec<Option<&str>> = e.iter().map(|e| e.position.stop_loss.as_deref()).collect();
        let take_profit: Vec<Option<&str>> = e.iter().map(|e| e.position.take_profit.as_deref()).collect();
        let realized_pnl: Vec<&str> = e.iter().map(|e| e.realized_pnl.as_str()).collect();
        let at: Vec<_> = e.iter().map(|e| e.position.updated_at).collect();
        rows += tx
            .exec(
                "writing position events",
                &statements.position_events,
                &[
                    &journal_pos,
                    &idx,
                    &account,
                    &position_id,
                    &change,
                    &change_qty,
                    &symbol,
                    &side,
                    &qty,
                    &open_price,
                    &stop_loss,
                    &take_profit,
                    &realized_pnl,
                    &at,
                    &tx.journal,
                ],
            )
            .await?;
    }
    Ok(rows)
}

async fn equity(tx: &Tx<'_>, statements: &Statements, batch: &Batch) -> Result<u64, PgError> {
    let r = &batch.equity;
    if r.is_empty() {
        return Ok(0);
    }
    let journal_pos: Vec<i64> = r.iter().map(|r| r.journal_pos).collect();
    let idx: Vec<i32> = r.iter().map(|r| r.idx).collect();
    let account: Vec<i64> = r.iter().map(|r| r.account).collect();
    let balance: Vec<&str> = r.iter().map(|r| r.balance.as_str()).collect();
    let equity: Vec<&str> = r.iter().map(|r| r.equity.as_str()).collect();
    let margin_used: Vec<&str> = r.iter().map(|r| r.margin_used.as_str()).collect();
    let source: Vec<&str> = r.iter().map(|r| r.source).collect();
    let at: Vec<_> = r.iter().map(|r| r.at).collect();
    tx.exec(
        "writing equity history",
        &statements.equity,
        &[&journal_pos, &idx, &account, &balance, &equity, &margin_used, &source, &at, &tx.journal],
    )
    .await
}

async fn copy_events(tx: &Tx<'_>, statements: &Statements, batch: &Batch) -> Result<u64, PgError> {
    let r = &batch.copy_events;
    if r.is_empty() {
        return Ok(0);
    }
    let journal_pos: Vec<i64> = r.iter().map(|r| r.journal_pos).collect();
    let idx: Vec<i32> = r.iter().map(|r| r.idx).collect();
    let account: Vec<i64> = r.iter().map(|r| r.account).collect();
    let signal_id: Vec<Option<i64>> = r.iter().map(|r| r.signal_id).collect();
    let kind: Vec<&str> = r.iter().map(|r| r.kind.as_str()).collect();
    let client_id: Vec<Option<&str>> = r.iter().map(|r| r.client_id.as_deref()).collect();
    let reason: Vec<Option<&str>> = r.iter().map(|r| r.reason.as_deref()).collect();
    let detail: Vec<&str> = r.iter().map(|r| r.detail.as_str()).collect();
    let at: Vec<_> = r.iter().map(|r| r.at).collect();
    tx.exec(
        "writing copy events",
        &statements.copy_events,
        &[&journal_pos, &idx, &account, &signal_id, &kind, &client_id, &reason, &detail, &at, &tx.journal],
    )
    .await
}

async fn audit_log(tx: &Tx<'_>, statements: &Statements, batch: &Batch) -> Result<u64, PgError> {
    let r = &batch.audit_log;
    if r.is_empty() {
        return Ok(0);
    }
    let journal_pos: Vec<i64> = r.iter().map(|r| r.journal_pos).collect();
    let idx: Vec<i32> = r.iter().map(|r| r.idx).collect();
    let who: Vec<&str> = r.iter().map(|r| r.who.as_str()).collect();
    let what: Vec<&str> = r.iter().map(|r| r.what.as_str()).collect();
    let account: Vec<Option<i64>> = r.iter().map(|r| r.account).collect();
    let detail: Vec<&str> = r.iter().map(|r| r.detail.as_str()).collect();
    let at: Vec<_> = r.iter().map(|r| r.at).collect();
    tx.exec(
        "writing the audit log",
        &statements.audit_log,
        &[&journal_pos, &idx, &who, &what, &account, &detail, &at, &tx.journal],
    )
    .await
}
