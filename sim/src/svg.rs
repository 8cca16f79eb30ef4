//! A minimal chart writer: one or more panels stacked over a shared x
//! axis, each with its own y axis, lines, threshold lines and legend;
//! shaded bands and vertical markers across every panel; a title and a
//! subtitle. A standalone SVG string, hand-written to keep the crate free
//! of plotting dependencies.

use std::fmt::Write as _;

/// One line of a panel.
pub struct Line<'a> {
    /// Legend label.
    pub label: String,
    /// CSS colour.
    pub color: &'a str,
    /// Dashed.
    pub dashed: bool,
    /// Stroke width (a wider line stays visible under a narrower one
    /// drawn over it).
    pub width: f64,
    /// `(x, y)` points, x ascending. A non-finite y is no value: the line
    /// goes on across a gap of at most the panel's `bridge` in x, and
    /// stops and starts again across a longer one. A value with no
    /// neighbour on its stretch of line is drawn as a dot.
    pub points: Vec<(f64, f64)>,
}

/// A vertical marker at `x` across every panel, with a label.
pub struct Marker {
    /// Position on the x axis.
    pub x: f64,
    /// Label.
    pub label: String,
    /// CSS colour of the line and its label.
    pub color: &'static str,
}

/// A shaded span of x across every panel, labelled at its start.
pub struct Band {
    /// From.
    pub x0: f64,
    /// To.
    pub x1: f64,
    /// Label.
    pub label: String,
    /// CSS fill colour.
    pub color: &'static str,
}

/// A horizontal threshold line in one panel; the panel's y range always
/// includes it.
pub struct HLine {
    /// Its y.
    pub y: f64,
    /// Label, written above its right end.
    pub label: String,
}

/// One panel: a y axis and what is drawn against it.
pub struct Panel<'a> {
    /// Y axis label.
    pub y_label: String,
    /// Lines.
    pub lines: Vec<Line<'a>>,
    /// Threshold lines.
    pub hlines: Vec<HLine>,
    /// `None`: the y axis starts at 0. `Some(x)`: the y range is the data's
    /// from `x` on (and the thresholds), with a margin, so a dip shows;
    /// values outside it are clipped.
    pub y_from_data_after: Option<f64>,
    /// Longest gap in x a line goes on across (see [`Line::points`]).
    pub bridge: f64,
    /// Share of the height, against the other panels' weights.
    pub weight: f64,
}

/// A chart: panels stacked over one x axis.
pub struct Chart<'a> {
    /// Title.
    pub title: String,
    /// One line under the title (wrapped when long).
    pub subtitle: String,
    /// X axis label.
    pub x_label: String,
    /// Panels, top to bottom.
    pub panels: Vec<Panel<'a>>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Shaded bands.
    pub bands: Vec<Band>,
}

const W: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const BOTTOM: f64 = 50.0;
/// Height of the plot areas of a one-panel chart; each further panel adds
/// its share.
const PLOT_H: f64 = 360.0;
const PANEL_GAP: f64 = 18.0;
const LABEL_ROW: f64 = 14.0;
const SUBTITLE_CHARS: usize = 130;

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

/// `text` in lines of at most `width` characters, broken at spaces, as
/// even in length as the breaks allow.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let chars = text.chars().count();
    let lines = chars.div_ceil(width.max(1)).max(1);
    let width = (chars.div_ceil(lines) + 8).min(width);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A panel's place and scales, in pixels.
#[derive(Clone, Copy)]
struct Frame {
    top: f64,
    bottom: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn py(&self, y: f64) -> f64 {
        self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)
    }
}

