//! `ConnHandle`: how a session reaches the client connection currently attached to it. The connection
//! (a task in the engine crate's `http/ws.rs`) reads the other end of the channel.
//!
//! The channel is bounded ([`OUTBOUND_CAPACITY`] frames). A session never waits for a client: when a
//! client stops reading and its channel fills up, the handle is marked *overflowed*, further frames
//! are dropped and the connection closes itself; the client reconnects and `resume`s from the log, so
//! nothing logged is lost. Memory per connection stays bounded whatever the client does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

/// Frames that may wait for one connection. A whole 50-question interview replayed is about 300
/// events, so a client that reads keeps up; one that does not is closed at this bound.
pub const OUTBOUND_CAPACITY: usize = 1024;

/// What a session sends to a connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A JSON text frame.
    Text(Arc<str>),
    /// Close the connection with a reason (e.g. replaced by a newer connection).
    Close(String),
}

/// A connection: an id, the channel to it, the highest logged seq it was sent, and whether it is
/// *live*. A connection is live once its event stream is contiguous: at once for a new interview
/// (nothing logged yet), otherwise after its `resume`. Logged events are sent live only to a live
/// connection; before that they wait in the log, so a reconnecting client never receives a newer event
/// before the older ones its `resume` asks for.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Connection id (unique per process).
    pub id: u64,
    tx: mpsc::Sender<Outbound>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    sent_upto: AtomicU64,
    /// The interview's last logged seq as the session last told it (for the connection's own
    /// `error` and `pong` events).
    logged: AtomicU64,
    live: AtomicBool,
    overflowed: AtomicBool,
    overflow: Notify,
}

/// The connection's end of a [`ConnHandle`].
#[derive(Debug)]
pub struct ConnReceiver {
    /// Frames from the session.
    pub rx: mpsc::Receiver<Outbound>,
    /// What else the session tells the connection.
    pub watch: ConnWatch,
}

/// What the session publishes to its connection besides frames.
#[derive(Debug, Clone)]
pub struct ConnWatch {
    shared: Arc<Shared>,
}

impl ConnWatch {
    /// Resolves when the session could not hand this connection a frame (the client is not reading).
    pub async fn overflowed(&self) {
        loop {
            let notified = self.shared.overflow.notified();
            if self.shared.overflowed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// The interview's last logged seq, as the session last published it.
    pub fn logged_seq(&self) -> u64 {
        self.shared.logged.load(Ordering::Acquire)
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl ConnHandle {
    /// A new handle and the receiver the connection reads.
    pub fn new() -> (ConnHandle, ConnReceiver) {
        Self::with_capacity(OUTBOUND_CAPACITY)
    }

    /// A handle whose channel holds at most `capacity` frames.
    pub fn with_capacity(capacity: usize) -> (ConnHandle, ConnReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        (
            ConnHandle {
                id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
                tx,
                shared: shared.clone(),
            },
            ConnReceiver {
                rx,
                watch: ConnWatch { shared },
            },
        )
    }

    /// Sends a frame; false when the connection is gone or has fallen too far behind (it is then
    /// closed: its client reconnects and resumes).
    pub fn send(&self, frame: Outbound) -> bool {
        if self.shared.overflowed.load(Ordering::Acquire) {
            return false;
        }
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.overflowed.store(true, Ordering::Release);
                self.shared.overflow.notify_waiters();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Sends a logged event with its seq, remembering the highest seq sent.
    pub fn send_logged(&self, seq: u64, text: Arc<str>) -> bool {
        let ok = self.send(Outbound::Text(text));
        if ok {
            self.shared.sent_upto.fetch_max(seq, Ordering::Relaxed);
        }
        ok
    }

    /// The highest logged seq sent on this connection.
    pub fn sent_upto(&self) -> u64 {
        self.shared.sent_upto.load(Ordering::Relaxed)
    }

    /// Publishes the interview's last logged seq to the connection.
    pub fn set_logged(&self, seq: u64) {
        self.shared.logged.fetch_max(seq, Ordering::AcqRel);
    }

    /// Whether logged events are sent to this connection as they happen.
    pub fn is_live(&self) -> bool {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Marks the connection live (its stream is contiguous from here on).
    pub fn set_live(&self) {
        self.shared.live.store(true, Ordering::Release);
    }

    /// Whether the connection has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.shared.overflowed.load(Ordering::Acquire)
    }
}

/// The connection attached to a session, shared between the session and its supervisor so that a
/// restarted session finds the client still there.
pub type ConnSlot = Arc<Mutex<Option<ConnHandle>>>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_does_not_read_overflows_and_nothing_more_is_queued() {
        let (h, r) = ConnHandle::with_capacity(3);
        for i in 0..3 {
            assert!(h.send_logged(i + 1, Arc::from("x")));
        }
        assert!(!h.send_logged(4, Arc::from("x")), "the fourth does not fit");
        assert!(h.is_closed());
        assert_eq!(
            h.sent_upto(),
            3,
            "what was not queued is not counted as sent"
        );
        // The connection learns of it, however late it asks.
        tokio::time::timeout(std::time::Duration::from_secs(5), r.watch.overflowed())
            .await
            .unwrap();
        assert_eq!(r.rx.len(), 3);
    }

    #[test]
    fn the_logged_seq_only_grows() {
        let (h, r) = ConnHandle::new();
        h.set_logged(5);
        h.set_logged(3);
        assert_eq!(r.watch.logged_seq(), 5);
    }
}
