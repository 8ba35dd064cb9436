//! What the listener is carrying right now: requests in flight (until
//! their response body ends) and open event streams. The in-flight cap of
//! the limits middleware admits through here; metrics read the counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counts of the gateway's traffic, owned by the [`crate::AppState`]
/// (see [`crate::AppState::traffic`]).
#[derive(Debug, Default)]
pub struct Traffic {
    in_flight: AtomicU64,
    open_streams: AtomicU64,
}

impl Traffic {
    /// Requests admitted and not finished: from the request's arrival until
    /// its response body has ended (streams included) or the client left.
    /// `/livez`, `/readyz` and `/metrics` are not counted.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Responses with `content-type: text/event-stream` whose body has not
    /// finished.
    pub fn open_streams(&self) -> u64 {
        self.open_streams.load(Ordering::Relaxed)
    }

    /// Admit a request when fewer than `cap` are in flight; the returned
    /// guard counts it until dropped.
    pub(crate) fn admit(self: &Arc<Self>, cap: u64) -> Option<InFlight> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| InFlight {
            traffic: Arc::clone(self),
            stream: false,
        })
    }
}

/// One admitted request; dropping it ends the request's count (and its
/// stream's, once marked).
#[derive(Debug)]
pub(crate) struct InFlight {
    traffic: Arc<Traffic>,
    stream: bool,
}

impl InFlight {
    /// The response is an event stream: count it as open until dropped.
    pub(crate) fn mark_stream(&mut self) {
        if !self.stream {
            self.stream = true;
            self.traffic.open_streams.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.stream {
            self.traffic.open_streams.fetch_sub(1, Ordering::Relaxed);
        }
        self.traffic.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_cap_and_counts_until_dropped() {
        let t = Arc::new(Traffic::default());
        let a = t.admit(2);
        let mut b = t.admit(2);
        assert!(a.is_some() && b.is_some());
        assert!(t.admit(2).is_none());
        assert_eq!(t.in_flight(), 2);
        if let Some(b) = b.as_mut() {
            b.mark_stream();
            b.mark_stream();
        }
        assert_eq!(t.open_streams(), 1);
        drop(b);
        assert_eq!((t.in_flight(), t.open_streams()), (1, 0));
        assert!(t.admit(2).is_some());
        drop(a);
        assert_eq!(t.in_flight(), 0);
    }
}