impl Panel<'_> {
    /// The y range: from 0 (or the data's) to the data's largest value and
    /// the thresholds, on whole steps; and the step.
    fn y_range(&self, x_first: f64) -> (f64, f64, f64) {
        let from = self.y_from_data_after.unwrap_or(f64::NEG_INFINITY);
        let ys = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|(x, y)| y.is_finite() && (*x >= from || from <= x_first))
            .map(|(_, y)| *y)
            .chain(self.hlines.iter().map(|h| h.y));
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for y in ys {
            lo = lo.min(y);
            hi = hi.max(y);
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        if self.y_from_data_after.is_none() {
            // An axis of at least 0 to 1: a line of zeros reads as zero.
            let hi = hi.max(1.0);
            // Counts of a few: whole steps, not 0.5 of a dyno.
            let step = if hi >= 2.0 {
                nice_step(hi).max(1.0)
            } else {
                nice_step(hi)
            };
            return (0.0, (hi / step).ceil().max(1.0) * step, step);
        }
        let margin = ((hi - lo) * 0.1).max(1.0);
        let (lo, hi) = (lo - margin, hi + margin);
        let step = nice_step(hi - lo);
        let lo = (lo / step).floor() * step;
        let hi = (hi / step).ceil() * step;
        (lo, hi.max(lo + step), step)
    }
}

