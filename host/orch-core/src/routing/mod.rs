//! The router: the model catalogue (names, aliases, wildcards), the
//! balancing strategies, and the order in which one request tries a model's
//! targets given their health.
//!
//! Nothing here does I/O or reads the clock: the pipeline passes each
//! target's standing in and walks the [`Plan`] it gets back, so every
//! strategy is tested deterministically with a seeded RNG.

pub mod health;
pub mod keys;
pub mod retry;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::contract::Capability;
use retry::RetryPolicy;

/// Body edits applied to a target's upstream request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// Top-level fields forced to a value (e.g. `temperature`).
    pub set: Vec<(String, serde_json::Value)>,
    /// Top-level fields removed.
    pub remove: Vec<String>,
    /// Caps on numeric fields: the client's value is lowered to the cap,
    /// a missing field stays missing (e.g. `max_tokens`).
    pub cap: Vec<(String, u64)>,
}

impl Overrides {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.cap.is_empty()
    }

    /// Apply to a JSON object (anything else is left alone).
    pub fn apply(&self, body: &mut serde_json::Value) {
        let Some(obj) = body.as_object_mut() else {
            return;
        };
        for field in &self.remove {
            obj.remove(field);
        }
        for (field, value) in &self.set {
            obj.insert(field.clone(), value.clone());
        }
        for (field, cap) in &self.cap {
            if let Some(v) = obj.get_mut(field)
                && v.as_u64().is_some_and(|n| n > *cap)
            {
                *v = serde_json::Value::from(*cap);
            }
        }
    }
}

/// One way to serve a model: a provider, its model name, and how to use it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Index of the provider in the configuration.
    pub provider: usize,
    /// The provider's model name; `*` stands for the part of the requested
    /// name a wildcard alias matched (or the whole requested name).
    pub upstream_model: String,
    /// Relative weight; 0 disables the target.
    pub weight: u32,
    /// Priority level for the priority strategy: lower goes first.
    pub priority: u32,
    /// Body edits.
    pub overrides: Overrides,
    /// Extra headers on the upstream request.
    pub headers: Vec<(String, String)>,
    /// Capabilities, overriding what the adapter declares (`None`: the
    /// adapter's).
    pub capabilities: Option<Vec<Capability>>,
    /// Bound on one attempt (connect, headers and, when streaming, the
    /// first token); `None`: only the request deadline.
    pub timeout: Option<Duration>,
    /// Bound on the time from the request to the first content of a stream.
    pub ttft_timeout: Option<Duration>,
    /// The adapter version to serve with (`None`: the newest loaded).
    pub adapter_version: Option<semver::Version>,
    /// The adapter version (or other adapter) to shadow this target with.
    pub shadow: Option<PluginRef>,
}

/// A plugin version named in configuration: `0.2.0` (of the adapter in
/// context) or `openai@0.2.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin id; `None`: the adapter in context.
    pub id: Option<String>,
    /// The exact version.
    pub version: semver::Version,
}

impl PluginRef {
    /// Parse `0.2.0` or `id@0.2.0`.
    pub fn parse(text: &str) -> Result<PluginRef, String> {
        let (id, version) = match text.split_once('@') {
            Some((id, v)) => {
                if !crate::config::is_valid_plugin_id(id) {
                    return Err(format!("{id:?} is not a plugin id"));
                }
                (Some(id.to_string()), v)
            }
            None => (None, text),
        };
        let version = semver::Version::parse(version)
            .map_err(|e| format!("{version:?} is not a version: {e}"))?;
        Ok(PluginRef { id, version })
    }
}

impl Target {
    /// A target with defaults besides provider, model and weight.
    pub fn new(provider: usize, upstream_model: impl Into<String>, weight: u32) -> Target {
        Target {
            provider,
            upstream_model: upstream_model.into(),
            weight,
            priority: 0,
            overrides: Overrides::default(),
            headers: Vec::new(),
            capabilities: None,
            timeout: None,
            ttft_timeout: None,
            adapter_version: None,
            shadow: None,
        }
    }

