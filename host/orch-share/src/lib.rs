//! Several replicas sharing state through Redis, never on the request path.
//!
//! One background task per replica talks to Redis: every
//! `sync_interval` (and at once when a limit's pool runs dry) it announces
//! the replica, counts the live ones, exchanges the client-key limit
//! allotments ([`orch_core::clients::Allotment`]: claims, unclaimed use,
//! give-backs, each one atomic Lua script) and publishes the events queued
//! by the request path. A second task listens on the events channel and
//! hands what other replicas published (catalogue changes, ejected targets,
//! cooled or rejected provider keys) to the gateway.
//!
//! Requests only read memory: [`Sharing`] says whether Redis answers and
//! how many replicas share it. When Redis stops answering, each replica
//! falls back to its share of every limit and keeps serving; when it comes
//! back, what was used meanwhile is reported and sharing resumes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use orch_core::clients::{Allotment, Exchange, Global, Sharing, Span};
use orch_core::config::RedisConfig;
use redis::aio::MultiplexedConnection;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

/// What one replica tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The catalogue in the database moved to `revision`: reload it.
    Catalog {
        /// The new revision.
        revision: i64,
    },
    /// A target (provider and upstream model) was ejected for `for_ms`.
    TargetEjected {
        /// `provider/upstream-model`.
        target: String,
        /// How long it stays out of rotation.
        for_ms: u64,
        /// Why (already scrubbed of secrets).
        reason: String,
    },
    /// A provider key was rate limited on `model` for `for_ms`.
    KeyCooled {
        /// The identity of the provider's key pool (a digest, no secret).
        pool: String,
        /// The key's position.
        index: usize,
        /// The upstream model it was limited on (empty: all).
        model: String,
        /// The cool-down.
        for_ms: u64,
    },
    /// A provider key was rejected by its provider (401/403).
    KeyRejected {
        /// The identity of the provider's key pool.
        pool: String,
        /// The key's position.
        index: usize,
        /// Why (already scrubbed of secrets).
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    from: String,
    #[serde(flatten)]
    event: Event,
}

/// Counters for the health view.
#[derive(Debug, Clone, Serialize)]
pub struct ShareStatus {
    /// Whether Redis answered the last exchange.
    pub up: bool,
    /// Replicas seen in the last few seconds (this one included).
    pub replicas: u64,
    /// This replica's id.
    pub replica: String,
    /// Events published.
    pub published: u64,
    /// Events received from other replicas.
    pub received: u64,
    /// Events dropped (queue full or Redis down).
    pub dropped: u64,
    /// Limit exchanges made.
    pub exchanges: u64,
    /// Times Redis went from up to down.
    pub outages: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    exchanges: AtomicU64,
    outages: AtomicU64,
}

/// The handle the gateway keeps: cheap to clone.
#[derive(Clone)]
pub struct Share(Arc<Inner>);

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("replica", &self.0.replica)
            .field("prefix", &self.0.config.prefix)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: RedisConfig,
    client: redis::Client,
    replica: String,
    sharing: Arc<Sharing>,
    wake: Arc<Notify>,
    outbox: mpsc::Sender<Event>,
    inbox: Mutex<Option<mpsc::Receiver<Event>>>,
    counters: Counters,
}

/// Events queued for publishing at most; beyond, new ones are dropped.
const OUTBOX: usize = 1024;

/// Replicas not heard of for this long are not counted.
const REPLICA_TTL_MS: i64 = 5_000;

/// How often the replica announces itself.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Claims, reported use and the count read back, in one step. Use
/// reported without a claim counts first: it happened.
///
/// KEYS: the epoch's counter, the previous epoch's counter.
/// ARGV: limit, want, force, seed, sliding (0/1), milliseconds left in the
/// minute, time to live (ms).
/// Returns: granted, the epoch's count after, the previous epoch's count.
const CLAIM: &str = r"
local cur = redis.call('GET', KEYS[1])
local fresh = not cur
if fresh then cur = tonumber(ARGV[4]) else cur = tonumber(cur) end
local prev = 0
if ARGV[5] == '1' then prev = tonumber(redis.call('GET', KEYS[2]) or '0') end
local estimate = cur + tonumber(ARGV[3]) + math.floor(prev * tonumber(ARGV[6]) / 60000)
local free = tonumber(ARGV[1]) - estimate
if free < 0 then free = 0 end
local grant = math.min(tonumber(ARGV[2]), free)
local add = grant + tonumber(ARGV[3])
if add > 0 or fresh then
  cur = cur + add
  redis.call('SET', KEYS[1], cur, 'PX', ARGV[7])
end
return {grant, cur, prev}
";

/// Correct an epoch's counter (never below 0, never creating it).
///
/// KEYS: the counter. ARGV: the delta.
const ADJUST: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('INCRBY', KEYS[1], ARGV[1])
  if v < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
