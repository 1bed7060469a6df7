//! The table: each figure's median of the runs with min and max, the reference measured in the
//! same run, their ratio, and the target with ✓ or ✗.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    PerSecond,
    Ms,
    Mb,
    Count,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::PerSecond => format!("{}/s", thousands(v)),
            Unit::Ms if v < 10.0 => format!("{v:.2} ms"),
            Unit::Ms => format!("{v:.1} ms"),
            Unit::Mb => format!("{v:.1} MB"),
            Unit::Count => thousands(v),
        }
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let first = match digits.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = digits[..first.min(digits.len())].to_string();
    let mut rest = &digits[first.min(digits.len())..];
    while !rest.is_empty() {
        out.push(',');
        out.push_str(&rest[..3]);
        rest = &rest[3..];
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A target of the issue, checked on the median (or on the ratio to the reference); a bound
/// that must never be crossed ([`Target::AtMost`]) is checked on every run.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// median / reference ≥ x
    RatioAtLeast(f64),
    /// median / reference ≤ x
    RatioAtMost(f64),
    /// median < x
    Below(f64),
    /// median == x (counts)
    Exactly(f64),
    /// every run ≤ x (a limit such as a pool's level: the largest value is checked)
    AtMost(f64),
}

impl Target {
    fn describe(self, unit: Unit) -> String {
        match self {
            Target::RatioAtLeast(x) => format!("≥ {:.0}% of ref", x * 100.0),
            Target::RatioAtMost(x) => format!("≤ {x:.2}× ref"),
            Target::Below(x) => format!("< {}", unit.format(x)),
            Target::Exactly(x) => format!("= {}", unit.format(x)),
            Target::AtMost(x) => format!("≤ {} in every run", unit.format(x)),
        }
    }

    fn holds(self, values: &[f64], ratio: Option<f64>) -> Option<bool> {
        let median = median(values);
        match self {
            Target::RatioAtLeast(x) => ratio.map(|r| r >= x),
            Target::RatioAtMost(x) => ratio.map(|r| r <= x),
            Target::Below(x) => Some(median < x),
            Target::Exactly(x) => Some((median - x).abs() < 1e-9),
            Target::AtMost(x) => Some(!values.is_empty() && max(values) <= x),
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub figure: String,
    pub case: String,
    pub metric: String,
    pub unit: Unit,
    pub values: Vec<f64>,
    /// The reference's name and its values in the same runs.
    pub reference: Option<(String, Vec<f64>)>,
    pub target: Option<Target>,
}

impl Row {
    pub fn new(figure: &str, case: &str, metric: &str, unit: Unit, values: Vec<f64>) -> Self {
        Row {
            figure: figure.into(),
            case: case.into(),
            metric: metric.into(),
            unit,
            values,
            reference: None,
            target: None,
        }
    }

    pub fn reference(mut self, name: &str, values: Vec<f64>) -> Self {
        self.reference = Some((name.into(), values));
        self
    }

    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }

    pub fn median(&self) -> f64 {
        median(&self.values)
    }

    pub fn ratio(&self) -> Option<f64> {
        let (_, r) = self.reference.as_ref()?;
        let m = median(r);
        (m.abs() > 1e-12).then(|| self.median() / m)
    }

    /// Whether the target holds (`None` when the row has none or lacks the reference).
    pub fn holds(&self) -> Option<bool> {
        self.target?.holds(&self.values, self.ratio())
    }
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Every row so far, and notes (skipped parts, errors) printed under the table.
#[derive(Default, Debug)]
pub struct Table {
    /// What the machine was at the start of the run.
    pub machine: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("note: {note}");
        self.notes.push(note);
    }

    /// The table as Markdown (which also reads well in a terminal).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| figure | case | metric | median | min | max | reference (median) | ratio | target | ok |\n");
        out.push_str("|---|---|---|--:|--:|--:|--:|--:|---|:-:|\n");
        for r in &self.rows {
            let u = r.unit;
            let reference = match &r.reference {
                Some((name, v)) => format!("{name}: {}", u.format(median(v))),
                None => "—".into(),
            };
            let ratio = r
                .ratio()
                .map(|x| format!("{x:.2}×"))
                .unwrap_or_else(|| "—".into());
            let target = r
                .target
                .map(|t| t.describe(u))
                .unwrap_or_else(|| "—".into());
            let ok = match r.holds() {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.figure,
                r.case,
                r.metric,
                u.format(r.median()),
                u.format(min(&r.values)),
                u.format(max(&r.values)),
                reference,
                ratio,
                target,
                ok
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(out, "- {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(-12345.0), "-12,345");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn an_upper_bound_holds_only_when_no_run_crosses_it() {
        let row = |v: Vec<f64>| Row::new("f", "c", "m", Unit::Count, v).target(Target::AtMost(5.0));
        assert_eq!(row(vec![5.0, 4.0, 5.0]).holds(), Some(true));
        assert_eq!(
            row(vec![5.0, 6.0, 4.0]).holds(),
            Some(false),
            "the median is 5, one run is over"
        );
        assert_eq!(row(vec![]).holds(), Some(false));
    }
}
