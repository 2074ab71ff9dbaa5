//! AdmissionReview in, AdmissionReview out: pure. The very checks the
//! reconcilers run (`validate::validate_all`, `schedule::validate::validate_all`,
//! and the typed conversion that names the field an object does not fit),
//! every error in one answer, each naming its field; plus the refusal of a
//! started LoadTest's spec edits. What only the cluster can tell (a
//! referenced Secret that may be created later in the same sync) comes
//! back as warnings, never as a refusal.

use kube::{
    api::DynamicObject,
    core::{
        Status,
        admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
        response::{StatusCause, StatusDetails},
    },
};

use super::refs::{self, Lookup};
use crate::{
    crd::{LoadTestStatus, Phase},
    error::Error,
    loadtest, schedule,
    status::{self, COND_VALIDATED},
    validate,
};

pub const GROUP: &str = "barrage.dev";

/// What may still change on a LoadTest whose spec is frozen.
pub const FROZEN_HINT: &str = "metadata (labels, annotations) may still change; delete the LoadTest to stop it, and create a new one (another name) to run a changed spec";

/// The answer to a body, serialized; a body that is no AdmissionReview
/// gets a refusal naming what is wrong (with the request's uid when
/// it can be found, so the API server shows the message).
pub fn review(body: &[u8], missing: &[Lookup]) -> Vec<u8> {
    let resp = match parse(body) {
        Ok(req) => admit(&req, missing),
        Err(msg) => refuse_unreadable(body, &msg),
    };
    serde_json::to_vec(&resp.into_review()).expect("reviews serialize")
}

/// The answer to a body that could not even be read.
pub fn unreadable(msg: &str) -> Vec<u8> {
    serde_json::to_vec(&refuse_unreadable(b"", msg).into_review()).expect("reviews serialize")
}

fn refuse_unreadable(body: &[u8], msg: &str) -> AdmissionResponse {
    let mut resp = AdmissionResponse::invalid(msg);
    // The uid, if the body has one where a review keeps it.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(uid) = v.pointer("/request/uid").and_then(|u| u.as_str())
    {
        resp.uid = uid.to_string();
    }
    resp
}

fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
            .map_err(|e| format!("not an AdmissionReview: {}: {}", e.path(), e.inner()))?;
    review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_string())
}

