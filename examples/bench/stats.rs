//! Medians, percentiles and the markdown table the harness prints.

/// The `q` quantile (0..=1, nearest rank) of `xs`; `NaN` when empty.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

pub fn median(xs: &[f64]) -> f64 {
    quantile(xs, 0.5)
}

pub fn p99(xs: &[f64]) -> f64 {
    quantile(xs, 0.99)
}

/// One line of the result table.
pub struct Row {
    pub what: String,
    pub value: String,
    /// The goal from docs/BENCHMARKS.md, or empty when the row is a reference.
    pub goal: String,
    /// `met`, `missed` or empty (reference rows).
    pub verdict: String,
}

impl Row {
    pub fn new(what: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            value: value.into(),
            goal: String::new(),
            verdict: String::new(),
        }
    }

    /// Attaches a goal and whether it was met.
    pub fn goal(mut self, goal: &str, met: bool) -> Row {
        self.goal = goal.into();
        self.verdict = if met { "met" } else { "missed" }.into();
        self
    }
}

pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("| measurement | result | goal | |\n|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what, r.value, r.goal, r.verdict
        ));
    }
    out
}

/// Progress goes to stderr; the table alone goes to stdout.
macro_rules! progress {
    ($($t:tt)*) => { eprintln!("[bench] {}", format!($($t)*)) };
}
