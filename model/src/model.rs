//! The stateright `Model` over [`World`]; properties are added by
//! `tally-verification`, which wraps this model.

use crate::config::ModelConfig;
use crate::world::{Action, World};

/// The model of one configuration.
#[derive(Clone, Debug)]
pub struct TallyModel {
    /// The configuration.
    pub cfg: ModelConfig,
}

impl TallyModel {
    /// A model of `cfg`, which must be valid.
    pub fn new(cfg: ModelConfig) -> Result<TallyModel, crate::ModelConfigError> {
        cfg.validate()?;
        Ok(TallyModel { cfg })
    }

    /// The initial states.
    #[must_use]
    pub fn init_states(&self) -> Vec<World> {
        World::initial(&self.cfg).into_iter().collect()
    }

    /// Enabled actions.
    pub fn actions(&self, state: &World, actions: &mut Vec<Action>) {
        state.actions(&self.cfg, actions);
    }

    /// The successor of `state` by `action`.
    #[must_use]
    pub fn next_state(&self, state: &World, action: Action) -> Option<World> {
        state.next(&self.cfg, action)
    }
}
