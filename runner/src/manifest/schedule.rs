//! The checks of a ScheduledLoadTest beyond its schema, over a plain view:
//! the schedule (cron), the time zone, the starting deadline, the name's
//! length, and its template as a LoadTest (fields named
//! `spec.template.spec.…`), checked under the longest name a run gets.
//! Shared by the operator and `barrage-runner validate`.

use std::time::Duration;

use jiff::{Timestamp, tz::TimeZone};
use serde::Deserialize;

use super::{
    cron::{self, Cron},
    loadtest::{self, LoadTestView},
};
use crate::error::{Error, Errors};

/// The label linking a run to its ScheduledLoadTest carries its name, and
/// label values are at most 63 characters.
pub const MAX_NAME: usize = 63;

/// The longest run name: LoadTest names are at most `loadtest::MAX_NAME`.
pub const MAX_RUN_NAME: usize = loadtest::MAX_NAME;

/// What the checks read of a ScheduledLoadTest's spec.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledView {
    #[serde(default)]
    pub schedule: String,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub starting_deadline_seconds: Option<i64>,
    #[serde(default)]
    pub template: TemplateView,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TemplateView {
    #[serde(default)]
    pub spec: LoadTestView,
}

/// The schedule, zone and deadline of a valid ScheduledLoadTest.
#[derive(Debug)]
pub struct Checked {
    pub cron: Cron,
    pub tz: TimeZone,
    pub deadline: Option<Duration>,
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field, message)
}

/// Every error of a ScheduledLoadTest named `name`, in field order; its
/// checked schedule when there is none.
pub fn validate_scheduled(name: &str, spec: &ScheduledView) -> Result<Checked, Vec<Error>> {
    let mut errs = Errors::new();
    if name.len() > MAX_NAME {
        errs.push(invalid(
            "metadata.name",
            format!(
                "is {} characters; at most {MAX_NAME} for a ScheduledLoadTest",
                name.len()
            ),
        ));
    }
    let cron = spec
        .schedule
        .parse::<Cron>()
        .map_err(|e| invalid("spec.schedule", format!("{:?}: {e}", spec.schedule.trim())));
    let cron = errs.take(cron);
    let tz = match spec.time_zone.as_deref() {
        None => Some(TimeZone::UTC),
        Some(z) => errs.take(cron::time_zone(z.trim()).map_err(|m| invalid("spec.timeZone", m))),
    };
    let deadline = match spec.starting_deadline_seconds {
        None => None,
        Some(s) if s < 0 => {
            errs.push(invalid(
                "spec.startingDeadlineSeconds",
                format!("{s} is negative"),
            ));
            None
        }
        Some(s) => Some(Duration::from_secs(s as u64)),
    };
    // The template as a LoadTest: checked under the longest name a run gets.
    // (Its name made ASCII: the API server allows no other, a file might.)
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii() { c } else { 'x' })
        .take(MAX_NAME)
        .collect();
    let sample = run_name(&safe, Timestamp::now());
    let mut template = Errors::new();
    loadtest::check_load_test(&sample, &spec.template.spec, &mut template);
    errs.extend(template.into_vec().into_iter().map(|e| match e {
        Error::Invalid { field, message } if field != Errors::MORE_FIELD => Error::Invalid {
            field: in_template(&field),
            message,
        },
        other => other,
    }));
    match (cron, tz) {
        (Some(cron), Some(tz)) if errs.is_empty() => Ok(Checked { cron, tz, deadline }),
        _ => Err(errs.into_vec()),
    }
}

/// A LoadTest field (`spec.load`) as the template's (`spec.template.spec.load`).
pub fn in_template(field: &str) -> String {
    match field.strip_prefix("spec") {
        Some(rest) => format!("spec.template.spec{rest}"),
        None => field.to_string(),
    }
}

/// The run's name for scheduled time `at`: `<slt>-<unix minutes>`, so one
/// scheduled time can only ever create one run. A name too long for that is
/// cut and given a hash of the whole name, so two long names that share a
/// beginning still differ.
pub fn run_name(slt: &str, at: Timestamp) -> String {
    let minutes = at.as_second().div_euclid(60).to_string();
    let room = MAX_RUN_NAME - 1 - minutes.len();
    if slt.len() <= room {
        return format!("{slt}-{minutes}");
    }
    let hash = format!("{:08x}", fnv1a(slt.as_bytes()) as u32);
    let keep = room - hash.len() - 1;
    let head = slt[..keep].trim_end_matches(['-', '.']);
    format!("{head}-{hash}-{minutes}")
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100000001b3)
    })
}
