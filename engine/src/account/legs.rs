//! Copy legs: which of a follower's positions and working orders copy which leader position.
//!
//! A leg is keyed by (origin, leader position). It holds the follower positions its fills went
//! to, with the quantity each fill contributed (for a netting account, its share of the net
//! position), and the orders still working for it. Closes, proportional partial closes and
//! SL/TP modifies of the leader position are applied to exactly these.

use mirror_model::{ClientOrderId, LeaderRef, Origin, PositionId, Price, Qty, Ratio, Side, Symbol};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// (origin, leader position).
pub(crate) type LegKey = (Origin, LeaderRef);

/// The holding of a leg on a netting account: its contribution to the symbol's net position
/// (which the broker may renumber when it flips, and which other legs share).
pub(crate) const NET: PositionId = PositionId(u64::MAX);

/// Follower positions and working orders copying one leader position.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CopyLeg {
    /// The follower's symbol.
    pub(crate) symbol: Symbol,
    /// The leader's canonical symbol (for close-all by symbol).
    pub(crate) leader_symbol: Symbol,
    /// The copy's side.
    pub(crate) side: Side,
    /// The leader's levels, already swapped for reverse copies (sources of `Copy` rules).
    pub(crate) leader_levels: (Option<Price>, Option<Price>),
    /// Positions and the quantity this leg holds in each.
    pub(crate) positions: SmallVec<[(PositionId, Qty); 2]>,
    /// Opens still working for this leg.
    pub(crate) working: SmallVec<[ClientOrderId; 2]>,
    /// The leader closed while an open was in flight: close whatever fills.
    pub(crate) close_on_fill: bool,
    /// The leader partially closed while an open was in flight: keep this fraction of fills.
    pub(crate) keep_fraction: Ratio,
    /// A modify arrived while an open was in flight: apply these levels once it fills.
    pub(crate) pending_levels: Option<(Option<Price>, Option<Price>)>,
}

impl CopyLeg {
    pub(crate) fn new(symbol: Symbol, leader_symbol: Symbol, side: Side) -> Self {
        Self {
            symbol,
            leader_symbol,
            side,
            leader_levels: (None, None),
            positions: SmallVec::new(),
            working: SmallVec::new(),
            close_on_fill: false,
            keep_fraction: Ratio::ONE,
            pending_levels: None,
        }
    }

    /// Total quantity held.
    pub(crate) fn open_qty(&self) -> Qty {
        self.positions.iter().fold(Qty::ZERO, |sum, (_, qty)| sum + *qty)
    }

    /// What this leg holds in `position` (or, on a netting account, in [`NET`]).
    pub(crate) fn held(&self, position: PositionId) -> Qty {
        self.positions.iter().find(|(id, _)| *id == position).map_or(Qty::ZERO, |(_, qty)| *qty)
    }

    pub(crate) fn add(&mut self, position: PositionId, qty: Qty) {
        match self.positions.iter_mut().find(|(id, _)| *id == position) {
            Some((_, held)) => *held += qty,
            None => self.positions.push((position, qty)),
        }
    }

    pub(crate) fn reduce(&mut self, position: PositionId, qty: Qty) {
        if let Some((_, held)) = self.positions.iter_mut().find(|(id, _)| *id == position) {
            *held = if qty >= *held { Qty::ZERO } else { *held - qty };
        }
        self.positions.retain(|(_, held)| held.is_positive());
    }

    /// The broker says `position` now holds `qty` (zero: closed): never hold more than that.
    pub(crate) fn clamp(&mut self, position: PositionId, qty: Qty) {
        for (id, held) in &mut self.positions {
            if *id == position && *held > qty {
                *held = qty;
            }
        }
        self.positions.retain(|(_, held)| held.is_positive());
    }

    pub(crate) fn forget_order(&mut self, client_id: ClientOrderId) {
        self.working.retain(|id| *id != client_id);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.positions.is_empty() && self.working.is_empty()
    }
}

/// Every leg of one follower.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Legs {
    /// Written in key order, so that equal states give equal snapshot bytes whatever order
    /// the legs were made in.
    #[serde(serialize_with = "in_key_order")]
    by_key: FxHashMap<LegKey, CopyLeg>,
}

fn in_key_order<S: serde::Serializer>(legs: &FxHashMap<LegKey, CopyLeg>, serializer: S) -> Result<S::Ok, S::Error> {
    let sorted: std::collections::BTreeMap<&LegKey, &CopyLeg> = legs.iter().collect();
    serde::Serialize::serialize(&sorted, serializer)
}

