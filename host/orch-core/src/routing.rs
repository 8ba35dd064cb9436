//! The first router: a model name maps to targets; the order in which targets
//! are tried is a weighted random permutation, so the first pick follows the
//! configured weights and failover visits the rest in weighted order too.
//!
//! Health, priorities and other strategies plug in here later: the pipeline
//! only asks for a [`Plan`] and walks it.

use rand::Rng;

/// One way to serve a model: a provider and its model name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Index of the provider in the configuration.
    pub provider: usize,
    /// The provider's model name.
    pub upstream_model: String,
    /// Relative weight; 0 disables the target.
    pub weight: u32,
}

/// A model clients can ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRoute {
    /// The name clients use.
    pub name: String,
    /// Where it can be served.
    pub targets: Vec<Target>,
}

/// The order in which to try a model's targets (indices into `targets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan(pub Vec<usize>);

/// Order the eligible targets of a route as a weighted random permutation
/// (Efraimidis–Spirakis: each target draws `-ln(u) / weight`, smallest first).
/// Targets with weight 0 or rejected by `eligible` are left out.
pub fn plan<R: Rng>(route: &ModelRoute, eligible: impl Fn(&Target) -> bool, rng: &mut R) -> Plan {
    let mut keyed: Vec<(f64, usize)> = route
        .targets
        .iter()
        .enumerate()
        .filter(|(_, t)| t.weight > 0 && eligible(t))
        .map(|(i, t)| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            (-u.ln() / f64::from(t.weight), i)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    Plan(keyed.into_iter().map(|(_, i)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn route(weights: &[u32]) -> ModelRoute {
        ModelRoute {
            name: "m".into(),
            targets: weights
                .iter()
                .enumerate()
                .map(|(i, w)| Target {
                    provider: i,
                    upstream_model: format!("u{i}"),
                    weight: *w,
                })
                .collect(),
        }
    }

    #[test]
    fn first_pick_follows_weights() {
        let r = route(&[1, 3, 6]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        let n = 20_000;
        for _ in 0..n {
            counts[plan(&r, |_| true, &mut rng).0[0]] += 1;
        }
        for (i, w) in [0.1, 0.3, 0.6].iter().enumerate() {
            let share = f64::from(counts[i]) / f64::from(n);
            assert!((share - w).abs() < 0.02, "target {i}: {share} vs {w}");
        }
    }

    #[test]
    fn plan_visits_every_eligible_target_once() {
        let r = route(&[1, 0, 2, 5]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let mut p = plan(&r, |t| t.provider != 3, &mut rng).0;
            p.sort_unstable();
            assert_eq!(p, vec![0, 2]);
        }
    }
}
