//! Draws [`Chart`]s with plotters. Text is laid out with a bundled DejaVu Sans (ab_glyph),
//! so no system font or fontconfig is needed and PNGs look the same everywhere.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Bars, Body, Chart, Series, Stacked};

/// SVG size in CSS pixels; PNGs are drawn at twice this for slides.
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 480;
const PNG_SCALE: u32 = 2;
/// The legend column, CSS pixels.
const LEGEND_WIDTH: f64 = 270.0;

static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// What plotters reports when drawing fails (its backend's error inside).
type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// A chart that could not be drawn or written; names the chart (and file). The message
/// carries plotters' error, so it is not also given as the source (error chains would
/// print it twice).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing chart {chart}: {error}")]
    Draw { chart: String, error: BackendError },
    #[error("{path}: writing chart {chart}: {error}")]
    Write {
        path: PathBuf,
        chart: String,
        error: BackendError,
    },
}

/// What drawing on backend `DB` fails with.
type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid font; a failure would only mean plotters' text falls back.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, DEJAVU_SANS);
    });
}

/// The chart as SVG text (with its own width, height and viewBox).
pub fn render_svg(chart: &Chart) -> Result<String, ChartError> {
    register_font();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let draw_err = |e: DrawingAreaErrorKind<std::io::Error>| ChartError::Draw {
            chart: chart.name.clone(),
            error: Box::new(e),
        };
        draw(&root, chart, 1.0).map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(buf)
}

/// Writes the chart as a PNG file at twice the SVG's size.
pub fn render_png(chart: &Chart, path: &Path) -> Result<(), ChartError> {
    register_font();
    let root =
        BitMapBackend::new(path, (WIDTH * PNG_SCALE, HEIGHT * PNG_SCALE)).into_drawing_area();
    let write_err =
        |e: DrawingAreaErrorKind<<BitMapBackend as DrawingBackend>::ErrorType>| ChartError::Write {
            path: path.to_path_buf(),
            chart: chart.name.clone(),
            error: Box::new(e),
        };
    draw(&root, chart, PNG_SCALE as f64).map_err(write_err)?;
    root.present().map_err(write_err)
}

/// Axis numbers: 1500 -> "1.5k", 0.25 -> "0.25".
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let k = v / 1000.0;
        if (k - k.round()).abs() < 1e-9 {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A bar's total, exact enough to read beside the axis: "7,012", "60.5", "3.00".
fn total(v: f64) -> String {
    if v >= 100.0 {
        crate::analysis::capacity::count(v)
    } else {
        crate::analysis::capacity::num(v)
    }
}

/// Log-axis ticks: only 1, 2 and 5 times a power of ten get a label, so decades stay
/// readable (100 200 500 1k 2k 5k).
fn tick_log(v: f64) -> String {
    if v <= 0.0 {
        return String::new();
    }
    let lead = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|d| (lead - d).abs() < 1e-6)
    {
        tick(v)
    } else {
        String::new()
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

fn log_range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    (lo / 1.3)..(hi * 1.3)
}

fn linear_range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let lo = lo.min(0.0);
    let hi = if hi <= lo { lo + 1.0 } else { hi };
    let pad = (hi - lo) * 0.08;
    (if lo < 0.0 { lo - pad } else { lo })..(hi + pad)
}

/// One legend row: a line sample (thin when secondary) or a box for bars.
struct Key<'a> {
    label: &'a str,
    color: RGBColor,
    secondary: bool,
    bar: bool,
}

