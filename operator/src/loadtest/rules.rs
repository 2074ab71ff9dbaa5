//! What a run's phases derive from its spec: how long the runners may take,
//! the largest reply one may send, how many names and intervals it can
//! hold, and the thresholds that judge it.

use std::time::Duration;

use barrage_runner::thresholds::{self, Threshold};

use crate::crd::LoadTest;

const RUN_GRACE: Duration = Duration::from_secs(300);

/// How long the runners may take: the plan's length, or for a plan that
/// ends by its iterations alone the most the runners let it run
/// (`limits::open_ended`), plus the grace for stopping and reporting.
pub fn run_limit(lt: &LoadTest) -> Duration {
    let plan = &lt.spec.plan;
    // The latest scenario's end, from the test's start.
    let length = barrage_runner::compile::plan_length(plan, crate::agents::report_interval(plan));
    length + lt.spec.timeouts.run_grace.map_or(RUN_GRACE, |g| g.0)
}

/// The largest snapshot a runner of `lt` may send (see `agents`).
pub fn snapshot_limit(lt: &LoadTest) -> usize {
    crate::agents::snapshot_limit(&lt.spec.plan, run_limit(lt))
}

/// The most request names a runner of `lt` can report (a reply with more
/// is refused).
pub fn max_names(lt: &LoadTest) -> usize {
    crate::agents::max_names(&lt.spec.plan)
}

/// The highest report-interval index a runner of `lt` can reach within its
/// run limit (a reply beyond is refused).
pub fn max_interval(lt: &LoadTest) -> u64 {
    crate::agents::max_intervals(&lt.spec.plan, run_limit(lt))
}

pub fn parse_thresholds(lt: &LoadTest) -> Vec<Threshold> {
    // Validated in Pending; a threshold that stopped parsing cannot happen.
    // A spec without thresholds is judged by the runner's default.
    thresholds::plan_sources(lt.spec.plan.thresholds.as_deref())
        .into_iter()
        .filter_map(|(s, is_default)| {
            let mut t: Threshold = s.parse().ok()?;
            t.is_default = is_default;
            Some(t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timed plans are given their length plus the grace; a plan that ends by
    /// its iterations alone as long as its runners let it run (20,000 report
    /// intervals: of its default 10s, or of its reportInterval), not an hour.
    /// Replies and overdue are sized by this.
    #[test]
    fn the_run_limit_covers_timed_and_iteration_only_plans() {
        let base = "target: {baseUrl: 'http://x'}\nrequests: [{name: a, path: /}]\n";
        let timed = crate::pods::tests::lt(&format!("{base}load: {{users: 1, duration: 10m}}"));
        assert_eq!(run_limit(&timed), Duration::from_secs(600) + RUN_GRACE);
        let counted = crate::pods::tests::lt(&format!("{base}load: {{users: 1, iterations: 5}}"));
        assert_eq!(
            run_limit(&counted),
            Duration::from_secs(200_000) + RUN_GRACE
        );
        let fine = crate::pods::tests::lt(&format!(
            "{base}reportInterval: 1s\nload: {{users: 1, iterations: 5}}\ntimeouts: {{runGrace: 1m}}"
        ));
        assert_eq!(run_limit(&fine), Duration::from_secs(20_000 + 60));
        // Scenarios: until the latest one ends (its start time + length).
        let scenarios = crate::pods::tests::lt(
            "target: {baseUrl: 'http://x'}
scenarios:
  a: {load: {users: 1, duration: 1m}, requests: [{name: a, path: /}]}
  b: {startTime: 2m, load: {executor: arrival-rate, rate: 5, duration: 30s}, requests: [{name: b, path: /}]}
",
        );
        assert_eq!(run_limit(&scenarios), Duration::from_secs(150) + RUN_GRACE);
        assert_eq!(max_names(&scenarios), 2);
    }
}