impl Legs {
    pub(crate) fn get(&self, key: &LegKey) -> Option<&CopyLeg> {
        self.by_key.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &LegKey) -> Option<&mut CopyLeg> {
        self.by_key.get_mut(key)
    }

    pub(crate) fn entry(&mut self, key: LegKey, make: impl FnOnce() -> CopyLeg) -> &mut CopyLeg {
        self.by_key.entry(key).or_insert_with(make)
    }

    /// Moves a leg to a new key (a leader pending order became a position).
    pub(crate) fn rekey(&mut self, from: &LegKey, to: LegKey) -> bool {
        match self.by_key.remove(from) {
            Some(leg) => {
                self.by_key.insert(to, leg);
                true
            }
            None => false,
        }
    }

    /// Removes the leg when nothing is left in it.
    pub(crate) fn prune(&mut self, key: &LegKey) {
        if self.by_key.get(key).is_some_and(CopyLeg::is_empty) {
            self.by_key.remove(key);
        }
    }

    /// Applies a broker position change to every leg holding that position.
    pub(crate) fn clamp_all(&mut self, position: PositionId, qty: Qty) {
        self.by_key.retain(|_, leg| {
            leg.clamp(position, qty);
            !leg.is_empty()
        });
    }

    /// The broker changed the net position on `symbol` by itself (a stop hit, a close by
    /// hand): all of it (`closed: None`) or `closed` of it on `side`. The contributions of the
    /// legs on that side absorb the change in key order; a full close leaves no contribution.
    pub(crate) fn cut_netted(&mut self, symbol: Symbol, side: Side, closed: Option<Qty>) {
        let mut keys: SmallVec<[LegKey; 8]> =
            self.by_key.iter().filter(|(_, leg)| leg.symbol == symbol).map(|(key, _)| *key).collect();
        keys.sort_unstable();
        let mut left = closed;
        for key in keys {
            let leg = self.by_key.get_mut(&key).expect("listed above");
            match left {
                None => leg.positions.clear(),
                Some(remaining) if leg.side == side && remaining.is_positive() => {
                    let held = leg.open_qty();
                    let cut = remaining.min(held);
                    leg.reduce(NET, cut);
                    left = Some(remaining - cut);
                }
                Some(_) => {}
            }
            if leg.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// Every key, ordered.
    pub(crate) fn keys_of_all(&self) -> SmallVec<[LegKey; 8]> {
        let mut keys: SmallVec<[LegKey; 8]> = self.by_key.keys().copied().collect();
        keys.sort_unstable();
        keys
    }

    /// Keys of the legs on a follower `symbol`, ordered.
    pub(crate) fn keys_on(&self, symbol: &Symbol) -> SmallVec<[LegKey; 8]> {
        let mut keys: SmallVec<[LegKey; 8]> =
            self.by_key.iter().filter(|(_, leg)| leg.symbol == *symbol).map(|(key, _)| *key).collect();
        keys.sort_unstable();
        keys
    }

    /// Every holding of every leg: (position, or [`NET`]; quantity).
    pub(crate) fn holdings(&self) -> impl Iterator<Item = (PositionId, Qty)> + '_ {
        self.by_key.values().flat_map(|leg| leg.positions.iter().copied())
    }

    /// The follower symbols legs hold.
    pub(crate) fn symbols(&self) -> impl Iterator<Item = Symbol> + '_ {
        self.by_key.values().map(|leg| leg.symbol)
    }

    /// The signed net quantity (raw units) the legs on `symbol` hold: buys positive.
    pub(crate) fn net_on(&self, symbol: &Symbol) -> i64 {
        self.by_key.values().filter(|leg| leg.symbol == *symbol).map(|leg| leg.open_qty().raw() * leg.side.sign()).sum()
    }

    /// Drops every holding (the account was flattened); legs with opens in flight stay, to
    /// close what still fills.
    pub(crate) fn clear_holdings(&mut self) {
        self.by_key.retain(|_, leg| {
            leg.positions.clear();
            leg.close_on_fill |= !leg.working.is_empty();
            !leg.working.is_empty()
        });
    }

    /// Keys of the legs of `origin` (on the leader's canonical `symbol`, when given), ordered
    /// so that output is deterministic.
    pub(crate) fn keys_of(&self, origin: Origin, symbol: Option<Symbol>) -> SmallVec<[LegKey; 8]> {
        let mut keys: SmallVec<[LegKey; 8]> = self
            .by_key
            .iter()
            .filter(|(key, leg)| key.0 == origin && symbol.is_none_or(|s| s == leg.leader_symbol))
            .map(|(key, _)| *key)
            .collect();
        keys.sort_unstable();
        keys
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}
