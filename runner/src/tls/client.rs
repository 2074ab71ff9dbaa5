//! rustls client configs for the engine (target.tls). Filled in by issue 13.
