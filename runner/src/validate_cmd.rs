//! `barrage-runner validate FILE...`: checks plans, LoadTest and
//! ScheduledLoadTest manifests (also several in one multi-document YAML
//! file, and `-` for stdin) without sending anything and without a
//! cluster, and prints every error of every document. A plan is checked
//! as `run` will run it (its data file read, `{{ env.X }}` from this
//! environment); a manifest as the operator checks it (the runner crate's
//! `manifest` module, the very checks its admission webhook answers with).
//! `--output json` prints one JSON document for CI (docs/validate.md).
//! Part of the binary (main.rs).

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use barrage_runner::{
    Error,
    compile::{Slot, compile_all_with_env},
    input,
    manifest::{self, Kind},
    planfile, teardown,
};
use serde::Serialize;

/// How `validate` prints its results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Valid documents on stdout, each error on stderr as FILE: FIELD: MESSAGE.
    #[default]
    Text,
    /// One JSON document on stdout (see docs/validate.md).
    Json,
}

/// The whole answer, as `--output json` prints it.
#[derive(Debug, Serialize)]
pub struct Results {
    /// Every document of every file is valid.
    pub valid: bool,
    pub files: Vec<FileResult>,
}

#[derive(Debug, Serialize)]
pub struct FileResult {
    /// As given on the command line (`-` for stdin).
    pub file: String,
    /// The file could not be read (then it has no documents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub documents: Vec<DocumentResult>,
}

#[derive(Debug, Serialize)]
pub struct DocumentResult {
    /// 0-based, in the file's order (empty documents are not counted).
    pub index: usize,
    /// `Plan`, `LoadTest` or `ScheduledLoadTest`; absent when unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub valid: bool,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl From<Error> for FieldError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, message } => FieldError { field, message },
            other => FieldError {
                field: String::new(),
                message: other.to_string(),
            },
        }
    }
}

/// Checks `files` and prints the results: exit 0 when every document is
/// valid, 2 when any is invalid, 1 when none is invalid but a file could
/// not be read.
pub fn validate(files: &[PathBuf], format: Format) -> ExitCode {
    let results = check_files(files);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&results).expect("results serialize")
        ),
        Format::Text => print_text(&results),
    }
    let invalid = results
        .files
        .iter()
        .flat_map(|f| &f.documents)
        .any(|d| !d.valid);
    if invalid {
        ExitCode::from(crate::EXIT_INVALID)
    } else if results.files.iter().any(|f| f.error.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_text(results: &Results) {
    for f in &results.files {
        if let Some(e) = &f.error {
            eprintln!("error: {e}");
        }
        let many = f.documents.len() > 1;
        for d in &f.documents {
            let at = if many {
                format!("{}#{}", f.file, d.index)
            } else {
                f.file.clone()
            };
            if d.valid {
                println!("{at}: valid");
            }
            for e in &d.errors {
                eprintln!("{at}: {}: {}", e.field, e.message);
            }
        }
    }
}

pub fn check_files(files: &[PathBuf]) -> Results {
    let files: Vec<FileResult> = files.iter().map(|p| check_file(p)).collect();
    Results {
        valid: files
            .iter()
            .all(|f| f.error.is_none() && f.documents.iter().all(|d| d.valid)),
        files,
    }
}

fn check_file(path: &Path) -> FileResult {
    let stdin = path == Path::new("-");
    let text = if stdin {
        read_stdin()
    } else {
        planfile::read_plan(path)
    };
    let mut out = FileResult {
        file: path.display().to_string(),
        error: None,
        documents: Vec::new(),
    };
    let text = match text {
        Ok(t) => t,
        // Too large or not UTF-8 is the file's content: invalid.
        Err(e @ Error::Invalid { .. }) => {
            out.documents.push(DocumentResult {
                index: 0,
                kind: None,
                name: None,
                valid: false,
                errors: vec![e.into()],
            });
            return out;
        }
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let base = if stdin {
        PathBuf::from(".")
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    for (index, doc) in documents(&text).into_iter().enumerate() {
        out.documents.push(check_document(index, doc, &base));
    }
    out
}

fn read_stdin() -> Result<String, Error> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(input::MAX_PLAN_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Other(format!("cannot read stdin: {e}")))?;
    if buf.len() as u64 > input::MAX_PLAN_BYTES {
        return Err(Error::invalid(
            "(file)",
            format!(
                "is larger than the limit of {}",
                input::format_bytes(input::MAX_PLAN_BYTES)
            ),
        ));
    }
    String::from_utf8(buf).map_err(|_| Error::invalid("(file)", "is not UTF-8"))
}

/// The documents of a YAML stream: split at `---` lines (a document
/// marker always starts its line; block scalars are indented), without
/// those holding only comments and blanks. Each is then parsed on its own
/// with the parser-bomb limits of a plan.
pub fn documents(text: &str) -> Vec<&str> {
    let has_content = |d: &str| {
        d.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && l != "..."
        })
    };
    let mut parts = Vec::new();
    let (mut start, mut pos) = (0, 0);
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") {
            parts.push(&text[start..pos]);
            // `--- {a: 1}`: content may follow the marker.
            start = pos + 3;
        }
        pos += line.len();
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|d| has_content(d)).collect()
}

fn check_document(index: usize, text: &str, base: &Path) -> DocumentResult {
    let mut d = DocumentResult {
        index,
        kind: None,
        name: None,
        valid: false,
        errors: Vec::new(),
    };
    let errors = match planfile::parse_document(text)
        .and_then(|v| serde_json::to_value(v).map_err(|e| Error::invalid("(file)", e.to_string())))
    {
        Err(e) => vec![e],
        Ok(doc) => match manifest::kind_of(&doc) {
            Err(e) => vec![e],
            Ok((kind, name)) => {
                d.kind = Some(kind.as_str());
                d.name = name.clone();
                match kind {
                    Kind::Plan => plan_errors(text, base),
                    _ => manifest::check_manifest(kind, name.as_deref().unwrap_or(""), &doc),
                }
            }
        },
    };
    d.valid = errors.is_empty();
    d.errors = errors.into_iter().map(FieldError::from).collect();
    d
}

/// A plan alone, as `run` will run it: every error of its compile, then
/// its teardown's.
fn plan_errors(text: &str, base: &Path) -> Vec<Error> {
    let loaded = match planfile::from_str(text, base.to_path_buf()) {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    let env = |k: &str| std::env::var(k).ok();
    let mut errors = match compile_all_with_env(
        &loaded.plan,
        Slot::SOLO,
        &loaded.base_dir,
        loaded.prefix,
        &env,
    ) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    };
    if let Err(e) = teardown::compile(&loaded.plan, &loaded.base_dir, loaded.prefix, &env) {
        errors.push(e);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_splits_at_document_markers_only() {
        let text = "# c\n---\na: 1\n---\n# only a comment\n---\nb: |\n  ---\n  x\n--- {c: 1}\n";
        assert_eq!(
            documents(text),
            ["\na: 1\n", "\nb: |\n  ---\n  x\n", " {c: 1}\n"]
        );
        assert_eq!(documents("a: 1\n"), ["a: 1\n"]);
        assert!(documents("").is_empty());
    }
}
