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

/// stateright wants `fn` pointers: one per entry of `PROPERTIES`, for a
/// model `$model` whose state `$s` holds a `World` at `$world`.
macro_rules! conditions {
    ($model:ty, $state:ty, |$s:ident| $world:expr) => {
        conditions!(@ $model, $state, |$s| $world;
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26)
    };
    (@ $model:ty, $state:ty, |$s:ident| $world:expr; $($i:literal)*) => {
        [$(
            |m: &$model, $s: &$state| match $crate::properties::PROPERTIES.get($i) {
                Some(p) => (p.holds)(m.cfg(), $world),
                None => true,
            }
        ),*]
    };
}
pub(crate) use conditions;

const CONDITIONS: [fn(&CheckedModel, &World) -> bool; crate::properties::PROPERTY_COUNT] =
    conditions!(CheckedModel, World, |s| s);

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
        attach(CONDITIONS)
    }
}

/// `PROPERTIES` as stateright properties of `M`, one condition each.
pub(crate) fn attach<M: Model>(
    conditions: [fn(&M, &M::State) -> bool; crate::properties::PROPERTY_COUNT],
) -> Vec<Property<M>> {
    PROPERTIES
        .iter()
        .zip(conditions)
        .map(|(p, f)| match p.kind {
            Kind::Always | Kind::Liveness => Property::<M>::always(p.name, f),
            Kind::Sometimes => Property::<M>::sometimes(p.name, f),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_has_a_condition() {
        assert_eq!(PROPERTIES.len(), CONDITIONS.len());
    }
}