/// The references of the LoadTest (or the ScheduledLoadTest's template)
/// in `body` whose existence gives warnings; empty for anything else.
pub fn lookups(body: &[u8]) -> Vec<Lookup> {
    let Ok(req) = parse(body) else {
        return Vec::new();
    };
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Vec::new();
    }
    let (Some(obj), Some(ns)) = (&req.object, &req.namespace) else {
        return Vec::new();
    };
    match (req.kind.group.as_str(), req.kind.kind.as_str()) {
        (GROUP, "LoadTest") => match loadtest::typed(obj) {
            Ok(lt) => refs::of_spec(&lt.spec, ns, "spec"),
            Err(_) => Vec::new(),
        },
        (GROUP, "ScheduledLoadTest") => match schedule::validate::typed(obj) {
            Ok(slt) => refs::of_spec(&slt.spec.template.spec, ns, "spec.template.spec"),
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The answer to one request. `missing` are the lookups the cluster did
/// not have (warnings only).
pub fn admit(req: &AdmissionRequest<DynamicObject>, missing: &[Lookup]) -> AdmissionResponse {
    let resp = AdmissionResponse::from(req);
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return resp;
    }
    let Some(obj) = &req.object else {
        return deny(
            resp,
            req,
            vec![invalid("object", "the request carries no object")],
        );
    };
    // An update that leaves the spec alone (labels, annotations, finalizers,
    // a deletion under way) is not judged: an object stored before the
    // webhook, or refused by the reconciler, must stay labellable and
    // deletable.
    if req.operation == Operation::Update
        && let Some(old) = &req.old_object
        && old.data.get("spec") == obj.data.get("spec")
    {
        return resp;
    }
    let errors = match (req.kind.group.as_str(), req.kind.kind.as_str()) {
        (GROUP, "LoadTest") => load_test(req, obj),
        (GROUP, "ScheduledLoadTest") => scheduled(obj),
        // Not ours (a misconfigured rule): nothing to say.
        _ => return resp,
    };
    if !errors.is_empty() {
        return deny(resp, req, errors);
    }
    with_warnings(resp, missing)
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The name the checks see: on a create with `generateName`, the prefix
/// and the five characters the API server adds.
fn name_of(obj: &DynamicObject) -> String {
    match (&obj.metadata.name, &obj.metadata.generate_name) {
        (Some(n), _) if !n.is_empty() => n.clone(),
        (_, Some(g)) => format!("{g}xxxxx"),
        _ => String::new(),
    }
}

fn load_test(req: &AdmissionRequest<DynamicObject>, obj: &DynamicObject) -> Vec<Error> {
    let lt = match loadtest::typed(obj) {
        Ok(lt) => lt,
        Err((field, message)) => return vec![Error::Invalid { field, message }],
    };
    if req.operation == Operation::Update
        && let Some(old) = &req.old_object
        && let Some(why) = spec_frozen(old_status(old).as_ref())
    {
        return vec![invalid(
            "spec",
            format!("cannot change: the test {why}; {FROZEN_HINT}"),
        )];
    }
    validate::validate_all(&name_of(obj), &lt.spec)
}

/// The old object's status, if it has one that reads.
fn old_status(old: &DynamicObject) -> Option<LoadTestStatus> {
    serde_json::from_value(old.data.get("status")?.clone()).ok()
}

/// Why a LoadTest's spec may no longer change, or None while it may: before
/// it starts (no status, or Pending), and after the reconciler refused the
/// spec as invalid (it starts over from a fixed spec). Once the operator
/// acted on the spec (pods, setup, results), the spec is the record of what
/// ran: changing it would make the status describe a test that never ran.
pub fn spec_frozen(st: Option<&LoadTestStatus>) -> Option<String> {
    let st = st?;
    let refused = st.phase == Phase::Failed
        && status::condition(&st.conditions, COND_VALIDATED).is_some_and(|c| c.status == "False");
    match st.phase {
        Phase::Pending => None,
        _ if refused => None,
        p if p.is_terminal() => Some(format!(
            "has finished ({p:?}) and its spec is the record of what ran"
        )),
        p => Some(format!("is running (phase {p:?})")),
    }
}

fn scheduled(obj: &DynamicObject) -> Vec<Error> {
    match schedule::validate::typed(obj) {
        Ok(slt) => schedule::validate::validate_all(&slt),
        Err(e) => vec![e],
    }
}

/// `allowed: false`, every error in the message (one per line, so that
/// `kubectl apply` prints them all) and as a cause naming its field. The
/// details name the object's kind and name, as the API server's own
/// validation does, so kubectl says `The LoadTest "x" is invalid:` rather
/// than `The request is invalid:`.
pub fn deny(
    resp: AdmissionResponse,
    req: &AdmissionRequest<DynamicObject>,
    errors: Vec<Error>,
) -> AdmissionResponse {
    let causes: Vec<StatusCause> = errors
        .iter()
        .map(|e| {
            let (field, message) = match e {
                Error::Invalid { field, message } => (field.clone(), message.clone()),
                other => (String::new(), other.to_string()),
            };
            StatusCause {
                reason: "FieldValueInvalid".into(),
                message,
                field,
            }
        })
        .collect();
    let message = match errors.len() {
        1 => errors[0].to_string(),
        n => {
            let lines: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
            format!("{n} errors:\n{}", lines.join("\n"))
        }
    };
    let mut resp = resp.deny(&message);
    resp.result = Status::failure(&message, "Invalid")
        .with_code(422)
        .with_details(details(req, causes));
    resp
}

fn details(req: &AdmissionRequest<DynamicObject>, causes: Vec<StatusCause>) -> StatusDetails {
    // StatusDetails has no Default; its JSON shape has.
    let mut d: StatusDetails =
        serde_json::from_value(serde_json::json!({})).expect("every field defaults");
    d.group = req.kind.group.clone();
    d.kind = req.kind.kind.clone();
    // A create with generateName has no name yet: kubectl then prints `""`,
    // as it does for the API server's own refusals of such a create.
    d.name = req.name.clone();
    d.causes = causes;
    d
}

fn with_warnings(mut resp: AdmissionResponse, missing: &[Lookup]) -> AdmissionResponse {
    if !missing.is_empty() {
        resp.warnings = Some(missing.iter().map(Lookup::warning).collect());
    }
    resp
}
