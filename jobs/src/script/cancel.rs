//! Cancelling a running script: the token a task's `cancel_task` fires, and the termination rule of
//! bosh-utils' `system/exec_process_unix.go` (`TerminateNicely`): SIGTERM to the script's process
//! group, SIGKILL when it is still there after a grace period (10 s for drain and errands,
//! reference/bosh-agent.md §14).
//!
//! [`wait_cancellable`] is that rule written against [`ScriptProcess`], a started script seen as a
//! process group that can be waited on and signalled. The runner that can cancel (one built on the
//! platform's `Spawner`) implements [`ScriptProcess`] for its child and calls [`wait_cancellable`];
//! the rule itself is tested here with a fake process, without real time or signals.

use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use platform::cmd::Signal;

/// How long a cancelled script gets between SIGTERM and SIGKILL, as in Go's drain and errand
/// actions (`process.TerminateNicely(10 * time.Second)`).
pub const KILL_GRACE: Duration = Duration::from_secs(10);

/// How long a killed script's group may take to disappear: Go checks 20 times, 500 ms apart.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// How often a waiting runner looks at the token.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Asks scripts to stop. Clones share one flag; once cancelled, a token stays cancelled.
///
/// Cancelling before a script starts cancels it when it would start (the rule of Go's
/// `RunErrandAction.Cancel`), and cancelling twice is the same as once.
#[derive(Clone, Default)]
pub struct CancelToken {
    state: Arc<(Mutex<bool>, Condvar)>,
}

/// A started script, as [`wait_cancellable`] sees it.
///
/// The script runs in its own process group (Go starts every command with `Setpgid`), so that a
/// signal reaches everything it started.
pub trait ScriptProcess {
    /// Waits up to `timeout` for the script to end; `Some(exit_code)` once it has, where a script
    /// ended by a signal has `128 + signal` (bosh-utils `execProcess.wait`).
    fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<i32>>;

    /// Sends `signal` to the script's process group; a group that is gone already is not an error.
    fn signal_group(&mut self, signal: Signal) -> io::Result<()>;
}

/// How a waited-on script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Its exit code (`128 + signal` when a signal ended it).
    pub exit_code: i32,
    /// Whether the token fired while it ran (then it was terminated).
    pub was_cancelled: bool,
}

