//! What Linux can say about memory pressure: the kernel's pressure-stall information.

use super::Pressure;

/// Reads `/proc/pressure/memory`; `None` where the kernel has no PSI.
pub fn pressure() -> Option<Pressure> {
    let text = std::fs::read_to_string("/proc/pressure/memory").ok()?;
    parse_psi(&text)
}

/// Classifies PSI's `some avg10` (share of the last 10 s some task stalled on memory).
pub fn parse_psi(text: &str) -> Option<Pressure> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    let avg10: f64 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()?;
    Some(if avg10 >= 30.0 {
        Pressure::Critical
    } else if avg10 >= 5.0 {
        Pressure::Warning
    } else {
        Pressure::Normal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_psi_levels() {
        let calm = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_psi(calm), Some(Pressure::Normal));
        let busy = "some avg10=12.50 avg60=3.00 avg300=1.00 total=99\n";
        assert_eq!(parse_psi(busy), Some(Pressure::Warning));
        let stalled = "some avg10=45.00 avg60=3.00 avg300=1.00 total=99\n";
        assert_eq!(parse_psi(stalled), Some(Pressure::Critical));
        assert_eq!(parse_psi("garbage"), None);
    }
}
