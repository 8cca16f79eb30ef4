//! The model as the proof searches it: each state stamped with its
//! fingerprint, computed once when the state is generated, so stateright
//! hashes eight bytes instead of the whole world; host symmetry applied by
//! the model itself (every state it returns is its representative, so the
//! visited set holds one state per class); and, for L1, every generated
//! edge recorded (see `graph`).

use crate::checked::{CheckedModel, attach, conditions};
use crate::graph::{CALM, CONVERGED, GraphLog, fingerprint};
use crate::properties::converged;
use stateright::{Model, Property};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tally_model::{Action, ModelConfig, TallyModel, World};

/// A world with its fingerprint. Hashed and compared by the fingerprint
/// alone: two states are the same state exactly when the visited set says so.
#[derive(Clone, Debug)]
pub struct Stamped {
    /// The world.
    pub world: World,
    /// `graph::fingerprint(&world)`.
    pub fp: u64,
}

impl Stamped {
    fn new(world: World) -> Stamped {
        let fp = fingerprint(&world);
        Stamped { world, fp }
    }
}

impl Hash for Stamped {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.fp);
    }
}

impl PartialEq for Stamped {
    fn eq(&self, other: &Self) -> bool {
        self.fp == other.fp
    }
}

impl Eq for Stamped {}

/// The searched model.
#[derive(Clone, Debug)]
pub struct SearchModel {
    /// The checked model (properties, configuration).
    pub checked: CheckedModel,
    symmetry: bool,
    graph: Option<Arc<GraphLog>>,
}

impl SearchModel {
    /// `inner`, searched with host symmetry when `symmetry` (sound only
    /// where `symmetry::usable`), recording its state graph into `graph`
    /// when given.
    #[must_use]
    pub fn new(inner: TallyModel, symmetry: bool, graph: Option<Arc<GraphLog>>) -> SearchModel {
        SearchModel {
            checked: CheckedModel::new(inner),
            symmetry,
            graph,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn cfg(&self) -> &ModelConfig {
        self.checked.cfg()
    }

    /// The model crate's model.
    #[must_use]
    pub fn inner(&self) -> &TallyModel {
        &self.checked.inner
    }

    /// `w`, or its representative under host symmetry.
    #[must_use]
    pub fn canon(&self, w: World) -> World {
        if self.symmetry {
            crate::symmetry::representative(w)
        } else {
            w
        }
    }

    /// `CALM`, and `CONVERGED` for a calm state: L1 asks only whether a
    /// calm state reaches a converged one, and a calm state's successors
    /// are calm, so no other state's convergence is ever read.
    fn marks(&self, w: &World) -> u8 {
        let cfg = self.cfg();
        if !w.is_calm(cfg) {
            return 0;
        }
        if converged(cfg, w) {
            CALM | CONVERGED
        } else {
            CALM
        }
    }
}

const CONDITIONS: [fn(&SearchModel, &Stamped) -> bool; 20] =
    conditions!(SearchModel, Stamped, |s| &s.world);

impl Model for SearchModel {
    type State = Stamped;
    type Action = Action;

    fn init_states(&self) -> Vec<Stamped> {
        let states: Vec<Stamped> = self
            .inner()
            .init_states()
            .into_iter()
            .map(|w| Stamped::new(self.canon(w)))
            .collect();
        if let Some(g) = &self.graph {
            for s in &states {
                g.root(s.fp, self.marks(&s.world));
            }
        }
        states
    }

    fn actions(&self, state: &Stamped, actions: &mut Vec<Action>) {
        if self.graph.is_some() {
            GraphLog::expanding(state.fp);
        }
        self.inner().actions(&state.world, actions);
    }

    fn next_state(&self, state: &Stamped, action: Action) -> Option<Stamped> {
        let next = Stamped::new(self.canon(self.inner().next_state(&state.world, action)?));
        if let Some(g) = &self.graph {
            g.edge(next.fp, self.marks(&next.world));
        }
        Some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        format!("{action:?}")
    }

    fn properties(&self) -> Vec<Property<Self>> {
        attach(CONDITIONS)
    }
}
