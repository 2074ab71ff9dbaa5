//! rustls server configs for `serve` and the agent. Filled in by issue 13.
