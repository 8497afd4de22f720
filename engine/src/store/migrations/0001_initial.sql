-- Mirror's system of record, written from the intent journal by the Postgres writer.
--
-- Every row derived from a journal entry is keyed by (journal, journal_pos, idx): the
-- journal it came from (positions count from 1 in every new journal), the entry's log
-- position and the row's index within that entry (its audit record, input or follower), or
-- by a natural key within the journal (a signal id, a client order id). A batch is written in
-- one transaction with the writer's checkpoint, so it is applied exactly once; the keys make
-- a replayed batch harmless all the same (ON CONFLICT DO NOTHING).
--
-- Quantities, prices and money are numeric, exactly the fixed-point decimals of the engine.
-- Ids that brokers assign (positions, orders, leader refs) are numeric(20, 0): any u64 fits.

-- Every journal written here, by its identity, with the last position whose rows are in;
-- the checkpoint moves in the same transaction as the rows.
CREATE TABLE journals (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid         text NOT NULL UNIQUE,
    checkpoint  bigint NOT NULL DEFAULT 0 CHECK (checkpoint >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Accounts as the engine last started them (from the journal's setup records).
CREATE TABLE accounts (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('netting', 'hedging')),
    is_leader   boolean NOT NULL,
    risk        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Links as the engine last started them. Link ids are numbered when the copy map is built,
-- so they are only unique per follower and start.
CREATE TABLE links (
    follower     bigint NOT NULL,
    id           bigint NOT NULL,
    origin_kind  text NOT NULL CHECK (origin_kind IN ('account', 'source')),
    origin_id    bigint NOT NULL,
    rules        jsonb NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (follower, id)
);

-- Every signal: accepted from an external source, or emitted by a leader account.
CREATE TABLE signals (
    journal           integer NOT NULL REFERENCES journals (id),
    id                bigint NOT NULL,
    journal_pos       bigint NOT NULL,
    origin_kind       text NOT NULL CHECK (origin_kind IN ('account', 'source')),
    origin_id         bigint NOT NULL,
    action            text NOT NULL,
    leader_ref        numeric(20, 0),
    symbol            text,
    side              text CHECK (side IN ('buy', 'sell')),
    qty               numeric,
    signal            jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    accepted_mono_ns  bigint NOT NULL,
    PRIMARY KEY (journal, id)
);
CREATE INDEX signals_journal_pos ON signals (journal, journal_pos);

-- Which followers took a signal, on which link, when.
CREATE TABLE deliveries (
    journal      integer NOT NULL REFERENCES journals (id),
    journal_pos  bigint NOT NULL,
    idx          integer NOT NULL,
    signal_id    bigint NOT NULL,
    account      bigint NOT NULL,
    link         bigint NOT NULL,
    input_seq    bigint NOT NULL,
    handled_at   timestamptz NOT NULL,
    PRIMARY KEY (journal, journal_pos, idx)
);
CREATE INDEX deliveries_signal ON deliveries (journal, signal_id);

-- Follower orders: copies (open), closes and corrections, with their latest state.
CREATE TABLE orders (
    journal        integer NOT NULL REFERENCES journals (id),
    client_id      text NOT NULL,
    account        bigint NOT NULL,
    signal_id      bigint NOT NULL,
    leg            integer NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('open', 'close', 'correction')),
    symbol         text,
    side           text CHECK (side IN ('buy', 'sell')),
    qty            numeric NOT NULL,
    order_type     text CHECK (order_type IN ('market', 'limit', 'stop')),
    order_price    numeric,
    adjustment     text,
    position_id    numeric(20, 0),
    corrects       text,
    status         text NOT NULL CHECK (status IN (
                       'submitted', 'in_flight_unknown', 'working', 'partially_filled', 'filled',
                       'cancelled', 'rejected', 'expired', 'never_sent')),
    broker_id      numeric(20, 0),
    reject_reason  text,
    filled_qty     numeric NOT NULL DEFAULT 0,
    journal_pos    bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (journal, client_id)
);
CREATE INDEX orders_signal ON orders (journal, signal_id);
CREATE INDEX orders_account ON orders (account, created_at);
-- Closes and corrections whose symbol or side waits for a later batch.
CREATE INDEX orders_unresolved ON orders (journal, account, position_id) WHERE symbol IS NULL OR side IS NULL;

-- One row per execution.
CREATE TABLE fills (
    journal      integer NOT NULL REFERENCES journals (id),
    journal_pos  bigint NOT NULL,
    idx          integer NOT NULL,
    client_id    text NOT NULL,
    account      bigint NOT NULL,
    signal_id    bigint,
    qty          numeric NOT NULL,
    price        numeric NOT NULL,
    position_id  numeric(20, 0) NOT NULL,
    filled_at    timestamptz NOT NULL,
    PRIMARY KEY (journal, journal_pos, idx)
);
CREATE INDEX fills_client_id ON fills (journal, client_id);

-- Open positions per account, as the broker last reported them (journal: the one that wrote
-- the row last).
CREATE TABLE positions (
    journal      integer NOT NULL REFERENCES journals (id),
    account      bigint NOT NULL,
    position_id  numeric(20, 0) NOT NULL,
    symbol       text NOT NULL,
    side         text NOT NULL CHECK (side IN ('buy', 'sell')),
    qty          numeric NOT NULL,
    open_price   numeric NOT NULL,
    stop_loss    numeric,
    take_profit  numeric,
    journal_pos  bigint NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (account, position_id)
);

-- Every position change (for a close: the position as it was just before).
CREATE TABLE position_events (
    journal       integer NOT NULL REFERENCES journals (id),
    journal_pos   bigint NOT NULL,
    idx           integer NOT NULL,
    account       bigint NOT NULL,
    position_id   numeric(20, 0) NOT NULL,
    change        text NOT NULL CHECK (change IN ('opened', 'increased', 'reduced', 'closed', 'protection_changed')),
    change_qty    numeric,
    symbol        text NOT NULL,
    side          text NOT NULL CHECK (side IN ('buy', 'sell')),
    qty           numeric NOT NULL,
    open_price    numeric NOT NULL,
    stop_loss     numeric,
    take_profit   numeric,
    realized_pnl  numeric NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (journal, journal_pos, idx)
);
CREATE INDEX position_events_account ON position_events (account, position_id);

-- Balance and equity as brokers reported them (account updates and reconciliation snapshots).
CREATE TABLE equity_history (
    journal      integer NOT NULL REFERENCES journals (id),
    journal_pos  bigint NOT NULL,
    idx          integer NOT NULL,
    account      bigint NOT NULL,
    balance      numeric NOT NULL,
    equity       numeric NOT NULL,
    margin_used  numeric NOT NULL,
    source       text NOT NULL CHECK (source IN ('account', 'snapshot')),
    at           timestamptz NOT NULL,
    PRIMARY KEY (journal, journal_pos, idx)
);
CREATE INDEX equity_history_account ON equity_history (account, at);

-- Why: skips with their reasons, drifts, reconciliations, refused transitions, connection
-- changes and every other audit record that is not an order, a fill, a position or a risk
-- action.
CREATE TABLE copy_events (
    journal      integer NOT NULL REFERENCES journals (id),
    journal_pos  bigint NOT NULL,
    idx          integer NOT NULL,
    account      bigint NOT NULL,
    signal_id    bigint,
    kind         text NOT NULL,
    client_id    text,
    reason       text,
    detail       jsonb NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (journal, journal_pos, idx)
);
CREATE INDEX copy_events_signal ON copy_events (journal, signal_id);
CREATE INDEX copy_events_account ON copy_events (account, at);

-- Who did what, when: configuration and operator actions, and the engine's risk actions.
CREATE TABLE audit_log (
    journal      integer NOT NULL REFERENCES journals (id),
    journal_pos  bigint NOT NULL,
    idx          integer NOT NULL,
    who          text NOT NULL,
    what         text NOT NULL,
    account      bigint,
    detail       jsonb NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (journal, journal_pos, idx)
);
CREATE INDEX audit_log_at ON audit_log (at);
