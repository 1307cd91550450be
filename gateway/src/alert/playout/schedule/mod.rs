//! Which alert each output plays, and when: the priority rules, on a clock the
//! caller passes in.
//!
//! An *output* is one downstream destination (a loudspeaker or a gateway of the next
//! tier). Each output plays at most one alert at a time: the highest-ranked alert that
//! targets it and is due. Rank is the level (red > orange > yellow > blue > routine),
//! then the tier that originated the alert (the higher tier wins), then the earlier
//! alert. A newly due alert of a higher level (or of the same level from a higher
//! tier) pre-empts what an output is playing at once; an earlier alert of equal rank
//! waits for the one playing to finish its play. A pre-empted alert resumes on that
//! output when the output is free again, from the start of the play it was in, if it
//! is still valid. A cancel stops an alert everywhere.
//!
//! Contract for the caller: feed [`Scheduler::add`] and [`Scheduler::cancel`] as
//! alerts arrive, call [`Scheduler::poll`] at [`Scheduler::next_deadline`], and carry
//! out the [`Event`]s in order. Nothing plays before an alert's `effective` time or
//! after its `expires` time, and no output starts more plays of an alert than the
//! alert has left.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use crate::alert::model::{AlertState, Level};

/// An index into the node's destinations.
pub type OutputId = usize;

/// One voice stream: one play of one alert, started on a set of outputs together.
pub type SessionId = u64;

/// An alert as playout needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub alert: i64,
    pub level: Level,
    /// The originating tier's rank: higher wins among equal levels.
    pub tier_rank: u8,
    /// Acceptance order: lower is earlier and wins among equal level and tier.
    pub order: i64,
    pub effective: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// Plays already started before this job was added (after a restart).
    pub plays_started: u32,
    /// Plays asked for in all.
    pub repeat: u32,
    /// How long one play lasts.
    pub play_length: Duration,
    pub outputs: Vec<OutputId>,
}

impl Job {
    fn rank(&self) -> (Level, u8, std::cmp::Reverse<i64>) {
        (self.level, self.tier_rank, std::cmp::Reverse(self.order))
    }
}

/// Why a session stops on some outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The play ended.
    Finished,
    /// A higher alert took the outputs.
    Preempted {
        by: i64,
    },
    Cancelled,
    Expired,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Record that `plays_started` plays of `alert` have begun, then start sending
    /// one play of it on `outputs` as `session`.
    Start {
        session: SessionId,
        alert: i64,
        outputs: Vec<OutputId>,
        plays_started: u32,
    },
    /// Stop sending `session` to `outputs`.
    Stop {
        session: SessionId,
        outputs: Vec<OutputId>,
        reason: StopReason,
    },
    /// The alert's playout state changed.
    State {
        alert: i64,
        state: AlertState,
        plays_started: u32,
    },
}

#[derive(Debug)]
struct Running {
    alert: i64,
    session: SessionId,
    ends: DateTime<Utc>,
}

#[derive(Debug)]
struct JobState {
    job: Job,
    /// Plays completed on each output since the job was added.
    done: HashMap<OutputId, u32>,
    /// When each output may begin this job's next play (the gap between repeats).
    next_allowed: HashMap<OutputId, DateTime<Utc>>,
    /// Plays started since the job was added: the most of any output.
    started: u32,
    state: AlertState,
}

impl JobState {
    fn plays_left(&self) -> u32 {
        self.job.repeat.saturating_sub(self.job.plays_started)
    }

    fn finished_on(&self, output: OutputId) -> bool {
        self.done.get(&output).copied().unwrap_or(0) >= self.plays_left()
    }

    fn plays_started(&self) -> u32 {
        self.job.plays_started + self.started
    }
}

/// The playout scheduler; see the [module](self) contract.
#[derive(Debug)]
pub struct Scheduler {
    jobs: BTreeMap<i64, JobState>,
    running: BTreeMap<OutputId, Running>,
    next_session: SessionId,
    /// Silence between two plays of one alert on an output.
    gap: Duration,
    /// The time of the last poll: deadlines are what comes after it.
    last_poll: Option<DateTime<Utc>>,
}

