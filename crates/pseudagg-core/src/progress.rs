//! Progress of long steps: a callback that the command line turns into a bar on a terminal, or
//! into a log line every few seconds otherwise.

use std::sync::atomic::{AtomicU64, Ordering};

/// Told where a long step is: its phase (words for people, e.g. "reading" or "suppression: audit
/// of the primary cells"), the units done and the units in all. Called from any thread.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// Counts the units of one phase done, from any thread, and tells a [`Progress`] each time.
pub struct Ticker<'a> {
    progress: Option<Progress<'a>>,
    phase: &'static str,
    total: u64,
    done: AtomicU64,
}

impl<'a> Ticker<'a> {
    /// A phase of `total` units starts (and is told, at 0 done).
    #[must_use]
    pub fn start(progress: Option<Progress<'a>>, phase: &'static str, total: u64) -> Self {
        if let Some(p) = progress {
            p(phase, 0, total);
        }
        Self {
            progress,
            phase,
            total,
            done: AtomicU64::new(0),
        }
    }

    /// `n` more units are done.
    pub fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(p) = self.progress {
            p(self.phase, done.min(self.total), self.total);
        }
    }
}

impl std::fmt::Debug for Ticker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker")
            .field("phase", &self.phase)
            .field("total", &self.total)
            .field("done", &self.done.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_ticker_tells_every_step_of_its_phase() {
        let seen = Mutex::new(Vec::new());
        let progress = |phase: &str, done: u64, total: u64| {
            seen.lock().unwrap().push((phase.to_owned(), done, total));
        };
        let t = Ticker::start(Some(&progress), "audit", 3);
        t.add(1);
        t.add(2);
        // More than the total is told as the total.
        t.add(5);
        let seen = seen.into_inner().unwrap();
        let done: Vec<u64> = seen.iter().map(|s| s.1).collect();
        assert_eq!(done, [0, 1, 3, 3]);
        assert!(seen.iter().all(|s| s.0 == "audit" && s.2 == 3));
    }
}
