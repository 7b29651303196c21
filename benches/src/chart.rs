//! The chart: throughput and p99 latency per workload, one bar per backend and
//! client, on log scales. SVG text is left to the viewer's fonts, so drawing it
//! needs none installed.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::client::BenchResult;
use crate::measure::Outcome;
use crate::report::Row;

/// Writes the chart of `rows` to `path`.
pub fn draw(rows: &[Row], path: &Path) -> BenchResult<()> {
    let mut series: Vec<(&str, &str)> = Vec::new();
    let mut workloads: Vec<&str> = Vec::new();
    for row in rows {
        if !series.contains(&(row.backend, row.client)) {
            series.push((row.backend, row.client));
        }
        if !workloads.contains(&row.label.as_str()) {
            workloads.push(&row.label);
        }
    }
    let height = 140 + 26 * workloads.len() as u32 * series.len().max(2) as u32 / 2;
    let root = SVGBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(760);
    let panel = Panel {
        rows,
        series: &series,
        workloads: &workloads,
    };
    panel.draw(&left, "throughput (msg/s, log)", |o| Some(o.msg_per_s), 220)?;
    panel.draw(&right, "p99 latency (µs, log)", |o| o.latency_us.map(|l| l.p99), 20)?;
    root.present()?;
    Ok(())
}

struct Panel<'a> {
    rows: &'a [Row],
    series: &'a [(&'a str, &'a str)],
    workloads: &'a [&'a str],
}

impl Panel<'_> {
    fn draw(
        &self,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        title: &str,
        value: impl Fn(&Outcome) -> Option<f64>,
        label_width: u32,
    ) -> BenchResult<()> {
        let bars: Vec<(usize, usize, f64)> = self
            .rows
            .iter()
            .filter_map(|row| {
                let w = self.workloads.iter().position(|w| *w == row.label)?;
                let s = self.series.iter().position(|s| *s == (row.backend, row.client))?;
                Some((w, s, value(row.outcome.as_ref()?)?))
            })
            .filter(|(_, _, v)| *v > 0.0)
            .collect();
        let (low, high) = bars.iter().fold((f64::MAX, 0f64), |(lo, hi), (_, _, v)| (lo.min(*v), hi.max(*v)));
        let (low, high) = if bars.is_empty() { (1.0, 10.0) } else { (low / 2.0, high * 2.0) };
        let n = self.workloads.len();
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_width)
            .build_cartesian_2d((low..high).log_scale(), -0.5f64..n as f64 - 0.5)?;
        let names = self.workloads;
        chart
            .configure_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                match (i - y).abs() < 0.01 && i >= 0.0 {
                    true => names.get(i as usize).map_or(String::new(), |s| s.to_string()),
                    false => String::new(),
                }
            })
            .x_label_formatter(&|x| compact(*x))
            .disable_y_mesh()
            .draw()?;
        let slot = 0.8 / self.series.len().max(1) as f64;
        for (s, (backend, client)) in self.series.iter().enumerate() {
            let colour = Palette99::pick(s).to_rgba();
            let rects = bars.iter().filter(|(_, bs, _)| *bs == s).map(|(w, _, v)| {
                let top = *w as f64 + 0.4 - s as f64 * slot;
                Rectangle::new([(low, top), (*v, top - slot * 0.9)], colour.filled())
            });
            chart
                .draw_series(rects)?
                .label(format!("{backend}: {client}"))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
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
