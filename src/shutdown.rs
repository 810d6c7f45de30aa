//! SIGINT/SIGTERM → the root `CancellationToken`. Every long-running loop
//! selects on a child of it, so one signal stops the whole process in order.
//!
//! The orderly stop is bounded: a second signal, or the stop outlasting its
//! bound (e.g. the database went away and every write waits on it), exits at
//! once with a non-zero code, after logging what was still in progress.
//! Nothing is lost that way: held jobs come back when their lease runs out
//! and unapplied events stay in the outbox.

use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

type Hook = Box<dyn FnOnce() + Send>;

/// Run before a forced exit (a second signal, an overrun): what must not
/// outlive the process even then, such as the embedded PostgreSQL.
static BEFORE_FORCED_EXIT: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Registers `hook` to run before a forced exit.
pub fn before_forced_exit(hook: impl FnOnce() + Send + 'static) {
    BEFORE_FORCED_EXIT
        .lock()
        .expect("exit hooks")
        .push(Box::new(hook));
}

/// Exit code when the orderly stop outlasted its bound.
pub const EXIT_OVERRAN: i32 = 1;

/// Returns a token cancelled on the first SIGINT or SIGTERM. After that, a
/// second signal exits with 128 + its number, and a stop still running
/// `bound` after the first signal exits with [`EXIT_OVERRAN`]; either way
/// `in_progress()` is logged first.
pub fn on_signal(
    bound: Duration,
    in_progress: impl Fn() -> String + Send + 'static,
) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut signals = match Signals::install() {
            Ok(signals) => signals,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers; stop with SIGKILL");
                return;
            }
        };
        let first = signals.next().await;
        tracing::info!(signal = first.name, bound = ?bound,
            "shutdown requested; finishing in-flight work (a second signal exits at once)");
        cancel.cancel();
        let code = tokio::select! {
            second = signals.next() => {
                tracing::error!(signal = second.name, in_progress = %in_progress(),
                    "second signal: exiting at once; held jobs return to the queue when their lease runs out");
                128 + second.number
            }
            _ = tokio::time::sleep(bound) => {
                tracing::error!(bound = ?bound, in_progress = %in_progress(),
                    "shutdown overran its bound: exiting; held jobs return to the queue when their lease runs out");
                EXIT_OVERRAN
            }
        };
        let hooks = std::mem::take(&mut *BEFORE_FORCED_EXIT.lock().expect("exit hooks"));
        for hook in hooks {
            hook();
        }
        std::process::exit(code);
    });
    token
}

struct Signal {
    name: &'static str,
    number: i32,
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal { name: "SIGINT", number: 2 },
            _ = self.term.recv() => Signal { name: "SIGTERM", number: 15 },
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal {
            name: "Ctrl-C",
            number: 2,
        }
    }
}