/// The legend in its own column right of the plot, so it never hides data.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    keys: &[Key<'_>],
    k: f64,
) -> DrawResult<DB> {
    let px = |v: f64| (v * k) as i32;
    let text = TextStyle::from(font(11.5, k)).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, key) in keys.iter().enumerate() {
        let y = px(30.0 + 19.0 * i as f64);
        if key.bar {
            area.draw(&Rectangle::new(
                [(px(4.0), y - px(5.0)), (px(18.0), y + px(5.0))],
                key.color.filled(),
            ))?;
        } else {
            let style = if key.secondary {
                key.color.mix(0.55).stroke_width(k.max(1.0) as u32)
            } else {
                key.color.stroke_width((2.0 * k) as u32)
            };
            area.draw(&PathElement::new(vec![(px(2.0), y), (px(20.0), y)], style))?;
        }
        area.draw(&Text::new(
            key.label.to_string(),
            (px(26.0), y),
            text.clone(),
        ))?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    k: f64,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let top = root.margin((10.0 * k) as i32, 0, 0, 0);
    let titled = top.titled(&chart.title, font(18.0, k))?;
    let width = titled.dim_in_pixel().0;
    let (plot, side) = titled.split_horizontally(width - (LEGEND_WIDTH * k) as u32);
    let keys: Vec<Key<'_>> = match &chart.body {
        Body::Lines { series, .. } => series
            .iter()
            .map(|s| Key {
                label: &s.label,
                color: PALETTE[s.color % PALETTE.len()],
                secondary: s.secondary,
                bar: false,
            })
            .collect(),
        Body::Bars(b) => b
            .series
            .iter()
            .enumerate()
            .map(|(j, s)| Key {
                label: &s.0,
                color: PALETTE[j % PALETTE.len()],
                secondary: false,
                bar: true,
            })
            .collect(),
        Body::Stacked(st) => st
            .segments
            .iter()
            .map(|s| Key {
                label: &s.label,
                color: PALETTE[s.color % PALETTE.len()],
                secondary: false,
                bar: true,
            })
            .collect(),
    };
    legend(&side, &keys, k)?;
    let root = &plot;
    match &chart.body {
        Body::Lines {
            series,
            log_x,
            log_y,
        } => {
            let (x0, x1) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
            let (y0, y1) = bounds(series.iter().flat_map(|s| {
                s.points
                    .iter()
                    .map(|p| p.1)
                    .chain(s.whiskers.iter().flat_map(|w| [w.0, w.1]))
            }));
            let (xl, xr) = (log_range(x0, x1), linear_range(x0, x1));
            let (yl, yr) = (log_range(y0, y1), linear_range(y0, y1));
            let l = Look {
                chart,
                log: (*log_x, *log_y),
                k,
            };
            match (log_x, log_y) {
                (true, true) => lines(root, series, xl.log_scale(), yl.log_scale(), l),
                (true, false) => lines(root, series, xl.log_scale(), yr, l),
                (false, true) => lines(root, series, xr, yl.log_scale(), l),
                (false, false) => lines(root, series, xr, yr, l),
            }
        }
        Body::Bars(b) => bars(root, chart, b, k),
        Body::Stacked(st) => stacked(root, chart, st, k),
    }
}

fn font(size: f64, k: f64) -> FontDesc<'static> {
    ("sans-serif", size * k).into_font()
}

/// What a line chart's axes need besides their ranges.
struct Look<'a> {
    chart: &'a Chart,
    /// (x, y) axes are logarithmic.
    log: (bool, bool),
    k: f64,
}

