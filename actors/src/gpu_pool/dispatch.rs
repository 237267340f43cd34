//! Dispatch policy of the GPU pool, with no I/O: which node a request goes to (fewest in flight, then
//! priority, then order; the interview's node while it is up and has room), which node a waiting
//! request is counted against, and the bounded interview → node map. Kept apart from the handle so the
//! rules read (and are tested) on their own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::gpu_node::NodeState;

/// Affinity entries kept at most (two generations of half each, the older dropped when the newer fills).
pub(super) const AFFINITY_CAP: usize = 100_000;
/// Affinity entries unused for longer are ignored.
pub(super) const AFFINITY_TTL: Duration = Duration::from_secs(3600);

/// A node as dispatch sees it at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NodeView {
    pub(super) state: NodeState,
    pub(super) in_flight: u32,
    pub(super) queued: u32,
    pub(super) max_concurrency: u32,
    pub(super) priority: i32,
    /// Already tried by this request.
    pub(super) tried: bool,
}

impl NodeView {
    pub(super) fn usable(&self) -> bool {
        !self.tried && self.state.is_usable()
    }
}

/// What dispatch decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Choice {
    /// Send to this node.
    Node(usize),
    /// Usable nodes exist but all are full.
    Busy,
    /// No usable node.
    NoNode,
}

/// Picks a node: the interview's node (`sticky`) while it is up and has room; otherwise the usable node
/// with room that has the fewest requests in flight, then the highest priority, then the lowest index.
pub(super) fn choose(nodes: &[NodeView], sticky: Option<usize>) -> Choice {
    if let Some(i) = sticky {
        if nodes.get(i).is_some_and(|v| {
            !v.tried && v.state == NodeState::Up && v.in_flight < v.max_concurrency
        }) {
            return Choice::Node(i);
        }
    }
    let mut usable = false;
    let mut best: Option<(usize, NodeView)> = None;
    for (i, v) in nodes.iter().enumerate() {
        if !v.usable() {
            continue;
        }
        usable = true;
        if v.in_flight >= v.max_concurrency {
            continue;
        }
        let better = best.is_none_or(|(_, b)| {
            v.in_flight < b.in_flight || (v.in_flight == b.in_flight && v.priority > b.priority)
        });
        if better {
            best = Some((i, *v));
        }
    }
    match best {
        Some((i, _)) => Choice::Node(i),
        None if usable => Choice::Busy,
        None => Choice::NoNode,
    }
}

/// The node a waiting request is counted against in status: its interview's node when usable, else
/// the usable node with the least work (in flight plus queued), then the highest priority.
pub(super) fn queue_target(nodes: &[NodeView], sticky: Option<usize>) -> Option<usize> {
    if let Some(i) = sticky.filter(|i| nodes.get(*i).is_some_and(NodeView::usable)) {
        return Some(i);
    }
    nodes
        .iter()
        .enumerate()
        .filter(|(_, v)| v.usable())
        .min_by(|(_, a), (_, b)| {
            (a.in_flight + a.queued)
                .cmp(&(b.in_flight + b.queued))
                .then(b.priority.cmp(&a.priority))
        })
        .map(|(i, _)| i)
}

/// Interview → node index, bounded: two generations, the older dropped when the newer is full, so the
/// map holds at most [`AFFINITY_CAP`] entries and the ones in use survive.
pub(super) struct AffinityMap {
    current: HashMap<String, (usize, Instant)>,
    previous: HashMap<String, (usize, Instant)>,
    generation_cap: usize,
    ttl: Duration,
}

impl AffinityMap {
    pub(super) fn new(cap: usize, ttl: Duration) -> Self {
        Self {
            current: HashMap::new(),
            previous: HashMap::new(),
            generation_cap: (cap / 2).max(1),
            ttl,
        }
    }

    pub(super) fn get(&mut self, key: &str, now: Instant) -> Option<usize> {
        let ttl = self.ttl;
        let fresh = |at: Instant| now.saturating_duration_since(at) < ttl;
        if let Some(&(node, at)) = self.current.get(key) {
            return fresh(at).then_some(node);
        }
        let (node, at) = self.previous.remove(key)?;
        if !fresh(at) {
            return None;
        }
        self.set(key, node, at);
        Some(node)
    }

    pub(super) fn set(&mut self, key: &str, node: usize, now: Instant) {
        if !self.current.contains_key(key) && self.current.len() >= self.generation_cap {
            self.previous = std::mem::take(&mut self.current);
        }
        self.previous.remove(key);
        self.current.insert(key.to_string(), (node, now));
    }

