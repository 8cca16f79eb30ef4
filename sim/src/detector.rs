//! The early-warning boot-time drift detector: a one-sided CUSUM over
//! individual boot times, calibrated on a quiet window after the warm-up.
//!
//! CUSUM (Page, 1954) accumulates small, persistent shifts that a threshold
//! on the mean misses: exactly the +2 s of Friday evening in 2012, "not
//! substantially outside the variation caused by normal changes".

use serde::{Deserialize, Serialize};

/// Fewest samples that arm the detector once calibration ends.
const CALIBRATION_SAMPLES: u64 = 30;
/// Allowance: shifts below `k` standard deviations are ignored.
const ALLOWANCE_SIGMA: f64 = 0.5;
/// Decision threshold, in standard deviations of accumulated excess.
const THRESHOLD_SIGMA: f64 = 12.0;

/// The detector's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    /// Boots seen during calibration.
    pub calibration_count: u64,
    mean_acc: f64,
    m2_acc: f64,
    /// Learned baseline mean, ms.
    pub baseline_mean_ms: f64,
    /// Learned baseline standard deviation, ms.
    pub baseline_sd_ms: f64,
    /// Accumulated standardized excess.
    pub cusum: f64,
    /// Simulated time of the first alert, ms.
    pub alert_at_ms: Option<u64>,
}

impl Detector {
    /// Feeds one boot time observed at `now_ms`; `calibrating` while the
    /// baseline is being learned.
    pub fn observe(&mut self, now_ms: u64, boot_ms: f64, calibrating: bool) {
        if calibrating || self.calibration_count < CALIBRATION_SAMPLES {
            if calibrating {
                // Welford's online mean and variance.
                self.calibration_count += 1;
                let delta = boot_ms - self.mean_acc;
                self.mean_acc += delta / self.calibration_count as f64;
                self.m2_acc += delta * (boot_ms - self.mean_acc);
                self.baseline_mean_ms = self.mean_acc;
                let var = self.m2_acc / self.calibration_count.max(2).saturating_sub(1) as f64;
                self.baseline_sd_ms = var.sqrt().max(1.0);
            }
            return;
        }
        let z = (boot_ms - self.baseline_mean_ms) / self.baseline_sd_ms;
        self.cusum = (self.cusum + z - ALLOWANCE_SIGMA).max(0.0);
        if self.cusum > THRESHOLD_SIGMA && self.alert_at_ms.is_none() {
            self.alert_at_ms = Some(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Detector;
    use crate::rng::Rng;

    fn run(shift_ms: f64) -> Option<u64> {
        let mut d = Detector::default();
        let mut rng = Rng::new(3);
        for i in 0..20_000u64 {
            let x = 7000.0 + 2000.0 * (2.0 * rng.unit() - 1.0);
            let shifted = if i >= 10_000 { x + shift_ms } else { x };
            d.observe(i, shifted, i < 1000);
        }
        d.alert_at_ms
    }

    #[test]
    fn a_two_second_shift_is_caught_within_a_few_dozen_boots() {
        let at = run(2000.0);
        assert!(at.is_some_and(|t| (10_000..10_050).contains(&t)), "{at:?}");
    }

    #[test]
    fn no_shift_no_alert() {
        assert_eq!(run(0.0), None);
    }
}
