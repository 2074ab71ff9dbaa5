//! The committed CRD YAML must be what the Rust types generate.

fn crd(file: &str) -> serde_yaml_ng::Value {
    let (_, text) = barrage_operator::crdgen::files()
        .into_iter()
        .find(|(f, _)| *f == file)
        .unwrap_or_else(|| panic!("crdgen has no {file}"));
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn committed_crds_match_the_types() {
    let files = barrage_operator::crdgen::files();
    assert_eq!(
        files.iter().map(|f| f.0).collect::<Vec<_>>(),
        ["loadtest.yaml", "scheduledloadtest.yaml"]
    );
    assert_eq!(files[0].1, barrage_operator::crdgen::render());
    for (file, generated) in files {
        let path = format!("{}/../crds/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/{file} is stale: run `cargo run -p barrage-operator --bin crdgen crds` (then copy crds/ to charts/barrage/crds/)"
        );
    }
}

fn columns(crd: &serde_yaml_ng::Value) -> Vec<&str> {
    crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// Kubernetes 1.20 rejects `null` inside an enum (schemars' Option<Enum>).
/// Kubernetes 1.20 refuses a CRD holding `default: ''` when it is applied
/// server-side (Helm installs CRDs so): "must be of type string: null".
#[test]
fn no_empty_string_defaults() {
    for (file, text) in barrage_operator::crdgen::files() {
        assert!(
            !text.contains("default: ''"),
            "{file} has an empty-string default"
        );
    }
}

fn no_null_in_enums(v: &serde_yaml_ng::Value) {
    if let Some(m) = v.as_mapping() {
        if let Some(e) = m.get("enum") {
            assert!(
                !e.as_sequence().unwrap().iter().any(|x| x.is_null()),
                "null in enum: {e:?}"
            );
        }
        m.values().for_each(no_null_in_enums);
    } else if let Some(s) = v.as_sequence() {
        s.iter().for_each(no_null_in_enums);
    }
}

fn has_status_subresource(crd: &serde_yaml_ng::Value) {
    assert_eq!(
        crd["spec"]["versions"][0]["subresources"]["status"],
        serde_yaml_ng::Value::Mapping(Default::default())
    );
}

#[test]
fn the_crd_has_status_printer_columns_and_no_nulls_in_enums() {
    let crd = crd("loadtest.yaml");
    has_status_subresource(&crd);
    assert_eq!(
        columns(&crd),
        [
            "Phase", "Runners", "RPS", "P95(ms)", "Errors", "Verdict", "Age"
        ]
    );
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "lt");
    no_null_in_enums(&crd);
}

#[test]
fn the_scheduled_crd_shows_the_trend() {
    let crd = crd("scheduledloadtest.yaml");
    has_status_subresource(&crd);
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "slt");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(
        columns(&crd),
        [
            "Schedule",
            "TZ",
            "Suspend",
            "Active",
            "Last Schedule",
            "Last Verdict",
            "P95(ms) Recent",
            "RPS Recent",
            "Age"
        ]
    );
    let props = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let spec = &props["spec"]["properties"];
    assert_eq!(spec["concurrencyPolicy"]["default"], "Allow");
    assert_eq!(spec["successfulRunsHistoryLimit"]["default"], 3);
    assert_eq!(spec["failedRunsHistoryLimit"]["default"], 1);
    // The template's spec is the LoadTest's spec.
    let lt = crd_spec_props("loadtest.yaml");
    assert_eq!(spec["template"]["properties"]["spec"]["properties"], lt);
    for f in [
        "history",
        "active",
        "lastScheduleTime",
        "conditions",
        "recentP95",
    ] {
        assert!(
            props["status"]["properties"].get(f).is_some(),
            "status.{f} missing"
        );
    }
    no_null_in_enums(&crd);
}

fn crd_spec_props(file: &str) -> serde_yaml_ng::Value {
    crd(file)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]
        .clone()
}
