//! What every page shares, the comparison's too: the CSS, the head with
//! its Content-Security-Policy, and the verdict banner.

use std::fmt::Write as _;

use crate::report::svg::esc;

pub const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a1a1a; background: #fafafa; }
main { max-width: 1120px; margin: 0 auto; padding: 0 20px 40px; }
.banner { padding: 18px 24px; border-left: 10px solid; margin-bottom: 20px; }
.banner h1 { margin: 0; font-size: 26px; }
.banner .sub { margin-top: 4px; }
.banner.passed { background: #e3f4ec; border-color: #009E73; color: #04382a; }
.banner.failed { background: #fbe9e1; border-color: #D55E00; color: #5c1f00; }
.banner.pending { background: #ececec; border-color: #6b6b6b; color: #1a1a1a; }
h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.notes p { background: #fff6d6; border: 1px solid #e6c200; padding: 8px 12px; margin: 8px 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 4px 16px; margin: 0; }
dl.meta dt { color: #555; }
dl.meta dd { margin: 0; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; background: #fff; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; word-break: break-all; }
thead th { background: #f0f0f0; }
tr.all td { font-weight: 600; }
.pass { color: #00664a; font-weight: 600; }
.fail { color: #a33a00; font-weight: 600; }
.worse { background: #fbe0d3; color: #7a2600; font-weight: 600; }
.better { background: #d8f0e6; color: #00553d; font-weight: 600; }
.plots { display: grid; grid-template-columns: 1fr; gap: 18px; }
figure { margin: 0; background: #fff; border: 1px solid #e4e4e4; padding: 8px; }
figcaption { color: #444; font-size: 13px; padding: 2px 6px; }
svg.chart { width: 100%; height: auto; display: block; font: 12px system-ui, "DejaVu Sans", sans-serif; }
svg.chart .title { font-weight: 600; font-size: 14px; fill: #1a1a1a; }
svg.chart .grid line { stroke: #e2e2e2; }
svg.chart .frame { fill: none; stroke: #888; }
svg.chart .tick, svg.chart .note { fill: #333; }
svg.chart .axis { fill: #333; font-size: 13px; }
svg.chart .line { stroke-width: 2; stroke-linejoin: round; }
svg.chart .legend text { fill: #1a1a1a; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: -1px; margin: 0 4px 0 12px; border: 1px solid #555; }
.hatch { background: repeating-linear-gradient(45deg, #CC79A7 0 3px, #fff 3px 5px); }
footer { color: #666; font-size: 13px; margin-top: 30px; }
"#;

/// A complete page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        esc(title)
    )
}

pub fn banner(out: &mut String, verdict: Option<&str>, heading: &str, sub: &str) {
    let (class, word) = match verdict {
        Some("Passed") => ("passed", "PASSED"),
        Some(_) => ("failed", "FAILED"),
        None => ("pending", "NO VERDICT"),
    };
    let _ = write!(
        out,
        r#"<header class="banner {class}" id="verdict"><h1>{word} · {}</h1><div class="sub">{}</div></header>"#,
        esc(heading),
        esc(sub)
    );
}
