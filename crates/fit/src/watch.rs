//! A live feed of memory readings, cheap enough to run all day.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::machine::{MemorySampler, MemorySnapshot};

/// An endless iterator of memory readings, one per interval (the first at once).
pub struct Watch {
    sampler: MemorySampler,
    interval: Duration,
    started: bool,
}

/// Watches this machine's memory every `interval`.
pub fn watch(interval: Duration) -> Watch {
    Watch {
        sampler: MemorySampler::new(),
        interval,
        started: false,
    }
}

impl Iterator for Watch {
    type Item = MemorySnapshot;

    fn next(&mut self) -> Option<MemorySnapshot> {
        if self.started {
            std::thread::sleep(self.interval);
        }
        self.started = true;
        Some(self.sampler.sample())
    }
}

impl Watch {
    /// Calls `on_sample` with each reading until `stop` is set (checked between readings).
    pub fn run_until(self, stop: &AtomicBool, mut on_sample: impl FnMut(MemorySnapshot)) {
        for snap in self {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            on_sample(snap);
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
}
