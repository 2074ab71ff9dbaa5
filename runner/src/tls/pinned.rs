//! Pinned certificates for the agent channel: each side accepts exactly one certificate. Filled in by issue 13.