end
return 0
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl Share {
    /// A handle for `config`; nothing is contacted before [`Share::spawn`].
    pub fn new(config: &RedisConfig) -> Result<Share, String> {
        let client = redis::Client::open(config.url.expose_secret())
            .map_err(|e| format!("redis.url: {}", scrub(&e.to_string())))?;
        let (outbox, inbox) = mpsc::channel(OUTBOX);
        let sharing = Arc::new(Sharing::new());
        let wake = Arc::new(Notify::new());
        let waker = Arc::clone(&wake);
        sharing.set_waker(move || waker.notify_one());
        Ok(Share(Arc::new(Inner {
            config: config.clone(),
            client,
            replica: uuid::Uuid::now_v7().simple().to_string(),
            sharing,
            wake,
            outbox,
            inbox: Mutex::new(Some(inbox)),
            counters: Counters::default(),
        })))
    }

    /// What requests read: Redis up or down, and the replica count.
    pub fn sharing(&self) -> &Arc<Sharing> {
        &self.0.sharing
    }

    /// Queue `event` for the other replicas; never waits (dropped and
    /// counted when the queue is full).
    pub fn publish(&self, event: Event) {
        if self.0.outbox.try_send(event).is_err() {
            self.0.counters.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.0.wake.notify_one();
        }
    }

    /// The counters of the health view.
    pub fn status(&self) -> ShareStatus {
        let c = &self.0.counters;
        ShareStatus {
            up: self.0.sharing.is_up(),
            replicas: self.0.sharing.replicas(),
            replica: self.0.replica.clone(),
            published: c.published.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            exchanges: c.exchanges.load(Ordering::Relaxed),
            outages: c.outages.load(Ordering::Relaxed),
        }
    }

    /// Start the two background tasks; `on_event` gets what other
    /// replicas publish. Call once.
    pub fn spawn(&self, on_event: impl Fn(Event) + Send + Sync + 'static) {
        let Some(inbox) = self
            .0
            .inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        tokio::spawn(sync_loop(self.clone(), inbox));
        tokio::spawn(listen_loop(self.clone(), Arc::new(on_event)));
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.0.config.prefix)
    }

    fn channel(&self) -> String {
        self.key("events")
    }

    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let timeout = self.0.config.timeout;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        self.0
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| scrub(&e.to_string()))
    }

    fn went_down(&self, why: &str) {
        if self.0.sharing.is_up() {
            self.0.counters.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "redis unreachable, limits fall back to this replica's share: {}",
                scrub(why)
            );
        }
        self.0.sharing.set_up(false);
    }

    fn came_up(&self) {
        if !self.0.sharing.is_up() {
            tracing::info!(replica = %self.0.replica, "redis reachable, sharing limits and health");
        }
        self.0.sharing.set_up(true);
    }
}

