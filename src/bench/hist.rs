//! A fixed-size log-linear latency histogram (microseconds, <1 % error).
//!
//! Bounded memory whatever the run length, mergeable across load slots, and
//! no dependency: 64 linear sub-buckets per power of two, like HdrHistogram
//! with two significant digits.

/// Exact below this value; log-linear above.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above `LINEAR`.
const SUB: u64 = 64;
/// Enough buckets for any `u64`.
const BUCKETS: usize = (LINEAR + 57 * SUB) as usize;

/// Counts of values in microseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: 0, sum: 0 }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    // `shift` ≥ 1 extra bits beyond the 7 kept: v >> shift is in [64, 128).
    let shift = 64 - u64::from(v.leading_zeros()) - 7;
    (LINEAR + (shift - 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// The middle of bucket `i` (what a percentile reports).
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = (i - LINEAR) / SUB + 1;
    let low = ((i - LINEAR) % SUB + SUB) << shift;
    low + (1 << shift) / 2
}

impl Histogram {
    /// Records one value (µs).
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
        self.sum += u128::from(micros);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean (exact).
    pub fn mean(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum as f64 / self.total as f64 }
    }

    /// The value at quantile `q` (0.99 = p99), in µs; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value(i).min(self.max);
            }
        }
        self.max
    }

    /// `p50 / p99 / p999` in milliseconds, for tables.
    pub fn summary_ms(&self) -> String {
        let ms = |q| self.quantile(q) as f64 / 1000.0;
        format!("{:.2} / {:.2} / {:.2} ms", ms(0.5), ms(0.99), ms(0.999))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_within_one_percent() {
        let mut last = 0;
        for v in (0..2_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
            let i = index(v);
            assert!(i >= last && i < BUCKETS, "index({v}) = {i}");
            last = i;
            let mid = value(i) as f64;
            assert!((mid - v as f64).abs() <= (v as f64 / 64.0).max(0.5), "{v} -> {mid}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5_000.0).abs() < 60.0, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 9_900.0).abs() < 110.0, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(h.count(), 10_000);
        let mut other = Histogram::default();
        other.record(20_000);
        h.merge(&other);
        assert_eq!(h.max(), 20_000);
        assert_eq!(Histogram::default().quantile(0.99), 0);
    }
}
