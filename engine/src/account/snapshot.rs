//! An actor's state as one serializable value: what the journal keeps so that recovery does
//! not replay every input since the beginning.

use super::*;

/// Everything an [`AccountActor`] has learnt, without its configuration (which comes from the
/// config file on every start). Opaque outside the engine: it is written and read whole.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ActorSnapshot {
    account: AccountId,
    input_seq: u64,
    balance: Money,
    equity: Money,
    connected: bool,
    positions: Vec<Position>,
    orders: Vec<(ClientOrderId, OrderEntry)>,
    finished: Vec<(ClientOrderId, OrderStatus)>,
    legs: Legs,
    paused_links: Vec<Origin>,
    paused: bool,
    globally_paused: bool,
    risk: RiskState,
    leader_pending: Vec<(BrokerOrderId, Symbol, Side)>,
    last_fill: Option<(BrokerOrderId, PositionId, Price)>,
    own_fills: Vec<PositionId>,
    closed_by_hand: Vec<LegKey>,
    #[serde(default)]
    leader_closed: Vec<LegKey>,
}

impl ActorSnapshot {
    /// The account it belongs to.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// Inputs the snapshot includes: inputs numbered from here on come after it.
    pub fn input_seq(&self) -> u64 {
        self.input_seq
    }
}

impl AccountActor {
    /// The actor's state now. Collections are written in a fixed order, so the same state
    /// always gives the same bytes.
    pub fn snapshot(&self) -> ActorSnapshot {
        let mut positions: Vec<Position> = self.positions.values().copied().collect();
        positions.sort_by_key(|p| p.id);
        let mut orders: Vec<(ClientOrderId, OrderEntry)> = self.orders.iter().map(|(id, e)| (*id, *e)).collect();
        orders.sort_by_key(|(id, _)| *id);
        let finished = self.finished_order.iter().filter_map(|id| self.finished.get(id).map(|s| (*id, *s))).collect();
        let mut paused_links: Vec<Origin> = self.inbound.iter().filter(|i| i.paused).map(|i| i.link.origin).collect();
        paused_links.sort_unstable();
        let mut leader_pending: Vec<(BrokerOrderId, Symbol, Side)> =
            self.leader_pending.iter().map(|(order, (symbol, side))| (*order, *symbol, *side)).collect();
        leader_pending.sort_by_key(|(order, _, _)| *order);
        ActorSnapshot {
            account: self.id,
            input_seq: self.input_seq,
            balance: self.balance,
            equity: self.equity,
            connected: self.connected,
            positions,
            orders,
            finished,
            legs: self.legs.clone(),
            paused_links,
            paused: self.paused,
            globally_paused: self.globally_paused,
            risk: self.risk,
            leader_pending,
            last_fill: self.last_fill,
            own_fills: self.own_fills.to_vec(),
            closed_by_hand: self.closed_by_hand_order.iter().copied().collect(),
            leader_closed: self.leader_closed_order.iter().copied().collect(),
        }
    }

    /// An actor configured by `setup` that resumes from `snapshot`. The configuration wins
    /// where the two could disagree: risk limits and links come from the setup; links that
    /// no longer exist keep their copies (reconciliation reports them).
    pub fn restore(setup: AccountSetup, snapshot: ActorSnapshot) -> Self {
        let limits = setup.risk;
        let mut actor = Self::new(setup);
        actor.input_seq = snapshot.input_seq;
        actor.balance = snapshot.balance;
        actor.equity = snapshot.equity;
        actor.connected = snapshot.connected;
        actor.positions = snapshot.positions.into_iter().map(|p| (p.id, p)).collect();
        actor.orders = snapshot.orders.into_iter().collect();
        for (id, status) in snapshot.finished {
            actor.finished.insert(id, status);
            actor.finished_order.push_back(id);
        }
        actor.legs = snapshot.legs;
        for inbound in &mut actor.inbound {
            inbound.paused = snapshot.paused_links.contains(&inbound.link.origin);
        }
        actor.paused = snapshot.paused;
        actor.globally_paused = snapshot.globally_paused;
        actor.risk = snapshot.risk;
        actor.risk.limits = limits;
        actor.leader_pending =
            snapshot.leader_pending.into_iter().map(|(order, symbol, side)| (order, (symbol, side))).collect();
        actor.last_fill = snapshot.last_fill;
        actor.own_fills = snapshot.own_fills.into_iter().collect();
        for key in snapshot.closed_by_hand {
            actor.closed_by_hand.insert(key);
            actor.closed_by_hand_order.push_back(key);
        }
        for key in snapshot.leader_closed {
            actor.leader_closed.insert(key);
            actor.leader_closed_order.push_back(key);
        }
        actor
    }
}
