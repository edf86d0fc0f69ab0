//! Log lines of one kind, at most `LINES_PER_WINDOW` in each `WINDOW`: a
//! client that sends a thousand bad packets a second must not write a
//! thousand lines a second (300 refused CONNECTs once wrote 19.6 MB). The
//! rest are counted, and the next line of the kind after its window says
//! how many there were.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(10);
const LINES_PER_WINDOW: u32 = 20;

#[derive(Default)]
pub(super) struct LogLimit {
    kinds: Mutex<BTreeMap<&'static str, Window>>,
}

struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    /// Whether a line of `kind` may be written now; before the first one
    /// of a new window, a line says how many the last one held back.
    pub(super) fn admit(&self, kind: &'static str) -> bool {
        let now = Instant::now();
        let (admitted, held_back) = {
            let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
            let window = kinds.entry(kind).or_insert(Window {
                started: now,
                logged: 0,
                suppressed: 0,
            });
            let mut held_back = 0;
            if now.duration_since(window.started) >= WINDOW {
                held_back = std::mem::take(&mut window.suppressed);
                window.started = now;
                window.logged = 0;
            }
            let admitted = window.logged < LINES_PER_WINDOW;
            if admitted {
                window.logged += 1;
            } else {
                window.suppressed += 1;
            }
            (admitted, held_back)
        };
        if held_back > 0 {
            tracing::warn!(
                kind,
                held_back,
                "{held_back} more like this in the last {} s",
                WINDOW.as_secs()
            );
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_kind_gets_its_lines_per_window_and_others_are_apart() {
        let limit = LogLimit::default();
        let admitted = (0..30).filter(|_| limit.admit("refused")).count();
        assert_eq!(admitted, LINES_PER_WINDOW as usize);
        assert!(limit.admit("other"), "each kind has its own window");
        tokio::time::advance(WINDOW).await;
        assert!(limit.admit("refused"), "a new window");
        let kinds = limit.kinds.lock().unwrap();
        assert_eq!(kinds["refused"].suppressed, 0, "reported and reset");
    }
}