/// Why waiting on a script or terminating it failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Waiting for the script failed.
    #[error("waiting for the script")]
    Wait(#[source] io::Error),
    /// Signalling its process group failed.
    #[error("sending {signal:?} to the script's process group")]
    Signal {
        /// The signal.
        signal: Signal,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The script was still there after SIGKILL (Go's text).
    #[error("Failed to kill process after grace timeout")]
    NotKilled,
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl CancelToken {
    /// A token that has not fired.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Fires the token: every script waiting on it is terminated.
    pub fn cancel(&self) {
        let (fired, wakeup) = &*self.state;
        *fired
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        wakeup.notify_all();
    }

    /// Whether the token has fired.
    pub fn is_cancelled(&self) -> bool {
        *self
            .state
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Blocks for up to `timeout`, returning early when the token fires; true when it has fired.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let (fired, wakeup) = &*self.state;
        // A drain script may ask for `i64::MAX` seconds, past what an `Instant` can hold: that is
        // waiting until cancelled.
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = fired
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*guard {
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break,
                },
                None => Duration::MAX,
            };
            guard = match wakeup.wait_timeout(guard, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *guard
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("is_cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Waits for `process` to end. When `cancel` fires first, sends SIGTERM to its group, and SIGKILL
/// when it has not ended `kill_grace` later ([`KILL_GRACE`] in production; tests pass less).
///
/// Go waits for the whole group to disappear; this waits for the script itself, whose end is what
/// the caller reports.
pub fn wait_cancellable(
    process: &mut dyn ScriptProcess,
    cancel: &CancelToken,
    kill_grace: Duration,
) -> Result<Ended> {
    loop {
        if let Some(exit_code) = process.wait_timeout(POLL_INTERVAL).map_err(Error::Wait)? {
            return Ok(Ended {
                exit_code,
                was_cancelled: false,
            });
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    let ended = |exit_code| Ended {
        exit_code,
        was_cancelled: true,
    };
    signal(process, Signal::Term)?;
    if let Some(exit_code) = process.wait_timeout(kill_grace).map_err(Error::Wait)? {
        return Ok(ended(exit_code));
    }
    tracing::warn!(
        grace_secs = kill_grace.as_secs(),
        "script did not stop after SIGTERM, killing it"
    );
    signal(process, Signal::Kill)?;
    match process.wait_timeout(KILL_WAIT).map_err(Error::Wait)? {
        Some(exit_code) => Ok(ended(exit_code)),
        None => Err(Error::NotKilled),
    }
}

fn signal(process: &mut dyn ScriptProcess, signal: Signal) -> Result<()> {
    process
        .signal_group(signal)
        .map_err(|source| Error::Signal { signal, source })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A script that answers each wait from a list and records waits and signals.
    #[derive(Debug, Default)]
    struct FakeProcess {
        answers: VecDeque<Option<i32>>,
        waits: Vec<Duration>,
        signals: Vec<Signal>,
        /// Fires this token on the first wait, as if `cancel_task` arrived meanwhile.
        cancel_on_first_wait: Option<CancelToken>,
    }

    impl ScriptProcess for FakeProcess {
        fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<i32>> {
            self.waits.push(timeout);
            if let Some(token) = self.cancel_on_first_wait.take() {
                token.cancel();
            }
            self.answers
                .pop_front()
                .ok_or_else(|| io::Error::other("no more answers scripted"))
        }

        fn signal_group(&mut self, signal: Signal) -> io::Result<()> {
            self.signals.push(signal);
            Ok(())
        }
    }

    fn process(answers: &[Option<i32>], cancel: &CancelToken) -> FakeProcess {
        FakeProcess {
            answers: answers.iter().copied().collect(),
            cancel_on_first_wait: Some(cancel.clone()),
            ..FakeProcess::default()
        }
    }

    const GRACE: Duration = Duration::from_secs(3);

    #[test]
    fn a_script_that_ends_is_not_signalled() {
        let cancel = CancelToken::new();
        let mut fake = FakeProcess {
            answers: [None, None, Some(3)].into(),
            ..FakeProcess::default()
        };
        let ended = wait_cancellable(&mut fake, &cancel, GRACE).unwrap();
        assert_eq!(
            ended,
            Ended {
                exit_code: 3,
                was_cancelled: false
            }
        );
        assert_eq!(fake.waits, vec![POLL_INTERVAL; 3]);
        assert!(fake.signals.is_empty());
    }

    #[test]
    fn a_cancelled_script_gets_sigterm_and_the_grace_period() {
        let cancel = CancelToken::new();
        let mut fake = process(&[None, Some(143)], &cancel);
        let ended = wait_cancellable(&mut fake, &cancel, GRACE).unwrap();
        assert_eq!(
            ended,
            Ended {
                exit_code: 143,
                was_cancelled: true
            }
        );
        assert_eq!(fake.signals, vec![Signal::Term]);
        assert_eq!(fake.waits, vec![POLL_INTERVAL, GRACE]);
    }

    #[test]
    fn a_script_ignoring_sigterm_gets_sigkill_after_the_grace_period() {
        let cancel = CancelToken::new();
        let mut fake = process(&[None, None, Some(137)], &cancel);
        let ended = wait_cancellable(&mut fake, &cancel, GRACE).unwrap();
        assert_eq!(ended.exit_code, 137);
        assert!(ended.was_cancelled);
        assert_eq!(fake.signals, vec![Signal::Term, Signal::Kill]);
        assert_eq!(fake.waits, vec![POLL_INTERVAL, GRACE, KILL_WAIT]);
    }

    #[test]
    fn a_script_surviving_sigkill_is_an_error_with_the_go_text() {
        let cancel = CancelToken::new();
        let mut fake = process(&[None, None, None], &cancel);
        let err = wait_cancellable(&mut fake, &cancel, GRACE).unwrap_err();
        assert!(matches!(err, Error::NotKilled), "{err:?}");
        assert_eq!(
            err.to_string(),
            "Failed to kill process after grace timeout"
        );
    }

    #[test]
    fn a_token_fired_before_the_wait_terminates_at_the_first_poll() {
        let cancel = CancelToken::new();
        cancel.cancel();
        cancel.cancel();
        let mut fake = FakeProcess {
            answers: [None, Some(143)].into(),
            ..FakeProcess::default()
        };
        let ended = wait_cancellable(&mut fake, &cancel, GRACE).unwrap();
        assert!(ended.was_cancelled);
        assert_eq!(fake.signals, vec![Signal::Term]);
    }

    #[test]
    fn the_token_is_shared_by_clones_and_wakes_a_waiter() {
        let cancel = CancelToken::new();
        assert!(!cancel.is_cancelled());
        assert!(!cancel.wait_timeout(Duration::ZERO));
        let clone = cancel.clone();
        // Longer than an `Instant` can reach: only the token ends this wait.
        let waiter = std::thread::spawn(move || clone.wait_timeout(Duration::MAX));
        cancel.cancel();
        assert!(waiter.join().unwrap());
        assert!(cancel.is_cancelled());
    }
}
