//! The copy map: which accounts follow which origin on which link, where every account lives
//! (shard and slot), and which accounts sit downstream of each leader.
//!
//! The map is built once from the configuration and shared immutably. For every origin the
//! targets are grouped by shard in advance, so fanning a signal out allocates nothing but the
//! one encoded signal: one message per shard, carrying a shared slice of targets.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use mirror_model::{AccountId, LinkRules, Origin};
use rustc_hash::FxHashMap;

use crate::LinkId;
use crate::account::InboundLink;

/// Where an account's actor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// Shard index.
    pub shard: usize,
    /// Slot of the actor within the shard.
    pub slot: u32,
}

/// One follower to deliver a signal to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Slot of the follower's actor in the shard.
    pub slot: u32,
    /// The link the signal arrives on.
    pub link: LinkId,
}

/// The followers of one origin on one shard.
#[derive(Clone, Debug)]
pub struct ShardTargets {
    /// Shard index.
    pub shard: usize,
    /// Its followers there.
    pub targets: Arc<[Target]>,
}

/// One link of the copy map.
#[derive(Clone, Debug)]
pub struct LinkSpec {
    /// Leader account or source.
    pub leader: Origin,
    /// Follower account.
    pub follower: AccountId,
    /// Rules.
    pub rules: Arc<LinkRules>,
}

/// A copy map that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A link names an account that does not exist.
    #[error("link {link}: unknown account {account}")]
    UnknownAccount {
        /// Link index.
        link: usize,
        /// The account.
        account: AccountId,
    },
    /// An account copies itself.
    #[error("link {link}: account {account} cannot copy itself")]
    SelfLink {
        /// Link index.
        link: usize,
        /// The account.
        account: AccountId,
    },
    /// The same leader → follower pair twice.
    #[error("link {link}: {leader} → {follower} is already linked by link {first}")]
    Duplicate {
        /// Link index.
        link: usize,
        /// The earlier link.
        first: usize,
        /// Leader.
        leader: Origin,
        /// Follower.
        follower: AccountId,
    },
    /// Following the links leads back to where it started.
    #[error("the links form a cycle: {}", display_cycle(.0))]
    Cycle(Vec<AccountId>),
}

fn display_cycle(cycle: &[AccountId]) -> String {
    cycle.iter().map(ToString::to_string).collect::<Vec<_>>().join(" → ")
}

/// The copy map.
#[derive(Debug, Clone)]
pub struct CopyMap {
    shards: usize,
    order: Vec<AccountId>,
    places: FxHashMap<AccountId, Place>,
    fanout: FxHashMap<Origin, Vec<ShardTargets>>,
    inbound: FxHashMap<AccountId, Vec<InboundLink>>,
    downstream: FxHashMap<AccountId, Vec<AccountId>>,
    links: Vec<LinkSpec>,
}