fn lines<DB, X, Y>(
    root: &DrawingArea<DB, Shift>,
    series: &[Series],
    x: X,
    y: Y,
    look: Look<'_>,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let Look { chart, log, k } = look;
    let mut c = ChartBuilder::on(root)
        .margin((12.0 * k) as i32)
        .x_label_area_size((42.0 * k) as i32)
        .y_label_area_size((64.0 * k) as i32)
        .build_cartesian_2d(x, y)?;
    c.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .label_style(font(12.0, k))
        .axis_desc_style(font(13.0, k))
        .x_labels(20)
        .y_labels(20)
        .x_label_formatter(&|v| if log.0 { tick_log(*v) } else { tick(*v) })
        .y_label_formatter(&|v| if log.1 { tick_log(*v) } else { tick(*v) })
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    for s in series {
        let color = PALETTE[s.color % PALETTE.len()];
        let style = if s.secondary {
            color.mix(0.55).stroke_width(k.max(1.0) as u32)
        } else {
            color.stroke_width((2.0 * k) as u32)
        };
        c.draw_series(LineSeries::new(s.points.clone(), style))?;
        // The 95% interval of each point, when the series has them.
        if s.whiskers.len() == s.points.len() {
            let whisker = color.mix(0.8).stroke_width(k.max(1.0) as u32);
            c.draw_series(s.points.iter().zip(&s.whiskers).map(|(p, w)| {
                ErrorBar::new_vertical(p.0, w.0, p.1, w.1, whisker, (8.0 * k) as u32)
            }))?;
        }
        let r = (3.0 * k) as i32;
        if s.secondary {
            c.draw_series(
                s.points
                    .iter()
                    .map(|p| TriangleMarker::new(*p, r, color.mix(0.7).filled())),
            )?;
        } else {
            c.draw_series(s.points.iter().map(|p| Circle::new(*p, r, color.filled())))?;
        }
    }
    Ok(())
}

fn bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    b: &Bars,
    k: f64,
) -> DrawResult<DB> {
    let n = b.categories.len().max(1);
    let (_, hi) = bounds(b.series.iter().flat_map(|s| s.1.iter().flatten().copied()));
    let (lo, _) = bounds(b.series.iter().flat_map(|s| s.1.iter().flatten().copied()));
    let mut c = ChartBuilder::on(root)
        .margin((12.0 * k) as i32)
        .x_label_area_size((42.0 * k) as i32)
        .y_label_area_size((64.0 * k) as i32)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), linear_range(lo, hi))?;
    let categories = b.categories.clone();
    let label = move |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < categories.len() {
            categories[i as usize].clone()
        } else {
            String::new()
        }
    };
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .label_style(font(12.0, k))
        .axis_desc_style(font(13.0, k))
        .x_label_formatter(&label)
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    let m = b.series.len().max(1) as f64;
    let width = 0.8 / m;
    for (j, (_, values)) in b.series.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let rects = values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let left = i as f64 - 0.4 + j as f64 * width;
            Some(Rectangle::new(
                [(left, 0.0), (left + width * 0.92, v)],
                color.filled(),
            ))
        });
        c.draw_series(rects)?;
    }
    Ok(())
}

