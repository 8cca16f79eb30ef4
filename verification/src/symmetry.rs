//! Host symmetry reduction for the DFS search.
//!
//! Placeholder-free: until hosts can be renamed in the core's state, the
//! representative is the state itself (no reduction), so enabling symmetry
//! is sound but does not shrink the search.

use tally_model::World;

/// The canonical representative of `w`'s symmetry class.
#[must_use]
pub fn representative(w: &World) -> World {
    w.clone()
}
