//! Axes: how a value maps onto one (linear, or in nines for percentiles),
//! round ticks and their labels.

/// How a value maps onto an axis, as a fraction 0..=1 of its length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear {
        lo: f64,
        hi: f64,
    },
    /// Percentiles on a "nines" axis: 90% is one nine, 99% two, 99.9%
    /// three. The tail, where latency problems live, gets as much room as
    /// the body.
    Nines {
        max: f64,
    },
}

/// The number of nines of a percentile: -log10(1 - p/100); 99.9 -> 3.
pub fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-12);
    -rest.log10()
}

/// The percentile with `n` nines: 2 -> 99.
pub fn percentile_of_nines(n: f64) -> f64 {
    100.0 * (1.0 - 10f64.powf(-n))
}

impl Scale {
    pub fn frac(&self, v: f64) -> f64 {
        let f = match *self {
            Scale::Linear { lo, hi } if hi > lo => (v - lo) / (hi - lo),
            Scale::Linear { .. } => 0.0,
            Scale::Nines { max } if max > 0.0 => nines(v) / max,
            Scale::Nines { .. } => 0.0,
        };
        f.clamp(0.0, 1.0)
    }
}

/// Round tick steps (1, 2 or 5 times a power of ten) from 0 up to at least
/// `max`, about `count` of them. The axis then ends on the last tick.
pub fn nice_ticks(max: f64, count: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / count.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step - 1e-9).ceil() as usize;
    (0..=n.max(1)).map(|i| i as f64 * step).collect()
}

/// A tick label: as many decimals as the step needs, no more.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{v:.decimals$}")
}

#[derive(Clone, Debug)]
pub struct Axis {
    /// With its unit, e.g. "latency (ms)".
    pub label: String,
    pub scale: Scale,
    pub ticks: Vec<(f64, String)>,
    /// A value with its unit, for point tooltips.
    pub fmt: fn(f64) -> String,
}

impl Axis {
    /// From 0 to a round number at or above `data_max`.
    pub fn linear(label: &str, data_max: f64, fmt: fn(f64) -> String) -> Axis {
        let ticks = nice_ticks(data_max, 5);
        let step = ticks.get(1).copied().unwrap_or(1.0);
        let hi = *ticks.last().unwrap_or(&1.0);
        Axis {
            label: label.into(),
            scale: Scale::Linear { lo: 0.0, hi },
            ticks: ticks.iter().map(|&t| (t, tick_label(t, step))).collect(),
            fmt,
        }
    }

    /// Percentiles from 0 to `max_nines` nines (5: 99.999%).
    pub fn nines(label: &str, max_nines: u32) -> Axis {
        let ticks = (0..=max_nines)
            .map(|n| {
                let p = percentile_of_nines(n as f64);
                let text = match n {
                    0 => "0%".to_string(),
                    n => format!("{:.*}%", n.saturating_sub(2) as usize, p),
                };
                (p, text)
            })
            .collect();
        Axis {
            label: label.into(),
            scale: Scale::Nines {
                max: max_nines as f64,
            },
            ticks,
            fmt: |p| format!("p{}", trim_float(p)),
        }
    }
}

/// 99.900 -> "99.9", 50 -> "50".
pub fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
