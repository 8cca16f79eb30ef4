//! The manager: the ledger of every instance that may still be alive, and
//! the decisions made from it (launch, stop, lease, budget, breaker, lockdown).
//!
//! Sans-IO: [`Manager::step`] takes the time and one input and appends
//! effects to a buffer. It never reads a clock, never panics on input, and
//! changes its durable state only through journal records emitted before
//! the effects that depend on them.
//!
//! The modules, by concern: `types` (the public vocabulary), `ledger` (the
//! instances and every index over them), `vacancy` (the occupancy rule and
//! the launch index), `persistence` (the one way state changes: a record),
//! `time` (ticks: leases, boot timeouts, backoff), `reports` (an agent's
//! report), `launching` (choosing, admitting, paying, launching) and
//! `commands` (users' and operators').

mod commands;
mod launching;
mod ledger;
mod persistence;
mod reports;
mod time;
mod types;
mod vacancy;

pub use types::{
    Alert, Backoff, CommandKind, Effect, Leadership, LiveView, Liveness, ManagerInput, Note,
    OperatorCommand, Phase, Rejected, UserCommand, phase_of,
};

use crate::breaker::{Breaker, FleetBreaker};
use crate::budget::{Budget, LaunchBoundInputs};
use crate::config::{Config, ConfigError, Mutation};
use crate::ids::{AppId, Generation, HostId, InstanceId, SlotId, Term, Tick, TypeId};
use crate::journal::{Counters, Durable, DurableInstance, JournalRecord};
use ledger::Ledger;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The manager: the durable fold of its journal, the ledger with its
/// indexes, and the seed of its backoff jitter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Manager {
    durable: Durable,
    #[serde(flatten)]
    ledger: Ledger,
    rng: u64,
    /// Whether it may act: always with a local journal; within its guard
    /// with a store (DESIGN.md, HA rule 2). Volatile.
    leadership: Leadership,
    #[serde(skip)]
    apps: TypeApps,
    #[serde(skip)]
    pub(crate) payable: PayableTypes,
}

/// The app of each process type (`Config::type_apps`) and the types of each
/// app, computed once by [`Manager::recover`]: every launch and boot looks
/// its app up. A function of the configuration, so it adds nothing to the
/// state's hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct TypeApps {
    app_of: Arc<[AppId]>,
    types_of: Arc<[Vec<TypeId>]>,
}

impl std::hash::Hash for TypeApps {
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

/// The types whose app's breaker lets a launch through and whose bucket
/// can pay a relaunch now (`Budget::can_spend`), as bits by `TypeId`: the
/// launch loop jumps over the vacant slots of every other type instead of
/// visiting them (with hundreds of apps and empty buckets after an
/// incident, one slot of each app per report). A function of the durable
/// state and the configuration, kept up to date by every record that
/// changes a budget or a breaker (`Step::persist`), checked by
/// `invariants::check_manager`; shared until changed, as a model checker
/// clones managers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PayableTypes(Arc<Vec<u64>>);

impl std::hash::Hash for PayableTypes {
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

impl PayableTypes {
    pub(crate) fn contains(&self, t: TypeId) -> bool {
        let i = usize::from(t.0);
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, t: TypeId, on: bool) {
        let i = usize::from(t.0);
        if self.contains(t) == on {
            return;
        }
        let words = Arc::make_mut(&mut self.0);
        if words.len() <= i / 64 {
            words.resize(i / 64 + 1, 0);
        }
        if let Some(w) = words.get_mut(i / 64) {
            *w ^= 1 << (i % 64);
        }
    }

