//! A self-contained SVG bar chart of the latency rows (`results/bench.svg`).
//!
//! Hand-written SVG: no fonts, no C libraries, no dependencies. Each figure
//! gets a pair of bars scaled to the larger of the two values, so figures of
//! very different size (a 2 ms VERSION, a 3 s batch of DELs) share one chart
//! and the bar lengths show the ratio directly; the numbers are printed.

use std::fmt::Write as _;

use crate::figures::{Row, format_value};
use crate::machine::Facts;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 20.0;
const BAR_MAX: f64 = 720.0;
const BAR_HEIGHT: f64 = 14.0;
const ROW_HEIGHT: f64 = 62.0;
const TOP: f64 = 84.0;
const OURS_COLOR: &str = "#1b9e77";
const REFERENCE_COLOR: &str = "#9e9e9e";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of the rows marked for it.
pub fn chart(facts: &Facts, rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.chart).collect();
    let height = TOP + ROW_HEIGHT * rows.len() as f64 + 20.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="26" font-size="18" font-weight="bold">cni-rs vs reference CNI plugins: latency (ms, lower is better)</text>"#
    );
    let subtitle = format!(
        "{} · kernel {} · {} CPUs · {} · bars scaled per figure to the slower one",
        facts.date, facts.kernel, facts.nproc, facts.iptables
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="46" font-size="12" fill="#555">{}</text>"##,
        escape(&subtitle)
    );
    for (i, (label, color)) in [("ours", OURS_COLOR), ("reference", REFERENCE_COLOR)]
        .iter()
        .enumerate()
    {
        let x = LEFT + 110.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="58" width="14" height="14" fill="{color}"/><text x="{}" y="70" font-size="12">{label}</text>"#,
            x + 20.0
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW_HEIGHT * i as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{}" font-size="13">{}</text>"#,
            y + 12.0,
            escape(&row.figure)
        );
        if let Some(ratio) = row.ratio() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" font-size="13" text-anchor="end">ours/ref {ratio:.2}</text>"#,
                WIDTH - LEFT,
                y + 12.0
            );
        }
        let scale = row.ours.unwrap_or(0.0).max(row.reference.unwrap_or(0.0));
        let bars = [(row.ours, OURS_COLOR), (row.reference, REFERENCE_COLOR)];
        for (k, (value, color)) in bars.iter().enumerate() {
            let bar_y = y + 18.0 + (BAR_HEIGHT + 4.0) * k as f64;
            let length = match value {
                Some(v) if scale > 0.0 => (v / scale * BAR_MAX).max(1.0),
                _ => 0.0,
            };
            let _ = writeln!(
                svg,
                r#"<rect x="{LEFT}" y="{bar_y}" width="{length:.1}" height="{BAR_HEIGHT}" fill="{color}"/>"#
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
                LEFT + length + 6.0,
                bar_y + BAR_HEIGHT - 3.0,
                format_value(*value, row.unit)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
