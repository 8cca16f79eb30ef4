//! Unit tests of the agent's transitions: reports, launches (fenced by
//! generation and by incarnation), stops and tombstones, leases, renewal
//! and self-fencing, and process exits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::{inst, reply, slot};
use tally_core::agent::Local;
use tally_core::invariants::check_agent;
use tally_core::message::{Exited, Running};
use tally_core::{
    Agent, AgentEffect, AgentInput, AgentNote, AgentReport, Config, ExitOutcome, Generation,
    HostId, Incarnation, InstanceId, ManagerReply, RunPhase, Tick,
};

/// Steps `a` and returns its effects, checking its invariants.
fn step(a: &mut Agent, now: u64, input: AgentInput) -> Vec<AgentEffect> {
    let cfg = Config::example();
    let mut out = Vec::new();
    a.step(&cfg, Tick(now), input, &mut out);
    assert_eq!(check_agent(a, &cfg), Ok(()));
    out
}

fn receive(a: &mut Agent, now: u64, r: ManagerReply) -> Vec<AgentEffect> {
    step(a, now, AgentInput::ReplyReceived(r))
}

fn started(out: &[AgentEffect]) -> Vec<InstanceId> {
    out.iter()
        .filter_map(|e| match e {
            AgentEffect::StartProcess { instance } => Some(*instance),
            _ => None,
        })
        .collect()
}

fn killed(out: &[AgentEffect]) -> Vec<InstanceId> {
    out.iter()
        .filter_map(|e| match e {
            AgentEffect::KillProcess { instance } => Some(*instance),
            _ => None,
        })
        .collect()
}

fn sent(out: &[AgentEffect]) -> Option<AgentReport> {
    out.iter().find_map(|e| match e {
        AgentEffect::Send(r) => Some(r.clone()),
        _ => None,
    })
}

fn agent() -> Agent {
    Agent::new(HostId(0), Incarnation(1), Tick(0))
}

/// An agent that asked at 0 and was told at 0 to launch `ids`.
fn running(ids: &[InstanceId]) -> Agent {
    let mut a = agent();
    let out = receive(&mut a, 0, reply(0, 1, 0, &[], ids, &[]));
    assert_eq!(started(&out), ids.to_vec());
    a
}

#[test]
fn agent_reports_inventory_every_interval() {
    let mut a = running(&[inst(1, 0, 1)]);
    let r = sent(&step(&mut a, 0, AgentInput::Tick)).unwrap();
    assert_eq!(r.host, HostId(0));
    assert_eq!(r.incarnation, Incarnation(1));
    assert_eq!(r.sent_at, Tick(0));
    assert_eq!(
        r.running,
        vec![Running {
            instance: inst(1, 0, 1),
            phase: RunPhase::Booting
        }]
    );
    assert!(sent(&step(&mut a, 1, AgentInput::Tick)).is_none());
    let r = sent(&step(&mut a, 2, AgentInput::Tick)).unwrap();
    assert_eq!(r.sent_at, Tick(2));
    assert_eq!(a.next_report_at(), Tick(4));
}

#[test]
fn launch_starts_process_with_lease_from_request() {
    let mut a = agent();
    let out = receive(&mut a, 3, reply(0, 1, 1, &[], &[inst(1, 0, 1)], &[]));
    assert_eq!(
        out,
        vec![AgentEffect::StartProcess {
            instance: inst(1, 0, 1)
        }]
    );
    assert_eq!(
        a.instances().get(&inst(1, 0, 1)),
        Some(&Local {
            phase: RunPhase::Booting,
            lease_until: Tick(1 + 10)
        })
    );
    assert_eq!(a.highest(slot(1, 0)), Some(Generation(1)));
}

#[test]
fn launch_at_or_below_highest_generation_is_refused() {
    let mut a = running(&[inst(1, 0, 2)]);
    // A duplicate of the current generation, and an older one.
    for id in [inst(1, 0, 2), inst(1, 0, 1)] {
        let out = receive(&mut a, 1, reply(0, 1, 1, &[], &[id], &[]));
        assert!(started(&out).is_empty());
        assert!(out.contains(&AgentEffect::Note(AgentNote::StaleLaunch { instance: id })));
    }
    // A newer one starts.
    let out = receive(&mut a, 1, reply(0, 1, 1, &[], &[inst(1, 0, 3)], &[]));
    assert_eq!(started(&out), vec![inst(1, 0, 3)]);
}

