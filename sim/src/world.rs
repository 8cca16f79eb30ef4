//! The simulated world and its event loop: hosts with disks and processes
//! (the ground truth), the network, and the real core (one `Manager`, one
//! `Agent` per host) driven only through their `step` functions.
//!
//! Time is a `u64` of simulated milliseconds; the core sees ticks of
//! [`TICK_MS`]. The manager's clock is the simulated clock; each agent's
//! clock runs off it by a fixed drift within `host.clock_drift_ppm`.
//!
//! Architecture invariant: the world never decides anything the core
//! decides. It performs the core's effects (start, kill, send), models the
//! physics (disk queue, boot and kill times, crashes, message delay, host
//! crashes, partitions) and observes; it reads ledger membership only from
//! the journal records the manager emits.

use crate::detector::Detector;
use crate::error::SimError;
use crate::policy::Policy;
use crate::report::{Held, Perf, Report, Sample, Summary, quantile};
use crate::rng::Rng;
use crate::scenario::{Event, HOUR_MS, Scenario, TICK_MS, curve_at, ms_from_h};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};
use std::time::Instant;
use tally_core::{
    Agent, AgentEffect, AgentInput, AgentNote, AgentReport, Alert, AppId, Breaker, Config,
    Counters, Effect, FleetBreaker, HostId, Incarnation, InstanceId, JournalRecord, Manager,
    ManagerInput, ManagerReply, Note, SlotId, Tick, TypeId, UserCommand, launch_bound,
};

/// A `HashMap` with a fixed hasher, so that runs are reproducible.
type DetMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// A `HashMap` keyed by instance ids with a fast fixed hasher: the two
/// million-entry maps (processes, ledger) are looked up on every event and
/// never iterated, so the hash function changes nothing observable.
type IdMap<V> = HashMap<InstanceId, V, BuildHasherDefault<IdHasher>>;

/// Multiply-rotate over the id's integer fields, then a 64-bit finalizer
/// (`fmix64`) so that both the low (bucket) and high (tag) bits are mixed.
#[derive(Default)]
struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.add(u64::from(*b));
        }
    }
    fn write_u8(&mut self, x: u8) {
        self.add(u64::from(x));
    }
    fn write_u16(&mut self, x: u16) {
        self.add(u64::from(x));
    }
    fn write_u32(&mut self, x: u32) {
        self.add(u64::from(x));
    }
    fn write_u64(&mut self, x: u64) {
        self.add(x);
    }
    fn write_usize(&mut self, x: usize) {
        self.add(x as u64);
    }
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Events more than one bucket ahead wait in per-bucket `Vec`s and enter
/// the heap only when the clock reaches their bucket, so the heap holds the
/// next few seconds (not the million far-off crash events) and stays in
/// cache. Pops come out in exactly `(at, seq)` order as with one heap.
const BUCKET_MS: u64 = 10_000;

#[derive(Default)]
struct Queue {
    near: BinaryHeap<Reverse<Scheduled>>,
    far: BTreeMap<u64, Vec<Scheduled>>,
    /// Buckets below this one have been moved into `near`.
    drained: u64,
}

impl Queue {
    fn push(&mut self, s: Scheduled) {
        let b = s.at / BUCKET_MS;
        if b < self.drained {
            self.near.push(Reverse(s));
        } else {
            self.far.entry(b).or_default().push(s);
        }
    }

    fn pop(&mut self) -> Option<Scheduled> {
        // Every event of a bucket starts at or after the bucket's start: move
        // the first bucket in while it may hold the earliest event.
        while let Some(entry) = self.far.first_entry() {
            let start = entry.key().saturating_mul(BUCKET_MS);
            if self.near.peek().is_some_and(|Reverse(s)| s.at < start) {
                break;
            }
            self.drained = entry.key().saturating_add(1);
            self.near.extend(entry.remove().into_iter().map(Reverse));
        }
        self.near.pop().map(|Reverse(s)| s)
    }
}

/// Progress of a run, handed to the caller's callback once per sample.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Simulated time reached, ms.
    pub now_ms: u64,
    /// Simulated length, ms.
    pub end_ms: u64,
    /// Events processed so far.
    pub events: u64,
    /// Instances in the ledger.
    pub ledger: u64,
}

