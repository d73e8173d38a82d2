//! `cargo run --release -p pliuz-bench -- [--quick] [--rows N] [--bin PATH] [--dir DIR]`
//!
//! Starts the real `pliuz` binary (a release build, built first unless
//! `--bin` names one) on a temporary data directory and prints each figure
//! of issue #13 against a baseline measured in the same run on the same
//! machine and disk:
//!
//! * P1 gate: an auto-approved `POST /api/v1/approvals`, p50/p99, ÷ (bare
//!   `/healthz` round trip on the same keep-alive connection + one raw
//!   durable SQLite commit on the same disk), all three interleaved.
//! * P2 delivery: decision → long-poll answer, p50/p99, with 1 and 1,000
//!   long-polls open, and the server's RSS before, during and after.
//! * P3 throughput: creates/s with 1/8/32/128 concurrent agents ÷ raw SQLite
//!   with that many inserts per durable commit (and PostgreSQL when
//!   `PLIUZ_BENCH_PG` names a server: `postgres://user@host/db`); at 32
//!   agents also bare `GET /healthz` round trips/s, for reference: how much
//!   of the raw ceiling HTTP alone reaches on this machine.
//! * P4 audit: `pliuz audit verify` MB/s ÷ single-thread SHA-256 over the
//!   same bytes; `pliuz audit export` against verify.
//! * P5 reads at N stored requests (`--rows`, default 1,000,000, inserted
//!   straight into the server's database file in one transaction by cloning
//!   rows the server wrote itself): list, inbox and history p50/p99.
//!
//! Targets are printed, never asserted: timing depends on the machine.

mod figures;
mod report;
mod server;

mod raw;

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

pub struct Options {
    pub quick: bool,
    pub rows: u64,
    pub bin: PathBuf,
    /// Where data directories go (the disk being measured).
    pub dir: PathBuf,
    pub postgres: Option<String>,
    /// Figures to measure (`--only`); empty: all.
    pub only: Vec<String>,
}

impl Options {
    /// Whether figure `name` (`P1` ... `P5`) is measured in this run.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|f| f.eq_ignore_ascii_case(name))
    }
}

fn usage() -> &'static str {
    "usage: pliuz-bench [--quick] [--rows N] [--bin PATH] [--dir DIR] [--only P2,P4]\n\
     \n\
     --quick     fewer samples and 100,000 rows: a minute instead of several\n\
     --rows N    stored requests for the read figures (default 1,000,000)\n\
     --bin PATH  the pliuz binary to run (default: build target/release/pliuz)\n\
     --dir DIR   where the data directories go (default: the system temp dir)\n\
     --only LIST only these figures, comma-separated (P1..P5); P4's export then\n\
                 covers a smaller log, so record full runs\n\
     PLIUZ_BENCH_PG=postgres://...  also measure PostgreSQL (a database is created and dropped)"
}

fn parse_args() -> Result<Options> {
    let mut quick = false;
    let mut rows = None;
    let mut bin = None;
    let mut dir = std::env::temp_dir();
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--rows" => {
                let v = args.next().context("--rows needs a number")?;
                rows = Some(
                    v.replace('_', "")
                        .parse()
                        .context("--rows needs a number")?,
                );
            }
            "--bin" => bin = Some(PathBuf::from(args.next().context("--bin needs a path")?)),
            "--dir" => dir = PathBuf::from(args.next().context("--dir needs a path")?),
            "--only" => {
                let v = args.next().context("--only needs a list such as P2,P4")?;
                for f in v.split(',').map(str::trim) {
                    if !matches!(
                        f.to_ascii_uppercase().as_str(),
                        "P1" | "P2" | "P3" | "P4" | "P5"
                    ) {
                        bail!("--only: unknown figure {f:?} (P1 to P5)");
                    }
                    only.push(f.to_owned());
                }
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    let bin = match bin {
        Some(b) => b,
        None => build_release()?,
    };
    Ok(Options {
        quick,
        rows: rows.unwrap_or(if quick { 100_000 } else { 1_000_000 }),
        bin,
        dir,
        postgres: std::env::var("PLIUZ_BENCH_PG")
            .ok()
            .filter(|s| !s.is_empty()),
        only,
    })
}

/// Builds the server in release mode (a no-op when up to date) and returns
/// its path: measuring a debug build would say nothing.
fn build_release() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    eprintln!("building the server: cargo build --release -p pliuz --bin pliuz");
    let status = std::process::Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "pliuz",
            "--bin",
            "pliuz",
        ])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release -p pliuz failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok(target.join("release").join("pliuz"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = parse_args()?;
    let mut report = report::Report::new();
    report.header(&options);
    figures::run_all(&options, &mut report).await?;
    report.print_summary();
    Ok(())
}
