//! The host's TSC rate, which an x86 guest under TCG needs to be told: its
//! TSC ticks at the host's rate (QEMU's rdtsc helper reads the host's
//! counter), and without ACPI it has nothing to calibrate against. Measured
//! once per host boot and cached beside the KVM verdict.

use std::{path::Path, time::Duration};

use crate::util::exec::Exec;

/// The host TSC rate in kHz, from the cache or measured (about 0.2 s);
/// `None` on hosts without an x86 TSC.
pub fn host_tsc_khz(exec: &Exec, cache: &Path) -> Option<u64> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot_id = boot_id.trim();
    if let Ok(text) = std::fs::read_to_string(cache) {
        if let Some((id, khz)) = text.trim().split_once(' ') {
            if id == boot_id {
                return khz.parse().ok();
            }
        }
    }
    let khz = measure()?;
    // A cache: a write that fails costs the next run 0.2 s, no more.
    let _ = exec.write(cache, format!("{boot_id} {khz}\n"));
    Some(khz)
}

#[cfg(target_arch = "x86_64")]
fn measure() -> Option<u64> {
    use std::time::Instant;
    // The tightest (counter, clock) pair out of many at each end of a
    // sleep: a pair split by an interrupt or a reschedule is wide.
    fn pair() -> (u64, Instant) {
        let mut best: Option<(Duration, u64, Instant)> = None;
        for _ in 0..50 {
            let before = Instant::now();
            // SAFETY: rdtsc has no preconditions on x86_64.
            let tsc = unsafe { core::arch::x86_64::_rdtsc() };
            let after = Instant::now();
            let width = after - before;
            if best.is_none_or(|(w, _, _)| width < w) {
                best = Some((width, tsc, before + width / 2));
            }
        }
        let (_, tsc, at) = best.expect("50 tries");
        (tsc, at)
    }
    let (c0, t0) = pair();
    std::thread::sleep(Duration::from_millis(150));
    let (c1, t1) = pair();
    let ns = (t1 - t0).as_nanos() as u64;
    (ns > 0 && c1 > c0).then(|| (c1 - c0) * 1_000_000 / ns)
}

#[cfg(not(target_arch = "x86_64"))]
fn measure() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn measured_rate_agrees_with_the_host_kernels() {
        // The host kernel's own calibration, where it says it.
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        if !cpuinfo.contains("constant_tsc") {
            return;
        }
        let khz = measure().unwrap();
        assert!((100_000..10_000_000).contains(&khz), "{khz} kHz");
        let again = measure().unwrap();
        let spread = khz.abs_diff(again) as f64 / khz as f64;
        assert!(spread < 0.01, "{khz} vs {again}");
    }
}
