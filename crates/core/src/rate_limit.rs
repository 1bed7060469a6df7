//! Rate limits of the applications behind the proxy: how long an answer asks the caller to wait
//! (`Retry-After`, RFC 9110 §10.2.3, or the application's own reset header), and the effective
//! level of a concurrency pool that such answers lower.
//!
//! A pool runs at its configured level (the ceiling) until the application answers 429 (Too
//! Many Requests, RFC 6585 §4). Then the level halves, never below 1, and climbs back by one for
//! every quiet step (a step without a 429), up to the ceiling again. The 429s of requests sent
//! before the last lowering belong to the burst that caused it: they do not lower the level
//! again, they only restart the quiet period. The level is a function of the last lowering and
//! the clock, so nothing has to run to raise it, and the SQL of the cluster's shared state (the
//! `pool_levels` table) computes the same thing.

use crate::catalog::RateLimitSpec;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The state of a pool whose level a 429 lowered. Times are kept at millisecond precision
/// (as the stores keep them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoweredLevel {
    /// The level right after the last change (at least 1); it climbs from here.
    pub floor: i64,
    /// When the level was last halved: 429s of requests sent before this do not halve it again.
    pub lowered_at: DateTime<Utc>,
    /// The last 429: quiet steps count from here.
    pub last_limited_at: DateTime<Utc>,
    /// How long a quiet step lasts, in milliseconds (at least 1).
    pub step_ms: i64,
}

impl LoweredLevel {
    /// The level at `now` under the configured `ceiling` (both at least 1).
    pub fn effective(&self, ceiling: usize, now: DateTime<Utc>) -> usize {
        let quiet = (now - self.last_limited_at).num_milliseconds().max(0);
        let level = self
            .floor
            .max(1)
            .saturating_add(quiet / self.step_ms.max(1));
        (level.max(1) as u64).min(ceiling.max(1) as u64) as usize
    }

    /// Whether the level is back at `ceiling` (the lowering can be forgotten).
    pub fn recovered(&self, ceiling: usize, now: DateTime<Utc>) -> bool {
        self.effective(ceiling, now) >= ceiling.max(1)
    }

    /// When the level next climbs by one (after `now`).
    pub fn next_step_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let step = self.step_ms.max(1);
        let quiet = (now - self.last_limited_at).num_milliseconds().max(0);
        self.last_limited_at + chrono::Duration::milliseconds((quiet / step + 1) * step)
    }

    /// The state after a 429 that came back at `now` for a request sent at `sent_at`, from the
    /// state before (`None`: the pool ran at its ceiling). The stores' SQL does the same.
    pub fn after_limited(
        before: Option<&LoweredLevel>,
        ceiling: usize,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
        step: Duration,
    ) -> LoweredLevel {
        let step_ms = (step.as_millis() as i64).max(1);
        let ceiling = ceiling.max(1) as i64;
        match before {
            None => LoweredLevel {
                floor: (ceiling / 2).max(1),
                lowered_at: now,
                last_limited_at: now,
                step_ms,
            },
            Some(b) => {
                let current = b.effective(ceiling as usize, now) as i64;
                let new_burst = b.lowered_at <= sent_at;
                LoweredLevel {
                    floor: if new_burst {
                        (current / 2).max(1)
                    } else {
                        current
                    },
                    lowered_at: if new_burst { now } else { b.lowered_at },
                    last_limited_at: b.last_limited_at.max(now),
                    step_ms,
                }
            }
        }
    }
}

/// How long a rate-limited answer asks to wait: its `Retry-After` (delta-seconds or an
/// HTTP-date, RFC 9110 §10.2.3), else the reset header the catalog entry names. `None` when the
/// answer says nothing usable (then the proxy does not retry it).
pub fn wait_of<'a>(
    retry_after: Option<&'a str>,
    reset: Option<(&RateLimitSpec, &'a str)>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    if let Some(w) = retry_after.and_then(|v| parse_retry_after(v, now)) {
        return Some(w);
    }
    let (spec, value) = reset?;
    parse_reset(spec.reset_style.as_deref(), value, now)
}

/// `Retry-After`: delta-seconds (fractions are accepted: some applications send them) or an
/// HTTP-date in any of the three forms a recipient must accept; a date in the past means now.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Some(d) = seconds(v) {
        return Some(d);
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(v).ok()?.into();
    Some(until(at, now))
}

/// An application's reset header, read as its catalog entry says: `seconds` from now (the
/// default), `milliseconds` from now, a `duration` from now (`1s`, `6m0s`, `250ms`), `epoch`
/// seconds or `epoch_ms` milliseconds since 1970.
pub fn parse_reset(style: Option<&str>, value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    match style.unwrap_or("seconds") {
        "milliseconds" => from_secs(v.parse::<f64>().ok()? / 1000.0),
        "duration" => duration(v),
        "epoch" => {
            let secs: f64 = v.parse().ok().filter(|s: &f64| s.is_finite())?;
            let at = DateTime::from_timestamp_millis((secs * 1000.0) as i64)?;
            Some(until(at, now))
        }
        "epoch_ms" => {
            let at = DateTime::from_timestamp_millis(v.parse().ok()?)?;
            Some(until(at, now))
        }
        _ => seconds(v),
    }
}

/// A non-negative number of seconds, at most a hundred years (more is no wait anyone means).
fn seconds(v: &str) -> Option<Duration> {
    from_secs(v.parse().ok()?)
}

