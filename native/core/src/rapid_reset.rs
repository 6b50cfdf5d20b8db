//! The rapid-reset guard (CVE-2023-44487), for HTTP/2 and HTTP/3 alike: a client that
//! opens requests and resets them before their response ended makes the server start work
//! it then cancels, over and over. Ordinary clients cancel a few requests; a connection
//! where most requests are reset is abandoned.

/// Client resets of streams whose response had not ended, tolerated before the ratio
/// below is checked.
const RESET_FLOOR: u64 = 100;
/// Past the floor, the connection is abandoned once more than this fraction (1/n) of its
/// requests were reset by the client mid-flight.
const RESET_RATIO: u64 = 2;

#[derive(Debug, Default)]
pub(crate) struct ResetGuard {
    accepted: u64,
    resets: u64,
}

impl ResetGuard {
    /// A request was handed to the application: how many so far.
    pub(crate) fn accepted(&mut self) -> u64 {
        self.accepted += 1;
        self.accepted
    }

    /// Requests handed to the application so far.
    pub(crate) fn requests(&self) -> u64 {
        self.accepted
    }

    /// The client reset a request whose response had not ended: true once the
    /// connection should be abandoned.
    pub(crate) fn reset(&mut self) -> bool {
        self.resets += 1;
        self.resets > RESET_FLOOR && self.resets * RESET_RATIO > self.accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_resets_pass_a_majority_does_not() {
        let mut guard = ResetGuard::default();
        for _ in 0..1000 {
            guard.accepted();
        }
        assert!((0..RESET_FLOOR * 4).all(|_| !guard.reset()));
        let mut flooding = ResetGuard::default();
        let tripped = (0..1000).any(|_| {
            flooding.accepted();
            flooding.reset()
        });
        assert!(tripped);
    }
}