    /// The first payable type at or after `from`.
    pub(crate) fn first_from(&self, from: TypeId) -> Option<TypeId> {
        let i = usize::from(from.0);
        let mut word = i / 64;
        let mut bits = self.0.get(word)? & (u64::MAX << (i % 64));
        loop {
            if bits != 0 {
                let t = word * 64 + bits.trailing_zeros() as usize;
                return u16::try_from(t).ok().map(TypeId);
            }
            word += 1;
            bits = *self.0.get(word)?;
        }
    }
}

/// The store's fence on a journal append (DESIGN.md, HA rule 1): it
/// commits only while the leader key is live with the appender's term
/// (`key_term`: the key's term, `None` once it lapsed); under
/// `unfenced-append`, whatever the key. A store implements it as a compare
/// in the append's own transaction; the model's store calls this.
#[must_use]
pub fn append_admitted(cfg: &Config, key_term: Option<Term>, appender: Term) -> bool {
    cfg.mutations.has(Mutation::UnfencedAppend) || key_term == Some(appender)
}

/// One step in progress: the manager with the step's configuration, time
/// and effect buffer, so that the decisions below take only what they decide
/// about.
struct Step<'a> {
    m: &'a mut Manager,
    cfg: &'a Config,
    now: Tick,
    out: &'a mut Vec<Effect>,
}

impl Manager {
    /// A new manager with the configured initial formation. Emits the
    /// records that grant the initial free launches.
    pub fn new(cfg: &Config, now: Tick, out: &mut Vec<Effect>) -> Result<Manager, ConfigError> {
        let mut m = Manager::recover(cfg, Durable::genesis(cfg, now), now)?;
        let mut step = Step {
            m: &mut m,
            cfg,
            now,
            out,
        };
        for (i, p) in cfg.process_types.iter().enumerate() {
            let process_type = TypeId(u16::try_from(i).unwrap_or(u16::MAX));
            step.set_formation(process_type, p.count_initial);
        }
        m.ledger.flush(cfg);
        Ok(m)
    }

    /// A manager rebuilt from its journal (already folded into `durable`)
    /// at `now`. Every instance is treated as leased for a full expiry period
    /// from now, since the grant times were not journaled.
    pub fn recover(cfg: &Config, durable: Durable, now: Tick) -> Result<Manager, ConfigError> {
        Manager::recover_leased_until(cfg, durable, now, now.plus(cfg.lease_expiry_ticks()))
    }

    /// [`Manager::recover`], with every instance leased until `lease_deadline`.
    fn recover_leased_until(
        cfg: &Config,
        durable: Durable,
        now: Tick,
        lease_deadline: Tick,
    ) -> Result<Manager, ConfigError> {
        cfg.validate()?;
        let mut durable = durable;
        durable.fit(cfg, now);
        for budget in &mut durable.budgets {
            if cfg.mutations.has(Mutation::BudgetNotJournaled) {
                budget.tokens_milli = Budget::full(cfg, now).tokens_milli;
            }
            if cfg.mutations.has(Mutation::ProbeNotJournaled) {
                budget.probe_ready = true;
            }
        }
        let live = Liveness {
            view: LiveView::Unknown,
            lease_deadline,
        };
        let leadership = if cfg.leadership.is_some() {
            Leadership::Unconfirmed
        } else {
            Leadership::Sole
        };
        Ok(Manager {
            ledger: Ledger::recovered(cfg, &durable, live),
            durable,
            rng: cfg.seed,
            leadership,
            apps: TypeApps::of(cfg),
            payable: PayableTypes::default(),
        })
        .map(|mut m| {
            m.refresh_payable(cfg, None);
            m
        })
    }

    /// A manager that has just taken the leader key in the store (term
    /// `term`, campaign sent at `campaign_sent_at` on its clock), rebuilt
    /// from the journal it read after taking the key. Like a restart
    /// (DESIGN.md, HA rule 3), every journaled instance is leased for a full
    /// expiry period from `now`, whatever the old leader last knew (only
    /// until `now` under `takeover-trusts-ledger`). Emits `TermBegan`, its
    /// first record, which the shell appends (fenced by `term`) before
    /// anything else.
    pub fn take_over(
        cfg: &Config,
        durable: Durable,
        (now, campaign_sent_at): (Tick, Tick),
        term: Term,
        out: &mut Vec<Effect>,
    ) -> Result<Manager, ConfigError> {
        let lease_deadline = if cfg.mutations.has(Mutation::TakeoverTrustsLedger) {
            now
        } else {
            now.plus(cfg.lease_expiry_ticks())
        };
        let mut m = Manager::recover_leased_until(cfg, durable, now, lease_deadline)?;
        m.leadership = Leadership::Confirmed {
            sent_at: campaign_sent_at,
        };
        let mut step = Step {
            m: &mut m,
            cfg,
            now,
            out,
        };
        step.persist(JournalRecord::TermBegan { term });
        m.ledger.flush(cfg);
        Ok(m)
    }

