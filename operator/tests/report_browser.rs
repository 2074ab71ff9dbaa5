//! The HTML report of a real run, opened in a real headless browser
//! (Debian's `chromium`): the plots are in the DOM after load with their
//! data points, the page fetches nothing, user-given names stay text, and
//! the screenshot shows the plots painted.
//!
//! The run: the runner engine in-process against the built-in target on
//! loopback (as runner/tests/engine.rs does), with fast and slow requests,
//! 503s and timeouts, so every plot has something to draw.
//!
//! Without chromium the test fails when `CI` is set and skips loudly
//! otherwise. `BARRAGE_REPORT_OUT=DIR` keeps the pages and screenshots there;
//! `CHROMIUM=NAME` runs another browser binary found on PATH.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use barrage_operator::{
    crd::{LoadTestStatus, Phase},
    report::{ReportState, Run, compare, html, series},
    status,
};
use barrage_runner::{
    compile::Slot,
    local::{self, Options},
    planfile::{self, Loaded},
    report::Report,
    serve::{ServeConfig, spawn_local},
};

const EVIL: &str = "<script>alert(1)</script>";

/// A plan run in-process over two runner slots, as over two runner pods.
async fn run_on_two_runners(loaded: &Loaded) -> Report {
    let slots = (0..2).map(|index| Slot { index, count: 2 }).collect();
    local::run(
        loaded,
        &Options {
            slots,
            progress: false,
        },
    )
    .await
    .unwrap()
}

async fn real_report(rate: u32) -> Report {
    let srv = spawn_local(
        ServeConfig::from_yaml_str(
            "routes:\n\
             - {path: /fast, latency: 1ms}\n\
             - {path: /slow, latency: '10%:40ms, 3ms', errorRate: 0.03, errorStatus: 503}\n\
             - {path: /hang, latency: 2s}\n",
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let plan = format!(
        "target: {{baseUrl: {base}}}\n\
         reportInterval: 500ms\n\
         load: {{executor: arrival-rate, maxInFlight: 400, stages: [{{duration: 2s, target: {rate}}}, {{duration: 2s, target: {rate}}}, {{duration: 1s, target: 0}}]}}\n\
         requests:\n\
         - {{name: home, path: /fast, weight: 70}}\n\
         - {{name: slow, path: /slow, weight: 28}}\n\
         - {{name: hang, path: /hang, weight: 2, timeout: 150ms}}\n\
         thresholds: ['p(95) < 50ms', 'error_rate < 1%']\n",
        base = srv.base_url()
    );
    let loaded = planfile::from_str(&plan, PathBuf::new()).unwrap();
    let mut report = run_on_two_runners(&loaded).await;
    // Plans only accept plain request names, but the page must not rely on
    // that: the report comes from a ConfigMap that anyone allowed to edit
    // ConfigMaps can rewrite. Rename one request to markup.
    let slow = report.snapshot.requests.remove("slow").unwrap();
    report.snapshot.requests.insert(EVIL.into(), slow);
    let slow = report.summary.requests.remove("slow").unwrap();
    report.summary.requests.insert(EVIL.into(), slow);
    report
}

/// The Run the plugin would fetch for this report: the status the
/// operator writes for it, and the report from its ConfigMap.
fn run_of(name: &str, report: Report) -> Run {
    let mut st = LoadTestStatus::default();
    status::apply_results(&mut st, &report.snapshot, &Default::default());
    st.phase = if report.passed {
        Phase::Succeeded
    } else {
        Phase::Failed
    };
    st.verdict = Some(if report.passed { "Passed" } else { "Failed" }.into());
    st.thresholds = report.thresholds.clone();
    st.report = Some(format!("{name}-report"));
    st.message = Some("from an in-process run".into());
    Run {
        namespace: "browser-test".into(),
        name: name.into(),
        runners: 2,
        status: Some(st),
        report: ReportState::Loaded(Box::new(report)),
    }
}

fn chromium() -> Option<PathBuf> {
    let name = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = "chromium is not installed: the HTML report was NOT checked in a browser (apt-get install -y chromium)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
    }
    found
}

struct Browser {
    bin: PathBuf,
    dir: PathBuf,
}

impl Browser {
    /// Runs headless chromium on `page` with `extra` flags; (stdout, stderr).
    fn run(&self, page: &Path, extra: &[&str]) -> (String, String) {
        static N: AtomicU32 = AtomicU32::new(0);
        let profile = self
            .dir
            .join(format!("profile-{}", N.fetch_add(1, Ordering::Relaxed)));
        let out = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--enable-logging=stderr",
                "--v=0",
                "--hide-scrollbars",
                "--virtual-time-budget=2000",
                &format!("--user-data-dir={}", profile.display()),
            ])
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium runs");
        let _ = std::fs::remove_dir_all(&profile);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "chromium failed: {}\n{stderr}",
            out.status
        );
        (stdout, stderr)
    }
}

