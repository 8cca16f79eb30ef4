//! The stateright `Model`: the model crate's world plus the properties.

use crate::properties::{Kind, PROPERTIES};
use stateright::{Model, Property};
use tally_model::{Action, ModelConfig, TallyModel, World};

/// The model with Tally's properties attached.
#[derive(Clone, Debug)]
pub struct CheckedModel {
    /// The underlying model.
    pub inner: TallyModel,
}

impl CheckedModel {
    /// Wraps a validated model.
    #[must_use]
    pub fn new(inner: TallyModel) -> CheckedModel {
        CheckedModel { inner }
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
        self.inner.init_states()
    }

    fn actions(&self, state: &World, actions: &mut Vec<Action>) {
        self.inner.actions(state, actions);
    }

    fn next_state(&self, state: &World, action: Action) -> Option<World> {
        self.inner.next_state(state, action)
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
