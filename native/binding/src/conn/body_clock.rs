//! The clock of `--timeout-request-body`: one rule for an HTTP/1.1 exchange's body and for
//! each HTTP/2 or HTTP/3 stream's.

use std::time::{Duration, Instant};

/// How long a request body has gone without a byte while its client could send one.
///
/// The rule, the same in every mode:
/// - bytes of the body arrive: the clock restarts (`restart`);
/// - while the server holds the client back, the clock stops (`stop`, or `expired` told
///   `held`): the server paused reading, the app has not taken the bytes it has (flow
///   control kept closed by the server), or a "100 Continue" is owed (the client waits
///   for it). The client's silence then is the server's doing, not the client's;
/// - a stopped clock starts at the sweep that finds it free to run (`expired`);
/// - it has expired at `now` once `timeout` has passed since it (re)started.
///
/// On HTTP/2 and HTTP/3 `held` is the connection's, not the stream's: while any stream
/// holds bytes its app has not taken, every stream's clock stops. Per stream would not be
/// right. Body bytes count against the connection's flow-control window as well as the
/// stream's until the app takes them (they are released only then). One stream alone cannot
/// exhaust the connection window (by default 16 stream windows, on both), but a few such
/// streams together can: on HTTP/2 released credit goes back only in steps, and on HTTP/3 a
/// stream ties up more than its window (bytes read ahead of the app, and those the QUIC
/// layer buffers past them). When that point is reached is not visible from here, and past
/// it a stream whose client the server blocks would be timed. Per connection never times a
/// client the server holds back, at the cost of pausing the other streams' clocks
/// meanwhile; an exact per-stream rule would need the engine to tell how much of the
/// connection window the client has left.
///
/// A clock is of one body, named by `Of` where one clock serves a body after another (an
/// HTTP/1.1 connection's exchanges, by `seq`): a clock left by an earlier body counts as
/// stopped, so a new exchange needs no write to reset it. A stream has a clock of its own.
///
/// Callers read the time only when bytes of an incomplete body arrive (once per read) and
/// at the sweep: a request whose body comes with its head costs a field test.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BodyClock<Of = ()> {
    since: Option<(Of, Instant)>,
}

impl<Of: Copy + PartialEq> BodyClock<Of> {
    /// Bytes of body `of` arrived at `now`.
    pub(super) fn restart(&mut self, of: Of, now: Instant) {
        self.since = Some((of, now));
    }

    /// The server holds the client back: no time counts until the clock starts afresh.
    pub(super) fn stop(&mut self) {
        self.since = None;
    }

    /// The sweep at `now`, for body `of` while it is incomplete: whether it went `timeout`
    /// without a byte while not `held`. A held clock stops; a stopped one (or one of an
    /// earlier body) starts now. An expired clock stops, so it expires once.
    pub(super) fn expired(&mut self, of: Of, now: Instant, held: bool, timeout: Duration) -> bool {
        match self.since {
            _ if held => self.since = None,
            Some((body, since)) if body == of => {
                if now.saturating_duration_since(since) < timeout {
                    return false;
                }
                self.since = None;
                return true;
            }
            _ => self.since = Some((of, now)),
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[test]
    fn starts_at_the_sweep_and_expires_after_the_timeout() {
        let t0 = Instant::now();
        let mut clock = BodyClock::default();
        assert!(!clock.expired((), t0, false, TIMEOUT));
        assert!(!clock.expired((), t0 + TIMEOUT / 2, false, TIMEOUT));
        assert!(clock.expired((), t0 + TIMEOUT, false, TIMEOUT));
        // Once: it stopped, and the next sweep starts it afresh.
        assert!(!clock.expired((), t0 + TIMEOUT * 2, false, TIMEOUT));
    }

    #[test]
    fn bytes_restart_it() {
        let t0 = Instant::now();
        let mut clock = BodyClock::default();
        clock.restart((), t0);
        clock.restart((), t0 + TIMEOUT / 2);
        assert!(!clock.expired((), t0 + TIMEOUT, false, TIMEOUT));
        assert!(clock.expired((), t0 + TIMEOUT * 3 / 2, false, TIMEOUT));
    }

    #[test]
    fn held_it_stops_and_starts_afresh() {
        let t0 = Instant::now();
        let mut clock = BodyClock::default();
        clock.restart((), t0);
        assert!(!clock.expired((), t0 + TIMEOUT * 2, true, TIMEOUT));
        assert!(!clock.expired((), t0 + TIMEOUT * 3, false, TIMEOUT));
        assert!(clock.expired((), t0 + TIMEOUT * 4, false, TIMEOUT));
        clock.restart((), t0);
        clock.stop();
        assert!(!clock.expired((), t0 + TIMEOUT * 5, false, TIMEOUT));
    }

    #[test]
    fn an_earlier_bodys_clock_counts_as_stopped() {
        let t0 = Instant::now();
        let mut clock = BodyClock::default();
        clock.restart(1_u64, t0);
        assert!(!clock.expired(2, t0 + TIMEOUT * 2, false, TIMEOUT));
        assert!(clock.expired(2, t0 + TIMEOUT * 3, false, TIMEOUT));
    }
}
