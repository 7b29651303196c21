//! The results: rows, targets, the Markdown table and the JSON file.

use std::fmt::Write;

use serde::Serialize;

use crate::measure::Outcome;
use crate::workloads::Workload;

/// One client's result on one workload of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Backend name.
    pub backend: &'static str,
    /// The workload.
    pub workload: Workload,
    /// Its label.
    pub label: String,
    /// The client's label.
    pub client: &'static str,
    /// Whether the client is a raw baseline.
    pub raw: bool,
    /// The figures of the median round, or `None` (n/a or failed, see `note`).
    pub outcome: Option<Outcome>,
    /// Throughput of every round, in the order of the median's ranking.
    pub rounds_msg_per_s: Vec<f64>,
    /// Why there are no figures.
    pub note: Option<String>,
    /// Whether the run failed (rather than the client lacking the feature).
    pub failed: bool,
}

/// A figure the issue asks a backend to reach.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The workload it is measured on.
    pub workload: Workload,
    /// What must hold.
    pub rule: Rule,
}

/// What a target requires of our library's row.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    /// Throughput at least `min` times the raw client's.
    Ratio {
        /// The raw client's label.
        vs: &'static str,
        /// The least ratio.
        min: f64,
    },
    /// p99 latency under this many microseconds.
    P99Below {
        /// Microseconds.
        us: f64,
    },
    /// Resident memory growth under this many MiB.
    RssBelow {
        /// MiB.
        mib: f64,
    },
    /// Resident memory per idle subscription under this many KiB.
    KibPerSubscriptionBelow {
        /// KiB.
        kib: f64,
    },
}

impl Target {
    /// Throughput at least `min` times `vs`'s.
    pub fn ratio(workload: Workload, vs: &'static str, min: f64) -> Self {
        Target {
            workload,
            rule: Rule::Ratio { vs, min },
        }
    }

    /// p99 under `us` microseconds.
    pub fn p99_below(workload: Workload, us: f64) -> Self {
        Target {
            workload,
            rule: Rule::P99Below { us },
        }
    }

    /// Resident memory per idle subscription under `kib`.
    pub fn kib_per_subscription_below(kib: f64) -> Self {
        Target {
            workload: Workload::Idle,
            rule: Rule::KibPerSubscriptionBelow { kib },
        }
    }

    /// Resident memory growth under `mib`.
    pub fn rss_below(workload: Workload, mib: f64) -> Self {
        Target {
            workload,
            rule: Rule::RssBelow { mib },
        }
    }
}

/// A target and what was measured for it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Backend name.
    pub backend: &'static str,
    /// The target.
    pub target: Target,
    /// What it asks, in words.
    pub wanted: String,
    /// The measured figure, if any.
    pub measured: Option<f64>,
    /// Whether it is met.
    pub met: bool,
}

fn ours<'a>(rows: &'a [Row], backend: &str, workload: Workload) -> Option<&'a Outcome> {
    rows.iter()
        .find(|r| r.backend == backend && r.workload == workload && !r.raw)
        .and_then(|r| r.outcome.as_ref())
}

/// Our throughput over the raw client's on the same workload.
pub fn ratio(rows: &[Row], backend: &str, workload: Workload, vs: &str) -> Option<f64> {
    let ours = ours(rows, backend, workload)?;
    let raw = rows
        .iter()
        .find(|r| r.backend == backend && r.workload == workload && r.client == vs)?
        .outcome
        .as_ref()?;
    Some(ours.msg_per_s / raw.msg_per_s)
}

