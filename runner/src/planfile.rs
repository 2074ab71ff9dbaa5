//! Reading a plan from YAML or JSON: either the plan alone or a whole
//! `LoadTest` manifest, whose `spec` is the plan plus cluster-only fields
//! that a local run ignores.

use std::path::{Path, PathBuf};

use crate::{
    compile::{Compiled, Slot, compile, compile_sharing},
    error::{Error, Result},
    input,
    plan::Plan,
};

/// LoadTest spec fields that only the operator acts on. Keep in step with
/// the operator's LoadTestSpec.
pub const CLUSTER_ONLY_FIELDS: &[&str] = &[
    "runners",
    "runner",
    "setup",
    "timeouts",
    "cleanup",
    "collectInterval",
    "dataFrom",
];

#[derive(Debug)]
pub struct Loaded {
    pub plan: Plan,
    /// Where relative paths in the plan (data files) are resolved.
    pub base_dir: PathBuf,
    /// `spec.` for a manifest, so errors name the field as the user wrote it.
    pub prefix: &'static str,
    /// metadata.name of a manifest.
    pub name: Option<String>,
    /// The file it came from, named in every error about it.
    pub origin: Option<PathBuf>,
}

impl Loaded {
    /// Compiles the plan for `slot`; errors name the file as well as the field.
    pub fn compile(&self, slot: Slot) -> Result<Compiled> {
        compile(&self.plan, slot, &self.base_dir, self.prefix)
            .map_err(|e| in_file(self.origin.as_deref(), e))
    }

    /// Compiles the plan for each of `slots`; the data file is read once and
    /// its records shared by all of them.
    pub fn compile_slots(&self, slots: &[Slot]) -> Result<Vec<Compiled>> {
        let mut out: Vec<Compiled> = Vec::with_capacity(slots.len());
        for &slot in slots {
            let c = compile_sharing(&self.plan, slot, &self.base_dir, self.prefix, out.first())
                .map_err(|e| in_file(self.origin.as_deref(), e))?;
            out.push(c);
        }
        Ok(out)
    }
}

/// Names the file in an error about one of its fields.
pub fn in_file(origin: Option<&Path>, e: Error) -> Error {
    match (origin, e) {
        (Some(p), Error::Invalid { field, message }) => {
            Error::invalid(format!("{}: {field}", p.display()), message)
        }
        (_, other) => other,
    }
}

pub fn load_file(path: &Path) -> Result<Loaded> {
    let text = read_plan(path)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loaded = from_str(&text, base).map_err(|e| in_file(Some(path), e))?;
    loaded.origin = Some(path.to_path_buf());
    Ok(loaded)
}

/// A plan or manifest file's text: bounded, UTF-8, errors naming the file.
pub fn read_plan(path: &Path) -> Result<String> {
    // Errors about the content name the file in their message.
    input::read_text(path, input::MAX_PLAN_BYTES, "(file)")
}

/// Parses a plan or manifest document (YAML or JSON) with the parser-bomb
/// limits of [`input::yaml_value`].
pub fn parse_document(text: &str) -> Result<serde_yaml_ng::Value> {
    if text.len() as u64 > input::MAX_PLAN_BYTES {
        return Err(Error::invalid(
            "(file)",
            format!(
                "is larger than the limit of {}",
                input::format_bytes(input::MAX_PLAN_BYTES)
            ),
        ));
    }
    input::yaml_value(text).map_err(|m| Error::invalid("(file)", m))
}

pub fn from_str(text: &str, base_dir: PathBuf) -> Result<Loaded> {
    let doc = parse_document(text)?;
    let is_manifest = doc.get("kind").is_some() || doc.get("apiVersion").is_some();
    let (mut body, prefix, name) = if is_manifest {
        let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "LoadTest" {
            return Err(Error::invalid("kind", format!("{kind:?} is not LoadTest")));
        }
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let spec = doc
            .get("spec")
            .cloned()
            .ok_or_else(|| Error::invalid("spec", "is missing"))?;
        (spec, "spec.", name)
    } else {
        (doc, "", None)
    };
    if let serde_yaml_ng::Value::Mapping(m) = &mut body {
        if is_manifest {
            for k in CLUSTER_ONLY_FIELDS {
                m.remove(*k);
            }
        }
    } else {
        return Err(Error::invalid(
            prefix.trim_end_matches('.').to_string() + "(plan)",
            "must be a mapping with target, load and requests",
        ));
    }
    let plan: Plan = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            prefix.trim_end_matches('.').to_string()
        } else {
            format!("{prefix}{path}")
        };
        Error::invalid(
            if field.is_empty() {
                "(plan)".into()
            } else {
                field
            },
            e.into_inner().to_string(),
        )
    })?;
    Ok(Loaded {
        plan,
        base_dir,
        prefix,
        name,
        origin: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "target: {baseUrl: 'http://127.0.0.1:1'}\nload: {users: 1, duration: 1s}\nrequests: [{name: a, path: /}]\n";

    /// `--workers N` reads the data file once: every worker shares one copy
    /// of its records (N copies of a 64 MiB file were N x its size).
    #[test]
    fn workers_share_one_copy_of_the_records() {
        let dir = std::env::temp_dir().join(format!("barrage-share-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("users.csv"), "id\n1\n2\n3\n4\n").unwrap();
        let plan = format!("{PLAN}data: {{file: users.csv, select: unique}}\n");
        let loaded = from_str(&plan, dir.clone()).unwrap();
        let slots: Vec<Slot> = (0..8).map(|index| Slot { index, count: 8 }).collect();
        let compiled = loaded.compile_slots(&slots).unwrap();
        let records = |c: &Compiled| c.data.as_ref().unwrap().records.clone();
        let first = records(&compiled[0]);
        assert_eq!(first.rows.len(), 4);
        for c in &compiled {
            assert!(std::sync::Arc::ptr_eq(&first, &records(c)));
        }
        assert_eq!(compiled[5].slot, slots[5]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_a_bare_plan_and_a_manifest_alike() {
        let bare = from_str(PLAN, PathBuf::new()).unwrap();
        assert_eq!(bare.prefix, "");
        let indented: String = PLAN.lines().map(|l| format!("  {l}\n")).collect();
        let manifest = format!(
            "apiVersion: barrage.dev/v1alpha1\nkind: LoadTest\nmetadata: {{name: t1}}\nspec:\n  runners: 3\n{indented}"
        );
        let m = from_str(&manifest, PathBuf::new()).unwrap();
        assert_eq!(m.plan, bare.plan);
        assert_eq!(m.name.as_deref(), Some("t1"));
        assert_eq!(m.prefix, "spec.");
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = from_str(&PLAN.replace("1s", "1 sec"), PathBuf::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("load.duration:") && e.contains("unknown unit"),
            "{e}"
        );
        let e = from_str(
            &PLAN.replace("path: /", "path: /, methd: GET"),
            PathBuf::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("requests[0].methd:") && e.contains("unknown field `methd`"),
            "{e}"
        );
        let e = from_str("kind: Deployment\nspec: {}", PathBuf::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not LoadTest"), "{e}");
        let e = from_str(
            "apiVersion: x\nkind: LoadTest\nspec:\n  target: {baseUrl: 1}\n",
            PathBuf::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("spec."), "{e}");
    }
}
