//! Pinned verifiers for the agent channel. Filled in by issue 13 (agent-tls).