    /// Whether the manager may act at `now` (its own clock): always with a
    /// local journal; with a store, only within `Config::leadership_guard_ticks`
    /// of its last confirmation's send time, and never once deposed
    /// (DESIGN.md, HA rule 2). Under `unguarded-leader`, until deposed.
    #[must_use]
    pub fn leads(&self, cfg: &Config, now: Tick) -> bool {
        match self.leadership {
            Leadership::Sole => true,
            Leadership::Confirmed { sent_at } => {
                cfg.mutations.has(Mutation::UnguardedLeader)
                    || cfg
                        .leadership_guard_ticks()
                        .is_some_and(|g| now.since(sent_at) <= g)
            }
            Leadership::Unconfirmed | Leadership::Deposed => false,
        }
    }

    /// Whether, and since when, its leadership is confirmed.
    #[must_use]
    pub fn leadership(&self) -> Leadership {
        self.leadership
    }

    /// The shell tells the manager that an append (sent at `sent_at`, its
    /// clock) committed under its term. A fenced append proves the term was
    /// current when it committed, but it does not extend the store lease,
    /// so it restarts no guard (HA rule 2), except under
    /// `guard-from-append`.
    pub fn append_committed(&mut self, cfg: &Config, sent_at: Tick) {
        if cfg.mutations.has(Mutation::GuardFromAppend) {
            self.confirm(sent_at);
        }
    }

    fn confirm(&mut self, sent_at: Tick) {
        self.leadership = match self.leadership {
            Leadership::Confirmed { sent_at: was } => Leadership::Confirmed {
                sent_at: was.max(sent_at),
            },
            Leadership::Unconfirmed => Leadership::Confirmed { sent_at },
            other @ (Leadership::Sole | Leadership::Deposed) => other,
        };
    }

    /// Applies one input at `now`, appending effects to `out`.
    ///
    /// Facts (ticks, reports) never fail. A refused user command returns
    /// `Err` and leaves the state exactly as it was. With a store, nothing
    /// but a confirmation is processed outside the guard: facts are noted
    /// `NotLeading` and dropped, commands refused.
    pub fn step(
        &mut self,
        cfg: &Config,
        now: Tick,
        input: ManagerInput,
        out: &mut Vec<Effect>,
    ) -> Result<(), Rejected> {
        match input {
            ManagerInput::LeadershipConfirmed { sent_at } => {
                self.confirm(sent_at);
                return Ok(());
            }
            ManagerInput::LeadershipLost => {
                self.leadership = Leadership::Deposed;
                return Ok(());
            }
            ManagerInput::User(_) if !self.leads(cfg, now) => {
                out.push(Effect::Note(Note::NotLeading));
                return Err(Rejected::NotLeading);
            }
            _ if !self.leads(cfg, now) => {
                out.push(Effect::Note(Note::NotLeading));
                return Ok(());
            }
            _ => {}
        }
        let mut step = Step {
            m: self,
            cfg,
            now,
            out,
        };
        let result = match input {
            ManagerInput::Tick => {
                step.on_tick();
                Ok(())
            }
            ManagerInput::ReportReceived(report) => {
                step.on_report(&report);
                Ok(())
            }
            ManagerInput::User(command) => step.on_user(command),
            ManagerInput::Operator(command) => {
                step.on_operator(command);
                Ok(())
            }
            // Answered above.
            ManagerInput::LeadershipConfirmed { .. } | ManagerInput::LeadershipLost => Ok(()),
        };
        if let Err(Rejected::LockedDown { .. }) = result {
            out.push(Effect::Note(Note::LockdownRefused));
        }
        self.ledger.flush(cfg);
        // Mutations are deliberate bugs: their broken invariants are for the
        // checker to find, not for a debug assertion to stop.
        debug_assert!(
            !cfg.mutations.is_empty() || crate::invariants::check_manager(self, cfg).is_ok(),
            "manager invariant broken: {:?}",
            crate::invariants::check_manager(self, cfg)
        );
        result
    }

    // ----- queries -----

    /// The durable state: what a restart would recover.
    #[must_use]
    pub fn durable(&self) -> &Durable {
        &self.durable
    }