    /// The model name to send upstream for a request resolved with
    /// `wildcard` (the part a `prefix/*` alias matched) or `requested`.
    pub fn upstream_model_for<'a>(
        &'a self,
        requested: &'a str,
        wildcard: Option<&'a str>,
    ) -> &'a str {
        if self.upstream_model == "*" {
            wildcard.unwrap_or(requested)
        } else {
            &self.upstream_model
        }
    }
}

/// How a model spreads requests over its targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Weighted random (the default).
    #[default]
    Weighted,
    /// Lowest priority value first, weighted random within a level, the next
    /// level only as fallback.
    Priority,
    /// Power of two choices over the decaying latency average.
    LeastLatency,
    /// A session keeps one target while it is healthy (rendezvous hashing
    /// by weight), so provider prompt caches stay warm. The session key is
    /// this header when set, else the request's `prompt_cache_key`, `user`
    /// or `metadata.user_id`; requests without one are weighted random.
    Sticky {
        /// The header holding the session key.
        header: Option<String>,
    },
}

impl Strategy {
    /// The name used in configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Weighted => "weighted",
            Strategy::Priority => "priority",
            Strategy::LeastLatency => "least-latency",
            Strategy::Sticky { .. } => "sticky",
        }
    }
}

/// A model clients can ask for.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRoute {
    /// The name clients use.
    pub name: String,
    /// Other names: exact, or `prefix*` wildcards.
    pub aliases: Vec<String>,
    /// The balancing strategy.
    pub strategy: Strategy,
    /// Retry settings.
    pub retry: RetryPolicy,
    /// Where it can be served.
    pub targets: Vec<Target>,
}

impl ModelRoute {
    /// A weighted-random route with default retries.
    pub fn new(name: impl Into<String>, targets: Vec<Target>) -> ModelRoute {
        ModelRoute {
            name: name.into(),
            aliases: Vec::new(),
            strategy: Strategy::Weighted,
            retry: RetryPolicy::default(),
            targets,
        }
    }
}

/// Every model by name, alias and wildcard.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    routes: Vec<ModelRoute>,
    exact: HashMap<String, usize>,
    /// `(prefix, route)`, longest prefix first.
    prefixes: Vec<(String, usize)>,
}

/// A model name resolved to its route.
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    /// Position of the route in [`Catalogue::routes`].
    pub index: usize,
    /// The route.
    pub route: &'a ModelRoute,
    /// The part of the name after a wildcard alias's prefix.
    pub wildcard: Option<&'a str>,
}

impl Catalogue {
    /// Index the routes. Earlier routes win on clashes (the configuration
    /// rejects them anyway).
    pub fn new(routes: Vec<ModelRoute>) -> Catalogue {
        let mut exact = HashMap::new();
        let mut prefixes = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            exact.entry(r.name.clone()).or_insert(i);
            for a in &r.aliases {
                match a.strip_suffix('*') {
                    Some(prefix) => prefixes.push((prefix.to_owned(), i)),
                    None => {
                        exact.entry(a.clone()).or_insert(i);
                    }
                }
            }
        }
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Catalogue {
            routes,
            exact,
            prefixes,
        }
    }

    /// Every route, in configuration order.
    pub fn routes(&self) -> &[ModelRoute] {
        &self.routes
    }

    /// The route for a requested name: the name or an exact alias, else the
    /// longest matching wildcard.
    pub fn resolve<'a>(&'a self, name: &'a str) -> Option<Resolved<'a>> {
        if let Some(&index) = self.exact.get(name) {
            return Some(Resolved {
                index,
                route: &self.routes[index],
                wildcard: None,
            });
        }
        self.prefixes.iter().find_map(|(prefix, index)| {
            let rest = name.strip_prefix(prefix.as_str())?;
            (!rest.is_empty()).then(|| Resolved {
                index: *index,
                route: &self.routes[*index],
                wildcard: Some(rest),
            })
        })
    }
}