fn from_secs(s: f64) -> Option<Duration> {
    (s.is_finite() && (0.0..=3.2e9).contains(&s)).then(|| Duration::from_secs_f64(s))
}

/// A duration written as numbers with units, `h`, `m`, `s` or `ms` (`6m0s`, `1.5s`, `20ms`).
fn duration(v: &str) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    let mut rest = v;
    while !rest.is_empty() {
        let split = rest
            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
            .filter(|i| *i > 0)?;
        let n: f64 = rest[..split].parse().ok()?;
        rest = &rest[split..];
        let unit_len = rest
            .find(|ch: char| ch.is_ascii_digit() || ch == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    from_secs(total)
}

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    const STEP: Duration = Duration::from_secs(10);

    #[test]
    fn a_burst_halves_once_and_quiet_steps_climb_back_to_the_ceiling() {
        let first = LoweredLevel::after_limited(None, 8, t(0), t(100), STEP);
        assert_eq!(first.effective(8, t(100)), 4);
        // The rest of the burst (sent before the lowering) does not halve again.
        let same = LoweredLevel::after_limited(Some(&first), 8, t(50), t(200), STEP);
        assert_eq!(same.effective(8, t(200)), 4);
        assert_eq!(
            same.last_limited_at,
            t(200),
            "the quiet period starts again"
        );
        // A request sent at the lowered level and limited again halves it again.
        let again = LoweredLevel::after_limited(Some(&same), 8, t(300), t(400), STEP);
        assert_eq!(again.effective(8, t(400)), 2);
        assert_eq!(again.effective(8, t(400 + 9_999)), 2);
        assert_eq!(again.effective(8, t(400 + 10_000)), 3);
        assert_eq!(again.next_step_at(t(400 + 10_000)), t(400 + 20_000));
        assert!(!again.recovered(8, t(400 + 50_000)));
        assert_eq!(again.effective(8, t(400 + 60_000)), 8);
        assert!(again.recovered(8, t(400 + 60_000)));
        assert_eq!(
            again.effective(8, t(400 + 6_000_000)),
            8,
            "the ceiling holds"
        );
    }

    #[test]
    fn the_level_never_drops_below_one_and_follows_a_lower_ceiling() {
        let mut s = LoweredLevel::after_limited(None, 1, t(0), t(0), STEP);
        for i in 1..5 {
            s = LoweredLevel::after_limited(Some(&s), 1, t(i * 10), t(i * 10 + 1), STEP);
            assert_eq!(s.effective(1, t(i * 10 + 1)), 1);
        }
        let s = LoweredLevel::after_limited(None, 25, t(0), t(0), STEP);
        assert_eq!(s.effective(25, t(0)), 12);
        assert_eq!(s.effective(3, t(0)), 3, "a lowered ceiling applies at once");
        // Recovery measured from a clock behind the last 429 (another instance) stays put.
        assert_eq!(s.effective(25, t(-5_000)), 12);
    }

    #[test]
    fn retry_after_takes_seconds_and_all_three_date_forms() {
        let now: DateTime<Utc> = DateTime::parse_from_rfc3339("1994-11-06T08:49:30Z")
            .unwrap()
            .into();
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(7)),
                "{date}"
            );
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        for bad in ["", "-1", "soon", "NaN", "inf", "1e300"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn reset_headers_are_read_in_the_entrys_style() {
        let now = t(0);
        let epoch_secs = (now.timestamp_millis() / 1000 + 3).to_string();
        assert_eq!(
            parse_reset(Some("epoch"), &epoch_secs, now),
            Some(Duration::from_secs(3))
        );
        let epoch_ms = (now.timestamp_millis() + 2_500).to_string();
        assert_eq!(
            parse_reset(Some("epoch_ms"), &epoch_ms, now),
            Some(Duration::from_millis(2_500))
        );
        assert_eq!(
            parse_reset(Some("seconds"), "4", now),
            Some(Duration::from_secs(4))
        );
        assert_eq!(parse_reset(None, "4", now), Some(Duration::from_secs(4)));
        assert_eq!(
            parse_reset(Some("milliseconds"), "1500", now),
            Some(Duration::from_millis(1500))
        );
        for (text, ms) in [
            ("1s", 1000),
            ("6m0s", 360_000),
            ("250ms", 250),
            ("1.5s", 1500),
            ("1h2m", 3_720_000),
        ] {
            assert_eq!(
                parse_reset(Some("duration"), text, now),
                Some(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "s", "5", "5x", "1s2", "-1s"] {
            assert_eq!(parse_reset(Some("duration"), bad, now), None, "{bad}");
        }
        assert_eq!(parse_reset(Some("epoch"), "12", now), Some(Duration::ZERO));
        assert_eq!(parse_reset(Some("epoch"), "later", now), None);
        let spec = RateLimitSpec {
            reset_header: Some("x-reset".into()),
            reset_style: Some("seconds".into()),
            ..Default::default()
        };
        assert_eq!(
            wait_of(Some("2"), Some((&spec, "9")), now),
            Some(Duration::from_secs(2)),
            "Retry-After comes first"
        );
        assert_eq!(
            wait_of(Some("soon"), Some((&spec, "9")), now),
            Some(Duration::from_secs(9))
        );
        assert_eq!(wait_of(None, None, now), None);
    }
}