/// Horizontal stacked bars, the first category on top, each bar's total at its end.
fn stacked<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    st: &Stacked,
    k: f64,
) -> DrawResult<DB> {
    let n = st.categories.len().max(1);
    let totals = st.totals();
    let hi = totals.iter().copied().fold(0.0, f64::max);
    // Room right of the longest bar for its total.
    let x_max = if hi > 0.0 { hi * 1.2 } else { 1.0 };
    let longest = st
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    let label_area = (longest as f64 * 6.8 + 14.0).clamp(60.0, 330.0);
    let mut c = ChartBuilder::on(root)
        .margin((12.0 * k) as i32)
        .x_label_area_size((42.0 * k) as i32)
        .y_label_area_size((label_area * k) as i32)
        .build_cartesian_2d(0.0..x_max, -0.5..(n as f64 - 0.5))?;
    // Bar i sits at y = n - 1 - i, so the first category is on top.
    let y_of = |i: usize| (n - 1 - i) as f64;
    let categories = st.categories.clone();
    let label = move |v: &f64| {
        let r = v.round();
        if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < n {
            categories
                .get(n - 1 - r as usize)
                .cloned()
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    c.configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .x_labels(10)
        .x_desc(&chart.x_label)
        .label_style(font(12.0, k))
        .axis_desc_style(font(13.0, k))
        .y_label_formatter(&label)
        .x_label_formatter(&|v| tick(*v))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    let half = 0.36;
    let bars = st.categories.len();
    let mut left = vec![0.0; bars];
    for seg in &st.segments {
        let color = PALETTE[seg.color % PALETTE.len()];
        let rects: Vec<Rectangle<(f64, f64)>> = seg
            .values
            .iter()
            .enumerate()
            .filter(|(i, v)| **v > 0.0 && *i < bars)
            .map(|(i, v)| {
                let x0 = left[i];
                left[i] += v;
                let y = y_of(i);
                Rectangle::new([(x0, y - half), (x0 + v, y + half)], color.filled())
            })
            .collect();
        c.draw_series(rects)?;
    }
    let text = TextStyle::from(font(11.5, k)).pos(Pos::new(HPos::Left, VPos::Center));
    c.draw_series(
        totals
            .iter()
            .enumerate()
            .map(|(i, t)| Text::new(format!(" {} ms", total(*t)), (*t, y_of(i)), text.clone())),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_chart() -> Chart {
        Chart {
            name: "t".into(),
            title: "A <b>&</b> title".into(),
            x_label: "services".into(),
            y_label: "ms".into(),
            body: Body::Lines {
                series: vec![Series {
                    label: "mode<script>".into(),
                    points: vec![(100.0, 10.0), (1000.0, 80.0)],
                    whiskers: vec![(9.0, 11.0), (70.0, 95.0)],
                    secondary: false,
                    color: 0,
                }],
                log_x: true,
                log_y: true,
            },
            section: super::super::Section::Overview,
            caption: String::new(),
        }
    }

    #[test]
    fn svg_has_paths_and_escaped_text() {
        let svg = render_svg(&line_chart()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("<polyline") || svg.contains("<path"));
        assert!(svg.contains("mode&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("A &lt;b&gt;&amp;&lt;/b&gt; title"));
    }

    #[test]
    fn png_is_written_and_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.png");
        render_png(&line_chart(), &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let bad = dir.path().join("missing/t.png");
        let e = render_png(&line_chart(), &bad).unwrap_err().to_string();
        assert!(e.contains("missing/t.png"), "{e}");
    }

    #[test]
    fn stacked_bars_draw_every_segment_with_totals() {
        let chart = Chart {
            name: "s".into(),
            title: "Where the time goes".into(),
            x_label: "ms per sync (mean)".into(),
            y_label: String::new(),
            body: Body::Stacked(Stacked {
                categories: vec!["nftables (kube-proxy 1.36) @ 1000".into(), "b<".into()],
                segments: vec![
                    super::super::Segment {
                        label: "listing".into(),
                        color: 0,
                        values: vec![130.0, 0.0],
                    },
                    super::super::Segment {
                        label: "other wall".into(),
                        color: 7,
                        values: vec![1370.0, 40.0],
                    },
                ],
            }),
            section: super::super::Section::Breakdown,
            caption: String::new(),
        };
        let svg = render_svg(&chart).unwrap();
        // Three non-empty segments, one legend box each for two segments.
        assert_eq!(
            svg.matches("fill=\"#1F77B4\"").count(),
            2,
            "listing bar and key"
        );
        assert_eq!(
            svg.matches("fill=\"#7F7F7F\"").count(),
            3,
            "other bars and key"
        );
        assert!(
            svg.contains("1,500 ms") && svg.contains("40.0 ms"),
            "totals"
        );
        assert!(svg.contains("nftables (kube-proxy 1.36) @ 1000"));
        assert!(svg.contains("b&lt;"));
        let dir = tempfile::tempdir().unwrap();
        render_png(&chart, &dir.path().join("s.png")).unwrap();
    }

    #[test]
    fn ticks_read_well() {
        assert_eq!(tick(1000.0), "1k");
        assert_eq!(tick(1500.0), "1.5k");
        assert_eq!(tick(250.0), "250");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick_log(5000.0), "5k");
        assert_eq!(tick_log(200.0), "200");
        assert_eq!(tick_log(700.0), "");
        assert_eq!(tick_log(0.5), "0.50");
    }
}