    /// The ledger: every instance that may still be alive, with what the
    /// manager knows of its liveness.
    pub fn ledger(&self) -> impl Iterator<Item = (InstanceId, &DurableInstance, &Liveness)> {
        self.durable
            .instances
            .iter()
            .filter_map(|(id, d)| self.ledger.entry(d.host, *id).map(|e| (*id, d, &e.live)))
    }

    /// The ledger's instances on `host`, in instance order: what
    /// [`Manager::ledger`] yields for that host, without visiting the others.
    pub fn ledger_on(
        &self,
        host: HostId,
    ) -> impl Iterator<Item = (InstanceId, &DurableInstance, &Liveness)> {
        self.ledger
            .entries_on(host)
            .iter()
            .map(|e| (e.id, &e.d, &e.live))
    }

    /// Hashes everything but what belongs to one host (its instances in
    /// the durable state and the ledger, and whether it is paused): with
    /// those hashed host by host, a model checker fingerprints a state's
    /// class under host relabelling without relabelling it.
    pub fn hash_without_hosts<H: std::hash::Hasher>(&self, state: &mut H) {
        use std::hash::Hash;
        // Destructured, so that a new field cannot be left out silently.
        let Manager {
            durable,
            ledger,
            rng,
            leadership,
            apps: _,
            payable: _,
        } = self;
        let Durable {
            formation,
            instances: _,
            high_water,
            free_launches,
            free_launches_granted,
            budgets,
            breakers,
            fleet_breaker,
            lockdown,
            paused_all,
            paused_hosts: _,
            term,
        } = durable;
        (
            formation,
            high_water,
            free_launches,
            free_launches_granted,
            budgets,
            breakers,
            fleet_breaker,
            lockdown,
            paused_all,
            rng,
            (leadership, term),
        )
            .hash(state);
        ledger.hash_without_hosts(state);
    }

    /// Number of instances in the ledger.
    #[must_use]
    pub fn ledger_len(&self) -> usize {
        self.durable.instances.len()
    }

    /// The phase of `instance`: `Stopped` once it has left the ledger,
    /// `None` if it was never launched.
    #[must_use]
    pub fn phase(&self, instance: InstanceId) -> Option<Phase> {
        let d = self.durable.instances.get(&instance);
        match d.and_then(|d| Some((d, self.ledger.entry(d.host, instance)?))) {
            Some((d, e)) => Some(phase_of(d, &e.live)),
            None => {
                let hw = self.durable.high_water.get(&instance.slot)?;
                (instance.generation <= *hw).then_some(Phase::Stopped)
            }
        }
    }

    /// The host an instance in the ledger was placed on.
    #[must_use]
    pub fn host_of(&self, instance: InstanceId) -> Option<HostId> {
        self.durable.instances.get(&instance).map(|d| d.host)
    }

    /// Desired count of `process_type`.
    #[must_use]
    pub fn desired(&self, process_type: TypeId) -> u16 {
        self.durable
            .formation
            .get(usize::from(process_type.0))
            .copied()
            .unwrap_or(0)
    }

    /// The app of `process_type` (the first app for an unknown type).
    #[must_use]
    pub fn app_of(&self, process_type: TypeId) -> AppId {
        self.apps
            .app_of
            .get(usize::from(process_type.0))
            .copied()
            .unwrap_or_default()
    }

    /// Whether a relaunch of `process_type` could be launched and paid now:
    /// its app's breaker lets it through and its bucket can pay.
    fn payable_now(&self, cfg: &Config, process_type: TypeId) -> bool {
        let app = self.app_of(process_type);
        self.breaker(app).allows_launch()
            && self
                .budget(self.bucket_of(cfg, process_type))
                .is_some_and(|b| b.can_spend(cfg))
    }

    /// Brings the payable types of `app` (of every app when `None`) up to
    /// date with its budget and breaker.
    pub(crate) fn refresh_payable(&mut self, cfg: &Config, app: Option<AppId>) {
        let apps = Arc::clone(&self.apps.types_of);
        let one;
        let types: &[Vec<TypeId>] = match app {
            // Under `fleet-wide-budget` one bucket pays for every app.
            Some(a) if !cfg.mutations.has(Mutation::FleetWideBudget) => {
                one = [apps.get(a.index()).cloned().unwrap_or_default()];
                &one
            }
            _ => &apps,
        };
        for t in types.iter().flatten() {
            let on = self.payable_now(cfg, *t);
            self.payable.set(*t, on);
        }
    }

