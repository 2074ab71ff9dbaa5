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

/// Every error of a document, collected as the checks go on past a failed
/// field: in the order they are found, one per field, at
/// most [`Errors::MAX`] (a last one says how many more there were), so a
/// manifest of a million bad requests cannot make a million-line answer.
#[derive(Debug, Default)]
pub struct Errors {
    list: Vec<Error>,
    more: usize,
}

impl Errors {
    /// The most errors kept; the rest are only counted.
    pub const MAX: usize = 100;
    /// The field of the last error when some were left out.
    pub const MORE_FIELD: &'static str = "(more)";

    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `e` unless its field already has an error: where two checks
    /// see the same mistake (the cluster's and the compiler's), the first
    /// says it.
    pub fn push(&mut self, e: Error) {
        let same = |o: &Error| match (o, &e) {
            (Error::Invalid { field, .. }, Error::Invalid { field: f, .. }) => field == f,
            _ => false,
        };
        if self.list.iter().any(same) {
            return;
        }
        if self.list.len() < Self::MAX {
            self.list.push(e);
        } else {
            self.more += 1;
        }
    }

    /// The value of `r`, or None with its error kept.
    pub fn take<T>(&mut self, r: Result<T>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    pub fn extend(&mut self, errors: impl IntoIterator<Item = Error>) {
        for e in errors {
            if let Error::Invalid { field, message } = &e
                && field == Self::MORE_FIELD
                && let Some(n) = message
                    .strip_prefix("and ")
                    .and_then(|m| m.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
            {
                self.more += n;
                continue;
            }
            self.push(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many errors so far (those only counted included).
    pub fn len(&self) -> usize {
        self.list.len() + self.more
    }

    /// The errors, with a last `(more): and N more errors` when some were
    /// left out.
    pub fn into_vec(mut self) -> Vec<Error> {
        if self.more > 0 {
            self.list.push(Error::invalid(
                Self::MORE_FIELD,
                format!("and {} more errors", self.more),
            ));
        }
        self.list
    }

    /// The first error, the one a first-error caller reports.
    pub fn into_result(self) -> Result<()> {
        match self.into_vec().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_kept_once_in_order_and_capped() {
        let mut e = Errors::new();
        e.push(Error::invalid("b", "x"));
        e.push(Error::invalid("a", "x"));
        e.push(Error::invalid("b", "x"));
        assert_eq!(e.take::<()>(Err(Error::invalid("a", "y"))), None);
        assert_eq!(e.take(Ok(3)), Some(3));
        let v: Vec<String> = e.into_vec().iter().map(|e| e.to_string()).collect();
        assert_eq!(v, ["b: x", "a: x"]);
        let mut e = Errors::new();
        for i in 0..Errors::MAX + 7 {
            e.push(Error::invalid(format!("f{i}"), "bad"));
        }
        assert_eq!(e.len(), Errors::MAX + 7);
        let mut outer = Errors::new();
        outer.push(Error::invalid("first", "bad"));
        outer.extend(e.into_vec());
        let v = outer.into_vec();
        assert_eq!(v.len(), Errors::MAX + 1);
        assert_eq!(v[Errors::MAX].to_string(), "(more): and 8 more errors");
    }
}
