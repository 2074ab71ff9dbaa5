//! The runner crate's one error type. `category()` is a low-cardinality label
//! (for logs and metrics), the Display text is for people: it names the field
//! and what is wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan (or a config file) is invalid. `field` is a path such as
    /// `spec.load.stages[1].duration`.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// A serialized snapshot or histogram that cannot be decoded.
    #[error("bad snapshot: {0}")]
    Snapshot(String),

    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A small fixed set of labels, safe to use as a metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::Read { .. } | Error::Write { .. } | Error::Listen { .. } => "io",
            Error::Snapshot(_) => "snapshot",
            Error::Other(_) => "other",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
