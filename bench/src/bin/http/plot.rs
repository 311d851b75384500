//! The table as a picture: requests per second and p99 per endpoint and stack.

use std::path::Path;

use plotters::prelude::*;

use crate::Row;

/// Writes an SVG of two bar charts (requests/s, p99 in ms) to `path`.
pub fn draw(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    bars(&left, rows, "requests per second (higher is better)", |r| {
        r.measured.rps
    })?;
    bars(&right, rows, "p99 latency, ms (lower is better)", |r| {
        r.measured.p99_ms
    })?;
    root.present()?;
    Ok(())
}

fn bars(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    rows: &[Row],
    caption: &str,
    value: impl Fn(&Row) -> f64,
) -> anyhow::Result<()> {
    let top = rows.iter().map(&value).fold(1.0, f64::max) * 1.15;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.endpoint.split(' ').next().unwrap_or(""),
                short(&r.stack)
            )
        })
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..(rows.len() as f64 - 0.5), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_style(("sans-serif", 11))
        .draw()?;
    let colours = [
        RGBColor(120, 120, 120),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
    ];
    let stacks: Vec<&str> = {
        let mut seen = Vec::new();
        for row in rows {
            if !seen.contains(&row.stack.as_str()) {
                seen.push(row.stack.as_str());
            }
        }
        seen
    };
    for (i, row) in rows.iter().enumerate() {
        let colour =
            colours[stacks.iter().position(|s| *s == row.stack).unwrap_or(0) % colours.len()];
        let x = i as f64;
        let v = value(row);
        chart.draw_series([Rectangle::new(
            [(x - 0.35, 0.0), (x + 0.35, v)],
            colour.filled(),
        )])?;
        chart.draw_series([Text::new(
            if v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            },
            (x - 0.3, v + top * 0.02),
            ("sans-serif", 11),
        )])?;
    }
    Ok(())
}

fn short(stack: &str) -> &str {
    match stack {
        s if s.starts_with("Node") => "Node",
        "chat through the gateway" => "gateway",
        "chat on SQLite" => "SQLite",
        other => other,
    }
}