#[test]
fn duplicated_launch_does_not_restart_a_failed_boot() {
    let mut a = running(&[inst(1, 0, 2)]);
    step(
        &mut a,
        1,
        AgentInput::ProcessExited {
            instance: inst(1, 0, 2),
        },
    );
    assert!(a.instances().is_empty());
    let out = receive(&mut a, 2, reply(0, 1, 0, &[], &[inst(1, 0, 2)], &[]));
    assert!(started(&out).is_empty());
    assert_eq!(
        a.pending_exits(),
        &[Exited {
            instance: inst(1, 0, 2),
            outcome: ExitOutcome::BootFailed
        }]
    );
}

#[test]
fn stop_of_unstarted_instance_leaves_tombstone() {
    let mut a = agent();
    let late = inst(0, 0, 3);
    let out = receive(&mut a, 1, reply(0, 1, 1, &[], &[], &[late]));
    assert!(killed(&out).is_empty());
    assert_eq!(a.highest(late.slot), Some(Generation(3)));
    assert_eq!(
        a.pending_exits(),
        &[Exited {
            instance: late,
            outcome: ExitOutcome::NeverStarted
        }]
    );
    // The launch overtaken by its own stop arrives: it must never start.
    let out = receive(&mut a, 2, reply(0, 1, 1, &[], &[late], &[]));
    assert!(started(&out).is_empty());
    assert!(out.contains(&AgentEffect::Note(AgentNote::StaleLaunch {
        instance: late
    })));
    // The next generation still starts.
    let out = receive(&mut a, 2, reply(0, 1, 2, &[], &[inst(0, 0, 4)], &[]));
    assert_eq!(started(&out), vec![inst(0, 0, 4)]);
}

#[test]
fn stop_in_one_reply_with_its_launch_starts_nothing() {
    // Stops are applied before launches in a reply.
    let mut a = agent();
    let id = inst(0, 0, 1);
    let out = receive(&mut a, 1, reply(0, 1, 1, &[], &[id], &[id]));
    assert!(started(&out).is_empty());
    assert!(a.instances().is_empty());
}

#[test]
fn stop_of_running_instance_kills_it_once() {
    let id = inst(1, 0, 1);
    let mut a = running(&[id]);
    let out = receive(&mut a, 1, reply(0, 1, 1, &[], &[], &[id]));
    assert_eq!(killed(&out), vec![id]);
    assert_eq!(a.instances().get(&id).unwrap().phase, RunPhase::Killing);
    let out = receive(&mut a, 2, reply(0, 1, 1, &[], &[], &[id]));
    assert!(
        killed(&out).is_empty(),
        "a duplicated stop kills nothing twice"
    );
    step(&mut a, 3, AgentInput::ProcessExited { instance: id });
    assert_eq!(
        a.pending_exits(),
        &[Exited {
            instance: id,
            outcome: ExitOutcome::Killed
        }]
    );
}

#[test]
fn launch_for_old_incarnation_starts_nothing() {
    let mut a = agent(); // incarnation 1
    let before = a.clone();
    let out = receive(&mut a, 5, reply(0, 0, 4, &[], &[inst(1, 0, 1)], &[]));
    assert!(started(&out).is_empty());
    assert!(out.contains(&AgentEffect::Note(AgentNote::StaleReply)));
    assert_eq!(a, before);
    // Nor does one for a later incarnation than this agent's.
    let out = receive(&mut a, 5, reply(0, 2, 4, &[], &[inst(1, 0, 1)], &[]));
    assert!(started(&out).is_empty());
}

#[test]
fn reply_to_a_request_from_the_future_starts_nothing() {
    let mut a = agent();
    let out = receive(&mut a, 5, reply(0, 1, 6, &[], &[inst(1, 0, 1)], &[]));
    assert!(started(&out).is_empty());
    assert!(out.contains(&AgentEffect::Note(AgentNote::StaleReply)));
}