impl Chart<'_> {
    /// The x range of every line and band.
    fn x_range(&self) -> (f64, f64) {
        let (mut x0, mut x1) = (f64::MAX, f64::MIN);
        let xs = self
            .panels
            .iter()
            .flat_map(|p| p.lines.iter())
            .flat_map(|l| l.points.iter().map(|(x, _)| *x));
        for x in xs {
            x0 = x0.min(x);
            x1 = x1.max(x);
        }
        if x0 >= x1 { (0.0, 1.0) } else { (x0, x1) }
    }

    /// Renders the chart.
    #[must_use]
    pub fn render(&self) -> String {
        let (x0, x1) = self.x_range();
        let px = |x: f64| LEFT + (x.clamp(x0, x1) - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let subtitle = wrap(&self.subtitle, SUBTITLE_CHARS);
        // Labels of bands and markers: one row each, above the panels.
        let n_labels = self.bands.len() + self.markers.len();
        let top = 36.0 + 15.0 * subtitle.len() as f64 + 8.0 + LABEL_ROW * n_labels as f64;
        let weights: f64 = self.panels.iter().map(|p| p.weight.max(0.0)).sum();
        let extra = self.panels.len().saturating_sub(1) as f64;
        let plots_h = PLOT_H * (1.0 + 0.5 * extra);
        let h = top + plots_h + PANEL_GAP * extra + BOTTOM;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            W / 2.0,
            esc(&self.title)
        );
        for (i, line) in subtitle.iter().enumerate() {
            let _ = writeln!(
                s,
                r##"<text class="subtitle" x="{}" y="{:.1}" text-anchor="middle" fill="#444">{}</text>"##,
                W / 2.0,
                40.0 + 15.0 * i as f64,
                esc(line)
            );
        }
        // The panels' frames.
        let mut frames = Vec::new();
        let mut y = top;
        for p in &self.panels {
            let share = if weights > 0.0 {
                p.weight.max(0.0) / weights
            } else {
                1.0 / self.panels.len() as f64
            };
            let ph = plots_h * share;
            let (y0, y1, _) = p.y_range(x0);
            frames.push(Frame {
                top: y,
                bottom: y + ph,
                y0,
                y1,
            });
            y += ph + PANEL_GAP;
        }
        let plots_top = top;
        let plots_bottom = frames.last().map_or(top + plots_h, |f| f.bottom);
        // Bands first, under everything.
        for b in &self.bands {
            let (a, z) = (px(b.x0), px(b.x1));
            let _ = writeln!(
                s,
                r#"<rect class="band" x="{a:.1}" y="{plots_top:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.35"/>"#,
                (z - a).max(1.0),
                plots_bottom - plots_top,
                b.color
            );
        }
        for (i, (p, f)) in self.panels.iter().zip(&frames).enumerate() {
            Chart::render_panel(&mut s, i, p, *f, px, (x0, x1));
        }
        // Markers across every panel; the labels of bands and markers in
        // rows above the panels, right of their x (left of it when that
        // would run past the edge).
        let mut row = 0.0;
        let mut label = |s: &mut String, x: f64, text: &str, color: &str, class: &str| {
            let ly = top - 6.0 - LABEL_ROW * (n_labels as f64 - 1.0 - row);
            row += 1.0;
            let xx = px(x);
            let w = text_width(text);
            let (tx, anchor) = if xx + 3.0 + w > W - RIGHT {
                (xx - 3.0, "end")
            } else {
                (xx + 3.0, "start")
            };
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{plots_top:.1}" stroke="{color}" stroke-width="0.8"/><text class="{class}" x="{tx:.1}" y="{ly:.1}" text-anchor="{anchor}" fill="{color}">{}</text>"##,
                ly - 10.0,
                esc(text)
            );
        };
        for b in &self.bands {
            label(&mut s, b.x0, &b.label, "#8a5a00", "band-label");
        }
        for m in &self.markers {
            let xx = px(m.x);
            let _ = writeln!(
                s,
                r##"<line class="marker" x1="{xx:.1}" y1="{plots_top:.1}" x2="{xx:.1}" y2="{plots_bottom:.1}" stroke="{}" stroke-dasharray="3,3"/>"##,
                m.color
            );
            label(&mut s, m.x, &m.label, m.color, "marker-label");
        }
        // The x axis under the last panel.
        let xstep = nice_step(x1 - x0);
        let mut x = (x0 / xstep).ceil() * xstep;
        while x <= x1 + 1e-9 {
            let xx = px(x);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{plots_bottom:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                plots_bottom + 5.0,
                plots_bottom + 18.0,
                fmt_num(x)
            );
            x += xstep;
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            plots_bottom + 36.0,
            esc(&self.x_label)
        );
        s.push_str("</svg>\n");
        s
    }

    fn render_panel(
        s: &mut String,
        index: usize,
        p: &Panel<'_>,
        f: Frame,
        px: impl Fn(f64) -> f64,
        (x0, x1): (f64, f64),
    ) {
        let (_, _, ystep) = p.y_range(x0);
        let mut y = f.y0;
        while y <= f.y1 + ystep / 2.0 {
            let yy = f.py(y);
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
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/><line x1="{LEFT}" y1="{:.1}" x2="{LEFT}" y2="{:.1}" stroke="#333"/>"##,
            f.bottom,
            W - RIGHT,
            f.bottom,
            f.top,
            f.bottom
        );
        let y_label = if p.y_from_data_after.is_some() && f.y0 > 0.0 {
            format!("{} (axis from {})", p.y_label, fmt_num(f.y0))
        } else {
            p.y_label.clone()
        };
        let _ = writeln!(
            s,
            r#"<text class="y-label" transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (f.top + f.bottom) / 2.0,
            esc(&y_label)
        );
        let _ = writeln!(
            s,
            r#"<clipPath id="clip{index}"><rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}"/></clipPath>"#,
            f.top,
            W - LEFT - RIGHT,
            f.bottom - f.top
        );
        for h in &p.hlines {
            let yy = f.py(h.y);
            let _ = writeln!(
                s,
                r##"<line class="threshold" x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#b00" stroke-width="1.2" stroke-dasharray="8,3,2,3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#b00">{}</text>"##,
                W - RIGHT,
                W - RIGHT - 4.0,
                yy - 4.0,
                esc(&h.label)
            );
        }
        let clamp = |y: f64| y.clamp(f.y0 - (f.y1 - f.y0), f.y1 + (f.y1 - f.y0));
        for l in &p.lines {
            let dash = if l.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let mut d = String::new();
            let mut dots = String::new();
            for stretch in stretches(&l.points, p.bridge) {
                match stretch.as_slice() {
                    [(x, y)] => {
                        let _ = write!(
                            dots,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="{:.1}" fill="{}"/>"#,
                            px(*x),
                            f.py(clamp(*y)),
                            l.width + 0.5,
                            l.color
                        );
                    }
                    run => {
                        for (i, (x, y)) in run.iter().enumerate() {
                            let cmd = if i == 0 { 'M' } else { 'L' };
                            let _ = write!(d, "{cmd}{:.1},{:.1} ", px(*x), f.py(clamp(*y)));
                        }
                    }
                }
            }
            let _ = writeln!(
                s,
                r#"<g clip-path="url(#clip{index})"><path d="{}" fill="none" stroke="{}" stroke-width="{}"{dash}/>{dots}</g>"#,
                d.trim_end(),
                l.color,
                l.width
            );
        }
        // The legend where it covers the fewest data points.
        let data: Vec<(f64, f64)> = p
            .lines
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|(x, y)| y.is_finite() && *x >= x0 && *x <= x1)
            .map(|(x, y)| (px(*x), f.py(y.clamp(f.y0, f.y1))))
            .collect();
        if let Some(b) = legend_rect(p, &data, f) {
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="white" fill-opacity="1" stroke="#ccc"/>"##,
                b.x, b.y, b.w, b.h
            );
            for (i, l) in p.lines.iter().enumerate() {
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
    }
}