    /// Whether the payable types are what the budgets and breakers say
    /// (for the invariant checker).
    pub(crate) fn payable_fresh(&self, cfg: &Config) -> bool {
        (0..cfg.process_types.len()).all(|t| {
            let t = TypeId(u16::try_from(t).unwrap_or(u16::MAX));
            self.payable.contains(t) == self.payable_now(cfg, t)
        })
    }

    /// How many apps the formation has.
    #[must_use]
    pub fn app_count(&self) -> usize {
        self.durable.budgets.len()
    }

    /// The app of each process type, indexed by `TypeId`
    /// (`Config::type_apps`).
    #[must_use]
    pub fn type_apps(&self) -> &[AppId] {
        &self.apps.app_of
    }

    /// The bucket a relaunch of `process_type` spends from: its app's, or
    /// the first app's for every type under `fleet-wide-budget`.
    #[must_use]
    pub fn bucket_of(&self, cfg: &Config, process_type: TypeId) -> AppId {
        if cfg.mutations.has(Mutation::FleetWideBudget) {
            return AppId(0);
        }
        self.app_of(process_type)
    }

    /// `app`'s breaker (closed for an unknown app).
    #[must_use]
    pub fn breaker(&self, app: AppId) -> Breaker {
        self.durable
            .breakers
            .get(app.index())
            .copied()
            .unwrap_or(Breaker::closed(Tick(0)))
    }

    /// The fleet breaker.
    #[must_use]
    pub fn fleet_breaker(&self) -> &FleetBreaker {
        &self.durable.fleet_breaker
    }

    /// `app`'s retry budget, if the app exists.
    #[must_use]
    pub fn budget(&self, app: AppId) -> Option<Budget> {
        self.durable.budgets.get(app.index()).copied()
    }

    /// Whether lockdown is on.
    #[must_use]
    pub fn lockdown(&self) -> bool {
        self.durable.lockdown
    }

    /// Per-slot backoff, for display.
    #[must_use]
    pub fn backoff(&self, slot: SlotId) -> Backoff {
        self.ledger.backoff(slot)
    }

    /// Slots of the formation with nothing occupying them.
    pub fn vacant_slots(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.ledger.vacant().iter().copied()
    }

    /// The earliest time at which a [`ManagerInput::Tick`] would change
    /// anything (a lease, a boot timeout, an entry going unknown, the probe
    /// credit, the breaker's cool-down); `None` when only an input can. A
    /// tick before it changes nothing, so a shell may sleep until then, or
    /// until its next input.
    #[must_use]
    pub fn next_wake(&self, cfg: &Config) -> Option<Tick> {
        let d = &self.durable;
        let budgets = d.budgets.iter().filter_map(Budget::next_change);
        let breakers = d.breakers.iter().filter_map(|b| b.next_change(cfg));
        [self.ledger.next_due(), d.fleet_breaker.next_change(cfg)]
            .into_iter()
            .flatten()
            .chain(budgets)
            .chain(breakers)
            .min()
    }

    /// The fleet's launch bound inputs at `now`, with `S` from `counters`
    /// (the shell's fold of the journal); see [`crate::launch_bound_inputs`].
    #[must_use]
    pub fn launch_bound_inputs(
        &self,
        cfg: &Config,
        counters: &Counters,
        now: Tick,
    ) -> LaunchBoundInputs {
        crate::budget::launch_bound_inputs(cfg, &self.durable, counters, now)
    }

    /// `app`'s launch bound inputs at `now`, with `S_a` = `boots`; see
    /// [`crate::budget::launch_bound_inputs_of_app`].
    #[must_use]
    pub fn launch_bound_inputs_of_app(
        &self,
        cfg: &Config,
        (app, boots): (AppId, u64),
        now: Tick,
    ) -> LaunchBoundInputs {
        crate::budget::launch_bound_inputs_of_app(
            cfg,
            &self.durable,
            (self.type_apps(), app),
            boots,
            now,
        )
    }

    /// Boots on `host` not yet confirmed ended (DESIGN.md shortcut 11):
    /// `Launching`, or stopping/unknown without the "boot seen done" mark.
    #[must_use]
    pub fn boots_unconfirmed(&self, cfg: &Config, host: HostId) -> usize {
        self.count_boots(host, cfg.mutations.has(Mutation::AdmissionCountsLaunching))
    }

