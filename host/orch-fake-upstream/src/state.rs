//! State shared by every connection of one fake upstream.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::chat::reply::IdGenerator;
use crate::config::{FakeConfig, LiveConfig};
use crate::prompt_cache::PromptCache;
use crate::record::Recorder;
use crate::stats::{Stats, StatsSnapshot};

/// Configuration (swapped atomically), counters, the last request, ids and
/// the prompt prefixes seen.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) live: ArcSwap<LiveConfig>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) recorder: Recorder,
    pub(crate) ids: IdGenerator,
    pub(crate) prompt_cache: PromptCache,
}

impl Shared {
    pub(crate) fn new(config: FakeConfig) -> Self {
        Self {
            live: ArcSwap::from_pointee(LiveConfig::new(config)),
            stats: Arc::default(),
            recorder: Recorder::default(),
            ids: IdGenerator::default(),
            prompt_cache: PromptCache::default(),
        }
    }

    /// The counters plus a summary of the last recorded request.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            last_request: self.recorder.summary(),
            ..self.stats.snapshot()
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
