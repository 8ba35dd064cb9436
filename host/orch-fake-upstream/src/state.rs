//! State shared by every connection of one fake upstream.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::chat::reply::IdGenerator;
use crate::config::{FakeConfig, LiveConfig};
use crate::record::Recorder;
use crate::stats::Stats;

/// Configuration (swapped atomically), counters, the last request and ids.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) live: ArcSwap<LiveConfig>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) recorder: Recorder,
    pub(crate) ids: IdGenerator,
}

impl Shared {
    pub(crate) fn new(config: FakeConfig) -> Self {
        Self {
            live: ArcSwap::from_pointee(LiveConfig::new(config)),
            stats: Arc::default(),
            recorder: Recorder::default(),
            ids: IdGenerator::default(),
        }
    }

    /// Replaces the configuration; requests already running keep the old one.
    pub(crate) fn set_config(&self, config: FakeConfig) {
        self.live.store(Arc::new(LiveConfig::new(config)));
    }

    pub(crate) fn config(&self) -> FakeConfig {
        self.live.load().config.clone()
    }
}