impl Scheduler {
    pub fn new(gap: Duration) -> Scheduler {
        Scheduler {
            jobs: BTreeMap::new(),
            running: BTreeMap::new(),
            next_session: 1,
            gap,
            last_poll: None,
        }
    }

    /// Takes a new alert (or one reloaded after a restart) and polls.
    pub fn add(&mut self, job: Job, now: DateTime<Utc>) -> Vec<Event> {
        let id = job.alert;
        if self.jobs.contains_key(&id) {
            return self.poll(now);
        }
        self.jobs.insert(
            id,
            JobState {
                job,
                done: HashMap::new(),
                next_allowed: HashMap::new(),
                started: 0,
                state: AlertState::Accepted,
            },
        );
        self.poll(now)
    }

    /// Stops an alert everywhere, then lets what it held resume.
    pub fn cancel(&mut self, alert: i64, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(state) = self.jobs.remove(&alert) {
            events.extend(self.stop_all(alert, StopReason::Cancelled));
            events.push(Event::State {
                alert,
                state: AlertState::Cancelled,
                plays_started: state.plays_started(),
            });
        }
        events.extend(self.poll(now));
        events
    }

    /// Whether the scheduler holds this alert.
    pub fn holds(&self, alert: i64) -> bool {
        self.jobs.contains_key(&alert)
    }

