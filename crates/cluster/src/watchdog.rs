//! A bound on every wait for another node. MLX's ring blocks in `recv` until its bytes arrive
//! and has no timeout: when a peer dies or a link stalls, the wait never ends. A thread
//! watches the wait in progress; past its bound it reports what it was waiting for and ends
//! the process, which frees the node's memory (MLX's own threads cannot be unblocked).

use std::{
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

type Waiting = Arc<Mutex<Option<(Instant, Duration, String)>>>;

/// Watches the current wait of this process.
pub struct Watchdog {
    waiting: Waiting,
}

/// The wait in progress; dropping it ends the wait.
pub struct Wait<'a> {
    dog: &'a Watchdog,
}

impl Watchdog {
    /// Starts the watching thread. Past a wait's bound, `report` gets a message naming what
    /// was awaited, and the process exits with status 3 without running destructors (MLX's
    /// blocked threads would never join).
    pub fn start(report: impl Fn(&str) + Send + 'static) -> Watchdog {
        let waiting: Waiting = Arc::default();
        let seen = waiting.clone();
        thread::Builder::new()
            .name("cluster-watchdog".into())
            .spawn(move || loop {
                thread::sleep(Duration::from_millis(50));
                let expired = match &*seen.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some((since, bound, what)) if since.elapsed() > *bound => {
                        Some(format!("{what}: nothing for {} s", bound.as_secs_f32()))
                    }
                    _ => None,
                };
                if let Some(message) = expired {
                    report(&message);
                    // SAFETY: _exit ends the process at once; nothing of Rust's is relied on
                    // after it.
                    unsafe { libc::_exit(3) };
                }
            })
            .expect("spawning the cluster watchdog");
        Watchdog { waiting }
    }

    /// Starts a wait of at most `bound` for `what` (e.g. "rank 1 (10.0.0.2:5000) stopped
    /// sending activations").
    pub fn wait(&self, bound: Duration, what: impl Into<String>) -> Wait<'_> {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), bound, what.into()));
        Wait { dog: self }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        *self.dog.waiting.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
