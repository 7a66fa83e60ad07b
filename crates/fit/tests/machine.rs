//! Reading this machine's memory (values checked for sanity, never for timing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use minibar_fit::{snapshot, watch, MemorySampler};

#[test]
fn a_snapshot_reports_consistent_totals() {
    let s = snapshot();
    assert!(s.total > 0);
    assert!(s.available <= s.total);
    assert!(s.swap_used <= s.swap_total);
    if cfg!(target_os = "macos") {
        assert!(s.gpu_limit.is_some_and(|l| l <= s.total));
    } else {
        assert_eq!(s.gpu_limit, None);
    }
}

#[test]
fn a_sampler_can_be_read_repeatedly() {
    let mut sampler = MemorySampler::new();
    let a = sampler.sample();
    let b = sampler.sample();
    assert_eq!(a.total, b.total);
}

#[test]
fn watch_yields_readings_until_stopped() {
    let readings: Vec<_> = watch(Duration::from_millis(1)).take(3).collect();
    assert_eq!(readings.len(), 3);
    let stop = AtomicBool::new(false);
    let mut seen = 0;
    watch(Duration::from_millis(1)).run_until(&stop, |_| {
        seen += 1;
        if seen == 2 {
            stop.store(true, Ordering::Relaxed);
        }
    });
    assert_eq!(seen, 2);
}
