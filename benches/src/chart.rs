//! The chart: throughput and p99 latency per workload, one bar per backend and
//! client, on log scales. SVG text is left to the viewer's fonts, so drawing it
//! needs none installed.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::client::BenchResult;
use crate::measure::Outcome;
use crate::report::Row;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Writes the chart of `rows` to `path`.
pub fn draw(rows: &[Row], path: &Path) -> BenchResult<()> {
    let mut series: Vec<(&str, &str)> = Vec::new();
    for row in rows {
        if !series.contains(&(row.backend, row.client)) {
            series.push((row.backend, row.client));
        }
    }
    let throughput = Panel::new(rows, &series, |o| Some(o.msg_per_s));
    let p99 = Panel::new(rows, &series, |o| o.latency_us.map(|l| l.p99));
    let legend_height = 20 * series.len() as u32 + 16;
    let bars = throughput.workloads.len() * series.len();
    let height = 90 + 14 * bars as u32 + legend_height;
    let root = SVGBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (charts, legend) = root.split_vertically(height - legend_height);
    let (left, right) = charts.split_horizontally(760);
    throughput.draw(&left, "throughput (msg/s, log)", 200)?;
    p99.draw(&right, "p99 latency (µs, log)", 160)?;
    for (s, (backend, client)) in series.iter().enumerate() {
        let y = 8 + 20 * s as i32;
        let colour = Palette99::pick(s).to_rgba();
        legend.draw(&Rectangle::new([(210, y), (224, y + 12)], colour.filled()))?;
        legend.draw(&Text::new(
            format!("{backend}: {client}"),
            (232, y),
            ("sans-serif", 14),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// One figure per workload and series; workloads without any figure are left out.
struct Panel<'a> {
    series: &'a [(&'a str, &'a str)],
    workloads: Vec<&'a str>,
    /// (workload index, series index, value)
    bars: Vec<(usize, usize, f64)>,
}

impl<'a> Panel<'a> {
    fn new(
        rows: &'a [Row],
        series: &'a [(&'a str, &'a str)],
        value: impl Fn(&Outcome) -> Option<f64>,
    ) -> Self {
        let mut panel = Panel {
            series,
            workloads: Vec::new(),
            bars: Vec::new(),
        };
        for row in rows {
            let Some(v) = row.outcome.as_ref().and_then(&value).filter(|v| *v > 0.0) else {
                continue;
            };
            let w = match panel.workloads.iter().position(|w| *w == row.label) {
                Some(w) => w,
                None => {
                    panel.workloads.push(&row.label);
                    panel.workloads.len() - 1
                }
            };
            let s = series
                .iter()
                .position(|s| *s == (row.backend, row.client))
                .unwrap_or(0);
            panel.bars.push((w, s, v));
        }
        panel
    }

    fn draw(&self, area: &Area<'_>, title: &str, label_width: u32) -> BenchResult<()> {
        let (low, high) = self
            .bars
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), (_, _, v)| {
                (lo.min(*v), hi.max(*v))
            });
        let (low, high) = if self.bars.is_empty() {
            (1.0, 10.0)
        } else {
            (low / 2.0, high * 2.0)
        };
        let n = self.workloads.len().max(1);
        // The first workload at the top.
        let row_of = |w: usize| (n - 1 - w) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(label_width)
            .build_cartesian_2d((low..high).log_scale(), -0.5f64..n as f64 - 0.5)?;
        let names = &self.workloads;
        chart
            .configure_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                match (i - y).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                    true => names
                        .get(n - 1 - i as usize)
                        .map_or(String::new(), |s| s.to_string()),
                    false => String::new(),
                }
            })
            .x_label_formatter(&|x| compact(*x))
            .disable_y_mesh()
            .draw()?;
        let slot = 0.8 / self.series.len().max(1) as f64;
        for s in 0..self.series.len() {
            let colour = Palette99::pick(s).to_rgba();
            let rects = self
                .bars
                .iter()
                .filter(|(_, bs, _)| *bs == s)
                .map(|(w, _, v)| {
                    let top = row_of(*w) + 0.4 - s as f64 * slot;
                    Rectangle::new([(low, top), (*v, top - slot * 0.9)], colour.filled())
                });
            chart.draw_series(rects)?;
        }
        Ok(())
    }
}

fn compact(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v => format!("{v}"),
    }
}
