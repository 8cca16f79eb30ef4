//! Host symmetry: the orbit fingerprint the proof dedups by agrees with an
//! explicit relabelling, and the progress measure that proves L1's
//! acyclicity really grows on every edge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{HashMap, HashSet, VecDeque};
use tally_model::{ModelConfig, TallyModel, World};
use tally_verification::graph::fingerprint;
use tally_verification::symmetry::{orbit_fingerprint, representative};

/// Up to `limit` states reachable in `cfg`, breadth-first, no symmetry.
fn reachable(cfg: &ModelConfig, limit: usize) -> Vec<World> {
    let model = TallyModel::new(cfg.clone()).expect("valid configuration");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut queue: VecDeque<World> = model.init_states().into();
    let mut actions = Vec::new();
    while let Some(w) = queue.pop_front() {
        if out.len() >= limit {
            break;
        }
        if !seen.insert(fingerprint(&w)) {
            continue;
        }
        actions.clear();
        model.actions(&w, &mut actions);
        for a in actions.drain(..) {
            if let Some(next) = model.next_state(&w, a) {
                queue.push_back(next);
            }
        }
        out.push(w);
    }
    out
}

/// The `ci` configurations with three hosts and the most fault classes.
fn three_host_configs() -> Vec<ModelConfig> {
    tally_model::config::ci()
        .configs
        .into_iter()
        .filter(|c| c.hosts >= 3)
        .collect()
}

#[test]
fn the_orbit_fingerprint_classes_states_as_relabelling_does() {
    let configs = three_host_configs();
    assert!(!configs.is_empty());
    for cfg in configs {
        let states = reachable(&cfg, 30_000);
        // orbit fingerprint <-> fingerprint of the explicit representative:
        // a bijection, so both split the states into the same classes.
        let mut by_orbit: HashMap<u64, u64> = HashMap::new();
        let mut by_rep: HashMap<u64, u64> = HashMap::new();
        let mut relabelled = 0;
        for w in &states {
            let orbit = orbit_fingerprint(w);
            let rep = representative(w.clone());
            if rep != *w {
                relabelled += 1;
            }
            // Invariant under the relabelling itself.
            assert_eq!(orbit, orbit_fingerprint(&rep), "{}", cfg.name);
            let rep = fingerprint(&rep);
            assert_eq!(*by_orbit.entry(orbit).or_insert(rep), rep, "{}", cfg.name);
            assert_eq!(*by_rep.entry(rep).or_insert(orbit), orbit, "{}", cfg.name);
        }
        // The check means something: hosts were out of canonical order in
        // many states, and classes merged several states each.
        assert!(relabelled > 100, "{}: {relabelled}", cfg.name);
        assert!(by_orbit.len() < states.len(), "{}", cfg.name);
    }
}

#[test]
fn every_step_increases_the_progress_measure() {
    for cfg in tally_model::config::ci().configs {
        let model = TallyModel::new(cfg.clone()).expect("valid configuration");
        let mut actions = Vec::new();
        for w in reachable(&cfg, 20_000) {
            actions.clear();
            model.actions(&w, &mut actions);
            for a in actions.drain(..) {
                if let Some(next) = model.next_state(&w, a) {
                    assert!(
                        next.progress() > w.progress(),
                        "{}: {a:?} does not make progress",
                        cfg.name
                    );
                }
            }
        }
    }
}
