//! Percentiles and the printed table.

use std::time::Duration;

/// The `p`-quantile (0..=1) of `samples` in milliseconds (nearest rank).
pub fn ms(samples: &[Duration], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let Some(last) = v.len().checked_sub(1) else {
        return f64::NAN;
    };
    let i = ((last as f64) * p).round() as usize;
    v[i.min(last)].as_secs_f64() * 1e3
}

pub struct Row {
    pub figure: String,
    pub measured: String,
    pub baseline: String,
    /// The figure as a multiple of its baseline, as the target states it.
    pub ratio: String,
    pub target: String,
    /// `Some(true)` met, `Some(false)` missed, `None` nothing to compare.
    pub met: Option<bool>,
}

pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    pub fn new() -> Report {
        Report { rows: Vec::new() }
    }

    pub fn header(&self, o: &crate::Options) {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "pliuz-bench: {} on {cores} cores, load average {}",
            o.bin.display(),
            load.trim()
        );
        println!(
            "mode: {}, {} stored requests for P5, data in {}{}",
            if o.quick { "quick" } else { "full" },
            o.rows,
            o.dir.display(),
            if o.postgres.is_some() {
                ", PostgreSQL too"
            } else {
                ""
            }
        );
    }

    /// Records a row and prints it at once (a long run shows progress).
    pub fn add(&mut self, row: Row) {
        println!(
            "  {:<44} {:>22}  baseline {:>22}  = {:>8}  (target {}{})",
            row.figure,
            row.measured,
            row.baseline,
            row.ratio,
            row.target,
            verdict(row.met)
        );
        self.rows.push(row);
    }

    pub fn section(&self, title: &str) {
        println!("\n{title}");
    }

    pub fn print_summary(&self) {
        let w = |f: fn(&Row) -> &str| self.rows.iter().map(|r| f(r).len()).max().unwrap_or(0);
        let (wf, wm, wb, wr, wt) = (
            w(|r| &r.figure).max(6),
            w(|r| &r.measured).max(8),
            w(|r| &r.baseline).max(8),
            w(|r| &r.ratio).max(5),
            w(|r| &r.target).max(6),
        );
        println!("\n## Summary\n");
        println!(
            "| {:<wf$} | {:<wm$} | {:<wb$} | {:<wr$} | {:<wt$} | met |",
            "figure", "measured", "baseline", "ratio", "target"
        );
        println!(
            "|{}|{}|{}|{}|{}|-----|",
            "-".repeat(wf + 2),
            "-".repeat(wm + 2),
            "-".repeat(wb + 2),
            "-".repeat(wr + 2),
            "-".repeat(wt + 2)
        );
        for r in &self.rows {
            println!(
                "| {:<wf$} | {:<wm$} | {:<wb$} | {:<wr$} | {:<wt$} | {} |",
                r.figure,
                r.measured,
                r.baseline,
                r.ratio,
                r.target,
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "no ",
                    None => " - ",
                }
            );
        }
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => ": met",
        Some(false) => ": MISSED",
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::ms;
    use std::time::Duration;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(ms(&v, 0.5), 51.0);
        assert_eq!(ms(&v, 0.99), 99.0);
        assert_eq!(ms(&v, 1.0), 100.0);
        assert!(ms(&[], 0.5).is_nan());
    }
}
