//! Request counters of one worker (`--metrics-bind`), for the master to aggregate.
//!
//! The hot path counts with relaxed atomic adds straight into the worker's page of memory
//! shared with the master (the heartbeat page, given by the Python worker as a writable
//! buffer of `u64`; see `crate::shared`), where the master reads them, so a worker killed
//! at any instant loses no count. The layout is fixed here and exported as
//! `METRICS_LAYOUT`; `ruvicorn.supervisor.metrics` names the same slots.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::shared::SharedCounters;

/// Methods with a counter of their own; every other method counts as `OTHER`.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
pub const OTHER_METHOD: u8 = METHODS.len() as u8;
/// Status classes 1xx to 5xx.
const CLASSES: usize = 5;
/// Upper bounds of the request-duration histogram buckets, in microseconds; one more
/// bucket counts the slower requests.
pub const BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];
/// Open connections by protocol.
pub const PROTOCOLS: [&str; 4] = ["http/1.1", "websocket", "h2", "h3"];
pub const HTTP1: usize = 0;
pub const WEBSOCKET: usize = 1;
pub const H2: usize = 2;
pub const H3: usize = 3;

const REQUESTS: usize = 0;
const BUCKETS: usize = REQUESTS + (METHODS.len() + 1) * CLASSES;
const DURATION_SUM_US: usize = BUCKETS + BUCKETS_US.len() + 1;
const IN_FLIGHT: usize = DURATION_SUM_US + 1;
const BYTES_IN: usize = IN_FLIGHT + 1;
const BYTES_OUT: usize = BYTES_IN + 1;
const WS_SESSIONS: usize = BYTES_OUT + 1;
const OPEN: usize = WS_SESSIONS + 1;
/// Slots in all.
pub const SLOTS: usize = OPEN + PROTOCOLS.len();

/// The counter index of a request method.
pub fn method_index(method: &[u8]) -> u8 {
    METHODS
        .iter()
        .position(|m| m.as_bytes() == method)
        .map_or(OTHER_METHOD, |i| i as u8)
}

/// One worker's counters, in the page it shares with the master.
pub struct Metrics {
    slots: SharedCounters<SLOTS>,
}

impl Metrics {
    /// `page` must be a writable buffer of exactly `SLOTS` native `u64` (format `Q`).
    pub fn new(page: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            slots: SharedCounters::new(page)?,
        })
    }

    fn add(&self, slot: usize, n: u64) {
        self.slots.atomics()[slot].fetch_add(n, Relaxed);
    }

    fn sub(&self, slot: usize, n: u64) {
        self.slots.atomics()[slot].fetch_sub(n, Relaxed);
    }

    /// One request answered with `status` after `elapsed`.
    pub fn request(&self, method: u8, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, CLASSES) - 1;
        let method = usize::from(method).min(METHODS.len());
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.partition_point(|&bound| bound < micros);
        let slots = self.slots.atomics();
        slots[REQUESTS + method * CLASSES + class].fetch_add(1, Relaxed);
        slots[BUCKETS + bucket].fetch_add(1, Relaxed);
        slots[DURATION_SUM_US].fetch_add(micros, Relaxed);
    }

    /// An HTTP app Task started (`true`) or ended.
    pub fn in_flight(&self, started: bool) {
        if started {
            self.add(IN_FLIGHT, 1);
        } else {
            self.sub(IN_FLIGHT, 1);
        }
    }

    pub fn bytes_in(&self, n: usize) {
        self.add(BYTES_IN, n as u64);
    }

    pub fn bytes_out(&self, n: usize) {
        self.add(BYTES_OUT, n as u64);
    }

    pub fn websocket_session(&self) {
        self.add(WS_SESSIONS, 1);
    }

    /// A connection of `protocol` opened (`true`) or closed.
    pub fn connection(&self, protocol: usize, opened: bool) {
        if opened {
            self.add(OPEN + protocol, 1);
        } else {
            self.sub(OPEN + protocol, 1);
        }
    }
}

/// The layout the master reads the page with (`_native.METRICS_LAYOUT`).
pub fn layout(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let layout = PyDict::new(py);
    layout.set_item("methods", METHODS.to_vec())?;
    layout.set_item("classes", CLASSES)?;
    layout.set_item("buckets_us", BUCKETS_US.to_vec())?;
    layout.set_item("protocols", PROTOCOLS.to_vec())?;
    layout.set_item("slots", SLOTS)?;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_their_slot_and_the_rest_to_other() {
        assert_eq!(method_index(b"GET"), 0);
        assert_eq!(method_index(b"OPTIONS"), 6);
        assert_eq!(method_index(b"get"), OTHER_METHOD);
        assert_eq!(method_index(b"PROPFIND"), OTHER_METHOD);
    }

    #[test]
    fn a_request_counts_into_its_slots_of_the_page() {
        Python::initialize();
        Python::attach(|py| {
            let page = pyo3::types::PyByteArray::new(py, &[0; SLOTS * 8]);
            let view = py
                .import("builtins")
                .and_then(|b| b.call_method1("memoryview", (page,)))
                .and_then(|v| v.call_method1("cast", ("Q",)))
                .expect("a buffer of u64");
            let metrics = Metrics::new(&view).expect("metrics over the buffer");
            metrics.request(method_index(b"POST"), 404, Duration::from_micros(3_000));
            metrics.in_flight(true);
            metrics.in_flight(false);
            metrics.in_flight(false);
            let seen = pyo3::buffer::PyBuffer::<u64>::get(&view)
                .and_then(|b| b.to_vec(py))
                .expect("the buffer reads back");
            let mut expected = [0; SLOTS];
            expected[REQUESTS + 2 * CLASSES + 3] = 1; // POST, 4xx
            expected[BUCKETS + 2] = 1; // up to 5 ms
            expected[DURATION_SUM_US] = 3_000;
            expected[IN_FLIGHT] = u64::MAX; // a gauge below zero wraps; the master reads -1
            assert_eq!(seen, expected);
        });
    }

    #[test]
    fn a_duration_lands_in_the_first_bucket_that_holds_it() {
        let bucket = |us: u64| BUCKETS_US.partition_point(|&bound| bound < us);
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_001), 1);
        assert_eq!(bucket(10_000_000), BUCKETS_US.len() - 1);
        assert_eq!(bucket(10_000_001), BUCKETS_US.len());
    }
}