#[test]
fn stale_reply_neither_renews_nor_launches_but_still_stops() {
    let id = inst(1, 0, 1);
    let mut a = running(&[id, inst(1, 1, 1)]);
    let out = receive(
        &mut a,
        5,
        reply(0, 0, 5, &[id], &[inst(1, 2, 1)], &[inst(1, 1, 1)]),
    );
    assert_eq!(killed(&out), vec![inst(1, 1, 1)]);
    assert!(started(&out).is_empty());
    assert_eq!(a.instances().get(&id).unwrap().lease_until, Tick(10));
}

#[test]
fn misrouted_reply_is_ignored() {
    let id = inst(1, 0, 1);
    let mut a = running(&[id]);
    let before = a.clone();
    let out = receive(&mut a, 1, reply(3, 1, 1, &[id], &[inst(1, 1, 1)], &[id]));
    assert_eq!(out, vec![AgentEffect::Note(AgentNote::Misrouted)]);
    assert_eq!(a, before);
    let mut r = reply(0, 1, 1, &[id], &[], &[id]);
    r.version = 9;
    let out = receive(&mut a, 1, r);
    assert_eq!(out, vec![AgentEffect::Note(AgentNote::Misrouted)]);
    assert_eq!(a, before);
}

#[test]
fn agent_self_fences_at_lease_expiry() {
    let id = inst(0, 0, 1);
    let mut a = running(&[id]);
    step(&mut a, 0, AgentInput::ProcessBooted { instance: id });
    let out = step(&mut a, 9, AgentInput::Tick);
    assert!(killed(&out).is_empty());
    let out = step(&mut a, 10, AgentInput::Tick);
    assert_eq!(killed(&out), vec![id]);
    assert!(out.contains(&AgentEffect::Note(AgentNote::SelfFenced { instance: id })));
    assert_eq!(a.instances().get(&id).unwrap().phase, RunPhase::Killing);
    let out = step(&mut a, 11, AgentInput::Tick);
    assert!(killed(&out).is_empty(), "fenced once");
    // A late renewal does not revive it.
    receive(&mut a, 12, reply(0, 1, 12, &[id], &[], &[]));
    assert_eq!(a.instances().get(&id).unwrap().phase, RunPhase::Killing);
    step(&mut a, 13, AgentInput::ProcessExited { instance: id });
    assert_eq!(a.pending_exits()[0].outcome, ExitOutcome::Killed);
}

#[test]
fn booting_instance_self_fences_too() {
    let id = inst(0, 0, 1);
    let mut a = running(&[id]);
    let out = step(&mut a, 10, AgentInput::Tick);
    assert_eq!(killed(&out), vec![id]);
}

#[test]
fn renewal_extends_only_listed_leases_and_never_shortens() {
    let (x, y) = (inst(1, 0, 1), inst(1, 1, 1));
    let mut a = running(&[x, y]);
    receive(&mut a, 6, reply(0, 1, 5, &[x], &[], &[]));
    assert_eq!(a.instances().get(&x).unwrap().lease_until, Tick(15));
    assert_eq!(a.instances().get(&y).unwrap().lease_until, Tick(10));
    // A reordered, older renewal keeps the later lease.
    receive(&mut a, 7, reply(0, 1, 2, &[x], &[], &[]));
    assert_eq!(a.instances().get(&x).unwrap().lease_until, Tick(15));
    // Renewal of an instance this agent does not run creates nothing.
    receive(&mut a, 7, reply(0, 1, 6, &[inst(1, 5, 5)], &[], &[]));
    assert_eq!(a.instances().len(), 2);
}

#[test]
fn launch_with_short_remaining_lease_is_refused_and_tombstoned() {
    let mut a = agent();
    let id = inst(1, 0, 1);
    // Asked at 0, answered at 8: 2 ticks of lease left, 3 needed.
    let out = receive(&mut a, 8, reply(0, 1, 0, &[], &[id], &[]));
    assert!(started(&out).is_empty());
    assert!(out.contains(&AgentEffect::Note(AgentNote::LeaseTooShort {
        instance: id
    })));
    assert_eq!(a.pending_exits()[0].outcome, ExitOutcome::NeverStarted);
    // The same launch answering a newer request can no longer start it.
    let out = receive(&mut a, 8, reply(0, 1, 8, &[], &[id], &[]));
    assert!(started(&out).is_empty());
    // Exactly the minimum is not enough: the lease is fenced at the tick
    // it ends, before that tick's report. One tick more is.
    let min = Config::example().first_lease_min_ticks();
    let out = receive(&mut a, 10 - min, reply(0, 1, 0, &[], &[inst(1, 1, 1)], &[]));
    assert!(started(&out).is_empty());
    let out = receive(
        &mut a,
        10 - min - 1,
        reply(0, 1, 0, &[], &[inst(1, 2, 1)], &[]),
    );
    assert_eq!(started(&out), vec![inst(1, 2, 1)]);
}