/// The stretches of a line: its finite points, split where two follow
/// each other more than `bridge` apart in x.
fn stretches(points: &[(f64, f64)], bridge: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    for (x, y) in points.iter().filter(|(_, y)| y.is_finite()) {
        if run.last().is_some_and(|(lx, _)| x - lx > bridge) {
            out.push(std::mem::take(&mut run));
        }
        run.push((*x, *y));
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
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
}

/// Rough width of a label at font size 12.
fn text_width(text: &str) -> f64 {
    6.5 * text.chars().count() as f64
}

/// The legend's box in a panel: of the corners and edge middles of its
/// plot area, the one that covers the fewest data points (the first of
/// equals). `None` without lines.
fn legend_rect(p: &Panel<'_>, data: &[(f64, f64)], f: Frame) -> Option<Rect> {
    if p.lines.is_empty() {
        return None;
    }
    let widest = p
        .lines
        .iter()
        .map(|l| text_width(&l.label))
        .fold(0.0, f64::max);
    let w = 2.0 * LEGEND_PAD + 30.0 + widest;
    let h = 2.0 * LEGEND_PAD + LEGEND_ROW * p.lines.len() as f64;
    let inset = 8.0;
    let (l, r) = (LEFT + inset, W - RIGHT - inset - w);
    let (t, b) = (f.top + inset, f.bottom - inset - h);
    let mid_x = (LEFT + W - RIGHT - w) / 2.0;
    let candidates = [(r, t), (l, t), (r, b), (l, b), (mid_x, t), (mid_x, b)];
    candidates
        .iter()
        .map(|(x, y)| Rect { x: *x, y: *y, w, h })
        .map(|rect| (data.iter().filter(|p| rect.contains(**p)).count(), rect))
        .enumerate()
        .min_by_key(|(i, (covered, _))| (*covered, *i))
        .map(|(_, (_, rect))| rect)
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

    fn line(points: Vec<(f64, f64)>) -> Line<'static> {
        Line {
            label: "a<b".into(),
            color: "red",
            dashed: false,
            width: 1.5,
            points,
        }
    }

    fn one_panel(lines: Vec<Line<'static>>, bridge: f64) -> Chart<'static> {
        Chart {
            title: "t".into(),
            subtitle: "what it does".into(),
            x_label: "x".into(),
            panels: vec![Panel {
                y_label: "y".into(),
                lines,
                hlines: Vec::new(),
                y_from_data_after: None,
                bridge,
                weight: 1.0,
            }],
            markers: vec![Marker {
                x: 0.5,
                label: "m".into(),
                color: "#555",
            }],
            bands: vec![Band {
                x0: 0.2,
                x1: 0.4,
                label: "trigger".into(),
                color: "#f6c77a",
            }],
        }
    }

    fn paths(svg: &str) -> Vec<&str> {
        svg.lines().filter(|l| l.contains("<path")).collect()
    }

    #[test]
    fn renders_a_closed_svg_with_every_line_mark_and_band() {
        let s = one_panel(vec![line(vec![(0.0, 1.0), (1.0, 3.0)])], f64::INFINITY).render();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("a&lt;b") && s.contains("<path"));
        assert!(s.contains(r#"class="band""#) && s.contains(">trigger</text>"));
        assert!(s.contains(r#"class="marker""#) && s.contains(">m</text>"));
        assert!(s.contains(r#"class="subtitle""#) && s.contains("what it does"));
    }

    #[test]
    fn short_gaps_are_bridged_long_ones_break_and_lone_values_are_dots() {
        let pts = vec![
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 2.0),
            (3.0, 2.0),
            (4.0, f64::NAN),
            (5.0, f64::NAN),
            (6.0, f64::NAN),
            (7.0, 3.0),
        ];
        // A gap of one sample is bridged: one stretch 0..3; the gap of
        // four breaks it, and 7 stands alone, a dot.
        let s = one_panel(vec![line(pts.clone())], 2.0).render();
        let p = paths(&s);
        assert_eq!(p.len(), 1, "{p:?}");
        let path = p.first().copied().unwrap_or("");
        assert_eq!(path.matches('M').count(), 1, "{path}");
        assert_eq!(path.matches('L').count(), 2, "{path}");
        assert_eq!(path.matches("<circle").count(), 1, "{path}");
        assert!(!s.contains("NaN"));
        // Bridging everything: one stretch, no dot.
        let s = one_panel(vec![line(pts)], f64::INFINITY).render();
        let path = paths(&s).first().copied().unwrap_or("").to_owned();
        assert_eq!(path.matches('M').count(), 1, "{path}");
        assert_eq!(path.matches("<circle").count(), 0, "{path}");
    }

    #[test]
    fn a_threshold_is_always_on_the_axis_and_a_data_axis_shows_the_dip() {
        let mut chart = one_panel(vec![line(vec![(0.0, 10.0), (1.0, 20.0)])], 1.0);
        if let Some(p) = chart.panels.first_mut() {
            p.hlines.push(HLine {
                y: 60.0,
                label: "timeout".into(),
            });
        }
        let (lo, hi, _) = chart
            .panels
            .first()
            .map_or((0.0, 0.0, 0.0), |p| p.y_range(0.0));
        assert_eq!(lo, 0.0);
        assert!(hi >= 60.0, "{hi}");
        assert!(chart.render().contains(r#"class="threshold""#));
        // Running 2,000 with a dip to 1,900 after a warm-up from 0: the
        // axis is the data's after the warm-up, with a margin.
        let mut pts = vec![(0.0, 0.0), (0.5, 1000.0)];
        pts.extend((1..=10).map(|i| (f64::from(i), if i == 5 { 1900.0 } else { 2000.0 })));
        let mut chart = one_panel(vec![line(pts)], 1.0);
        if let Some(p) = chart.panels.first_mut() {
            p.y_from_data_after = Some(1.0);
        }
        let (lo, hi, _) = chart
            .panels
            .first()
            .map_or((0.0, 0.0, 0.0), |p| p.y_range(0.0));
        assert!(
            lo > 1000.0 && lo < 1900.0 && hi > 2000.0 && hi < 2200.0,
            "{lo}..{hi}"
        );
        assert!(chart.render().contains("y (axis from "));
    }

    #[test]
    fn the_legend_avoids_the_data() {
        // Data high on the right: the legend goes elsewhere.
        let points: Vec<(f64, f64)> = (0..=100)
            .map(|i| {
                let x = f64::from(i) / 100.0;
                (x, if x > 0.5 { 10.0 } else { 0.0 })
            })
            .collect();
        let chart = one_panel(vec![line(points.clone())], 1.0);
        let f = Frame {
            top: 100.0,
            bottom: 400.0,
            y0: 0.0,
            y1: 10.0,
        };
        let lx = |x: f64| LEFT + x * (W - LEFT - RIGHT);
        let data: Vec<(f64, f64)> = points.iter().map(|(x, y)| (lx(*x), f.py(*y))).collect();
        let legend = chart
            .panels
            .first()
            .and_then(|p| legend_rect(p, &data, f))
            .unwrap_or(Rect {
                x: 0.0,
                y: 0.0,
                w: 0.0,
                h: 0.0,
            });
        assert_eq!(data.iter().filter(|p| legend.contains(**p)).count(), 0);
        assert!(chart.render().contains(r#"fill="white" fill-opacity="1""#));
    }

    #[test]
    fn a_long_subtitle_wraps_evenly() {
        let text = "word ".repeat(40);
        let lines = wrap(&text, 130);
        assert_eq!(lines.len(), 2);
        assert!(
            lines.iter().all(|l| l.len() <= 130 && l.len() >= 80),
            "{lines:?}"
        );
    }
}
