//! The committed CRD YAML must be what the Rust types generate.

#[test]
fn committed_crds_match_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/loadtest.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = barrage_operator::crdgen::render();
    assert!(
        committed == generated,
        "crds/loadtest.yaml is stale: run `cargo run -p barrage-operator --bin crdgen > crds/loadtest.yaml`"
    );
}

#[test]
fn the_crd_has_status_printer_columns_and_no_nulls_in_enums() {
    let crd: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&barrage_operator::crdgen::render()).unwrap();
    let v = &crd["spec"]["versions"][0];
    assert_eq!(
        v["subresources"]["status"],
        serde_yaml_ng::Value::Mapping(Default::default())
    );
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "Phase", "Runners", "RPS", "P95(ms)", "Errors", "Verdict", "Age"
        ]
    );
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "lt");
    // Kubernetes 1.20 rejects `null` inside an enum (schemars' Option<Enum>).
    fn walk(v: &serde_yaml_ng::Value) {
        if let Some(m) = v.as_mapping() {
            if let Some(e) = m.get("enum") {
                assert!(
                    !e.as_sequence().unwrap().iter().any(|x| x.is_null()),
                    "null in enum: {e:?}"
                );
            }
            m.values().for_each(walk);
        } else if let Some(s) = v.as_sequence() {
            s.iter().for_each(walk);
        }
    }
    walk(&crd);
}