    /// The alert each busy output is playing.
    pub fn playing(&self) -> impl Iterator<Item = (OutputId, i64, SessionId)> + '_ {
        self.running.iter().map(|(o, r)| (*o, r.alert, r.session))
    }

    /// When [`poll`](Self::poll) must next be called, if ever.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let ends = self.running.values().map(|r| r.ends);
        let jobs = self.jobs.values().flat_map(|s| {
            std::iter::once(s.job.expires)
                .chain(std::iter::once(s.job.effective))
                .chain(s.next_allowed.values().copied())
        });
        let after = self.last_poll;
        ends.chain(jobs)
            .filter(|at| after.is_none_or(|last| *at > last))
            .min()
    }

    /// Brings every output up to date at `now`.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        self.last_poll = Some(self.last_poll.map_or(now, |last| last.max(now)));
        let mut events = Vec::new();
        self.finish_plays(now, &mut events);
        self.retire_jobs(now, &mut events);

        // The winner of each output that any job targets.
        let mut outputs: Vec<OutputId> = self
            .jobs
            .values()
            .flat_map(|s| s.job.outputs.iter().copied())
            .collect();
        outputs.sort_unstable();
        outputs.dedup();

        let mut starts: BTreeMap<i64, Vec<OutputId>> = BTreeMap::new();
        for output in outputs {
            let winner = self
                .jobs
                .values()
                .filter(|s| s.job.outputs.contains(&output))
                .filter(|s| s.job.effective <= now && now < s.job.expires)
                .filter(|s| !s.finished_on(output))
                .max_by_key(|s| s.job.rank())
                .map(|s| s.job.alert);
            let current = self.running.get(&output).map(|r| (r.alert, r.session));
            // Only a higher level, or a higher tier at the same level, takes an output
            // that is playing; the earlier of two equals merely goes first.
            let winner = match (current, winner) {
                (Some((playing, _)), Some(w)) if playing != w && !self.outranks(w, playing) => {
                    Some(playing)
                }
                _ => winner,
            };
            match (current, winner) {
                (Some((playing, _)), Some(w)) if playing == w => {}
                (Some((_, session)), Some(w)) => {
                    self.running.remove(&output);
                    push_stop(
                        &mut events,
                        session,
                        output,
                        StopReason::Preempted { by: w },
                    );
                    if self.may_start(w, output, now) {
                        starts.entry(w).or_default().push(output);
                    }
                }
                (None, Some(w)) => {
                    if self.may_start(w, output, now) {
                        starts.entry(w).or_default().push(output);
                    }
                }
                (_, None) => {}
            }
        }

        for (alert, outputs) in starts {
            let session = self.next_session;
            self.next_session += 1;
            let Some(state) = self.jobs.get_mut(&alert) else {
                continue;
            };
            let ends = now + state.job.play_length;
            let play = outputs
                .iter()
                .map(|o| state.done.get(o).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(1);
            state.started = state.started.max(play);
            for output in &outputs {
                self.running.insert(
                    *output,
                    Running {
                        alert,
                        session,
                        ends,
                    },
                );
            }
            events.push(Event::Start {
                session,
                alert,
                outputs,
                plays_started: state.plays_started(),
            });
        }

        self.report_states(now, &mut events);
        events
    }

    /// Whether `a` may pre-empt `b`: a higher level, or the same level from a higher
    /// tier.
    fn outranks(&self, a: i64, b: i64) -> bool {
        match (self.jobs.get(&a), self.jobs.get(&b)) {
            (Some(a), Some(b)) => (a.job.level, a.job.tier_rank) > (b.job.level, b.job.tier_rank),
            (Some(_), None) => true,
            _ => false,
        }
    }

    fn may_start(&self, alert: i64, output: OutputId, now: DateTime<Utc>) -> bool {
        self.jobs
            .get(&alert)
            .and_then(|s| s.next_allowed.get(&output))
            .is_none_or(|at| *at <= now)
    }

    /// Counts the plays that have ended by `now`.
    fn finish_plays(&mut self, now: DateTime<Utc>, events: &mut Vec<Event>) {
        let ended: Vec<OutputId> = self
            .running
            .iter()
            .filter(|(_, r)| r.ends <= now)
            .map(|(o, _)| *o)
            .collect();
        for output in ended {
            let Some(run) = self.running.remove(&output) else {
                continue;
            };
            if let Some(state) = self.jobs.get_mut(&run.alert) {
                *state.done.entry(output).or_insert(0) += 1;
                state.next_allowed.insert(output, run.ends + self.gap);
            }
            push_stop(events, run.session, output, StopReason::Finished);
        }
    }

    /// Removes the jobs that are finished everywhere or expired.
    fn retire_jobs(&mut self, now: DateTime<Utc>, events: &mut Vec<Event>) {
        let retired: Vec<(i64, AlertState)> = self
            .jobs
            .values()
            .filter_map(|s| {
                if s.job.outputs.iter().all(|o| s.finished_on(*o)) {
                    Some((s.job.alert, AlertState::Done))
                } else if s.job.expires <= now {
                    Some((s.job.alert, AlertState::Expired))
                } else {
                    None
                }
            })
            .collect();
        for (alert, final_state) in retired {
            events.extend(self.stop_all(alert, StopReason::Expired));
            if let Some(state) = self.jobs.remove(&alert) {
                events.push(Event::State {
                    alert,
                    state: final_state,
                    plays_started: state.plays_started(),
                });
            }
        }
    }

    fn stop_all(&mut self, alert: i64, reason: StopReason) -> Vec<Event> {
        let mut events = Vec::new();
        let outputs: Vec<OutputId> = self
            .running
            .iter()
            .filter(|(_, r)| r.alert == alert)
            .map(|(o, _)| *o)
            .collect();
        for output in outputs {
            if let Some(run) = self.running.remove(&output) {
                push_stop(&mut events, run.session, output, reason);
            }
        }
        events
    }

    fn report_states(&mut self, now: DateTime<Utc>, events: &mut Vec<Event>) {
        let playing: Vec<i64> = self.running.values().map(|r| r.alert).collect();
        for state in self.jobs.values_mut() {
            let new = if playing.contains(&state.job.alert) {
                AlertState::Playing
            } else if state.job.effective <= now {
                AlertState::Queued
            } else {
                AlertState::Accepted
            };
            if new != state.state {
                state.state = new;
                events.push(Event::State {
                    alert: state.job.alert,
                    state: new,
                    plays_started: state.plays_started(),
                });
            }
        }
    }
}

/// Adds `output` to the last stop event when it is for the same session and reason,
/// so one stop covers every output of a session that stopped together.
fn push_stop(events: &mut Vec<Event>, session: SessionId, output: OutputId, reason: StopReason) {
    if let Some(Event::Stop {
        session: s,
        outputs,
        reason: r,
    }) = events.last_mut()
    {
        if *s == session && *r == reason {
            outputs.push(output);
            return;
        }
    }
    events.push(Event::Stop {
        session,
        outputs: vec![output],
        reason,
    });
}

#[cfg(test)]
mod tests;
