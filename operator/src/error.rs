//! The operator's one error type. `category()` is the low-cardinality label
//! for the reconcile-error metric.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// A runner's control API could not be reached or answered badly.
    #[error("runner agent {runner}: {message}")]
    Agent { runner: String, message: String },

    /// A runner's agent sent a reply longer than the operator reads, which
    /// fails the LoadTest: a broken or hostile runner image must not make
    /// the operator run out of memory.
    #[error(
        "runner agent {runner}: {what} reply is over the {limit}-byte limit for this plan ({rule})"
    )]
    ReplyTooLarge {
        runner: String,
        what: String,
        limit: usize,
        rule: &'static str,
    },

    /// The LoadTest's spec is invalid; `field` names where (e.g. `spec.runners`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    /// A name this LoadTest needs is taken by an object it does not own.
    #[error("{0}")]
    Conflict(String),

    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Agent { .. } | Error::ReplyTooLarge { .. } => "agent",
            Error::Invalid { .. } => "invalid",
            Error::Conflict(_) => "conflict",
            Error::Other(_) => "other",
        }
    }
}

impl From<barrage_runner::Error> for Error {
    fn from(e: barrage_runner::Error) -> Self {
        match e {
            barrage_runner::Error::Invalid { field, message } => Error::Invalid { field, message },
            other => Error::Other(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