/// Where a target stands for one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Standing {
    /// Serving with this weight factor.
    Serve(f64),
    /// Due for a half-open trial.
    Trial,
    /// Ejected until then.
    Ejected(Instant),
}

/// One step of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index into the route's targets.
    pub target: usize,
    /// This attempt is the target's half-open trial (claim it first).
    pub trial: bool,
}

/// The order in which to try a model's targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Targets in order.
    pub steps: Vec<Step>,
    /// Every eligible target was ejected: they are tried anyway, least bad
    /// first (panic mode), with no retries.
    pub panic: bool,
}

impl Plan {
    /// The target indices in order.
    pub fn targets(&self) -> impl Iterator<Item = usize> + '_ {
        self.steps.iter().map(|s| s.target)
    }
}

/// A request's view of one eligible target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Its health standing.
    pub standing: Standing,
    /// Its decaying latency average in nanoseconds (least-latency only).
    pub latency: Option<f64>,
}

/// Order the targets of `route` for one request. `candidate` says how each
/// target stands, or `None` when it cannot serve this request (capability,
/// adapter not loaded). Targets with weight 0 are left out.
///
/// Due half-open trials come first (one request tests a recovering target),
/// then serving targets in the strategy's order. When no target is serving
/// or due, the ejected ones are returned, soonest-to-recover first, with
/// [`Plan::panic`] set: the last target of a model is never refused.
pub fn plan<R: Rng>(
    route: &ModelRoute,
    candidate: impl Fn(usize, &Target) -> Option<Candidate>,
    session: Option<&str>,
    rng: &mut R,
) -> Plan {
    let mut serving: Vec<(f64, usize, &Target, Option<f64>)> = Vec::new();
    let mut trials: Vec<usize> = Vec::new();
    let mut ejected: Vec<(Instant, usize)> = Vec::new();
    for (i, t) in route.targets.iter().enumerate() {
        if t.weight == 0 {
            continue;
        }
        let Some(c) = candidate(i, t) else { continue };
        match c.standing {
            Standing::Serve(f) => serving.push((f64::from(t.weight) * f, i, t, c.latency)),
            Standing::Trial => trials.push(i),
            Standing::Ejected(until) => ejected.push((until, i)),
        }
    }
    if serving.is_empty() && trials.is_empty() {
        ejected.sort_by_key(|&(until, _)| until);
        return Plan {
            steps: ejected
                .into_iter()
                .map(|(_, target)| Step {
                    target,
                    trial: false,
                })
                .collect(),
            panic: true,
        };
    }
    let session = match &route.strategy {
        Strategy::Sticky { .. } => session,
        _ => None,
    };
    // A weighted random permutation (Efraimidis–Spirakis: each target draws
    // `-ln(u) / weight`, smallest first); a session draws its `u` from a hash
    // so it gets the same permutation every time (rendezvous hashing).
    let mut keyed: Vec<(f64, usize, u32, Option<f64>)> = serving
        .iter()
        .map(|&(w, i, t, lat)| {
            let u = match session {
                Some(s) => unit_hash(s, t),
                None => rng.random_range(f64::MIN_POSITIVE..1.0),
            };
            (-u.ln() / w, i, t.priority, lat)
        })
        .collect();
    match route.strategy {
        Strategy::Priority => {
            keyed.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.total_cmp(&b.0)));
        }
        Strategy::LeastLatency => {
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            // Of two weighted random picks, the faster goes first; a target
            // never measured counts as fastest, so each gets measured.
            if keyed.len() >= 2 {
                let lat = |x: Option<f64>| x.unwrap_or(0.0);
                if lat(keyed[1].3) < lat(keyed[0].3) {
                    keyed.swap(0, 1);
                }
            }
        }
        Strategy::Weighted | Strategy::Sticky { .. } => {
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    let mut steps = Vec::with_capacity(trials.len() + keyed.len());
    steps.extend(trials.into_iter().map(|target| Step {
        target,
        trial: true,
    }));
    steps.extend(keyed.into_iter().map(|(_, target, _, _)| Step {
        target,
        trial: false,
    }));
    Plan {
        steps,
        panic: false,
    }
}

