//! Property tests of the core: arbitrary sequences of inputs to a manager
//! and a few agents, including adversarial ones (duplicated, reordered,
//! lost and late messages; forged messages with unknown ids, stale
//! generations and stale incarnations; commands during lockdown; clocks
//! that jump, also backwards; host crashes and manager restarts). After
//! every input `check_manager`/`check_agent` hold, refused commands change
//! nothing, and nothing panics.
//!
//! Cases per property: 5,000, or `TALLY_PROPTEST_CASES`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::world::{Op, World, cases, configs, gentle_op, honest_op, op, run};
use proptest::prelude::*;
use tally_core::{Config, Mutation, Mutations};

fn drive(cfg: Config, ops: Vec<Op>) -> Result<World, TestCaseError> {
    let mut w = World::new(cfg);
    w.check().map_err(TestCaseError::fail)?;
    for (i, o) in ops.into_iter().enumerate() {
        let shown = format!("{o:?}");
        w.apply(o)
            .map_err(|e| TestCaseError::fail(format!("op {i} {shown}: {e}")))?;
    }
    Ok(w)
}

fn mutations() -> impl Strategy<Value = Mutations> {
    prop::collection::vec(prop::sample::select(Mutation::ALL.to_vec()), 1..4)
        .prop_map(Mutations::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn invariants_hold_under_adversarial_inputs((c, ops) in run(60)) {
        drive(configs()[c].clone(), ops)?;
    }

    #[test]
    fn invariants_hold_under_network_and_host_faults(
        c in 0..configs().len(),
        ops in prop::collection::vec(honest_op(), 0..150),
    ) {
        let w = drive(configs()[c].clone(), ops)?;
        prop_assert_eq!(&w.fold(), w.manager.durable());
    }

    #[test]
    fn invariants_hold_in_a_mostly_healthy_world(
        c in 0..configs().len(),
        ops in prop::collection::vec(gentle_op(), 0..150),
    ) {
        let w = drive(configs()[c].clone(), ops)?;
        prop_assert_eq!(&w.fold(), w.manager.durable());
    }

    #[test]
    fn mutated_machines_never_panic(
        c in 0..configs().len(),
        m in mutations(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let mut cfg = configs()[c].clone();
        cfg.mutations = m;
        drive(cfg, ops)?;
    }
}

proptest! {
    /// Slots and instances order as their field tuples (the core compares
    /// them as packed integers; every sorted list and map relies on this).
    #[test]
    fn ids_order_as_their_tuples(
        a in (any::<u16>(), any::<u16>(), any::<u32>()),
        b in (any::<u16>(), any::<u16>(), any::<u32>()),
    ) {
        use tally_core::{Generation, InstanceId, SlotId, TypeId};
        let id = |(t, i, g): (u16, u16, u32)| InstanceId {
            slot: SlotId { process_type: TypeId(t), index: i },
            generation: Generation(g),
        };
        prop_assert_eq!(id(a).cmp(&id(b)), a.cmp(&b));
        prop_assert_eq!(id(a).slot.cmp(&id(b).slot), (a.0, a.1).cmp(&(b.0, b.1)));
        prop_assert_eq!(id(a) == id(b), a == b);
    }
}