/// Checks a backend's targets against the rows.
pub fn judge(rows: &[Row], backend: &'static str, targets: &[Target]) -> Vec<Verdict> {
    targets
        .iter()
        .filter(|target| {
            rows.iter()
                .any(|r| r.backend == backend && r.workload == target.workload)
        })
        .map(|target| {
            let label = target.workload.label();
            let outcome = ours(rows, backend, target.workload);
            let (wanted, measured, met) = match &target.rule {
                Rule::Ratio { vs, min } => {
                    let measured = ratio(rows, backend, target.workload, vs);
                    (
                        format!("{label}: ≥ {min}x {vs}"),
                        measured,
                        measured.is_some_and(|m| m >= *min),
                    )
                }
                Rule::P99Below { us } => {
                    let measured = outcome.and_then(|o| o.latency_us).map(|l| l.p99);
                    (
                        format!("{label}: p99 < {us} µs"),
                        measured,
                        measured.is_some_and(|m| m < *us),
                    )
                }
                Rule::KibPerSubscriptionBelow { kib } => {
                    let measured = outcome.and_then(|o| o.kib_per_subscription);
                    (
                        format!("{label}: ≤ {kib} KiB each"),
                        measured,
                        measured.is_some_and(|m| m <= *kib),
                    )
                }
                Rule::RssBelow { mib } => {
                    let measured = outcome.and_then(|o| o.rss_growth_mib);
                    (
                        format!("{label}: RSS growth < {mib} MiB"),
                        measured,
                        measured.is_some_and(|m| m < *mib),
                    )
                }
            };
            Verdict {
                backend,
                target: target.clone(),
                wanted,
                measured,
                met,
            }
        })
        .collect()
}

fn figure(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e4 => format!("{:.0} k", v / 1e3),
        v if v >= 100.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

/// The results table, one row per backend, workload and client.
pub fn markdown(rows: &[Row], verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    out.push_str("| backend | workload | client | msg/s | MiB/s | p50 µs | p99 µs | p99.9 µs | RSS +MiB | lost | vs raw |\n");
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n");
    for row in rows {
        let _ = write!(out, "| {} | {} | {} ", row.backend, row.label, row.client);
        match &row.outcome {
            Some(o) => {
                let lat = |f: fn(&crate::measure::Percentiles) -> f64| {
                    o.latency_us
                        .as_ref()
                        .map_or("".into(), |l| format!("{:.1}", f(l)))
                };
                let _ = writeln!(
                    out,
                    "| {} | {:.1} | {} | {} | {} | {} | {} | {} |",
                    figure(o.msg_per_s),
                    o.mib_per_s,
                    lat(|l| l.p50),
                    lat(|l| l.p99),
                    lat(|l| l.p999),
                    match (o.rss_growth_mib, o.kib_per_subscription) {
                        (Some(m), Some(each)) => format!("{m:.1} ({each:.2} KiB each)"),
                        (Some(m), None) => format!("{m:.1}"),
                        _ => String::new(),
                    },
                    o.lost,
                    versus(rows, row),
                );
            }
            None => {
                let note = row.note.as_deref().unwrap_or("n/a");
                let _ = writeln!(out, "| n/a | | | | | | | {note} |");
            }
        }
    }
    if !verdicts.is_empty() {
        out.push_str("\n| backend | target | measured | met |\n|---|---|--:|---|\n");
        for v in verdicts {
            let measured = v.measured.map_or("n/a".into(), |m| format!("{m:.2}"));
            let met = if v.met { "yes" } else { "**no**" };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                v.backend, v.wanted, measured, met
            );
        }
    }
    out
}

/// "0.95x raw X, 6.1x raw Y" for our rows; empty for the raw ones.
fn versus(rows: &[Row], row: &Row) -> String {
    if row.raw {
        return String::new();
    }
    // Each of our rows against the baselines: a backend may have several of ours (a
    // setting on and off).
    let Some(ours) = &row.outcome else {
        return String::new();
    };
    rows.iter()
        .filter(|r| r.raw && r.backend == row.backend && r.workload == row.workload)
        .filter_map(|r| {
            let raw = r.outcome.as_ref()?;
            Some(format!(
                "{:.2}x {}",
                ours.msg_per_s / raw.msg_per_s,
                r.client
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything in the JSON file.
#[derive(Debug, Serialize)]
pub struct Results<'a> {
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// Run lengths.
    pub scale: crate::workloads::Scale,
    /// Every row.
    pub rows: &'a [Row],
    /// Every target.
    pub targets: &'a [Verdict],
}

/// What the figures were measured on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores available.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run started: other work on the machine
    /// shows in the tails.
    pub load_average: f64,
}

impl Machine {
    /// This machine.
    pub fn here() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Machine {
            cpu: read("/proc/cpuinfo")
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_default(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_average: read("/proc/loadavg")
                .split_whitespace()
                .next()
                .and_then(|l| l.parse().ok())
                .unwrap_or(0.0),
        }
    }
}