    pub(super) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: NodeState, in_flight: u32, max: u32, priority: i32) -> NodeView {
        NodeView {
            state,
            in_flight,
            queued: 0,
            max_concurrency: max,
            priority,
            tried: false,
        }
    }

    const UP: NodeState = NodeState::Up;

    #[test]
    fn least_outstanding_wins() {
        let nodes = [view(UP, 3, 8, 0), view(UP, 1, 8, 0), view(UP, 2, 8, 0)];
        assert_eq!(choose(&nodes, None), Choice::Node(1));
    }

    #[test]
    fn priority_breaks_ties_then_order() {
        let nodes = [view(UP, 1, 8, 0), view(UP, 1, 8, 5), view(UP, 1, 8, 5)];
        assert_eq!(choose(&nodes, None), Choice::Node(1));
        // Priority does not beat fewer requests in flight.
        let nodes = [view(UP, 0, 8, 0), view(UP, 1, 8, 9)];
        assert_eq!(choose(&nodes, None), Choice::Node(0));
    }

    #[test]
    fn never_over_capacity() {
        let nodes = [view(UP, 2, 2, 9), view(UP, 3, 4, 0)];
        assert_eq!(choose(&nodes, None), Choice::Node(1));
        let full = [view(UP, 2, 2, 0), view(UP, 4, 4, 0)];
        assert_eq!(choose(&full, None), Choice::Busy);
        // Not even for the interview's own node.
        assert_eq!(choose(&full, Some(0)), Choice::Busy);
    }

    #[test]
    fn down_and_tried_nodes_are_skipped_and_unknown_is_usable() {
        let nodes = [
            view(NodeState::Down, 0, 4, 0),
            view(NodeState::Unknown, 2, 4, 0),
        ];
        assert_eq!(choose(&nodes, None), Choice::Node(1));
        let down = [view(NodeState::Down, 0, 4, 0)];
        assert_eq!(choose(&down, None), Choice::NoNode);
        let mut tried = view(UP, 0, 4, 0);
        tried.tried = true;
        assert_eq!(choose(&[tried, view(UP, 3, 4, 0)], None), Choice::Node(1));
        assert_eq!(choose(&[tried], None), Choice::NoNode);
        assert_eq!(choose(&[], None), Choice::NoNode);
    }

    #[test]
    fn affinity_hit_while_up_with_room_else_best_node() {
        // Hit even though node 1 is less loaded.
        let nodes = [view(UP, 3, 4, 0), view(UP, 0, 4, 0)];
        assert_eq!(choose(&nodes, Some(0)), Choice::Node(0));
        // Full: moves to the best node.
        let nodes = [view(UP, 4, 4, 0), view(UP, 1, 4, 0)];
        assert_eq!(choose(&nodes, Some(0)), Choice::Node(1));
        // Down, or not yet known up: best node.
        let nodes = [view(NodeState::Down, 0, 4, 0), view(UP, 1, 4, 0)];
        assert_eq!(choose(&nodes, Some(0)), Choice::Node(1));
        let nodes = [view(NodeState::Unknown, 1, 4, 0), view(UP, 0, 4, 0)];
        assert_eq!(choose(&nodes, Some(0)), Choice::Node(1));
        // A stale index (fewer nodes) is ignored.
        assert_eq!(choose(&nodes, Some(7)), Choice::Node(1));
    }

    #[test]
    fn waiters_are_counted_against_the_least_loaded_node() {
        let mut a = view(UP, 2, 2, 0);
        a.queued = 3;
        let b = view(UP, 2, 2, 0);
        assert_eq!(queue_target(&[a, b], None), Some(1));
        assert_eq!(queue_target(&[a, b], Some(0)), Some(0));
        assert_eq!(queue_target(&[view(NodeState::Down, 0, 1, 0)], None), None);
    }

    #[test]
    fn affinity_map_is_bounded_and_keeps_recent_entries() {
        let now = Instant::now();
        let mut m = AffinityMap::new(4, Duration::from_secs(60));
        for i in 0..10 {
            m.set(&format!("iv-{i}"), i, now);
            assert!(m.len() <= 4);
        }
        assert_eq!(m.get("iv-9", now), Some(9));
        assert_eq!(m.get("iv-8", now), Some(8));
        assert_eq!(m.get("iv-0", now), None);
        // Entries unused for longer than the TTL are ignored.
        assert_eq!(m.get("iv-9", now + Duration::from_secs(61)), None);
    }
}