/// A number in `(0, 1)` from a session key and a target (FNV-1a, then the
/// top 53 bits).
fn unit_hash(session: &str, t: &Target) -> f64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    let provider = t.provider.to_le_bytes();
    for b in session
        .bytes()
        .chain([0xff])
        .chain(provider)
        .chain(t.upstream_model.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // Mix the low bits up (FNV's high bits are weak for short inputs).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn route(weights: &[u32]) -> ModelRoute {
        ModelRoute::new(
            "m",
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| Target::new(i, format!("u{i}"), *w))
                .collect(),
        )
    }

    fn serving(_: usize, _: &Target) -> Option<Candidate> {
        Some(Candidate {
            standing: Standing::Serve(1.0),
            latency: None,
        })
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn first_pick_follows_weights_within_two_points() {
        let r = route(&[1, 3, 6]);
        let mut rng = rng();
        let mut counts = [0u32; 3];
        let n = 10_000;
        for _ in 0..n {
            counts[plan(&r, serving, None, &mut rng).steps[0].target] += 1;
        }
        for (i, w) in [0.1, 0.3, 0.6].iter().enumerate() {
            let share = f64::from(counts[i]) / f64::from(n);
            assert!((share - w).abs() < 0.02, "target {i}: {share} vs {w}");
        }
    }

    #[test]
    fn plan_visits_every_eligible_target_once() {
        let r = route(&[1, 0, 2, 5]);
        let mut rng = rng();
        for _ in 0..100 {
            let p = plan(
                &r,
                |i, t| (i != 3).then(|| serving(i, t)).flatten(),
                None,
                &mut rng,
            );
            let mut ts: Vec<_> = p.targets().collect();
            ts.sort_unstable();
            assert_eq!(ts, vec![0, 2]);
            assert!(!p.panic);
        }
    }

    #[test]
    fn degraded_weight_is_cut() {
        let r = route(&[1, 1]);
        let mut rng = rng();
        let mut first = [0u32; 2];
        for _ in 0..10_000 {
            let p = plan(
                &r,
                |i, _| {
                    Some(Candidate {
                        standing: Standing::Serve(if i == 0 { 0.25 } else { 1.0 }),
                        latency: None,
                    })
                },
                None,
                &mut rng,
            );
            first[p.steps[0].target] += 1;
        }
        let share = f64::from(first[0]) / 10_000.0;
        assert!((share - 0.2).abs() < 0.02, "{share}");
    }

    #[test]
    fn priority_levels_fall_back_in_order() {
        let mut r = route(&[1, 1, 1]);
        r.strategy = Strategy::Priority;
        r.targets[0].priority = 2;
        r.targets[1].priority = 1;
        r.targets[2].priority = 1;
        let mut rng = rng();
        for _ in 0..100 {
            let p: Vec<_> = plan(&r, serving, None, &mut rng).targets().collect();
            assert_eq!(p[2], 0, "{p:?}");
        }
    }

    #[test]
    fn least_latency_prefers_the_faster_target() {
        let mut r = route(&[1, 1]);
        r.strategy = Strategy::LeastLatency;
        let mut rng = rng();
        let mut fast = 0;
        for _ in 0..1000 {
            let p = plan(
                &r,
                |i, _| {
                    Some(Candidate {
                        standing: Standing::Serve(1.0),
                        latency: Some(if i == 0 { 50e6 } else { 10e6 }),
                    })
                },
                None,
                &mut rng,
            );
            if p.steps[0].target == 1 {
                fast += 1;
            }
        }
        assert_eq!(fast, 1000);
    }

    #[test]
    fn sticky_sessions_keep_their_target_and_spread_by_weight() {
        let mut r = route(&[1, 1, 2]);
        r.strategy = Strategy::Sticky { header: None };
        let mut rng = rng();
        let mut counts = [0u32; 3];
        for s in 0..4000 {
            let key = format!("session-{s}");
            let first = plan(&r, serving, Some(&key), &mut rng).steps[0].target;
            for _ in 0..5 {
                assert_eq!(
                    plan(&r, serving, Some(&key), &mut rng).steps[0].target,
                    first
                );
            }
            counts[first] += 1;
        }
        let share = f64::from(counts[2]) / 4000.0;
        assert!((share - 0.5).abs() < 0.03, "{counts:?}");
        // An ejected target's sessions move; the others stay.
        let key = (0..100)
            .map(|s| format!("session-{s}"))
            .find(|k| plan(&r, serving, Some(k), &mut rng).steps[0].target == 2)
            .unwrap();
        let without_2 = |i: usize, t: &Target| {
            if i == 2 {
                Some(Candidate {
                    standing: Standing::Ejected(Instant::now()),
                    latency: None,
                })
            } else {
                serving(i, t)
            }
        };
        let moved = plan(&r, without_2, Some(&key), &mut rng).steps[0].target;
        assert_ne!(moved, 2);
        assert_eq!(
            plan(&r, without_2, Some(&key), &mut rng).steps[0].target,
            moved
        );
    }

    #[test]
    fn trials_go_first_and_panic_mode_keeps_the_last_target() {
        let r = route(&[1, 1]);
        let mut rng = rng();
        let p = plan(
            &r,
            |i, _| {
                Some(Candidate {
                    standing: if i == 1 {
                        Standing::Trial
                    } else {
                        Standing::Serve(1.0)
                    },
                    latency: None,
                })
            },
            None,
            &mut rng,
        );
        assert_eq!(
            p.steps[0],
            Step {
                target: 1,
                trial: true
            }
        );
        let now = Instant::now();
        let p = plan(
            &r,
            |i, _| {
                Some(Candidate {
                    standing: Standing::Ejected(now + Duration::from_secs(10 - i as u64)),
                    latency: None,
                })
            },
            None,
            &mut rng,
        );
        assert!(p.panic);
        assert_eq!(p.targets().collect::<Vec<_>>(), vec![1, 0]);
    }

    #[test]
    fn catalogue_resolves_names_aliases_and_the_longest_wildcard() {
        let mut a = route(&[1]);
        a.name = "gpt-4o".into();
        a.aliases = vec!["gpt4".into(), "openai/*".into()];
        let mut b = route(&[1]);
        b.name = "router".into();
        b.aliases = vec!["openai/o*".into()];
        let c = Catalogue::new(vec![a, b]);
        assert_eq!(c.resolve("gpt-4o").unwrap().index, 0);
        assert_eq!(c.resolve("gpt4").unwrap().index, 0);
        let w = c.resolve("openai/gpt-4.1").unwrap();
        assert_eq!((w.index, w.wildcard), (0, Some("gpt-4.1")));
        let w = c.resolve("openai/o3").unwrap();
        assert_eq!((w.index, w.wildcard), (1, Some("3")));
        assert!(c.resolve("openai/").is_none());
        assert!(c.resolve("claude").is_none());
        let mut t = Target::new(0, "*", 1);
        assert_eq!(t.upstream_model_for("openai/x", Some("x")), "x");
        assert_eq!(t.upstream_model_for("gpt4", None), "gpt4");
        t.upstream_model = "fixed".into();
        assert_eq!(t.upstream_model_for("openai/x", Some("x")), "fixed");
    }

    #[test]
    fn overrides_set_remove_and_cap() {
        let o = Overrides {
            set: vec![("temperature".into(), serde_json::json!(0.2))],
            remove: vec!["logit_bias".into()],
            cap: vec![("max_tokens".into(), 100), ("n".into(), 1)],
        };
        let mut body = serde_json::json!({
            "temperature": 1.5, "logit_bias": {"1": 2}, "max_tokens": 4000, "model": "m"
        });
        o.apply(&mut body);
        assert_eq!(
            body,
            serde_json::json!({"temperature": 0.2, "max_tokens": 100, "model": "m"})
        );
    }
}