#[derive(Debug)]
enum Ev {
    AgentWake(u16),
    Report(Box<AgentReport>),
    Reply(Box<ManagerReply>),
    DiskDone { host: u16, epoch: u32 },
    BootDone(InstanceId),
    Exit(InstanceId),
    Crash(InstanceId),
    ManagerTick,
    Sample,
    Warmup(u16),
    HostCrash([u32; 2]),
    HostRestart(u16),
    ManagerRestart,
    BadRelease([u32; 2]),
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProcState {
    Booting,
    Up,
    Killing,
}

#[derive(Clone, Copy, Debug)]
struct Proc {
    host: u16,
    pos: u32,
    state: ProcState,
    started_ms: u64,
    phantom: bool,
    singleton: bool,
}

struct Host {
    agent: Option<Agent>,
    incarnation: u32,
    epoch: u32,
    drift_ppm: i64,
    disk_free_at: u64,
    disk_jobs: u32,
    procs: Vec<InstanceId>,
    wake_at: u64,
}

#[derive(Default)]
struct Interval {
    launches: u64,
    boot_ms: Vec<u32>,
    timeouts: u64,
    retries_refused: u64,
}

/// One simulation run.
pub(crate) struct World<'a> {
    sc: &'a Scenario,
    cfg: Config,
    policy: Policy,
    seed: u64,
    rng: Rng,
    now: u64,
    end: u64,
    warmup_end: u64,
    seq: u64,
    queue: Queue,
    manager: Manager,
    hosts: Vec<Host>,
    procs: IdMap<Proc>,
    ledger: IdMap<u16>,
    singleton_alive: DetMap<SlotId, (u8, u64)>,
    type_app: Vec<u32>,
    type_singleton: Vec<bool>,
    types_by_warmup: Vec<TypeId>,
    partitions: Vec<(u64, u64, [u32; 2])>,
    crash_loops: Vec<(u64, u64, [u32; 2], u64)>,
    /// Bad releases in force: from when, which apps.
    bad_releases: Vec<(u64, [u32; 2])>,
    /// Apps some event of the scenario breaks (whether or not this run
    /// plays it): the others are the healthy apps whose relaunch delays
    /// are measured.
    troubled_apps: Vec<[u32; 2]>,
    /// Healthy apps' slots whose dyno crashed, and when: a boot of the slot
    /// ends the wait.
    awaiting_relaunch: DetMap<SlotId, u64>,
    /// Crash to replacement up, healthy apps, ms.
    relaunch_delays: Vec<u32>,
    out_m: Vec<Effect>,
    out_a: Vec<AgentEffect>,
    /// The journal's counters: the fold of every record the manager
    /// persisted (a restart keeps them, as the journal does).
    counters: Counters,
    // Observations.
    up: u64,
    phantoms: u64,
    overlaps_now: u64,
    interval: Interval,
    boot_all: Vec<u32>,
    boot_last_hour: Vec<(u64, u32)>,
    detector: Detector,
    summary: Summary,
    series: Vec<Sample>,
    perf: Perf,
}