/// One directory per test: each removes its own when done.
fn out_dir(test: &str) -> PathBuf {
    let dir = match std::env::var_os("BARRAGE_REPORT_OUT") {
        Some(d) => PathBuf::from(d),
        None => {
            std::env::temp_dir().join(format!("barrage-report-test-{}-{test}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The polyline points inside the SVG element with `id`, in the DOM.
fn points_in(dom: &str, id: &str) -> usize {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let svg = &dom[start..start + dom[start..].find("</svg>").expect("svg closes")];
    svg.split("points=\"")
        .skip(1)
        .map(|p| p[..p.find('"').unwrap()].split_whitespace().count())
        .sum()
}

/// Series `name` of the SVG chart `id` in the DOM: how many points its
/// line has, and each marker's (x, y) as its tooltip says them
/// ("req/s: 10.01s, 98.9/s", "p95: 3s, 12.3 ms").
fn series_in(dom: &str, id: &str, name: &str) -> (usize, Vec<(f64, f64)>) {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let svg = &dom[start..start + dom[start..].find("</svg>").expect("svg closes")];
    let from = svg
        .find(&format!("data-series=\"{name}\""))
        .unwrap_or_else(|| panic!("no series {name} in #{id}"));
    let group = &svg[from..from + svg[from..].find("</g>").expect("the group closes")];
    let points = group
        .split("points=\"")
        .skip(1)
        .map(|p| p[..p.find('"').unwrap()].split_whitespace().count())
        .sum();
    let number = |t: &str| -> f64 {
        let n = t
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap();
        n.parse()
            .unwrap_or_else(|_| panic!("a number at the start of {t:?}"))
    };
    let values = group
        .split(&format!("<title>{name}: "))
        .skip(1)
        .map(|t| (number(t), number(&t[t.find(", ").expect("x, y") + 2..])))
        .collect();
    (points, values)
}

/// Lines in chromium's log that tell of a blocked or failed fetch.
fn fetch_complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("Refused to")
                || l.contains("Content Security Policy")
                || l.contains("net::ERR_")
        })
        .collect()
}

/// RGBA pixels of a PNG as chromium writes it (8-bit RGB or RGBA, not
/// interlaced): enough of PNG to check a screenshot.
fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut w, mut h, mut bpp, mut idat) = (0, 0, 0, Vec::new());
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let data = &bytes[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                assert_eq!(data[12], 0, "interlaced");
                bpp = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = w * bpp;
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let mut cur = line[1..].to_vec();
        for i in 0..stride {
            let a = if i >= bpp { cur[i - bpp] as i16 } else { 0 };
            let b = prev[i] as i16;
            let c = if i >= bpp { prev[i - bpp] as i16 } else { 0 };
            let add = match line[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            cur[i] = cur[i].wrapping_add(add as u8);
        }
        pixels.extend(cur.chunks(bpp).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    (w, h, pixels)
}

fn hex(c: &str) -> [u8; 3] {
    let v = u32::from_str_radix(c.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

fn near(p: [u8; 3], c: [u8; 3]) -> bool {
    p.iter()
        .zip(c)
        .all(|(a, b)| (*a as i16 - b as i16).abs() <= 12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_of_a_real_run_renders_in_a_browser() {
    let Some(bin) = chromium() else { return };
    let report = real_report(300).await;
    let t = &report.summary.total;
    assert!(t.requests > 500, "the run made {} requests", t.requests);
    assert!(
        report.summary.requests["hang"]
            .errors_by_kind
            .contains_key("timeout"),
        "the /hang requests should time out"
    );
    assert!(report.snapshot.intervals.len() >= 8);
    let run = run_of("checkout", report);
    let page = html::render(&run);

    // Nothing in the file points anywhere: the one http:// is the SVG
    // namespace name, which browsers never fetch.
    for bad in ["https://", "src=", "href=", "<link", "@import"] {
        assert!(!page.contains(bad), "the page references {bad}");
    }
    // url() only for the hatch patterns defined in the page itself.
    assert!(
        page.split("url(").skip(1).all(|rest| rest.starts_with('#')),
        "the page uses url() for something outside itself"
    );
    assert_eq!(
        page.matches("http://").count(),
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );

    let dir = out_dir("report");
    let file = dir.join("report.html");
    std::fs::write(&file, &page).unwrap();
    let browser = Browser {
        bin,
        dir: dir.clone(),
    };

    let (dom, log) = browser.run(&file, &["--dump-dom"]);
    assert!(
        dom.contains("FAILED · browser-test/checkout"),
        "no verdict banner:\n{dom}"
    );
    // One slice per interval, except that a short tail (the run ending
    // just past an interval's start, as on a busy machine) is drawn with
    // the interval before it.
    let slices = series::timeline(&run.loaded().unwrap().snapshot)
        .unwrap()
        .slices
        .len();
    assert!(slices >= 7, "{slices} slices");
    // req/s and errors/s: one point per slice each.
    let rps = points_in(&dom, "plot-rps");
    assert!(rps >= 2 * slices, "rps plot: {rps} points, {slices} slices");
    // p50, p95, p99 per slice (a slice may have no latency).
    let latency = points_in(&dom, "plot-latency");
    assert!(
        latency >= 3 * (slices - 1),
        "latency plot: {latency} points, {slices} slices"
    );
    assert!(points_in(&dom, "plot-spectrum") >= 4 * 40, "spectrum plot");
    assert!(dom.contains("data-label=\"200\""), "no 200 bar");
    assert!(dom.contains("data-label=\"503\""), "no 503 bar");
    assert!(
        dom.contains("<g class=\"bar hatched\" data-label=\"timeout\""),
        "no timeout bar"
    );
    // The request named like a script is text in the DOM, not an element.
    assert!(
        !dom.contains("<script"),
        "a <script> element made it into the DOM"
    );
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let complaints = fetch_complaints(&log);
    assert!(
        complaints.is_empty(),
        "the page tried to fetch: {complaints:?}"
    );

    // The check above can fail: the same page with an image from the
    // network is refused by its Content-Security-Policy, and the log says so.
    let leaky = dir.join("leaky.html");
    std::fs::write(
        &leaky,
        page.replace("</main>", "<img src=\"http://127.0.0.1:9/x.png\"></main>"),
    )
    .unwrap();
    let (_, leaky_log) = browser.run(&leaky, &["--dump-dom"]);
    assert!(
        !fetch_complaints(&leaky_log).is_empty(),
        "chromium's log does not show a blocked fetch:\n{leaky_log}"
    );

    let png = dir.join("report.png");
    browser.run(
        &file,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,3200",
        ],
    );
    let (w, h, pixels) = decode_png(&std::fs::read(&png).unwrap());
    assert_eq!((w, h), (1200, 3200));
    let count = |c: &str| pixels.iter().filter(|p| near(**p, hex(c))).count();
    let white_or_page = pixels
        .iter()
        .filter(|p| p.iter().all(|&v| v >= 0xf0))
        .count();
    assert!(
        white_or_page < pixels.len() * 97 / 100,
        "the screenshot is blank"
    );
    // The plots were painted: the req/s line (blue), the 2xx bar (green),
    // the failed banner's border (vermillion).
    for (what, colour, min) in [
        ("throughput line", "#0072B2", 1_000),
        ("2xx bar", "#009E73", 3_000),
        ("FAILED banner", "#D55E00", 1_000),
    ] {
        let n = count(colour);
        eprintln!("{what}: {n} pixels of {colour}");
        assert!(n >= min, "{what}: {n} pixels of {colour} in the screenshot");
    }
    if std::env::var_os("BARRAGE_REPORT_OUT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_comparison_renders_in_a_browser() {
    let Some(bin) = chromium() else { return };
    let (a, b) = (real_report(150).await, real_report(300).await);
    let (a, b) = (run_of("baseline", a), run_of("candidate", b));
    let c = compare::compare(&a, &b, 5.0);
    // Twice the arrival rate: throughput better beyond any noise.
    let all = &c.groups[0];
    let rps = all.rows.iter().find(|r| r.label == "req/s").unwrap();
    assert_eq!(rps.change, compare::Change::Better, "{:?}", rps);
    let page = compare::render_html(&c, &a, &b);
    let dir = out_dir("compare");
    let file = dir.join("compare.html");
    std::fs::write(&file, &page).unwrap();
    let browser = Browser {
        bin,
        dir: dir.clone(),
    };
    let (dom, log) = browser.run(&file, &["--dump-dom"]);
    assert!(dom.contains("browser-test/baseline vs browser-test/candidate"));
    assert!(dom.contains("<tr class=\"better\"><td>req/s</td>"), "{dom}");
    assert!(points_in(&dom, "plot-spectrum") >= 2 * 40);
    assert!(!dom.contains("<script"));
    assert!(fetch_complaints(&log).is_empty());
    let png = dir.join("compare.png");
    browser.run(
        &file,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,2000",
        ],
    );
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
    if std::env::var_os("BARRAGE_REPORT_OUT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The README's in-cluster example (examples/loadtest-incluster.yaml, 10 s
/// at 100 req/s over 2 runners), run for real with the default report
/// interval, against a target that answers in 15 ms (a service across a
/// cluster's network), so that requests are in flight when the load ends:
/// the page draws a curve (at least 10 points per series) whose last point
/// is the load's rate, not the spike of the one or two responses that
/// arrive in the graceful stop's few milliseconds (one over 5 ms would be
/// drawn as 200 req/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_second_run_draws_a_curve_without_a_spike_at_its_end() {
    let Some(bin) = chromium() else { return };
    let srv = spawn_local(
        ServeConfig::from_yaml_str(
            "routes:\n\
             - {method: GET, path: '/schemas/{id}', latency: 15ms}\n\
             - {method: GET, path: /slow, latency: '10%:50ms, 15ms'}\n",
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/loadtest-incluster.yaml"),
    )
    .unwrap();
    assert!(example.contains("rate: 100") && example.contains("duration: 10s"));
    assert!(!example.contains("reportInterval"));
    let plan = example.replace("http://TARGET_IP:8080", &srv.base_url());
    let loaded = planfile::from_str(&plan, PathBuf::new()).unwrap();
    // The case drawn needs a response recorded after the last whole
    // interval closed. A machine busy just then can record the last one
    // first (a precondition missed, not the page wrong), so up to 3 runs.
    let has_tail = |r: &Report| r.snapshot.intervals.iter().any(|i| i.index >= 10);
    let mut report = run_on_two_runners(&loaded).await;
    let mut runs = 1;
    while runs < 3 && !has_tail(&report) {
        report = run_on_two_runners(&loaded).await;
        runs += 1;
    }
    // The default for a 10 s test.
    assert_eq!(report.snapshot.interval_us, 1_000_000);
    let t = &report.summary.total;
    assert!(
        (950..=1_050).contains(&t.requests) && t.errors == 0,
        "{} requests, {} errors",
        t.requests,
        t.errors
    );
    // Responses did arrive after the last whole interval: the case drawn.
    assert!(
        has_tail(&report),
        "no tail after 10 s in {runs} runs: {:?}",
        report.snapshot.elapsed_secs()
    );
    let run = run_of("incluster", report);
    let page = html::render(&run);
    let dir = out_dir("ten-seconds");
    let file = dir.join("report.html");
    std::fs::write(&file, &page).unwrap();
    let browser = Browser {
        bin,
        dir: dir.clone(),
    };
    let (dom, _) = browser.run(&file, &["--dump-dom"]);

    let (points, rps) = series_in(&dom, "plot-rps", "req/s");
    assert!(
        points >= 10 && rps.len() >= 10,
        "req/s: {points} points, {rps:?}"
    );
    for name in ["p50", "p95", "p99"] {
        let (points, values) = series_in(&dom, "plot-latency", name);
        assert!(
            points >= 10 && values.len() >= 10,
            "{name}: {points} points, {values:?}"
        );
    }
    // A curve over time, not a vertical segment at the end: no two points
    // closer than half an interval (the tail's few milliseconds are drawn
    // with the interval before them).
    assert!(
        rps.windows(2).all(|w| w[1].0 - w[0].0 >= 0.5),
        "points too close in time: {rps:?}"
    );
    assert!(rps[rps.len() - 1].0 >= 10.0, "{rps:?}");
    // The steady rate is the plan's, and so is the last point's.
    let mut steady: Vec<f64> = rps[..rps.len() - 1].iter().map(|p| p.1).collect();
    steady.sort_by(f64::total_cmp);
    let median = steady[steady.len() / 2];
    assert!((90.0..=110.0).contains(&median), "{rps:?}");
    let last = rps[rps.len() - 1].1;
    assert!(
        (last - median).abs() <= 0.1 * median,
        "the last point ({last} req/s) is off the steady rate ({median}): {rps:?}"
    );
    if std::env::var_os("BARRAGE_REPORT_OUT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