/// Never print a URL's password.
fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for word in message.split_inclusive(char::is_whitespace) {
        match (word.find("://"), word.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                out.push_str(&word[..scheme + 3]);
                out.push_str("***");
                out.push_str(&word[at..]);
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// The task that talks to Redis: heartbeat, limit exchanges, publishing.
async fn sync_loop(share: Share, mut inbox: mpsc::Receiver<Event>) {
    let interval = share.0.config.sync_interval;
    let claim = redis::Script::new(CLAIM);
    let adjust = redis::Script::new(ADJUST);
    let mut conn: Option<MultiplexedConnection> = None;
    let mut last_beat = tokio::time::Instant::now() - HEARTBEAT;
    let mut retry_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = share.0.wake.notified() => {}
        }
        if conn.is_none() {
            if tokio::time::Instant::now() < retry_at {
                drop_events(&share, &mut inbox);
                continue;
            }
            match share.connect().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    share.went_down(&e);
                    retry_at = tokio::time::Instant::now() + Duration::from_secs(1);
                    drop_events(&share, &mut inbox);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let step = async {
            if last_beat.elapsed() >= HEARTBEAT || !share.0.sharing.is_up() {
                heartbeat(&share, c).await?;
                last_beat = tokio::time::Instant::now();
            }
            exchange_all(&share, c, &claim, &adjust).await?;
            publish_all(&share, c, &mut inbox).await
        };
        match tokio::time::timeout(share.0.config.timeout.saturating_mul(4), step).await {
            Ok(Ok(())) => share.came_up(),
            Ok(Err(e)) => {
                share.went_down(&e.to_string());
                conn = None;
            }
            Err(_) => {
                share.went_down("timed out");
                conn = None;
            }
        }
    }
}

fn drop_events(share: &Share, inbox: &mut mpsc::Receiver<Event>) {
    while inbox.try_recv().is_ok() {
        share.0.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

async fn heartbeat(share: &Share, c: &mut MultiplexedConnection) -> redis::RedisResult<()> {
    let now = now_ms();
    let key = share.key("replicas");
    let (_, _, n): (i64, i64, u32) = redis::pipe()
        .atomic()
        .zadd(&key, &share.0.replica, now)
        .zrembyscore(&key, "-inf", now - REPLICA_TTL_MS)
        .zcard(&key)
        .query_async(c)
        .await?;
    share.0.sharing.set_replicas(n);
    Ok(())
}

fn counter_key(share: &Share, name: &str, epoch: i64) -> String {
    share.key(&format!("limit:{name}:{epoch}"))
}

/// Every allotment's due exchange; those of allotments no longer used give
/// back what they hold.
async fn exchange_all(
    share: &Share,
    c: &mut MultiplexedConnection,
    claim: &redis::Script,
    adjust: &redis::Script,
) -> redis::RedisResult<()> {
    let sharing = &share.0.sharing;
    let now = now_ms();
    let mut due: Vec<(String, Arc<Allotment>, Exchange)> = sharing
        .allotments()
        .into_iter()
        .filter_map(|(name, a)| {
            let x = a.due(sharing, now)?;
            Some((name, a, x))
        })
        .collect();
    due.extend(
        sharing
            .unused()
            .into_iter()
            .filter_map(|(name, a)| Some((name.clone(), Arc::clone(&a), a.release()?))),
    );
    let mut failed: Option<redis::RedisError> = None;
    for (name, allotment, x) in due {
        if failed.is_some() {
            allotment.failed(x);
            continue;
        }
        match exchange(share, c, claim, adjust, &name, &x, now).await {
            Ok((granted, global)) => {
                share.0.counters.exchanges.fetch_add(1, Ordering::Relaxed);
                allotment.granted(&x, granted, global);
            }
            Err(e) => {
                allotment.failed(x);
                failed = Some(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

async fn exchange(
    share: &Share,
    c: &mut MultiplexedConnection,
    claim: &redis::Script,
    adjust: &redis::Script,
    name: &str,
    x: &Exchange,
    now: i64,
) -> redis::RedisResult<(u64, Global)> {
    // Give-backs first, so the claim sees them.
    let mut by_epoch: HashMap<i64, i64> = HashMap::new();
    for (epoch, delta) in &x.adjustments {
        *by_epoch.entry(*epoch).or_default() += delta;
    }
    for (epoch, delta) in by_epoch {
        if delta != 0 {
            let _: i64 = adjust
                .key(counter_key(share, name, epoch))
                .arg(delta)
                .invoke_async(c)
                .await?;
        }
    }
    let (sliding, left_ms, ttl_ms) = match x.span {
        Span::SlidingMinute => {
            let into = now - x.epoch.saturating_mul(60_000);
            (1, (60_000 - into).clamp(0, 60_000), 180_000_i64)
        }
        // Budget periods: a month and a bit; re-seeded from the database
        // after that.
        Span::Period => (0, 0, 40 * 86_400_000_i64),
    };
    let (granted, current, previous): (u64, u64, u64) = claim
        .key(counter_key(share, name, x.epoch))
        .key(counter_key(share, name, x.epoch.saturating_sub(1)))
        .arg(x.limit)
        .arg(x.want)
        .arg(x.force)
        .arg(x.seed)
        .arg(sliding)
        .arg(left_ms)
        .arg(ttl_ms)
        .invoke_async(c)
        .await?;
    Ok((
        granted,
        Global {
            epoch: x.epoch,
            current,
            previous,
        },
    ))
}

async fn publish_all(
    share: &Share,
    c: &mut MultiplexedConnection,
    inbox: &mut mpsc::Receiver<Event>,
) -> redis::RedisResult<()> {
    let channel = share.channel();
    while let Ok(event) = inbox.try_recv() {
        let Ok(payload) = serde_json::to_string(&Envelope {
            from: share.0.replica.clone(),
            event,
        }) else {
            continue;
        };
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(c)
            .await?;
        share.0.counters.published.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The task that listens to the other replicas; reconnects after a second
/// when the subscription breaks.
async fn listen_loop(share: Share, on_event: Arc<dyn Fn(Event) + Send + Sync>) {
    let channel = share.channel();
    loop {
        match share.0.client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        match serde_json::from_str::<Envelope>(&payload) {
                            Ok(envelope) if envelope.from != share.0.replica => {
                                share.0.counters.received.fetch_add(1, Ordering::Relaxed);
                                on_event(envelope.event);
                            }
                            Ok(_) => {}
                            Err(e) => tracing::debug!("unreadable shared event: {e}"),
                        }
                    }
                }
            }
            Err(e) => tracing::debug!("redis subscription failed: {}", scrub(&e.to_string())),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            scrub("failed: redis://user:hunter2@10.0.0.1:6379/0 refused"),
            "failed: redis://***@10.0.0.1:6379/0 refused"
        );
        assert_eq!(scrub("no url here"), "no url here");
    }

    #[test]
    fn events_round_trip() {
        let e = Envelope {
            from: "a".into(),
            event: Event::KeyCooled {
                pool: "p".into(),
                index: 1,
                model: "m".into(),
                for_ms: 5,
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"from":"a","kind":"key_cooled","pool":"p","index":1,"model":"m","for_ms":5}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.event, e.event);
    }
}
