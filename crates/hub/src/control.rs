//! The handle a caller keeps to cancel, pause or resume a running pull.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Cancel, pause and resume for one pull; clones control the same pull.
#[derive(Clone, Debug)]
pub struct PullControl {
    cancel: CancellationToken,
    paused: watch::Sender<bool>,
}

impl Default for PullControl {
    fn default() -> Self {
        Self::new()
    }
}

impl PullControl {
    /// A control for a pull that is running and not paused.
    pub fn new() -> Self {
        PullControl {
            cancel: CancellationToken::new(),
            paused: watch::Sender::new(false),
        }
    }

    /// Stops the pull; partial files are kept, and it ends with `HubError::Cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether [`PullControl::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Closes the connections and waits; partial files stay on disk.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Reconnects and continues each file from the bytes it has (HTTP Range).
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Whether the pull is paused.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// A control that shares pause with this one and is cancelled with it, but can also be
    /// cancelled on its own (to stop sibling downloads after a failure).
    pub(crate) fn child(&self) -> PullControl {
        PullControl {
            cancel: self.cancel.child_token(),
            paused: self.paused.clone(),
        }
    }

    /// A receiver whose `changed()` fires on any pause or resume after this call, so even a
    /// brief pause reliably closes a running transfer.
    pub(crate) fn pause_watch(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }

    /// Resolves when the pull is cancelled.
    pub(crate) async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Resolves when the pull becomes paused.
    pub(crate) async fn paused(&self) {
        let mut rx = self.paused.subscribe();
        // Only fails if the sender is gone, and `self` holds it.
        let _ = rx.wait_for(|p| *p).await;
    }

    /// Waits while paused; returns `false` if cancelled meanwhile.
    pub(crate) async fn wait_while_paused(&self) -> bool {
        let mut rx = self.paused.subscribe();
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            r = rx.wait_for(|p| !*p) => r.is_ok() && !self.cancel.is_cancelled(),
        }
    }
}
