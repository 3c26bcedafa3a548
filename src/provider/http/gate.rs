//! The gate every request to one provider passes: the rate limit, the
//! pause a 429 asks for, and the `retry_budget` that bounds those pauses.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::BatchError;

/// The one place every request to a provider passes before it is sent:
/// it spaces requests by the rate limit, holds them all while the service
/// has asked for a pause (HTTP 429), and stays shut once the provider's
/// `retry_budget` cannot cover a pause.
pub(super) struct Gate {
    /// Least time between two request starts (zero: no rate limit).
    interval: Duration,
    /// Most time this provider may spend paused by 429s in one run.
    pub(super) budget: Duration,
    state: Mutex<GateState>,
    /// Wakes the requests waiting for a pause to end when the gate closes.
    closing: tokio::sync::Notify,
}

#[derive(Default)]
pub(super) struct GateState {
    /// The earliest start of the next request under the rate limit.
    next_slot: Option<Instant>,
    /// No request starts before this: the service asked for a pause.
    paused_until: Option<Instant>,
    /// Pause time charged to the budget so far.
    charged: Duration,
    /// Set once a pause could not be afforded: every later request fails with it.
    closed: Option<BatchError>,
}

/// How long a 429 asks the provider to pause.
#[derive(Clone, Copy)]
pub(super) enum Pause {
    /// The service's `Retry-After`: all of it or nothing.
    Asked(Duration),
    /// memberctl's own backoff: shortened to what is left of the budget.
    Backoff(Duration),
}

impl Gate {
    pub(super) fn new(rate_limit: f64, budget: Duration) -> Self {
        let interval = if rate_limit.is_finite() && rate_limit > 0.0 {
            Duration::from_secs_f64(1.0 / rate_limit)
        } else {
            Duration::ZERO
        };
        Self { interval, budget, state: Mutex::new(GateState::default()), closing: tokio::sync::Notify::new() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().expect("the gate's lock is never held across a panic")
    }

    /// Waits for this request's turn; fails once the gate is closed. A pause
    /// that begins while a request waits for its slot holds it too.
    pub(super) async fn pass(&self) -> Result<(), BatchError> {
        loop {
            // Made before the check, so a close between the two still wakes it.
            let closing = self.closing.notified();
            let slot = {
                let mut state = self.state();
                if let Some(error) = &state.closed {
                    return Err(error.clone());
                }
                let now = Instant::now();
                let slot = [state.next_slot, state.paused_until].into_iter().flatten().fold(now, Instant::max);
                state.next_slot = Some(slot + self.interval);
                slot
            };
            tokio::select! {
                () = tokio::time::sleep_until(slot) => {}
                () = closing => {}
            }
            let state = self.state();
            if let Some(error) = &state.closed {
                return Err(error.clone());
            }
            if state.paused_until.is_none_or(|until| until <= Instant::now()) {
                return Ok(());
            }
        }
    }

    /// Pauses the provider as a 429 asks, charging the budget with the time
    /// this adds to a pause already running. Answers the pause's length, or
    /// `Err` with what was left of the budget when it cannot be afforded.
    pub(super) fn pause(&self, pause: Pause) -> Result<Duration, Duration> {
        let mut state = self.state();
        let now = Instant::now();
        let current_end = state.paused_until.filter(|until| *until > now).unwrap_or(now);
        let left = self.budget.saturating_sub(state.charged);
        // The longest wait the budget covers: the pause already running, and what is left.
        let affordable = current_end.saturating_duration_since(now) + left;
        let wait = match pause {
            Pause::Asked(wait) => wait,
            Pause::Backoff(wait) => wait.min(affordable),
        };
        // A backoff squeezed to nothing would retry at once, forever.
        let squeezed = matches!(pause, Pause::Backoff(_)) && wait.is_zero() && left.is_zero();
        let end = now.checked_add(wait).filter(|_| wait <= affordable && !squeezed).ok_or(left)?;
        state.charged += end.saturating_duration_since(current_end);
        state.paused_until = Some(current_end.max(end));
        Ok(wait)
    }

    /// Shuts the gate with `error`; the first error to shut it is kept.
    pub(super) fn close(&self, error: BatchError) -> BatchError {
        let kept = self.state().closed.get_or_insert(error).clone();
        self.closing.notify_waiters();
        kept
    }
}
