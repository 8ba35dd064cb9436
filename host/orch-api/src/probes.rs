//! Active health probes: the adapter's cheap probe (a models listing, never
//! a billed generation) sent by the host, in two tiers. Providers whose
//! targets are all serving are probed every `probe_interval`; a provider
//! with an unhealthy target is probed as soon as that target's ejection
//! ends, so recovery does not wait for client traffic, and a failed probe
//! ejects it again for longer (probes of unhealthy targets back off). Each
//! provider gets at most `probe_budget_per_min` probes a minute.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use orch_core::contract::{
    ClassifiedError, ErrorClass, Operation, PayloadForm, RequestBody, RequestContext,
};
use orch_core::routing::health::State;

use crate::state::{AppState, Live};

/// When each provider (by name) was and will be probed.
#[derive(Default)]
pub(crate) struct ProbeBook {
    providers: Mutex<HashMap<String, ProbeState>>,
}

#[derive(Default)]
struct ProbeState {
    next_at: Option<Instant>,
    in_flight: bool,
    sent: VecDeque<Instant>,
}

impl ProbeBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProbeState>> {
        self.providers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the provider's next healthy-tier probe is due.
    pub(crate) fn next(&self, provider: &str, now: Instant) -> Option<Duration> {
        let at = self.lock().get(provider)?.next_at?;
        Some(at.saturating_duration_since(now))
    }
}

/// Probe forever, once a second looking for due providers.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let live = state.live();
        let now = Instant::now();
        for index in due(&state, &live, now) {
            let state = state.clone();
            let live = live.clone();
            tokio::spawn(async move {
                let name = live.providers[index].name.clone();
                let _ = probe(&state, &live, index).await;
                if let Some(p) = state.probes().lock().get_mut(&name) {
                    p.in_flight = false;
                }
            });
        }
    }
}

/// Providers to probe now; marks them in flight and books the budget.
fn due(state: &AppState, live: &Live, now: Instant) -> Vec<usize> {
    let mut book = state.probes().lock();
    let budget = live.health.probe_budget_per_min as usize;
    let mut out = Vec::new();
    for (i, p) in live.providers.iter().enumerate() {
        let interval = p
            .probe_interval
            .or(live.health.probe_interval)
            .filter(|d| !d.is_zero());
        let st = book.entry(p.name.clone()).or_default();
        if st.next_at.is_none() {
            st.next_at = interval.map(|d| now + d);
        }
        while st
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
        {
            st.sent.pop_front();
        }
        let healthy_due = st.next_at.is_some_and(|t| now >= t);
        let recovery_due = targets_of(live, i).any(|(_, h)| {
            let r = h.report(now);
            r.state == State::Unhealthy && r.retry_in == Some(Duration::ZERO) && !r.trial_in_flight
        });
        if st.in_flight || !(healthy_due || recovery_due) || st.sent.len() >= budget {
            continue;
        }
        st.in_flight = true;
        st.sent.push_back(now);
        st.next_at = interval.map(|d| now + d);
        out.push(i);
    }
    out
}

fn targets_of(
    live: &Live,
    provider: usize,
) -> impl Iterator<Item = (&str, &std::sync::Arc<orch_core::routing::health::Health>)> {
    live.catalogue
        .routes()
        .iter()
        .zip(&live.routes)
        .flat_map(move |(route, rs)| {
            route
                .targets
                .iter()
                .zip(&rs.health)
                .filter(move |(t, _)| t.provider == provider)
                .map(|(t, h)| (t.upstream_model.as_str(), h))
        })
}

/// Probe provider `index` now, outside the schedule (the admin API's
/// provider test); the outcome counts like a scheduled probe's.
pub(crate) async fn probe_now(state: &AppState, live: &Live, index: usize) -> Result<(), String> {
    probe(state, live, index).await
}

/// Probe one provider and tell its targets (and the key used) the outcome.
async fn probe(state: &AppState, live: &Live, index: usize) -> Result<(), String> {
    let provider = &live.providers[index];
    let timeout = live.health.probe_timeout;
    let key = provider.pool.pick(Instant::now(), "", |_| false);
    if !provider.keys.is_empty() && key.is_none() {
        // Every key is cooling down or disabled: nothing to learn.
        return Err("every key is cooling down or disabled".into());
    }
    let outcome = tokio::time::timeout(timeout, exchange(state, live, index, key)).await;
    let outcome = match outcome {
        Err(_) => Err(ClassifiedError::new(
            ErrorClass::Timeout,
            true,
            format!("no answer within {} ms", timeout.as_millis()),
        )),
        Ok(None) => return Err("the adapter is not loaded or has no probe".into()),
        Ok(Some(r)) => r,
    };
    let now = Instant::now();
    match outcome {
        Ok(()) => {
            if let Some(k) = key {
                provider.pool.worked(k);
            }
            for (_, h) in targets_of(live, index) {
                h.probe_succeeded(now);
            }
            Ok(())
        }
        Err(e) => {
            let why = provider.scrub(&e.message);
            tracing::info!(provider = %provider.name, class = e.class.as_str(), "probe failed: {why}");
            match (e.class, key) {
                (ErrorClass::RateLimited, Some(k)) => crate::share::key_rate_limited(
                    state,
                    provider,
                    k,
                    "",
                    now,
                    e.retry_after_ms
                        .map(|ms| Duration::from_millis(u64::from(ms))),
                    &why,
                ),
                (ErrorClass::Authentication | ErrorClass::PermissionDenied, Some(k)) => {
                    crate::share::key_rejected(state, provider, k, now, &why);
                }
                _ => {
                    for (upstream_model, h) in targets_of(live, index) {
                        let id = || crate::state::target_id(&provider.name, upstream_model);
                        crate::share::target_failed(state, h, id, now, &why, true);
                    }
                }
            }
            Err(why)
        }
    }
}

/// Build, send and judge the probe; `None` when the adapter has none.
async fn exchange(
    state: &AppState,
    live: &Live,
    index: usize,
    key: Option<usize>,
) -> Option<Result<(), ClassifiedError>> {
    let provider = &live.providers[index];
    let plugin = state
        .services()
        .plugins
        .snapshot()
        .adapter(&provider.adapter)
        .cloned()?;
    let fault = |f: &dyn std::fmt::Display| {
        Some(Err(ClassifiedError::new(
            ErrorClass::Server,
            true,
            format!("the adapter failed: {f}"),
        )))
    };
    let ctx = RequestContext {
        request_id: format!("probe-{}", provider.name),
        operation: Operation::Chat,
        requested_model: String::new(),
        upstream_model: String::new(),
        streaming: false,
        form: PayloadForm::Canonical,
        ingress_dialect: "openai".into(),
        received_at_ms: 0,
        provider: provider.view.clone(),
    };
    let mut inst = match plugin.adapter(&ctx).await {
        Ok(i) => i,
        Err(f) => return fault(&f),
    };
    let req = match inst.probe_request().await {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(f) => return fault(&f),
    };
    let body = match &req.body {
        RequestBody::Bytes(b) => Bytes::from(b.clone()),
        _ => Bytes::new(),
    };
    let upstream = &state.services().upstream;
    let resp = match upstream
        .send(
            &req,
            body,
            provider.key(key),
            Some(live.health.probe_timeout),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Some(Err(ClassifiedError::new(
                ErrorClass::Server,
                true,
                e.to_string(),
            )));
        }
    };
    let status = resp.status;
    let headers = resp.headers.clone();
    let body = resp.read_body().await.unwrap_or_default();
    match inst.judge_probe(status, &headers, &body).await {
        Ok(r) => Some(r),
        Err(f) => fault(&f),
    }
}
