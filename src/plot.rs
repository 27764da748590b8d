//! Minimal SVG line plots (ROC and KS curves) with linear axes.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

/// An SVG line plot of `series` (name, points) on axes from 0 to the data's
/// maxima (at least 1), for ROC and KS curves.
pub fn line_plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 480.0, 60.0, 50.0, 40.0, 20.0);
    let max = |f: fn(&(f64, f64)) -> f64| {
        series
            .iter()
            .flat_map(|(_, p)| p.iter().map(f))
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max)
    };
    let (x_max, y_max) = (max(|p| p.0), max(|p| p.1));
    let x = |v: f64| left + v / x_max * (w - left - right);
    let y = |v: f64| h - bottom - v / y_max * (h - top - bottom);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="22" font-size="15">{title}</text>"#
    );
    for k in 0..=4 {
        let (vx, vy) = (x_max * k as f64 / 4.0, y_max * k as f64 / 4.0);
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{top}" x2="{:.1}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{vx:.2}</text>"##,
            x(vx),
            x(vx),
            h - bottom,
            x(vx),
            h - bottom + 16.0
        );
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{vy:.2}</text>"##,
            y(vy),
            w - right,
            y(vy),
            left - 6.0,
            y(vy) + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{x_label}</text>"#,
        (w + left) / 2.0,
        h - 10.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{y_label}</text>"#,
        h / 2.0,
        h / 2.0
    );
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    for (k, (name, points)) in series.iter().enumerate() {
        let c = colours[k % colours.len()];
        let pts: String = points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(a, b)| format!("{:.1},{:.1} ", x(a), y(b)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{c}">{name}</text>"#,
            left + 10.0,
            top + 16.0 * (k as f64 + 1.0)
        );
    }
    s.push_str("</svg>\n");
    s
}
