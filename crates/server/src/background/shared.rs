//! What the background loops, the event streams and the request handlers share.

/// What the loops and the event stream share.
pub struct Shared {
    /// This instance's name in leases.
    pub owner: String,
    /// Woken on every event this instance records (streams and the delivery loop listen).
    pub events: tokio::sync::Notify,
    /// Bumped on every event this instance records.
    pub event_serial: tokio::sync::watch::Sender<u64>,
    /// When the store-wide gauges were last computed.
    pub(super) gauges_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            owner: format!("worker-{}", ulid::Ulid::new()),
            events: tokio::sync::Notify::new(),
            event_serial: tokio::sync::watch::channel(0).0,
            gauges_at: std::sync::Mutex::new(None),
        }
    }
}

impl Shared {
    pub fn recorded(&self) {
        self.events.notify_waiters();
        self.event_serial.send_modify(|n| *n += 1);
    }
}
