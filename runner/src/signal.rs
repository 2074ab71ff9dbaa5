//! Waiting for the signals that end a long-running mode (serve, agent) or
//! interrupt a local run.

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends a pod it stops).
pub async fn terminate() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Ctrl-C, listened for from the moment this is made (not from the first
/// poll, as `tokio::signal::ctrl_c` does), so that a Ctrl-C right after a run
/// starts stops it rather than killing the process without a report.
pub struct Interrupts {
    #[cfg(unix)]
    sig: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    pub fn listen() -> Interrupts {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let sig = signal(SignalKind::interrupt())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for Ctrl-C"))
                .ok();
            Interrupts { sig }
        }
        #[cfg(not(unix))]
        Interrupts {}
    }

    /// Resolves on the next Ctrl-C.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        match &mut self.sig {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
