//! The restart rule of the actors that keep long-lived children running (the router's key actors, the
//! GPU pool's node actors): which supervision events mean a child stopped, and a bounded allowance.

use ractor::{ActorId, SupervisionEvent};

/// The child a supervision event says has stopped (failed, or exited), and why; `None` for others.
pub fn stopped_child(event: &SupervisionEvent) -> Option<(ActorId, String)> {
    match event {
        SupervisionEvent::ActorFailed(cell, err) => Some((cell.get_id(), err.to_string())),
        SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell.get_id(), reason.clone().unwrap_or_default()))
        }
        _ => None,
    }
}

/// The restarts one child has had.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restarts(u32);

impl Restarts {
    /// Most restarts of one child before it is left stopped.
    pub const MAX: u32 = 10;

    /// Counts one more restart; `false` (nothing counted) once the child has had [`Restarts::MAX`].
    pub fn take(&mut self) -> bool {
        if self.0 >= Self::MAX {
            return false;
        }
        self.0 += 1;
        true
    }

    /// Restarts so far.
    pub fn count(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_gets_max_restarts_then_none() {
        let mut r = Restarts::default();
        for n in 1..=Restarts::MAX {
            assert!(r.take());
            assert_eq!(r.count(), n);
        }
        assert!(!r.take());
        assert_eq!(r.count(), Restarts::MAX);
    }
}