/// Finds a cycle among account → account edges, as the path that closes it.
pub fn find_cycle(edges: &BTreeMap<AccountId, BTreeSet<AccountId>>) -> Option<Vec<AccountId>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        InProgress,
        Done,
    }
    fn visit(
        node: AccountId,
        edges: &BTreeMap<AccountId, BTreeSet<AccountId>>,
        marks: &mut BTreeMap<AccountId, Mark>,
        path: &mut Vec<AccountId>,
    ) -> Option<Vec<AccountId>> {
        match marks.get(&node) {
            Some(Mark::Done) => return None,
            Some(Mark::InProgress) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::InProgress);
        path.push(node);
        for next in edges.get(&node).into_iter().flatten() {
            if let Some(cycle) = visit(*next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(*node, edges, &mut marks, &mut path) {
            return Some(cycle);
        }
    }
    None
}

impl CopyMap {
    /// Builds the map: accounts are spread over `shards` round-robin in the given order.
    pub fn build(accounts: &[AccountId], shards: usize, links: Vec<LinkSpec>) -> Result<Self, MapError> {
        let shards = shards.max(1);
        let mut places = FxHashMap::default();
        let mut slots = vec![0u32; shards];
        for (index, account) in accounts.iter().enumerate() {
            let shard = index % shards;
            places.insert(*account, Place { shard, slot: slots[shard] });
            slots[shard] += 1;
        }
        let mut seen: BTreeMap<(Origin, AccountId), usize> = BTreeMap::new();
        let mut edges: BTreeMap<AccountId, BTreeSet<AccountId>> = BTreeMap::new();
        for (index, link) in links.iter().enumerate() {
            if !places.contains_key(&link.follower) {
                return Err(MapError::UnknownAccount { link: index, account: link.follower });
            }
            if let Origin::Account(leader) = link.leader {
                if !places.contains_key(&leader) {
                    return Err(MapError::UnknownAccount { link: index, account: leader });
                }
                if leader == link.follower {
                    return Err(MapError::SelfLink { link: index, account: leader });
                }
                edges.entry(leader).or_default().insert(link.follower);
            }
            if let Some(first) = seen.insert((link.leader, link.follower), index) {
                return Err(MapError::Duplicate { link: index, first, leader: link.leader, follower: link.follower });
            }
        }
        if let Some(cycle) = find_cycle(&edges) {
            return Err(MapError::Cycle(cycle));
        }

        let mut grouped: BTreeMap<Origin, BTreeMap<usize, Vec<Target>>> = BTreeMap::new();
        let mut inbound: FxHashMap<AccountId, Vec<InboundLink>> = FxHashMap::default();
        for (index, link) in links.iter().enumerate() {
            let id = LinkId(u32::try_from(index).expect("fewer than 2³² links"));
            let place = places[&link.follower];
            grouped
                .entry(link.leader)
                .or_default()
                .entry(place.shard)
                .or_default()
                .push(Target { slot: place.slot, link: id });
            inbound.entry(link.follower).or_default().push(InboundLink {
                link: id,
                origin: link.leader,
                rules: Arc::clone(&link.rules),
            });
        }
        let fanout = grouped
            .into_iter()
            .map(|(origin, by_shard)| {
                let targets = by_shard
                    .into_iter()
                    .map(|(shard, targets)| ShardTargets { shard, targets: targets.into() })
                    .collect();
                (origin, targets)
            })
            .collect();
        let downstream = accounts
            .iter()
            .map(|account| {
                let mut reached = Vec::new();
                let mut queue: VecDeque<AccountId> = VecDeque::from([*account]);
                let mut visited = BTreeSet::from([*account]);
                while let Some(node) = queue.pop_front() {
                    for next in edges.get(&node).into_iter().flatten() {
                        if visited.insert(*next) {
                            reached.push(*next);
                            queue.push_back(*next);
                        }
                    }
                }
                (*account, reached)
            })
            .collect();
        Ok(Self { shards, order: accounts.to_vec(), places, fanout, inbound, downstream, links })
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Accounts in configuration order.
    pub fn accounts(&self) -> &[AccountId] {
        &self.order
    }

    /// Where an account lives.
    pub fn place(&self, account: AccountId) -> Option<Place> {
        self.places.get(&account).copied()
    }

    /// The followers of `origin`, grouped by shard.
    pub fn fanout(&self, origin: &Origin) -> &[ShardTargets] {
        self.fanout.get(origin).map_or(&[], Vec::as_slice)
    }

    /// The links on which `account` follows.
    pub fn inbound(&self, account: AccountId) -> Vec<InboundLink> {
        self.inbound.get(&account).cloned().unwrap_or_default()
    }

    /// Whether anything follows `account`.
    pub fn is_leader(&self, account: AccountId) -> bool {
        self.fanout.contains_key(&Origin::Account(account))
    }

    /// Every account that copies `account`, directly or through a chain.
    pub fn downstream(&self, account: AccountId) -> &[AccountId] {
        self.downstream.get(&account).map_or(&[], Vec::as_slice)
    }

    /// Total number of followers of `origin`.
    pub fn follower_count(&self, origin: &Origin) -> usize {
        self.fanout(origin).iter().map(|s| s.targets.len()).sum()
    }

    /// The links, by id.
    pub fn links(&self) -> &[LinkSpec] {
        &self.links
    }

    /// Each account's depth in the copy graph: 0 without a leader account, else one more
    /// than its deepest leader's (the graph has no cycles).
    pub fn depths(&self) -> FxHashMap<AccountId, usize> {
        let mut depths: FxHashMap<AccountId, usize> = self.accounts().iter().map(|a| (*a, 0)).collect();
        // Longest paths by relaxation: at most one pass per account.
        for _ in 0..self.accounts().len() {
            let mut changed = false;
            for link in &self.links {
                if let Origin::Account(leader) = link.leader {
                    let depth = depths.get(&leader).copied().unwrap_or(0) + 1;
                    let entry = depths.entry(link.follower).or_insert(0);
                    if *entry < depth {
                        *entry = depth;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        depths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u32) -> AccountId {
        AccountId(n)
    }

    fn link(leader: u32, follower: u32) -> LinkSpec {
        LinkSpec { leader: Origin::Account(a(leader)), follower: a(follower), rules: Arc::new(LinkRules::default()) }
    }

    #[test]
    fn targets_are_grouped_by_shard_and_chains_are_downstream() {
        let accounts: Vec<_> = (1..=5).map(a).collect();
        let map = CopyMap::build(&accounts, 2, vec![link(1, 2), link(1, 3), link(1, 4), link(3, 5)]).unwrap();
        let fanout = map.fanout(&Origin::Account(a(1)));
        assert_eq!(fanout.len(), 2);
        assert_eq!(fanout.iter().map(|s| s.targets.len()).sum::<usize>(), 3);
        assert_eq!(map.downstream(a(1)), &[a(2), a(3), a(4), a(5)]);
        assert_eq!(map.downstream(a(3)), &[a(5)]);
        assert!(map.is_leader(a(3)) && !map.is_leader(a(5)));
        assert_eq!(map.inbound(a(5))[0].origin, Origin::Account(a(3)));
    }

    #[test]
    fn bad_maps_are_refused() {
        let accounts: Vec<_> = (1..=3).map(a).collect();
        assert_eq!(
            CopyMap::build(&accounts, 1, vec![link(1, 2), link(2, 3), link(3, 1)]).unwrap_err(),
            MapError::Cycle(vec![a(1), a(2), a(3), a(1)])
        );
        assert!(matches!(CopyMap::build(&accounts, 1, vec![link(1, 1)]), Err(MapError::SelfLink { .. })));
        assert!(matches!(
            CopyMap::build(&accounts, 1, vec![link(1, 2), link(1, 2)]),
            Err(MapError::Duplicate { link: 1, first: 0, .. })
        ));
        assert!(matches!(CopyMap::build(&accounts, 1, vec![link(1, 9)]), Err(MapError::UnknownAccount { .. })));
    }
}
