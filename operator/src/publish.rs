//! `barrage-operator publish-records`: the last container of a setup Job's
//! pod. It reads the JSON lines the setup wrote, checks them, and patches
//! them into the LoadTest's records Secret, the one object its
//! ServiceAccount may touch. The operator image already holds a Kubernetes
//! client, so no other image is needed.

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::api::{Api, Patch, PatchParams};

use crate::{
    error::{Error, Result},
    pods::RECORDS_KEY,
    setup::{ANN_BYTES, ANN_COUNT},
};

const PATCH_ATTEMPTS: u32 = 5;

/// Worth another try: no answer, or an answer that says "later" (429, 5xx).
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

/// Checks that every non-blank line is a JSON object (a record) and that
/// they fit one Secret; the count of records.
pub fn check_records(text: &str) -> std::result::Result<u64, String> {
    let mut count = 0u64;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => count += 1,
            Ok(_) => return Err(format!("line {}: a record must be a JSON object", i + 1)),
            Err(e) => return Err(format!("line {}: not JSON: {e}", i + 1)),
        }
    }
    barrage_runner::provision::check_size(text.len(), count as usize)?;
    Ok(count)
}

/// The patch that publishes `text` (already checked) as the records.
pub fn records_patch(text: &str, count: u64) -> Secret {
    Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            annotations: Some(BTreeMap::from([
                (ANN_COUNT.to_string(), count.to_string()),
                (ANN_BYTES.to_string(), text.len().to_string()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            RECORDS_KEY.to_string(),
            ByteString(text.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// Reads `file` and publishes it to `secret`; Ok(message) says what was done.
/// With `optional`, a missing file publishes nothing (a custom setup that
/// only prepares the server).
pub async fn run(file: &Path, secret: &str, namespace: &str, optional: bool) -> Result<String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && optional => {
            return Ok(format!(
                "the setup wrote no records ({} is absent); nothing published",
                file.display()
            ));
        }
        Err(e) => {
            return Err(Error::Other(format!(
                "the setup wrote no records file {}: {e}",
                file.display()
            )));
        }
    };
    let count = check_records(&text)
        .map_err(|m| Error::Other(format!("records in {}: {m}", file.display())))?;
    if count == 0 && !optional {
        return Err(Error::Other(format!(
            "the setup wrote no records: {} is empty",
            file.display()
        )));
    }
    let client = kube::Client::try_default().await?;
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let patch = records_patch(&text, count);
    // A failed publish loses the whole setup (or, with retries, repeats it
    // and registers the users twice): ride out a passing API hiccup.
    let mut wait = Duration::from_secs(1);
    for attempt in 1.. {
        match api
            .patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < PATCH_ATTEMPTS && transient(&e) => {
                eprintln!("publishing records (attempt {attempt}): {e}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(format!(
        "published {count} records ({} bytes) to Secret {secret}",
        text.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_objects_one_per_line() {
        assert_eq!(check_records("{\"a\":\"1\"}\n\n{\"a\":\"2\"}\n"), Ok(2));
        assert_eq!(check_records(""), Ok(0));
        let e = check_records("{\"a\":1}\n[1,2]\n").unwrap_err();
        assert!(
            e.starts_with("line 2: a record must be a JSON object"),
            "{e}"
        );
        let e = check_records("{\"a\":1}\n{oops\n").unwrap_err();
        assert!(e.starts_with("line 2: not JSON"), "{e}");
    }

    #[test]
    fn records_that_overflow_a_secret_are_refused() {
        let line = format!("{{\"t\":\"{}\"}}\n", "x".repeat(1000));
        let text = line.repeat(1100);
        let e = check_records(&text).unwrap_err();
        assert!(e.contains("the 1100 records take"), "{e}");
        assert!(e.contains("1 MiB"), "{e}");
    }

    #[test]
    fn the_patch_carries_the_records_and_their_count() {
        let p = records_patch("{\"a\":\"1\"}\n", 1);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["metadata"]["annotations"][ANN_COUNT], "1");
        // Secret data travels base64-encoded.
        assert_eq!(v["data"][RECORDS_KEY], "eyJhIjoiMSJ9Cg==");
    }
}
