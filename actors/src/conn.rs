//! `ConnHandle`: how a session reaches the client connection currently attached to it. The connection
//! (an actix WebSocket actor in the engine crate) reads the other end of the channel.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// What a session sends to a connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A JSON text frame.
    Text(Arc<str>),
    /// A binary frame: the interviewer's speech, PCM16 little-endian (between `audio_out_start` and
    /// `audio_out_end`).
    Binary(bytes::Bytes),
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
    tx: mpsc::UnboundedSender<Outbound>,
    sent_upto: Arc<AtomicU64>,
    live: Arc<AtomicBool>,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl ConnHandle {
    /// A new handle and the receiver the connection reads.
    pub fn new() -> (ConnHandle, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            ConnHandle {
                id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
                tx,
                sent_upto: Arc::new(AtomicU64::new(0)),
                live: Arc::new(AtomicBool::new(false)),
            },
            rx,
        )
    }

    /// Sends a frame; false when the connection is gone.
    pub fn send(&self, frame: Outbound) -> bool {
        self.tx.send(frame).is_ok()
    }

    /// Sends a logged event with its seq, remembering the highest seq sent.
    pub fn send_logged(&self, seq: u64, text: Arc<str>) -> bool {
        let ok = self.send(Outbound::Text(text));
        if ok {
            self.sent_upto.fetch_max(seq, Ordering::Relaxed);
        }
        ok
    }

    /// The highest logged seq sent on this connection.
    pub fn sent_upto(&self) -> u64 {
        self.sent_upto.load(Ordering::Relaxed)
    }

    /// Whether logged events are sent to this connection as they happen.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Marks the connection live (its stream is contiguous from here on).
    pub fn set_live(&self) {
        self.live.store(true, Ordering::Release);
    }

    /// Whether the connection has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The connection attached to a session, shared between the session and its supervisor so that a
/// restarted session finds the client still there.
pub type ConnSlot = Arc<Mutex<Option<ConnHandle>>>;