impl<'a> World<'a> {
    pub(crate) fn new(sc: &'a Scenario, policy: Policy, seed: u64) -> Result<World<'a>, SimError> {
        let cfg = policy.configure(sc);
        let mut out_m = Vec::new();
        let manager = Manager::new(&cfg, Tick(0), &mut out_m).map_err(|e| SimError::Scenario {
            message: format!("core settings: {e}"),
        })?;
        let mut rng = Rng::new(seed);
        let drift = i64::from(sc.host.clock_drift_ppm);
        let hosts = (0..sc.fleet.hosts)
            .map(|_| Host {
                agent: None,
                incarnation: 0,
                epoch: 0,
                drift_ppm: if drift == 0 {
                    0
                } else {
                    i64::try_from(rng.upto(u64::try_from(2 * drift).unwrap_or(0))).unwrap_or(0)
                        - drift
                },
                disk_free_at: 0,
                disk_jobs: 0,
                procs: Vec::new(),
                wake_at: u64::MAX,
            })
            .collect();
        let mut type_app = Vec::new();
        let mut type_singleton = Vec::new();
        for p in &cfg.process_types {
            let app = p.app.trim_start_matches("app").parse::<u32>().unwrap_or(0);
            type_app.push(app);
            type_singleton.push(p.kind == tally_core::ProcessKind::Singleton);
        }
        let n_types = u16::try_from(cfg.process_types.len()).unwrap_or(u16::MAX);
        let types_by_warmup = (0..n_types).map(TypeId).collect();
        let mut partitions = Vec::new();
        let mut crash_loops = Vec::new();
        let troubled_apps = sc
            .events
            .iter()
            .filter_map(|e| match e {
                Event::BadRelease { apps, .. } | Event::CrashLoop { apps, .. } => Some(*apps),
                _ => None,
            })
            .collect();
        let played = sc
            .events
            .iter()
            .filter(|e| !(policy.without_bad_apps() && e.breaks_apps()));
        for e in played {
            match e {
                Event::Partition {
                    at_h,
                    until_h,
                    hosts,
                } => {
                    partitions.push((ms_from_h(*at_h), ms_from_h(*until_h), *hosts));
                }
                Event::CrashLoop {
                    at_h,
                    until_h,
                    apps,
                    after_ms,
                } => {
                    crash_loops.push((ms_from_h(*at_h), ms_from_h(*until_h), *apps, *after_ms));
                }
                Event::HostCrash { .. }
                | Event::ManagerRestart { .. }
                | Event::BadRelease { .. } => {}
            }
        }
        let summary = Summary {
            trigger_end_s: sc.trigger_end_h.map(|h| h * 3600.0),
            trigger_start_s: sc.trigger_window().map(|t| t.start_h * 3600.0),
            drift_start_s: sc.drift_start_h.map(|h| h * 3600.0),
            ..Summary::default()
        };
        let mut w = World {
            sc,
            cfg,
            policy,
            seed,
            rng,
            now: 0,
            end: ms_from_h(sc.duration_h),
            warmup_end: ms_from_h(sc.fleet.warmup_h),
            seq: 0,
            queue: Queue::default(),
            manager,
            hosts,
            procs: IdMap::default(),
            ledger: IdMap::default(),
            singleton_alive: DetMap::default(),
            type_app,
            type_singleton,
            types_by_warmup,
            partitions,
            crash_loops,
            bad_releases: Vec::new(),
            troubled_apps,
            awaiting_relaunch: DetMap::default(),
            relaunch_delays: Vec::new(),
            out_m,
            out_a: Vec::new(),
            counters: Counters::default(),
            up: 0,
            phantoms: 0,
            overlaps_now: 0,
            interval: Interval::default(),
            boot_all: Vec::new(),
            boot_last_hour: Vec::new(),
            detector: Detector::default(),
            summary,
            series: Vec::new(),
            perf: Perf::default(),
        };
        w.handle_manager_effects();
        w.schedule_start();
        Ok(w)
    }

    fn schedule_start(&mut self) {
        for h in 0..self.hosts.len() {
            let h16 = u16::try_from(h).unwrap_or(u16::MAX);
            self.start_agent(h16);
        }
        self.push(self.sc.manager_tick_ms, Ev::ManagerTick);
        self.push(self.sc.sample_ms, Ev::Sample);
        let n = self.types_by_warmup.len().max(1) as u64;
        for i in 0..self.types_by_warmup.len() {
            let at = self.warmup_end.saturating_mul(i as u64) / n;
            self.push(at, Ev::Warmup(u16::try_from(i).unwrap_or(u16::MAX)));
        }
        let events = self.sc.events.clone();
        let skip_bad = self.policy.without_bad_apps();
        for e in events {
            match e {
                Event::HostCrash { at_h, hosts } => {
                    self.push(ms_from_h(at_h), Ev::HostCrash(hosts))
                }
                Event::ManagerRestart { at_h } => self.push(ms_from_h(at_h), Ev::ManagerRestart),
                Event::BadRelease { at_h, apps } if !skip_bad => {
                    self.push(ms_from_h(at_h), Ev::BadRelease(apps));
                }
                Event::BadRelease { .. } | Event::Partition { .. } | Event::CrashLoop { .. } => {}
            }
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    /// Runs to the end and returns the report.
    pub(crate) fn run(mut self, progress: &mut dyn FnMut(Progress)) -> Report {
        let started = Instant::now();
        while let Some(s) = self.queue.pop() {
            if s.at > self.end {
                break;
            }
            self.now = s.at;
            self.perf.events += 1;
            let is_sample = matches!(s.ev, Ev::Sample);
            self.dispatch(s.ev);
            if is_sample {
                progress(Progress {
                    now_ms: self.now,
                    end_ms: self.end,
                    events: self.perf.events,
                    ledger: self.manager.ledger_len() as u64,
                });
            }
        }
        self.perf.wall_s = started.elapsed().as_secs_f64();
        self.perf.events_per_s = self.perf.events as f64 / self.perf.wall_s.max(1e-9);
        self.finish()
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::AgentWake(h) => self.on_wake(h),
            Ev::Report(r) => self.on_report_arrives(*r),
            Ev::Reply(r) => self.on_reply_arrives(*r),
            Ev::DiskDone { host, epoch } => {
                if let Some(hs) = self.hosts.get_mut(usize::from(host)) {
                    if hs.epoch == epoch {
                        hs.disk_jobs = hs.disk_jobs.saturating_sub(1);
                    }
                }
            }
            Ev::BootDone(id) => self.on_boot_done(id),
            Ev::Exit(id) => {
                if self
                    .procs
                    .get(&id)
                    .is_some_and(|p| p.state == ProcState::Killing)
                {
                    self.die(id, true);
                }
            }
            Ev::Crash(id) => {
                if self
                    .procs
                    .get(&id)
                    .is_some_and(|p| p.state == ProcState::Up)
                {
                    self.summary.crashes += 1;
                    let app = self.app_of(id);
                    if !self.troubled(app) && !self.procs.get(&id).is_some_and(|p| p.phantom) {
                        self.awaiting_relaunch.entry(id.slot).or_insert(self.now);
                    }
                    self.die(id, true);
                }
            }
            Ev::ManagerTick => {
                // A tick before the core's next wake changes nothing: skipped.
                let wake = self.manager.next_wake(&self.cfg);
                if wake.is_some_and(|w| self.tick() >= w) {
                    self.manager_step(ManagerInput::Tick);
                }
                self.push(self.now + self.sc.manager_tick_ms, Ev::ManagerTick);
            }
            Ev::Sample => {
                self.sample();
                self.push(self.now + self.sc.sample_ms, Ev::Sample);
            }
            Ev::Warmup(i) => self.on_warmup(i),
            Ev::HostCrash(range) => self.on_host_crash(range),
            Ev::HostRestart(h) => self.start_agent(h),
            Ev::BadRelease(apps) => self.on_bad_release(apps),
            Ev::ManagerRestart => {
                let durable = self.manager.durable().clone();
                if let Ok(m) = Manager::recover(&self.cfg, durable, self.tick()) {
                    self.manager = m;
                }
            }
        }
    }

    // ----- clocks -----

    fn tick(&self) -> Tick {
        Tick(self.now / TICK_MS)
    }

    fn agent_ms(&self, h: usize, sim_ms: u64) -> u64 {
        let drift = self.hosts.get(h).map_or(0, |x| x.drift_ppm);
        // In 64 bits when it fits (always, for runs of under ~10^13 ms with
        // sane drifts); a 128-bit division per agent step is measurable.
        if let Ok(sim) = i64::try_from(sim_ms) {
            if let Some(ms) = sim
                .checked_mul(drift)
                .and_then(|skew| sim.checked_add(skew / 1_000_000))
            {
                return u64::try_from(ms.max(0)).unwrap_or(u64::MAX);
            }
        }
        let sim = i128::from(sim_ms);
        let ms = sim + sim * i128::from(drift) / 1_000_000;
        u64::try_from(ms.max(0)).unwrap_or(u64::MAX)
    }

    /// The first simulated ms at which host `h`'s agent clock reads `tick`.
    fn sim_ms_for_agent_tick(&self, h: usize, tick: Tick) -> u64 {
        let drift = self.hosts.get(h).map_or(0, |x| x.drift_ppm);
        // The same quotient as in 128 bits, in 64 when nothing overflows.
        let fast = i64::try_from(tick.0.saturating_mul(TICK_MS))
            .ok()
            .and_then(|target| {
                let denom = drift.checked_add(1_000_000)?;
                let num = target
                    .checked_mul(1_000_000)?
                    .checked_add(denom.checked_sub(1)?)?;
                Some(u64::try_from(num / denom.max(1)).unwrap_or(u64::MAX))
            });
        let mut at = fast.unwrap_or_else(|| {
            let target = i128::from(tick.0.saturating_mul(TICK_MS));
            let denom = 1_000_000 + i128::from(drift);
            u64::try_from((target * 1_000_000 + denom - 1) / denom.max(1)).unwrap_or(u64::MAX)
        });
        while self.agent_ms(h, at) < tick.0.saturating_mul(TICK_MS) {
            at = at.saturating_add(1);
        }
        at
    }

    fn partitioned(&self, host: u16) -> bool {
        let h = u32::from(host);
        self.partitions
            .iter()
            .any(|(from, until, r)| *from <= self.now && self.now < *until && r[0] <= h && h < r[1])
    }

    fn latency(&mut self) -> u64 {
        self.sc.network.latency_ms + self.rng.upto(self.sc.network.jitter_ms)
    }

    // ----- agents -----

    fn start_agent(&mut self, h: u16) {
        let now = Tick(self.agent_ms(usize::from(h), self.now) / TICK_MS);
        if let Some(host) = self.hosts.get_mut(usize::from(h)) {
            host.incarnation += 1;
            host.agent = Some(Agent::new(HostId(h), Incarnation(host.incarnation), now));
            host.wake_at = u64::MAX;
        }
        self.reschedule_wake(h);
    }

    fn on_wake(&mut self, h: u16) {
        let Some(host) = self.hosts.get_mut(usize::from(h)) else {
            return;
        };
        if host.wake_at != self.now {
            return; // superseded by an earlier wake
        }
        host.wake_at = u64::MAX;
        self.agent_step(h, AgentInput::Tick);
    }

    fn reschedule_wake(&mut self, h: u16) {
        let hi = usize::from(h);
        let Some(agent) = self.hosts.get(hi).and_then(|x| x.agent.as_ref()) else {
            return;
        };
        let next = agent.next_wake();
        let at = self.sim_ms_for_agent_tick(hi, next).max(self.now);
        let current = self.hosts.get(hi).map_or(u64::MAX, |x| x.wake_at);
        if at < current || current < self.now {
            if let Some(host) = self.hosts.get_mut(hi) {
                host.wake_at = at;
            }
            self.push(at, Ev::AgentWake(h));
        }
    }

    fn agent_step(&mut self, h: u16, input: AgentInput) {
        let hi = usize::from(h);
        let now = Tick(self.agent_ms(hi, self.now) / TICK_MS);
        let mut out = std::mem::take(&mut self.out_a);
        out.clear();
        let started = Instant::now();
        let Some(agent) = self.hosts.get_mut(hi).and_then(|x| x.agent.as_mut()) else {
            self.out_a = out;
            return;
        };
        agent.step(&self.cfg, now, input, &mut out);
        self.perf.agent_s += started.elapsed().as_secs_f64();
        self.perf.agent_steps += 1;
        for e in out.drain(..) {
            match e {
                AgentEffect::StartProcess { instance } => self.start_process(h, instance),
                AgentEffect::KillProcess { instance } => self.kill_process(instance),
                AgentEffect::Send(report) => {
                    if self.partitioned(h) {
                        self.summary.messages_dropped += 1;
                    } else {
                        let at = self.now + self.latency();
                        self.push(at, Ev::Report(Box::new(report)));
                    }
                }
                AgentEffect::Note(n) => {
                    if let AgentNote::SelfFenced { .. } = n {
                        self.summary.self_fenced += 1;
                    }
                }
            }
        }
        self.out_a = out;
        self.reschedule_wake(h);
    }

    fn on_reply_arrives(&mut self, reply: ManagerReply) {
        let h = reply.host.0;
        let down = self
            .hosts
            .get(usize::from(h))
            .is_none_or(|x| x.agent.is_none());
        if down || self.partitioned(h) {
            self.summary.messages_dropped += 1;
            return;
        }
        self.agent_step(h, AgentInput::ReplyReceived(reply));
    }

    // ----- processes (ground truth) -----

    fn start_process(&mut self, h: u16, instance: InstanceId) {
        if self.procs.contains_key(&instance) {
            return;
        }
        let hm = &self.sc.host;
        let t = self.now;
        let factor =
            curve_at(&self.sc.curves.load, t, 1.0) * curve_at(&self.sc.curves.fsync, t, 1.0);
        let app_jitter = self.rng.unit() * 2.0 - 1.0;
        let app_ms = (hm.app_start_ms as f64
            + hm.app_start_jitter_ms as f64 * app_jitter
            + curve_at(&self.sc.curves.boot_shift_ms, t, 0.0))
        .max(0.0) as u64;
        let Some(host) = self.hosts.get_mut(usize::from(h)) else {
            return;
        };
        let contention = 1.0 + hm.contention_per_boot * f64::from(host.disk_jobs);
        let work = (hm.disk_ms_per_boot as f64 * factor * contention).max(0.0) as u64;
        let disk_done = host.disk_free_at.max(t) + work;
        host.disk_free_at = disk_done;
        host.disk_jobs += 1;
        let epoch = host.epoch;
        let pos = u32::try_from(host.procs.len()).unwrap_or(u32::MAX);
        host.procs.push(instance);
        let singleton = self
            .type_singleton
            .get(usize::from(instance.slot.process_type.0))
            .copied()
            .unwrap_or(false);
        let phantom = self.ledger.get(&instance) != Some(&h);
        self.procs.insert(
            instance,
            Proc {
                host: h,
                pos,
                state: ProcState::Booting,
                started_ms: t,
                phantom,
                singleton,
            },
        );
        if phantom {
            self.phantoms += 1;
            self.summary.phantoms_total += 1;
        }
        if singleton {
            let now = self.now;
            let e = self
                .singleton_alive
                .entry(instance.slot)
                .or_insert((0, now));
            e.0 += 1;
            if e.0 == 2 {
                e.1 = now;
                self.summary.singleton_overlaps += 1;
                self.overlaps_now += 1;
            }
        }
        self.push(disk_done, Ev::DiskDone { host: h, epoch });
        self.push(disk_done + app_ms, Ev::BootDone(instance));
    }

    fn on_boot_done(&mut self, id: InstanceId) {
        let Some(p) = self.procs.get(&id) else {
            return;
        };
        if p.state != ProcState::Booting {
            return;
        }
        if self.bad_release_at(id, p.started_ms) {
            // The new release never boots: it exits, and its agent reports
            // a failed boot.
            self.summary.boot_failures += 1;
            self.die(id, true);
            return;
        }
        let Some(p) = self.procs.get_mut(&id) else {
            return;
        };
        p.state = ProcState::Up;
        let (h, phantom, started) = (p.host, p.phantom, p.started_ms);
        if !phantom {
            self.up += 1;
            if let Some(t0) = self.awaiting_relaunch.remove(&id.slot) {
                let delay = u32::try_from(self.now.saturating_sub(t0)).unwrap_or(u32::MAX);
                self.relaunch_delays.push(delay);
            }
        }
        let boot_ms = u32::try_from(self.now - started).unwrap_or(u32::MAX);
        self.interval.boot_ms.push(boot_ms);
        self.boot_all.push(boot_ms);
        self.boot_last_hour.push((self.now, boot_ms));
        self.summary.boots_total += 1;
        // The baseline is learned over the hour after the warm-up, and never
        // across the scenario's drift.
        let calibrating = self.now >= self.warmup_end
            && self.now < self.warmup_end + HOUR_MS as u64
            && self
                .sc
                .drift_start_h
                .is_none_or(|d| ms_from_h(d) > self.now);
        if self.now >= self.warmup_end {
            self.detector
                .observe(self.now, f64::from(boot_ms), calibrating);
        }
        self.agent_step(h, AgentInput::ProcessBooted { instance: id });
        self.schedule_crash(id);
    }

    /// The scenario's app number of `id` (`appN`).
    fn app_of(&self, id: InstanceId) -> u32 {
        self.type_app
            .get(usize::from(id.slot.process_type.0))
            .copied()
            .unwrap_or(0)
    }

    /// Whether some event of the scenario breaks `app`.
    fn troubled(&self, app: u32) -> bool {
        self.troubled_apps.iter().any(|r| r[0] <= app && app < r[1])
    }

    /// Whether `id`, launched at `started_ms`, runs a bad release.
    fn bad_release_at(&self, id: InstanceId, started_ms: u64) -> bool {
        let app = self.app_of(id);
        self.bad_releases
            .iter()
            .any(|(at, r)| *at <= started_ms && r[0] <= app && app < r[1])
    }

    /// Apps `range` deploy a release that never boots: a restart of each of
    /// their types, through the core.
    fn on_bad_release(&mut self, range: [u32; 2]) {
        self.bad_releases.push((self.now, range));
        let types: Vec<TypeId> = self
            .type_app
            .iter()
            .enumerate()
            .filter(|(_, app)| range[0] <= **app && **app < range[1])
            .map(|(t, _)| TypeId(u16::try_from(t).unwrap_or(u16::MAX)))
            .collect();
        for process_type in types {
            self.manager_step(ManagerInput::User(UserCommand::Restart {
                process_type: Some(process_type),
            }));
        }
    }

    fn schedule_crash(&mut self, id: InstanceId) {
        let app = self.app_of(id);
        let now = self.now;
        let looping = self
            .crash_loops
            .iter()
            .find(|(from, until, r, _)| *from <= now && now < *until && r[0] <= app && app < r[1])
            .map(|(_, _, _, after)| *after);
        let at = match looping {
            Some(after) => now + after,
            None => {
                let rate = self.sc.host.crash_per_dyno_day;
                if rate <= 0.0 {
                    return;
                }
                now.saturating_add(self.rng.exp_ms(24.0 * HOUR_MS / rate))
            }
        };
        if at <= self.end {
            self.push(at, Ev::Crash(id));
        }
    }

    fn kill_process(&mut self, id: InstanceId) {
        let Some(p) = self.procs.get_mut(&id) else {
            return;
        };
        if p.state == ProcState::Killing {
            return;
        }
        if p.state == ProcState::Up && !p.phantom {
            self.up = self.up.saturating_sub(1);
        }
        p.state = ProcState::Killing;
        self.push(self.now + self.sc.host.kill_ms, Ev::Exit(id));
    }

    /// The process dies; its agent hears of it when `notify`.
    fn die(&mut self, id: InstanceId, notify: bool) {
        let Some(p) = self.procs.remove(&id) else {
            return;
        };
        if p.state == ProcState::Up && !p.phantom {
            self.up = self.up.saturating_sub(1);
        }
        if p.phantom {
            self.phantoms = self.phantoms.saturating_sub(1);
        }
        if p.singleton {
            self.singleton_gone(id.slot);
        }
        if let Some(host) = self.hosts.get_mut(usize::from(p.host)) {
            let pos = p.pos as usize;
            if pos < host.procs.len() {
                host.procs.swap_remove(pos);
                if let Some(moved) = host.procs.get(pos).copied() {
                    if let Some(m) = self.procs.get_mut(&moved) {
                        m.pos = p.pos;
                    }
                }
            }
        }
        if notify {
            self.agent_step(p.host, AgentInput::ProcessExited { instance: id });
        }
    }

    fn singleton_gone(&mut self, slot: SlotId) {
        let now = self.now;
        let mut remove = false;
        if let Some(e) = self.singleton_alive.get_mut(&slot) {
            if e.0 == 2 {
                self.summary.singleton_overlap_s += now.saturating_sub(e.1) as f64 / 1000.0;
                self.overlaps_now = self.overlaps_now.saturating_sub(1);
            }
            e.0 = e.0.saturating_sub(1);
            remove = e.0 == 0;
        }
        if remove {
            self.singleton_alive.remove(&slot);
        }
    }

    fn on_host_crash(&mut self, range: [u32; 2]) {
        for h in range[0]..range[1].min(self.sc.fleet.hosts) {
            let h16 = u16::try_from(h).unwrap_or(u16::MAX);
            let Some(host) = self.hosts.get_mut(usize::from(h16)) else {
                continue;
            };
            if host.agent.is_none() {
                continue;
            }
            host.agent = None;
            host.epoch += 1;
            host.disk_free_at = self.now;
            host.disk_jobs = 0;
            host.wake_at = u64::MAX;
            let victims = std::mem::take(&mut host.procs);
            for id in victims {
                if let Some(p) = self.procs.get_mut(&id) {
                    p.pos = u32::MAX; // already out of the host's list
                }
                self.die(id, false);
            }
            self.push(self.now + self.sc.host.down_ms, Ev::HostRestart(h16));
        }
    }

    // ----- the manager -----

    fn on_report_arrives(&mut self, report: AgentReport) {
        if self.partitioned(report.host.0) {
            self.summary.messages_dropped += 1;
            return;
        }
        self.perf.report_instances += report.running.len() as u64;
        self.manager_step(ManagerInput::ReportReceived(report));
    }

    fn on_warmup(&mut self, i: u16) {
        let Some(process_type) = self.types_by_warmup.get(usize::from(i)).copied() else {
            return;
        };
        let count = self
            .cfg
            .process_type(process_type)
            .map_or(0, |p| p.count_max);
        self.manager_step(ManagerInput::User(UserCommand::Scale {
            process_type,
            count,
        }));
    }

    fn manager_step(&mut self, input: ManagerInput) {
        let kind = match input {
            ManagerInput::Tick => 0,
            ManagerInput::ReportReceived(_) => 1,
            ManagerInput::User(_)
            | ManagerInput::Operator(_)
            | ManagerInput::LeadershipConfirmed { .. }
            | ManagerInput::LeadershipLost => 2,
        };
        let started = Instant::now();
        let now = self.tick();
        // A refused command changes nothing; the simulator sends none that
        // the core refuses, and counts nothing if it did.
        let _ = self.manager.step(&self.cfg, now, input, &mut self.out_m);
        let spent = started.elapsed().as_secs_f64();
        match kind {
            0 => {
                self.perf.manager_tick_s += spent;
                self.perf.manager_ticks += 1;
            }
            1 => {
                self.perf.manager_report_s += spent;
                self.perf.manager_reports += 1;
            }
            _ => self.perf.manager_user_s += spent,
        }
        self.handle_manager_effects();
    }

    fn handle_manager_effects(&mut self) {
        let mut out = std::mem::take(&mut self.out_m);
        let mut launched = false;
        for e in out.drain(..) {
            match e {
                Effect::Persist(record) => launched |= self.observe_record(&record),
                Effect::Send(reply) => {
                    let h = reply.host.0;
                    if self.partitioned(h) {
                        self.summary.messages_dropped += 1;
                    } else {
                        let at = self.now + self.latency();
                        self.push(at, Ev::Reply(Box::new(reply)));
                    }
                }
                Effect::Alert(Alert::FleetBreakerTripped) => {
                    self.summary.breaker_trips += 1;
                    self.summary.fleet_breaker_trips += 1;
                    if self.summary.first_trip_s.is_none() {
                        self.summary.first_trip_s = Some(self.now as f64 / 1000.0);
                    }
                }
                Effect::Alert(Alert::BreakerTripped { .. }) => {
                    self.summary.breaker_trips += 1;
                    self.summary.app_breaker_trips += 1;
                    if self.summary.first_trip_s.is_none() {
                        self.summary.first_trip_s = Some(self.now as f64 / 1000.0);
                    }
                }
                Effect::Alert(Alert::GenerationAboveHighWater { .. }) => {}
                Effect::Note(n) => self.observe_note(n),
            }
        }
        self.out_m = out;
        if launched {
            self.check_launch_bound();
        }
    }

    /// Ledger membership, read from the journal; returns whether it launched.
    fn observe_record(&mut self, record: &JournalRecord) -> bool {
        self.counters.apply(record);
        match *record {
            JournalRecord::InstanceLaunched { instance, host, .. } => {
                self.ledger.insert(instance, host.0);
                self.summary.launches_total += 1;
                self.interval.launches += 1;
                true
            }
            JournalRecord::InstanceStopped { instance } => {
                self.ledger.remove(&instance);
                if let Some(p) = self.procs.get_mut(&instance) {
                    if !p.phantom {
                        p.phantom = true;
                        if p.state == ProcState::Up {
                            self.up = self.up.saturating_sub(1);
                        }
                        self.phantoms += 1;
                        self.summary.phantoms_total += 1;
                    }
                }
                false
            }
            _ => false,
        }
    }

    fn observe_note(&mut self, n: Note) {
        match n {
            Note::BootTimedOut { .. } => {
                self.summary.timeouts_total += 1;
                self.interval.timeouts += 1;
                if self.summary.first_timeout_s.is_none() && self.now >= self.warmup_end {
                    self.summary.first_timeout_s = Some(self.now as f64 / 1000.0);
                }
            }
            Note::BootSucceeded { .. } => self.summary.successful_boots += 1,
            Note::PhantomReaped { .. } => self.summary.phantoms_reaped += 1,
            Note::RetryRefused { .. } => {
                self.summary.retries_refused += 1;
                self.interval.retries_refused += 1;
            }
            Note::LeaseExpired { .. } => self.summary.leases_expired += 1,
            _ => {}
        }
    }

    fn bound(&self) -> u64 {
        let inputs = self
            .manager
            .launch_bound_inputs(&self.cfg, &self.counters, self.tick());
        launch_bound(&self.cfg, inputs)
    }

    /// Each app's launches against its own bound (S3 per app), and the
    /// troubled apps' launches against theirs together.
    fn check_app_bounds(&mut self) {
        let now = self.tick();
        let names = self.cfg.app_names().len();
        for a in 0..names {
            let app = AppId(u16::try_from(a).unwrap_or(u16::MAX));
            let counts = self.counters.of_app(self.manager.type_apps(), app);
            let inputs = self.manager.launch_bound_inputs_of_app(
                &self.cfg,
                (app, counts.boots_seen_done),
                now,
            );
            let bound = launch_bound(&self.cfg, inputs);
            if counts.launches > bound {
                self.summary.apps_over_bound += 1;
            }
            // Apps are named `appN` in order, so index `a` is app `N = a`.
            if self.troubled(u32::try_from(a).unwrap_or(u32::MAX)) {
                self.summary.troubled_launches += counts.launches;
                self.summary.troubled_launch_bound += bound;
            }
        }
    }

    fn check_launch_bound(&mut self) {
        let bound = self.bound();
        let launches = self.summary.launches_total;
        if launches > bound {
            self.summary.launch_bound_exceeded_steps += 1;
            self.summary.launch_bound_excess_max =
                self.summary.launch_bound_excess_max.max(launches - bound);
        }
    }

    // ----- observation -----

    fn check_invariants(&mut self) {
        let started = Instant::now();
        let mut first = tally_core::invariants::check_manager(&self.manager, &self.cfg).err();
        for host in &self.hosts {
            if let Some(a) = &host.agent {
                if first.is_none() {
                    first = tally_core::invariants::check_agent(a, &self.cfg).err();
                }
            }
        }
        if let Some(v) = first {
            self.summary.invariant_violations += 1;
            if self.summary.first_violation.is_none() {
                self.summary.first_violation = Some(format!("t={}s: {v}", self.now / 1000));
            }
        }
        self.perf.invariants_s += started.elapsed().as_secs_f64();
    }

    fn sample(&mut self) {
        // The full check costs O(ledger x instances per host) (see the
        // report); every tenth sample on small fleets, hourly on large ones.
        let every = if self.manager.ledger_len() > 200_000 {
            60
        } else {
            10
        };
        if self.series.len() % every == 0 {
            self.check_invariants();
        }
        let iv = std::mem::take(&mut self.interval);
        let mut boots = iv.boot_ms;
        let desired: u64 = (0..self.cfg.process_types.len())
            .map(|t| u64::from(self.manager.desired(TypeId(u16::try_from(t).unwrap_or(0)))))
            .sum();
        let durable = self.manager.durable();
        let breaker = match durable.fleet_breaker {
            FleetBreaker::Closed { .. } => 0,
            FleetBreaker::HalfOpen { .. } => 1,
            FleetBreaker::Open { .. } => 2,
        };
        let apps_held = durable
            .breakers
            .iter()
            .filter(|b| !matches!(b, Breaker::Closed { .. }))
            .count() as u64;
        let tokens_milli: u64 = durable
            .budgets
            .iter()
            .map(|b| u64::from(b.tokens_milli))
            .sum();
        let s = Sample {
            t_s: self.now as f64 / 1000.0,
            launch_rate: iv.launches as f64 / (self.sc.sample_ms as f64 / 1000.0),
            boots: boots.len() as u64,
            boot_p50_ms: quantile(&mut boots, 0.5),
            boot_p99_ms: quantile(&mut boots, 0.99),
            timeouts: iv.timeouts,
            alive: self.procs.len() as u64,
            running: self.up,
            desired,
            phantoms: self.phantoms,
            singleton_overlaps: self.overlaps_now,
            ledger: self.manager.ledger_len() as u64,
            disk_queue_max: self
                .hosts
                .iter()
                .map(|h| u64::from(h.disk_jobs))
                .max()
                .unwrap_or(0),
            breaker,
            apps_held,
            tokens: tokens_milli as f64 / 1000.0,
            cusum: self.detector.cusum,
            retries_refused: iv.retries_refused,
            held: self.held(desired),
        };
        let sm = &mut self.summary;
        sm.launch_rate_peak = sm.launch_rate_peak.max(s.launch_rate);
        if sm.trigger_end_s.is_some_and(|t| s.t_s > t) {
            sm.launch_rate_peak_after_trigger =
                sm.launch_rate_peak_after_trigger.max(s.launch_rate);
        }
        sm.phantoms_max = sm.phantoms_max.max(s.phantoms);
        if let Some(t) = sm.trigger_end_s {
            if sm.recover_s.is_none() && s.t_s >= t && s.running >= s.desired && s.desired > 0 {
                sm.recover_s = Some(s.t_s - t);
            }
        }
        self.series.push(s);
        let hour_ago = self.now.saturating_sub(HOUR_MS as u64);
        self.boot_last_hour.retain(|(t, _)| *t >= hour_ago);
    }

    /// The desired dynos not running now, by what holds each back (see
    /// [`Held`]): the vacant slots in the order the core visits them, each
    /// bucket paying for as many as it holds tokens (and a probe credit).
    /// Observation only: the core decides; this names what it waits for.
    fn held(&self, desired: u64) -> Held {
        let m = &self.manager;
        let now = self.tick();
        let mut held = Held::default();
        let fleet_open = !m.fleet_breaker().allows_launch();
        let free = &m.durable().free_launches;
        // Launches each bucket can still pay, filled in on first use.
        let mut payable: Vec<Option<u64>> = vec![None; m.app_count()];
        let mut vacant = 0u64;
        for slot in m.vacant_slots() {
            vacant += 1;
            if fleet_open {
                held.fleet_breaker += 1;
                continue;
            }
            if m.backoff(slot).not_before > now {
                held.backoff += 1;
                continue;
            }
            let app = m.app_of(slot.process_type);
            if !m.breaker(app).allows_launch() {
                held.app_breaker += 1;
                continue;
            }
            if free.contains(&slot) {
                held.placement += 1;
                continue;
            }
            let bucket = m.bucket_of(&self.cfg, slot.process_type);
            let left = payable.get_mut(bucket.index()).map(|left| {
                left.get_or_insert_with(|| {
                    m.budget(bucket)
                        .map_or(0, |b| b.relaunches_payable(&self.cfg))
                })
            });
            match left {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    held.placement += 1;
                }
                _ => held.budget += 1,
            }
        }
        held.not_up = desired.saturating_sub(self.up).saturating_sub(vacant);
        held
    }

    /// From the trigger's start to the recovery (or the end): what held
    /// the missing dynos, in dyno-seconds, and the relaunches refused.
    fn recovery_window(&mut self) {
        let sm = &mut self.summary;
        let Some(from) = sm.trigger_start_s else {
            return;
        };
        let to = match (sm.trigger_end_s, sm.recover_s) {
            (Some(end), Some(r)) => end + r,
            _ => f64::INFINITY,
        };
        let every = (self.sc.sample_ms / 1000).max(1);
        for s in self.series.iter().filter(|s| s.t_s >= from && s.t_s <= to) {
            sm.held_in_recovery.add(&s.held, every);
            sm.retries_refused_in_recovery += s.retries_refused;
        }
    }

    fn finish(mut self) -> Report {
        self.check_invariants();
        self.summary.launch_bound_final = self.bound();
        self.summary.first_launches = self.manager.durable().free_launches_granted_total();
        // A crash still waiting at the end counts with its wait so far (a
        // lower bound): a policy that never relaunches must not look fast.
        self.summary.relaunches_pending = self.awaiting_relaunch.len() as u64;
        let now = self.now;
        let waits = self
            .awaiting_relaunch
            .values()
            .map(|t0| u32::try_from(now.saturating_sub(*t0)).unwrap_or(u32::MAX));
        self.relaunch_delays.extend(waits);
        self.summary.relaunches_measured = self.relaunch_delays.len() as u64;
        self.summary.relaunch_delay_p50_s = quantile(&mut self.relaunch_delays, 0.5) / 1000.0;
        self.summary.relaunch_delay_p99_s = quantile(&mut self.relaunch_delays, 0.99) / 1000.0;
        self.check_app_bounds();
        self.summary.boot_p50_ms = quantile(&mut self.boot_all, 0.5);
        self.summary.boot_p99_ms = quantile(&mut self.boot_all, 0.99);
        let mut last: Vec<u32> = self.boot_last_hour.iter().map(|(_, b)| *b).collect();
        self.summary.boots_last_hour = last.len() as u64;
        self.summary.boot_p50_last_hour_ms = quantile(&mut last, 0.5);
        self.summary.running_final = self.up;
        self.summary.desired_final = self.series.last().map_or(0, |s| s.desired);
        self.summary.alert_s = self.detector.alert_at_ms.map(|t| t as f64 / 1000.0);
        match (self.summary.alert_s, self.summary.drift_start_s) {
            (Some(a), Some(d)) if a >= d => self.summary.alert_delay_s = Some(a - d),
            (Some(_), _) => self.summary.false_alarm = true,
            (None, _) => {}
        }
        if let (Some(a), Some(f), false) = (
            self.summary.alert_s,
            self.summary.first_timeout_s,
            self.summary.false_alarm,
        ) {
            self.summary.alert_lead_s = Some(f - a);
        }
        self.recovery_window();
        // Still open overlaps count up to the end.
        let open: Vec<u64> = self
            .singleton_alive
            .values()
            .filter(|(n, _)| *n >= 2)
            .map(|(_, since)| *since)
            .collect();
        for since in open {
            self.summary.singleton_overlap_s += self.now.saturating_sub(since) as f64 / 1000.0;
        }
        Report {
            scenario: self.sc.name.clone(),
            description: self.sc.description.clone(),
            trigger: self.sc.trigger_window().map(|t| t.label),
            warmup_h: self.sc.fleet.warmup_h,
            boot_timeout_s: self.sc.core.boot_timeout_ms as f64 / 1000.0,
            policy: self.policy,
            seed: self.seed,
            hosts: self.sc.fleet.hosts,
            dynos: self.summary.desired_final,
            duration_s: self.end as f64 / 1000.0,
            summary: self.summary,
            detector: self.detector,
            series: self.series,
            perf: self.perf,
        }
    }
}
