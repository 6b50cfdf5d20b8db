//! Request counters of one worker (`--metrics-bind`), for the master to aggregate.
//!
//! The hot path only does relaxed atomic adds on this process's own counters. Once a
//! second (the sweep) and when the worker stops, they are copied into the worker's page
//! of memory shared with the master (the heartbeat page, given by the Python worker as a
//! writable buffer of `u64`), where the master reads them. The layout is fixed here and
//! exported as `METRICS_LAYOUT`; `ruvicorn.supervisor.metrics` names the same slots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

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

/// One worker's counters and where they are published.
pub struct Metrics {
    slots: [AtomicU64; SLOTS],
    page: PyBuffer<u64>,
}

impl Metrics {
    /// `page` must be a writable buffer of exactly `SLOTS` native `u64` (format `Q`).
    pub fn new(page: &Bound<'_, PyAny>) -> PyResult<Self> {
        let page = PyBuffer::<u64>::get(page)
            .map_err(|_| PyValueError::new_err("metrics must be a buffer of unsigned 64-bit"))?;
        if page.readonly() || page.item_count() != SLOTS || !page.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "metrics must be a writable buffer of {SLOTS} unsigned 64-bit integers"
            )));
        }
        Ok(Self {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            page,
        })
    }

    fn add(&self, slot: usize, n: u64) {
        self.slots[slot].fetch_add(n, Ordering::Relaxed);
    }

    /// One request answered with `status` after `elapsed`.
    pub fn request(&self, method: u8, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, CLASSES) - 1;
        let method = usize::from(method).min(METHODS.len());
        self.add(REQUESTS + method * CLASSES + class, 1);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.partition_point(|&bound| bound < micros);
        self.add(BUCKETS + bucket, 1);
        self.add(DURATION_SUM_US, micros);
    }

    /// An HTTP app Task started (`true`) or ended.
    pub fn in_flight(&self, started: bool) {
        if started {
            self.add(IN_FLIGHT, 1);
        } else {
            self.slots[IN_FLIGHT].fetch_sub(1, Ordering::Relaxed);
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
            self.slots[OPEN + protocol].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Copy the counters into the shared page.
    pub fn publish(&self, py: Python<'_>) -> PyResult<()> {
        let values: [u64; SLOTS] = std::array::from_fn(|i| self.slots[i].load(Ordering::Relaxed));
        self.page.copy_from_slice(py, &values)
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
    fn a_duration_lands_in_the_first_bucket_that_holds_it() {
        let bucket = |us: u64| BUCKETS_US.partition_point(|&bound| bound < us);
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_001), 1);
        assert_eq!(bucket(10_000_000), BUCKETS_US.len() - 1);
        assert_eq!(bucket(10_000_001), BUCKETS_US.len());
    }
}
