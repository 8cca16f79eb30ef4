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
        // Marker labels sit in rows at the top, right of their line.
        let mut labels: Vec<Rect> = self
            .markers
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let y = TOP + 12.0 + 14.0 * i as f64;
                Rect {
                    x: px(m.x) + 3.0,
                    y: y - 11.0,
                    w: text_width(&m.label),
                    h: 14.0,
                }
            })
            .collect();
        // The legend goes where it covers the fewest data points and no
        // marker label.
        let data: Vec<(f64, f64)> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|(_, y)| y.is_finite())
            .map(|(x, y)| (px(*x), py(y.min(y1))))
            .collect();
        let legend = self.legend_rect(&data, &labels);
        // A label the legend would still cover moves to the left of its
        // line, or else down below the legend.
        for (label, m) in labels.iter_mut().zip(&self.markers) {
            if let Some(box_) = legend {
                if label.overlaps(&box_) {
                    let left = Rect {
                        x: px(m.x) - 3.0 - label.w,
                        ..*label
                    };
                    if !left.overlaps(&box_) && left.x >= LEFT {
                        *label = left;
                    } else {
                        label.y = box_.y + box_.h + 2.0;
                    }
                }
            }
        }
        for (m, label) in self.markers.iter().zip(&labels) {
            let xx = px(m.x);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="2,3"/><text x="{:.1}" y="{:.1}" fill="#555">{}</text>"##,
                H - BOTTOM,
                label.x,
                label.y + 11.0,
                esc(&m.label)
            );
        }
        for l in &self.lines {
            // A non-finite y is a gap: the line stops and starts again.
            let mut d = String::new();
            let mut pen_down = false;
            for (x, y) in &l.points {
                if !y.is_finite() {
                    pen_down = false;
                    continue;
                }
                let cmd = if pen_down { 'L' } else { 'M' };
                pen_down = true;
                let _ = write!(d, "{cmd}{:.1},{:.1} ", px(*x), py(y.min(y1)));
            }
            if d.is_empty() {
                continue;
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
        if let Some(b) = legend {
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="white" fill-opacity="1" stroke="#ccc"/>"##,
                b.x, b.y, b.w, b.h
            );
            for (i, l) in self.lines.iter().enumerate() {
                let ly = b.y + LEGEND_PAD + 8.0 + LEGEND_ROW * i as f64;
                let lx = b.x + LEGEND_PAD;
                let dash = if l.dashed {
                    r#" stroke-dasharray="6,4""#
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                    lx + 24.0,
                    l.color,
                    lx + 30.0,
                    ly + 4.0,
                    esc(&l.label)
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

const LEGEND_PAD: f64 = 6.0;
const LEGEND_ROW: f64 = 16.0;

/// An axis-aligned box in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn contains(&self, (x, y): (f64, f64)) -> bool {
        x >= self.x && x <= self.x + self.w && y >= self.y && y <= self.y + self.h
    }

    fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// Rough width of a label at font size 12.
fn text_width(text: &str) -> f64 {
    7.0 * text.chars().count() as f64
}

impl Chart<'_> {
    /// The legend's box: of the corners and edge middles of the plot area,
    /// the first that overlaps no marker label and covers the fewest data
    /// points. `None` without lines.
    fn legend_rect(&self, data: &[(f64, f64)], labels: &[Rect]) -> Option<Rect> {
        if self.lines.is_empty() {
            return None;
        }
        let widest = self
            .lines
            .iter()
            .map(|l| text_width(&l.label))
            .fold(0.0, f64::max);
        let w = 2.0 * LEGEND_PAD + 30.0 + widest;
        let h = 2.0 * LEGEND_PAD + LEGEND_ROW * self.lines.len() as f64;
        let inset = 8.0;
        let (l, r) = (LEFT + inset, W - RIGHT - inset - w);
        let (t, b) = (TOP + inset, H - BOTTOM - inset - h);
        let mid_x = (LEFT + W - RIGHT - w) / 2.0;
        let candidates = [(r, t), (l, t), (r, b), (l, b), (mid_x, t), (mid_x, b)];
        candidates
            .iter()
            .map(|(x, y)| Rect { x: *x, y: *y, w, h })
            .map(|rect| {
                let covered = data.iter().filter(|p| rect.contains(**p)).count();
                let clashes = labels.iter().filter(|lab| lab.overlaps(&rect)).count();
                (clashes, covered, rect)
            })
            .enumerate()
            .min_by_key(|(i, (clashes, covered, _))| (*clashes, *covered, *i))
            .map(|(_, (_, _, rect))| rect)
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

    #[test]
    fn a_non_finite_value_leaves_a_gap() {
        let chart = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            lines: vec![Line {
                label: "a".into(),
                color: "red",
                dashed: false,
                points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 3.0)],
            }],
            markers: Vec::new(),
        };
        let s = chart.render();
        let path = s.lines().find(|l| l.starts_with("<path")).unwrap_or("");
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert!(!path.contains("NaN"), "{path}");
    }

    #[test]
    fn the_legend_is_opaque_and_avoids_data_and_marker_labels() {
        // Data high on the right: the legend must go elsewhere.
        let points: Vec<(f64, f64)> = (0..=100)
            .map(|i| {
                let x = f64::from(i) / 100.0;
                (x, if x > 0.5 { 10.0 } else { 0.0 })
            })
            .collect();
        let chart = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            lines: vec![Line {
                label: "a".into(),
                color: "red",
                dashed: false,
                points: points.clone(),
            }],
            markers: vec![Marker {
                x: 0.0,
                label: "a long marker label at the left".into(),
            }],
        };
        let lx = |x: f64| LEFT + x * (W - LEFT - RIGHT);
        let ly = |y: f64| H - BOTTOM - y / 10.0 * (H - TOP - BOTTOM);
        let data: Vec<(f64, f64)> = points.iter().map(|(x, y)| (lx(*x), ly(*y))).collect();
        let label = Rect {
            x: LEFT + 3.0,
            y: TOP + 1.0,
            w: text_width("a long marker label at the left"),
            h: 14.0,
        };
        let legend = chart.legend_rect(&data, &[label]);
        let legend = legend.unwrap_or(Rect {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0,
        });
        assert!(!legend.overlaps(&label));
        assert_eq!(data.iter().filter(|p| legend.contains(**p)).count(), 0);
        assert!(chart.render().contains(r#"fill="white" fill-opacity="1""#));
    }
}
