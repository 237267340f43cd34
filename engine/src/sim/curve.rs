//! The day's arrival curve: what share of the day's interviews start in each hour (UTC), and the
//! arrival times that follow from it. Arrivals are spread evenly within each hour, so a run is the
//! same every time.

use std::time::Duration;

/// Weights of the 24 hours of the day (any scale; only the shares matter).
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// One weight per hour, 00:00 first.
    pub weights: [f64; 24],
}

/// The default working-day shape: quiet at night, rising from 06:00, a plateau from 11:00 to 14:00
/// (the peak, 9.1 % of the day in each of those hours), and falling off through the evening.
pub const WORKDAY: [f64; 24] = [
    1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 7.0, 10.0, 12.0, 13.0, 14.0, 14.0, 14.0, 13.0, 11.0, 9.0,
    7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0,
];

/// Why a curve could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CurveError {
    /// Not a known name nor 24 numbers.
    #[error("--curve: expected `workday`, `flat` or 24 comma-separated non-negative weights (00:00 first), got {0:?}")]
    Bad(String),
}

impl Curve {
    /// [`WORKDAY`].
    pub fn workday() -> Curve {
        Curve { weights: WORKDAY }
    }

    /// The same number of arrivals every hour.
    pub fn flat() -> Curve {
        Curve { weights: [1.0; 24] }
    }

    /// `workday`, `flat`, or 24 comma-separated weights.
    pub fn parse(text: &str) -> Result<Curve, CurveError> {
        match text.trim() {
            "workday" => return Ok(Curve::workday()),
            "flat" => return Ok(Curve::flat()),
            _ => {}
        }
        let bad = || CurveError::Bad(text.to_string());
        let values: Vec<f64> = text
            .split(',')
            .map(|v| v.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let weights: [f64; 24] = values.try_into().map_err(|_| bad())?;
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weights.iter().sum::<f64>() <= 0.0
        {
            return Err(bad());
        }
        Ok(Curve { weights })
    }

    /// Interviews in each hour for a day of `total`: largest remainders, so they add up to `total`.
    pub fn per_hour(&self, total: usize) -> [usize; 24] {
        let sum: f64 = self.weights.iter().sum();
        let exact: Vec<f64> = self
            .weights
            .iter()
            .map(|w| w / sum * total as f64)
            .collect();
        let mut out = [0usize; 24];
        for (o, e) in out.iter_mut().zip(&exact) {
            *o = e.floor() as usize;
        }
        let mut rest: Vec<usize> = (0..24).collect();
        rest.sort_by(|a, b| {
            let fa = exact[*a] - exact[*a].floor();
            let fb = exact[*b] - exact[*b].floor();
            fb.total_cmp(&fa)
        });
        let short = total.saturating_sub(out.iter().sum());
        for i in rest.into_iter().take(short) {
            out[i] += 1;
        }
        out
    }

    /// Arrival times from the start of the day, in order: each hour's interviews evenly spread in it.
    pub fn arrivals(&self, total: usize) -> Vec<Duration> {
        let mut out = Vec::with_capacity(total);
        for (h, n) in self.per_hour(total).iter().enumerate() {
            for i in 0..*n {
                let s = h as f64 * 3600.0 + (i as f64 + 0.5) * 3600.0 / *n as f64;
                out.push(Duration::from_secs_f64(s));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hours_add_up_and_follow_the_weights() {
        let c = Curve::workday();
        let h = c.per_hour(20_000);
        assert_eq!(h.iter().sum::<usize>(), 20_000);
        assert!(h[12] > 10 * h[2]);
        let a = c.arrivals(500);
        assert_eq!(a.len(), 500);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(a.last().unwrap() < &Duration::from_secs(86_400));
    }

    #[test]
    fn parses_names_and_weights() {
        assert_eq!(Curve::parse("flat").unwrap(), Curve::flat());
        let text = vec!["1"; 24].join(",");
        assert_eq!(Curve::parse(&text).unwrap(), Curve::flat());
        assert!(Curve::parse("1,2,3").is_err());
        assert!(Curve::parse("nope").is_err());
    }
}