    /// Boots on `host` not yet confirmed ended, by the shipped rule whatever
    /// the mutations: what the admission invariant is checked against.
    #[must_use]
    pub fn boots_unconfirmed_shipped(&self, host: HostId) -> usize {
        self.count_boots(host, false)
    }

    fn count_boots(&self, host: HostId, only_launching: bool) -> usize {
        self.ledger
            .entries_on(host)
            .iter()
            .filter(|e| match phase_of(&e.d, &e.live) {
                Phase::Launching => true,
                Phase::Stopping(_) | Phase::Unknown => !only_launching && !e.d.boot_seen_done,
                Phase::Up | Phase::Stopped => false,
            })
            .count()
    }

    /// Slots of the formation of `process_type` (index below the desired
    /// count) with an instance on `host` that was not asked to stop: one
    /// that is leaving, or above the formation (kept by lockdown), holds no
    /// share, and a slot whose old instance is still in the ledger beside
    /// its new one counts once. So a host's count is below the desired
    /// count whenever a slot of the formation is vacant.
    pub(crate) fn slots_of_type_on(&self, host: HostId, process_type: TypeId) -> usize {
        let desired = self.desired(process_type);
        let entries = self.ledger.entries_on(host);
        // Sorted by instance, so the type's entries are one run: found by
        // binary search, as a report asks this of each type it launches.
        let from = entries.partition_point(|e| e.id.slot.process_type < process_type);
        let mut last = None;
        entries
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|e| e.id.slot.process_type == process_type)
            .filter(|e| e.id.slot.index < desired && e.d.stop.is_none())
            // Sorted by instance, so a slot's instances are adjacent.
            .filter(|e| last.replace(e.id.slot) != Some(e.id.slot))
            .count()
    }

    /// Instances in the ledger placed on `host`.
    pub fn instances_on(&self, host: HostId) -> impl Iterator<Item = InstanceId> + '_ {
        self.ledger.entries_on(host).iter().map(|e| e.id)
    }

    /// Instances in the ledger of `slot`.
    pub fn instances_of(&self, slot: SlotId) -> impl Iterator<Item = InstanceId> + '_ {
        instances_of(&self.durable, slot)
    }

    /// Whether the ledger and its indexes are exactly what the durable
    /// state implies (for the invariant checker).
    pub(crate) fn check_ledger(&self, cfg: &Config) -> Result<(), crate::invariants::Violation> {
        self.ledger.check(cfg, &self.durable)
    }

    /// Renames every host id through `rename` (a permutation of the hosts).
    ///
    /// The manager treats host ids only as names: it places on the reporting
    /// host and never compares ids by order for a decision. So a renamed
    /// manager behaves like the original with its hosts relabelled, which is
    /// what the model checker's symmetry reduction relies on.
    pub fn rename_hosts(&mut self, rename: impl Fn(HostId) -> HostId) {
        for d in self.durable.instances.values_mut() {
            d.host = rename(d.host);
        }
        self.durable.paused_hosts = self
            .durable
            .paused_hosts
            .iter()
            .map(|h| rename(*h))
            .collect();
        self.ledger.rename_hosts(rename);
    }
}

impl TypeApps {
    fn of(cfg: &Config) -> TypeApps {
        let app_of = cfg.type_apps();
        let apps = app_of.iter().map(|a| a.index() + 1).max().unwrap_or(0);
        let mut types_of = vec![Vec::new(); apps];
        for (t, a) in app_of.iter().enumerate() {
            if let Some(v) = types_of.get_mut(a.index()) {
                v.push(TypeId(u16::try_from(t).unwrap_or(u16::MAX)));
            }
        }
        TypeApps {
            app_of: app_of.into(),
            types_of: types_of.into(),
        }
    }
}

/// The instances of `slot` in `durable`, in generation order.
pub(crate) fn instances_of(durable: &Durable, slot: SlotId) -> impl Iterator<Item = InstanceId> {
    let lo = InstanceId {
        slot,
        generation: Generation(0),
    };
    let hi = InstanceId {
        slot,
        generation: Generation(u32::MAX),
    };
    durable.instances.range(lo..=hi).map(|(id, _)| *id)
}
