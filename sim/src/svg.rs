//! A minimal line-chart writer: axes, ticks, a legend and vertical markers,
//! as a standalone SVG string. Hand-written to keep the crate free of
//! plotting dependencies.

use std::fmt::Write as _;

/// One line of a chart.
pub struct Line<'a> {
    /// Legend label.
    pub label: String,
    /// CSS colour.
    pub color: &'a str,
    /// Dashed.
    pub dashed: bool,
    /// `(x, y)` points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A vertical marker at `x` with a label.
pub struct Marker {
    /// Position on the x axis.
    pub x: f64,
    /// Label.
    pub label: String,
}

/// A chart.
pub struct Chart<'a> {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Lines.
    pub lines: Vec<Line<'a>>,
    /// Markers.
    pub markers: Vec<Marker>,
}

const W: f64 = 960.0;
const H: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

fn nice_step(span: f64) -> f64 {
    let raw = span / 6.0;
    if raw.is_nan() || raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.5 {
        2.0
    } else if norm < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart<'_> {
    /// Renders the chart.
    #[must_use]
    pub fn render(&self) -> String {
        let pts = self.lines.iter().flat_map(|l| l.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
        for (x, y) in pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            if y.is_finite() {
                y1 = y1.max(*y);
            }
        }
        if x0 >= x1 {
            x0 = 0.0;
            x1 = 1.0;
        }
        let ystep = nice_step(y1.max(1e-9));
        let y1 = (y1 / ystep).ceil().max(1.0) * ystep;
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let py = |y: f64| H - BOTTOM - y / y1 * (H - TOP - BOTTOM);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
            W / 2.0,
            esc(&self.title)
        );
        // Grid and y ticks.
        let mut y = 0.0;
        while y <= y1 + ystep / 2.0 {
            let yy = py(y);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                yy + 4.0,
                fmt_num(y)
            );
            y += ystep;
        }
        let xstep = nice_step(x1 - x0);
        let mut x = (x0 / xstep).ceil() * xstep;
        while x <= x1 {
            let xx = px(x);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                H - BOTTOM,
                H - BOTTOM + 5.0,
                H - BOTTOM + 18.0,
                fmt_num(x)
            );
            x += xstep;
        }
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#333"/>"##,
            H - BOTTOM,
            W - RIGHT,
            H - BOTTOM,
            H - BOTTOM
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 16.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (TOP + H - BOTTOM) / 2.0,
            esc(&self.y_label)
        );
        for (i, m) in self.markers.iter().enumerate() {
            let xx = px(m.x);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="2,3"/><text x="{:.1}" y="{:.1}" fill="#555">{}</text>"##,
                H - BOTTOM,
                xx + 3.0,
                TOP + 12.0 + 14.0 * i as f64,
                esc(&m.label)
            );
        }
        for l in &self.lines {
            let mut d = String::new();
            for (i, (x, y)) in l.points.iter().enumerate() {
                let cmd = if i == 0 { 'M' } else { 'L' };
                let _ = write!(d, "{cmd}{:.1},{:.1} ", px(*x), py(y.min(y1)));
            }
            let dash = if l.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.5"{dash}/>"#,
                l.color
            );
        }
        for (i, l) in self.lines.iter().enumerate() {
            let ly = TOP + 8.0 + 16.0 * i as f64;
            let lx = W - RIGHT - 220.0;
            let dash = if l.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 24.0,
                l.color,
                lx + 30.0,
                ly + 4.0,
                esc(&l.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_closed_svg_with_every_line() {
        let chart = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            lines: vec![Line {
                label: "a<b".into(),
                color: "red",
                dashed: false,
                points: vec![(0.0, 1.0), (1.0, 3.0)],
            }],
            markers: vec![Marker {
                x: 0.5,
                label: "m".into(),
            }],
        };
        let s = chart.render();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("a&lt;b") && s.contains("<path"));
    }
}
