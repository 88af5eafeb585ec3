//! The SIGINT listener and the "stop what is left" flag. Kept apart from
//! `interrupt.rs` (the cancel-aware wait, which needs the session) so the
//! session can ask about Ctrl-C without an import cycle.
//!
//! At the prompt the line editor has the terminal in raw mode, so Ctrl-C
//! there is a keypress, not a signal; SIGINT only arrives while something
//! runs. A script listens from its start to its end (once caught, SIGINT no
//! longer kills the process by itself).

use crate::output::warn;

/// The SIGINT listener and what it has said since the current line (at the
/// prompt) or the script started.
#[derive(Default)]
pub(super) struct Interrupts {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
    /// Ctrl-C was pressed since the current line started (in a script:
    /// since it started): what is left of it (and of any `\i` file) does
    /// not run.
    cancelled: bool,
}

impl Interrupts {
    /// Listen for Ctrl-C from now on: while a query runs it becomes a cancel
    /// request instead of killing the process. Call inside the runtime.
    pub(super) fn listen(&mut self) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::interrupt()) {
                Ok(sig) => self.signal = Some(sig),
                Err(err) => warn(&format!("Ctrl-C will not cancel queries: {err}")),
            }
        }
    }

    /// Whether a SIGINT arrived since the last look (taking them all).
    /// Call inside the runtime.
    fn take_pending(&mut self) -> bool {
        #[cfg(unix)]
        if let Some(sig) = &mut self.signal {
            let mut any = false;
            while futures_util::FutureExt::now_or_never(sig.recv()).is_some() {
                any = true;
            }
            return any;
        }
        false
    }

    /// Whether nobody listens yet (so SIGINT still kills the process).
    pub(super) fn signal_missing(&self) -> bool {
        #[cfg(unix)]
        return self.signal.is_none();
        #[cfg(not(unix))]
        true
    }

    /// The next SIGINT; never, when not listening.
    pub(super) async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(sig) = &mut self.signal
            && sig.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }

    /// Start a line at the prompt: SIGINTs still queued from before (say,
    /// pressed while the last result was printed) are not meant for it.
    pub(super) fn forget(&mut self) {
        self.take_pending();
        self.cancelled = false;
    }

    /// Whether Ctrl-C was pressed since the line started, so what is left
    /// of it (and of `\i` files) must not run.
    pub(super) fn interrupted(&mut self) -> bool {
        if self.take_pending() {
            self.cancelled = true;
        }
        self.cancelled
    }

    /// Whether Ctrl-C was already seen (without looking for new ones).
    pub(super) fn was_cancelled(&self) -> bool {
        self.cancelled
    }

    /// Remember a Ctrl-C that something else consumed (a cancel, an
    /// abandoned reconnect).
    pub(super) fn mark_cancelled(&mut self) {
        self.cancelled = true;
    }
}
