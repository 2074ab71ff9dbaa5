//! Tests of the SVG drawing: escaping, ticks, the nines scale, where points
//! land, the legend's layout, and bar widths.

use super::{
    canvas::{BOTTOM, H, LEFT, RIGHT, TOP, W, px},
    line::{legend_layout, text_w},
    *,
};

#[test]
fn escapes_markup_and_quotes() {
    assert_eq!(
        esc(r#"<script>alert("x") & 'y'</script>"#),
        "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
    );
}

#[test]
fn ticks_are_round_and_cover_the_data() {
    assert_eq!(
        nice_ticks(87.0, 5),
        vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    );
    assert_eq!(
        nice_ticks(100.0, 5),
        vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    );
    assert_eq!(
        nice_ticks(0.34, 5),
        vec![0.0, 0.1, 0.2, 0.30000000000000004, 0.4]
    );
    // No data: still an axis, 0..1.
    assert_eq!(nice_ticks(0.0, 5).last(), Some(&1.0));
    assert_eq!(nice_ticks(f64::NAN, 5).last(), Some(&1.0));
    let t = nice_ticks(12_345.0, 5);
    assert!(*t.last().unwrap() >= 12_345.0 && t.len() <= 7, "{t:?}");
    assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
    assert_eq!(tick_label(2000.0, 500.0), "2000");
}

#[test]
fn the_nines_scale_gives_each_nine_equal_room() {
    let s = Scale::Nines { max: 5.0 };
    assert_eq!(s.frac(0.0), 0.0);
    assert!((s.frac(90.0) - 0.2).abs() < 1e-9);
    assert!((s.frac(99.0) - 0.4).abs() < 1e-9);
    assert!((s.frac(99.9) - 0.6).abs() < 1e-9);
    assert!((s.frac(99.999) - 1.0).abs() < 1e-9);
    assert_eq!(s.frac(100.0), 1.0);
    assert!((percentile_of_nines(3.0) - 99.9).abs() < 1e-9);
    let labels: Vec<String> = Axis::nines("p", 5).ticks.into_iter().map(|t| t.1).collect();
    assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
}

#[test]
fn points_land_inside_the_plot_and_gaps_break_the_line() {
    let c = LineChart {
        id: "t".into(),
        title: "t".into(),
        x: Axis::linear("s", 10.0, |v| format!("{v}s")),
        y: Axis::linear("ms", 50.0, |v| format!("{v}ms")),
        series: vec![Series::new(
            "a",
            0,
            vec![
                Some((0.0, 0.0)),
                Some((10.0, 50.0)),
                None,
                Some((5.0, 25.0)),
            ],
        )],
    };
    let svg = line_chart(&c);
    // Two polylines (the gap splits the series), three markers.
    assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
    assert_eq!(svg.matches(r#"class="pt""#).count(), 3);
    // (0,0) is the bottom-left corner, (10,50) the top-right one.
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    assert!(svg.contains(&format!(
        r#"points="{},{} {},{}""#,
        px(LEFT),
        px(TOP + plot_h),
        px(LEFT + plot_w),
        px(TOP)
    )));
    assert!(svg.contains("<title>a: 10s, 50ms</title>"));
}

#[test]
fn a_long_legend_wraps_under_the_title_without_overlaps() {
    let few = [Series::new("p50", 0, vec![]), Series::new("p95", 1, vec![])];
    let (items, extra) = legend_layout("Latency", &few, LEFT, W - RIGHT);
    assert_eq!(extra, 0.0);
    assert!(items.iter().all(|i| i.1 == 22.0 && i.0 > LEFT + 80.0));
    let many: Vec<Series> = (0..7)
        .map(|i| Series::new(&format!("a-rather-long-request-name-{i}"), i, vec![]))
        .collect();
    let (items, extra) = legend_layout("Latency percentile spectrum", &many, LEFT, W - RIGHT);
    assert!(extra >= 36.0, "{extra}");
    for w in items.windows(2) {
        let ((x0, y0, s0), (x1, y1, _)) = (w[0], w[1]);
        assert!(
            y1 > y0 || x1 >= x0 + 27.0 + text_w(&s0.name, 7.2),
            "{:?}",
            (x0, x1)
        );
        assert!(x1 + 27.0 + text_w(&w[1].2.name, 7.2) <= W - RIGHT + 1e-9);
    }
    // The chart grows by the legend's rows; the plot keeps its height.
    let c = LineChart {
        id: "t".into(),
        title: "Latency percentile spectrum".into(),
        x: Axis::linear("s", 1.0, |v| v.to_string()),
        y: Axis::linear("ms", 1.0, |v| v.to_string()),
        series: many,
    };
    assert!(line_chart(&c).contains(&format!("viewBox=\"0 0 {W} {}\"", H + extra)));
}

#[test]
fn series_and_bar_labels_are_escaped() {
    let c = LineChart {
        id: "t".into(),
        title: "<b>".into(),
        x: Axis::linear("s", 1.0, |v| v.to_string()),
        y: Axis::linear("ms", 1.0, |v| v.to_string()),
        series: vec![Series::new("<script>x</script>", 0, vec![Some((0.5, 0.5))])],
    };
    let svg = line_chart(&c);
    assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
    assert!(svg.contains("&lt;script&gt;x&lt;/script&gt;"));
    let bars = bar_chart(
        "b",
        "codes",
        "responses",
        &[Bar {
            label: "<img src=x>".into(),
            value: 1.0,
            colour: PALETTE[0],
            hatched: true,
            note: "1".into(),
        }],
    );
    assert!(!bars.contains("<img"), "{bars}");
    assert!(bars.contains("url(#b-hatch-0)"));
}

#[test]
fn bars_scale_to_the_largest_and_small_ones_stay_visible() {
    let bar = |label: &str, value: f64| Bar {
        label: label.into(),
        value,
        colour: PALETTE[0],
        hatched: false,
        note: String::new(),
    };
    let svg = bar_chart("b", "t", "n", &[bar("200", 100_000.0), bar("500", 1.0)]);
    let widths: Vec<f64> = svg
        .split(r#"<rect x="110.0" y=""#)
        .skip(1)
        .map(|s| {
            let w = s.split(r#"width=""#).nth(1).unwrap();
            w[..w.find('"').unwrap()].parse().unwrap()
        })
        .collect();
    assert_eq!(widths.len(), 2, "{svg}");
    assert_eq!(widths[0], 500.0); // 100,000 is the axis's end
    assert_eq!(widths[1], 2.0); // one error still shows
}
