//! The restart rule of every actor that keeps children running (the interview supervisor's sessions,
//! the router's key actors, the GPU pool's node actors, the engine root): which supervision events
//! mean a child stopped, whether it failed or exited, and a bounded restart allowance.

use ractor::{ActorCell, ActorId, SupervisionEvent};

/// How a child stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// It failed (a panic or an error from a handler), with the error.
    Failed(String),
    /// It exited (stopped itself, or was stopped), with the reason given.
    Exited(Option<String>),
}

/// The child a supervision event says has stopped, and how; `None` for other events.
pub fn child_stop(event: &SupervisionEvent) -> Option<(ActorCell, Stop)> {
    match event {
        SupervisionEvent::ActorFailed(cell, err) => {
            Some((cell.clone(), Stop::Failed(err.to_string())))
        }
        SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell.clone(), Stop::Exited(reason.clone())))
        }
        _ => None,
    }
}

/// The child a supervision event says has stopped (failed, or exited), and why; `None` for others.
/// For children restarted whichever way they stopped (key actors, GPU node actors).
pub fn stopped_child(event: &SupervisionEvent) -> Option<(ActorId, String)> {
    child_stop(event).map(|(cell, stop)| {
        let why = match stop {
            Stop::Failed(e) => e,
            Stop::Exited(reason) => reason.unwrap_or_default(),
        };
        (cell.get_id(), why)
    })
}

/// The restarts one child has had.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restarts(u32);

impl Restarts {
    /// Most restarts of one child before it is left stopped.
    pub const MAX: u32 = 10;

    /// Counts one more restart; `false` (nothing counted) once the child has had [`Restarts::MAX`].
    pub fn take(&mut self) -> bool {
        self.take_within(Self::MAX)
    }

    /// Counts one more restart; `false` (nothing counted) once the child has had `max`.
    pub fn take_within(&mut self, max: u32) -> bool {
        if self.0 >= max {
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

    #[test]
    fn a_smaller_allowance_stops_sooner() {
        let mut r = Restarts::default();
        assert!(r.take_within(2));
        assert!(r.take_within(2));
        assert!(!r.take_within(2));
        assert_eq!(r.count(), 2);
    }
}