#[test]
fn exits_are_reported_once_with_their_outcome() {
    let (a1, a2, a3) = (inst(1, 0, 1), inst(1, 1, 1), inst(0, 0, 1));
    let mut a = running(&[a1, a2, a3]);
    step(&mut a, 0, AgentInput::ProcessBooted { instance: a2 });
    receive(&mut a, 0, reply(0, 1, 0, &[], &[], &[a3]));
    for id in [a1, a2, a3] {
        step(&mut a, 1, AgentInput::ProcessExited { instance: id });
    }
    let r = sent(&step(&mut a, 1, AgentInput::Tick)).unwrap();
    assert_eq!(
        r.exited,
        vec![
            Exited {
                instance: a1,
                outcome: ExitOutcome::BootFailed
            },
            Exited {
                instance: a2,
                outcome: ExitOutcome::Crashed
            },
            Exited {
                instance: a3,
                outcome: ExitOutcome::Killed
            },
        ]
    );
    assert!(r.running.is_empty());
    let r = sent(&step(&mut a, 3, AgentInput::Tick)).unwrap();
    assert!(r.exited.is_empty());
}

#[test]
fn process_booted_moves_booting_to_up_only() {
    let id = inst(1, 0, 1);
    let mut a = running(&[id]);
    step(&mut a, 1, AgentInput::ProcessBooted { instance: id });
    assert_eq!(a.instances().get(&id).unwrap().phase, RunPhase::Up);
    receive(&mut a, 1, reply(0, 1, 1, &[], &[], &[id]));
    step(&mut a, 2, AgentInput::ProcessBooted { instance: id });
    assert_eq!(a.instances().get(&id).unwrap().phase, RunPhase::Killing);
}

#[test]
fn events_for_unknown_processes_change_nothing() {
    let mut a = running(&[inst(1, 0, 1)]);
    let before = a.clone();
    for input in [
        AgentInput::ProcessBooted {
            instance: inst(1, 0, 9),
        },
        AgentInput::ProcessExited {
            instance: inst(1, 0, 9),
        },
    ] {
        assert!(step(&mut a, 1, input).is_empty());
    }
    assert_eq!(a, before);
}

#[test]
fn restarted_agent_ignores_launches_to_its_previous_life() {
    // Host crashed after asking (incarnation 1); it comes back as 2 and
    // remembers no generation. A launch answering the old request arrives.
    let mut a = Agent::new(HostId(0), Incarnation(2), Tick(0));
    let out = receive(&mut a, 1, reply(0, 1, 0, &[], &[inst(0, 0, 5)], &[]));
    assert!(started(&out).is_empty());
    let r = sent(&step(&mut a, 1, AgentInput::Tick)).unwrap();
    assert_eq!(r.incarnation, Incarnation(2));
    let out = receive(&mut a, 2, reply(0, 2, 1, &[], &[inst(0, 0, 6)], &[]));
    assert_eq!(started(&out), vec![inst(0, 0, 6)]);
}

#[test]
fn time_going_backwards_breaks_nothing() {
    let id = inst(1, 0, 1);
    let mut a = running(&[id]);
    step(&mut a, 9, AgentInput::Tick);
    // The shell passes an earlier time: a reply "from the future" is refused.
    let out = receive(&mut a, 2, reply(0, 1, 9, &[id], &[inst(1, 1, 1)], &[]));
    assert!(started(&out).is_empty());
    assert_eq!(a.instances().get(&id).unwrap().lease_until, Tick(10));
    let out = step(&mut a, 0, AgentInput::Tick);
    assert!(killed(&out).is_empty());
}
