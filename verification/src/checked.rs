//! The stateright `Model`: the model crate's world plus the properties.
//!
//! For the proof it also applies host symmetry itself (every state it
//! returns is its representative, so stateright's visited set holds one
//! state per class) and records the state graph for L1 as the search
//! generates it (see `graph`).

use crate::graph::{CALM, CONVERGED, GraphLog, fingerprint};
use crate::properties::{Kind, PROPERTIES, converged};
use stateright::{Model, Property};
use std::sync::Arc;
use tally_model::{Action, ModelConfig, TallyModel, World};

/// The model with Tally's properties attached.
#[derive(Clone, Debug)]
pub struct CheckedModel {
    /// The underlying model.
    pub inner: TallyModel,
    /// Return each state's host-symmetry representative.
    symmetry: bool,
    /// Record the state graph here.
    graph: Option<Arc<GraphLog>>,
}

impl CheckedModel {
    /// Wraps a validated model.
    #[must_use]
    pub fn new(inner: TallyModel) -> CheckedModel {
        CheckedModel {
            inner,
            symmetry: false,
            graph: None,
        }
    }

    /// The same model, returning representatives under host symmetry
    /// (sound only where `symmetry::usable`), and recording its state graph
    /// into `graph` when given.
    #[must_use]
    pub fn searching(
        inner: TallyModel,
        symmetry: bool,
        graph: Option<Arc<GraphLog>>,
    ) -> CheckedModel {
        CheckedModel {
            inner,
            symmetry,
            graph,
        }
    }

    /// `w`, or its representative under host symmetry.
    #[must_use]
    pub fn canon(&self, w: World) -> World {
        if self.symmetry {
            crate::symmetry::representative(&w)
        } else {
            w
        }
    }

    fn marks(&self, w: &World) -> u8 {
        let cfg = &self.inner.cfg;
        let mut m = 0;
        if w.is_calm(cfg) {
            m |= CALM;
        }
        if converged(cfg, w) {
            m |= CONVERGED;
        }
        m
    }

    /// The configuration.
    #[must_use]
    pub fn cfg(&self) -> &ModelConfig {
        &self.inner.cfg
    }
}

macro_rules! prop_fn {
    ($i:literal) => {
        |m: &CheckedModel, s: &World| match PROPERTIES.get($i) {
            Some(p) => (p.holds)(m.cfg(), s),
            None => true,
        }
    };
}

/// stateright wants `fn` pointers; one per entry of `PROPERTIES`.
const CONDITIONS: [fn(&CheckedModel, &World) -> bool; 20] = [
    prop_fn!(0),
    prop_fn!(1),
    prop_fn!(2),
    prop_fn!(3),
    prop_fn!(4),
    prop_fn!(5),
    prop_fn!(6),
    prop_fn!(7),
    prop_fn!(8),
    prop_fn!(9),
    prop_fn!(10),
    prop_fn!(11),
    prop_fn!(12),
    prop_fn!(13),
    prop_fn!(14),
    prop_fn!(15),
    prop_fn!(16),
    prop_fn!(17),
    prop_fn!(18),
    prop_fn!(19),
];

impl Model for CheckedModel {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        let states: Vec<World> = self
            .inner
            .init_states()
            .into_iter()
            .map(|w| self.canon(w))
            .collect();
        if let Some(g) = &self.graph {
            for w in &states {
                g.root(fingerprint(w), self.marks(w));
            }
        }
        states
    }

    fn actions(&self, state: &World, actions: &mut Vec<Action>) {
        if self.graph.is_some() {
            GraphLog::expanding(fingerprint(state));
        }
        self.inner.actions(state, actions);
    }

    fn next_state(&self, state: &World, action: Action) -> Option<World> {
        let next = self.canon(self.inner.next_state(state, action)?);
        if let Some(g) = &self.graph {
            g.edge(fingerprint(&next), self.marks(&next));
        }
        Some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        format!("{action:?}")
    }

    fn properties(&self) -> Vec<Property<Self>> {
        PROPERTIES
            .iter()
            .zip(CONDITIONS)
            .map(|(p, f)| match p.kind {
                Kind::Always | Kind::Liveness => Property::<Self>::always(p.name, f),
                Kind::Sometimes => Property::<Self>::sometimes(p.name, f),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_has_a_condition() {
        assert_eq!(PROPERTIES.len(), CONDITIONS.len());
    }
}
