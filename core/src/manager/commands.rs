//! Commands: a user's (scale, restart, deploy), refused as a whole or
//! applied as a whole, and an operator's (lockdown, breaker, pause).

use super::Step;
use super::types::{CommandKind, OperatorCommand, Rejected, UserCommand};
use crate::breaker::FleetBreaker;
use crate::ids::{Generation, InstanceId, SlotId, TypeId};
use crate::journal::{JournalRecord, StopReason};

impl Step<'_> {
    pub(super) fn on_user(&mut self, command: UserCommand) -> Result<(), Rejected> {
        match command {
            UserCommand::Scale {
                process_type,
                count,
            } => self.scale(process_type, count),
            UserCommand::Restart { process_type } => {
                if let Some(t) = process_type {
                    self.cfg
                        .process_type(t)
                        .ok_or(Rejected::UnknownProcessType { process_type: t })?;
                }
                self.refuse_in_lockdown(CommandKind::Restart)?;
                self.replace(|s| process_type.is_none_or(|t| s.process_type == t));
                Ok(())
            }
            UserCommand::RestartDyno { slot } => {
                let t = slot.process_type;
                self.cfg
                    .process_type(t)
                    .ok_or(Rejected::UnknownProcessType { process_type: t })?;
                let desired = self.m.desired(t);
                if slot.index >= desired {
                    return Err(Rejected::NoSuchDyno { slot, desired });
                }
                self.refuse_in_lockdown(CommandKind::Restart)?;
                self.replace(|s| s == slot);
                Ok(())
            }
            UserCommand::Deploy => {
                self.refuse_in_lockdown(CommandKind::Deploy)?;
                self.replace(|_| true);
                Ok(())
            }
        }
    }

    fn refuse_in_lockdown(&self, command: CommandKind) -> Result<(), Rejected> {
        if self.m.durable.lockdown {
            Err(Rejected::LockedDown { command })
        } else {
            Ok(())
        }
    }

    fn scale(&mut self, process_type: TypeId, count: u16) -> Result<(), Rejected> {
        let p = self
            .cfg
            .process_type(process_type)
            .ok_or(Rejected::UnknownProcessType { process_type })?;
        if self.cfg.is_singleton(process_type) && count > 1 {
            return Err(Rejected::SingletonAboveOne {
                process_type,
                requested: count,
            });
        }
        if count > p.count_max {
            return Err(Rejected::ScaleAboveMax {
                process_type,
                requested: count,
                max: p.count_max,
            });
        }
        let old = self.m.desired(process_type);
        // Live instances this count would stop. Under lockdown that includes
        // those whose earlier scale-down lockdown took back (S5), even when
        // the count does not go down.
        let above = self.live_at_or_above(process_type, count);
        if count < old || !above.is_empty() {
            self.refuse_in_lockdown(CommandKind::ScaleDown)?;
        }
        self.set_formation(process_type, count);
        for id in above {
            self.request_stop(id, StopReason::UserRequested);
        }
        Ok(())
    }

    /// The live instances of `process_type` in slots at or above `index`.
    fn live_at_or_above(&self, process_type: TypeId, index: u16) -> Vec<InstanceId> {
        // Instances are ordered by slot, so these form one range.
        let at = |index, generation| InstanceId {
            slot: SlotId {
                process_type,
                index,
            },
            generation,
        };
        let (lo, hi) = (at(index, Generation(0)), at(u16::MAX, Generation(u32::MAX)));
        self.m
            .durable
            .instances
            .range(lo..=hi)
            .filter(|(_, d)| d.stop.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Restart: every live instance of the slots `which` selects is asked
    /// to stop, and its slot gets a free launch (a formation change, not a
    /// retry).
    fn replace(&mut self, which: impl Fn(SlotId) -> bool) {
        let m = &*self.m;
        let targets: Vec<InstanceId> = m
            .durable
            .instances
            .iter()
            .filter(|(id, d)| {
                d.stop.is_none()
                    && which(id.slot)
                    && id.slot.index < m.desired(id.slot.process_type)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in targets {
            self.request_stop(id, StopReason::UserRequested);
            self.grant_free_launch(id.slot);
        }
    }

    pub(super) fn on_operator(&mut self, command: OperatorCommand) {
        let durable = &self.m.durable;
        match command {
            OperatorCommand::Lockdown { on } => {
                // Cancel first: a journal cut after `LockdownSet` must not
                // recover a lockdown that still holds user stops (S5).
                if on {
                    self.cancel_user_stops();
                }
                if self.m.durable.lockdown != on {
                    self.persist(JournalRecord::LockdownSet { on });
                }
            }
            OperatorCommand::BreakerOpen => {
                let breaker = FleetBreaker::opened_by_hand(self.now);
                if durable.fleet_breaker != breaker {
                    self.persist(JournalRecord::FleetBreakerSet { breaker });
                }
            }
            OperatorCommand::BreakerClose => {
                if !matches!(durable.fleet_breaker, FleetBreaker::Closed { .. }) {
                    let breaker = FleetBreaker::closed(self.now);
                    self.persist(JournalRecord::FleetBreakerSet { breaker });
                }
            }
            OperatorCommand::PauseLaunches { host } => {
                self.persist(JournalRecord::PauseSet { host, paused: true });
            }
            OperatorCommand::ResumeLaunches { host } => {
                self.persist(JournalRecord::PauseSet {
                    host,
                    paused: false,
                });
            }
        }
    }

    /// Lockdown takes back user stops of instances still alive: a stop
    /// accepted just before lockdown must not take a working app down.
    fn cancel_user_stops(&mut self) {
        let user_stopped: Vec<InstanceId> = self
            .m
            .durable
            .instances
            .iter()
            .filter(|(_, d)| d.stop == Some(StopReason::UserRequested))
            .map(|(id, _)| *id)
            .collect();
        for instance in user_stopped {
            self.persist(JournalRecord::StopCancelled { instance });
        }
    }
}
