use chrono::TimeZone;

use super::*;

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 21, 0, 0, 0)
        .single()
        .expect("time")
        + Duration::seconds(seconds)
}

fn job(alert: i64, level: Level, outputs: &[OutputId]) -> Job {
    Job {
        alert,
        level,
        tier_rank: 3,
        order: alert,
        effective: t(0),
        expires: t(3600),
        plays_started: 0,
        repeat: 2,
        play_length: Duration::seconds(10),
        outputs: outputs.to_vec(),
    }
}

fn starts(events: &[Event]) -> Vec<(i64, Vec<OutputId>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Start { alert, outputs, .. } => Some((*alert, outputs.clone())),
            _ => None,
        })
        .collect()
}

fn states(events: &[Event]) -> Vec<(i64, AlertState)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::State { alert, state, .. } => Some((*alert, *state)),
            _ => None,
        })
        .collect()
}

fn stops(events: &[Event]) -> Vec<(Vec<OutputId>, StopReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Stop {
                outputs, reason, ..
            } => Some((outputs.clone(), *reason)),
            _ => None,
        })
        .collect()
}

/// Polls at every deadline up to `until`, collecting the events.
fn run_until(s: &mut Scheduler, until: DateTime<Utc>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(at) = s.next_deadline() {
        if at > until {
            break;
        }
        events.extend(s.poll(at));
    }
    events
}

#[test]
fn an_alert_plays_its_repeats_with_a_gap_then_is_done() {
    let mut s = Scheduler::new(Duration::seconds(2));
    let events = s.add(job(1, Level::Yellow, &[0, 1]), t(0));
    assert_eq!(starts(&events), [(1, vec![0, 1])]);
    assert_eq!(states(&events), [(1, AlertState::Playing)]);

    let events = s.poll(t(10));
    assert_eq!(stops(&events), [(vec![0, 1], StopReason::Finished)]);
    assert_eq!(starts(&events), [], "the gap comes first");
    assert_eq!(s.next_deadline(), Some(t(12)));

    let events = s.poll(t(12));
    assert_eq!(starts(&events), [(1, vec![0, 1])]);
    assert!(matches!(
        events[0],
        Event::Start {
            plays_started: 2,
            ..
        }
    ));

    let events = run_until(&mut s, t(100));
    assert_eq!(states(&events), [(1, AlertState::Done)]);
    assert!(!s.holds(1));
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn red_preempts_yellow_where_they_overlap_and_yellow_resumes_after() {
    let mut s = Scheduler::new(Duration::zero());
    s.add(job(1, Level::Yellow, &[0, 1]), t(0));

    let events = s.add(job(2, Level::Red, &[1, 2]), t(4));
    assert_eq!(stops(&events), [(vec![1], StopReason::Preempted { by: 2 })]);
    assert_eq!(starts(&events), [(2, vec![1, 2])]);
    assert!(
        s.playing().any(|(o, a, _)| o == 0 && a == 1),
        "yellow plays on where red is not"
    );

    // Red plays twice (t4–t14, t14–t24); yellow finishes on output 0 meanwhile.
    let events = run_until(&mut s, t(23));
    assert!(
        starts(&events)
            .iter()
            .all(|(a, o)| *a == 2 || !o.contains(&1))
    );

    // When red is done, yellow comes back to output 1 from the start of its play.
    let events = s.poll(t(24));
    assert!(states(&events).contains(&(2, AlertState::Done)));
    assert_eq!(starts(&events), [(1, vec![1])]);

    let events = run_until(&mut s, t(100));
    assert_eq!(states(&events), [(1, AlertState::Done)]);
}

#[test]
fn a_cancel_stops_at_once_and_frees_the_outputs() {
    let mut s = Scheduler::new(Duration::zero());
    s.add(job(1, Level::Blue, &[0]), t(0));
    s.add(job(2, Level::Orange, &[0]), t(1));
    let events = s.cancel(2, t(3));
    assert_eq!(stops(&events), [(vec![0], StopReason::Cancelled)]);
    assert_eq!(states(&events)[0], (2, AlertState::Cancelled));
    assert_eq!(
        starts(&events),
        [(1, vec![0])],
        "the pre-empted blue alert resumes"
    );
    assert!(
        s.cancel(99, t(3)).is_empty(),
        "cancelling an unknown alert does nothing"
    );
}

#[test]
fn nothing_plays_before_effective_or_after_expires() {
    let mut s = Scheduler::new(Duration::zero());
    let mut later = job(1, Level::Red, &[0]);
    later.effective = t(60);
    later.expires = t(65);
    let events = s.add(later, t(0));
    assert_eq!(starts(&events), []);
    assert_eq!(states(&events), []);
    assert_eq!(s.next_deadline(), Some(t(60)));

    let events = s.poll(t(60));
    assert_eq!(starts(&events), [(1, vec![0])]);

    let events = s.poll(t(65));
    assert_eq!(stops(&events), [(vec![0], StopReason::Expired)]);
    assert_eq!(states(&events), [(1, AlertState::Expired)]);
}

#[test]
fn an_expired_alert_added_after_a_restart_never_starts() {
    let mut s = Scheduler::new(Duration::zero());
    let mut old = job(1, Level::Red, &[0]);
    old.expires = t(-1);
    let events = s.add(old, t(0));
    assert_eq!(starts(&events), []);
    assert_eq!(states(&events), [(1, AlertState::Expired)]);
}

#[test]
fn plays_started_before_a_restart_are_not_played_again() {
    let mut s = Scheduler::new(Duration::zero());
    let mut resumed = job(1, Level::Red, &[0]);
    resumed.repeat = 3;
    resumed.plays_started = 2;
    let events = s.add(resumed, t(0));
    assert!(matches!(
        events[0],
        Event::Start {
            plays_started: 3,
            ..
        }
    ));
    let events = run_until(&mut s, t(100));
    assert_eq!(starts(&events), [], "only one play was left");
    assert_eq!(states(&events), [(1, AlertState::Done)]);

    let mut finished = job(2, Level::Red, &[0]);
    finished.plays_started = 2;
    let events = s.add(finished, t(200));
    assert_eq!(starts(&events), []);
    assert_eq!(states(&events), [(2, AlertState::Done)]);
}

#[test]
fn equal_levels_go_to_the_higher_tier_then_the_earlier_alert() {
    let mut s = Scheduler::new(Duration::zero());
    let mut street = job(1, Level::Orange, &[0]);
    street.tier_rank = 2;
    s.add(street, t(0));
    let events = s.add(job(2, Level::Orange, &[0]), t(1));
    assert_eq!(
        starts(&events),
        [(2, vec![0])],
        "the district's alert outranks the street's"
    );

    let events = s.add(job(3, Level::Orange, &[0]), t(2));
    assert_eq!(starts(&events), [], "a later alert of equal rank waits");
    assert_eq!(states(&events), [(3, AlertState::Queued)]);
}

#[test]
fn no_output_starts_more_plays_than_asked_whatever_the_interleaving() {
    // Alerts of every level arriving every 3 s on overlapping outputs, some cancelled.
    let mut s = Scheduler::new(Duration::seconds(1));
    let mut starts_per: HashMap<(i64, OutputId), u32> = HashMap::new();
    let mut now = t(0);
    let levels = [
        Level::Blue,
        Level::Red,
        Level::Yellow,
        Level::Orange,
        Level::Routine,
    ];
    let mut events = Vec::new();
    for i in 0..20i64 {
        let outputs: Vec<OutputId> = (0..4).filter(|o| (i as usize + o) % 3 != 0).collect();
        let mut j = job(i, levels[(i % 5) as usize], &outputs);
        j.repeat = 1 + (i % 3) as u32;
        j.play_length = Duration::seconds(4 + i % 5);
        events.extend(s.add(j, now));
        if i % 7 == 3 {
            events.extend(s.cancel(i - 1, now));
        }
        now += Duration::seconds(3);
        events.extend(run_until(&mut s, now));
    }
    events.extend(run_until(&mut s, t(100_000)));
    let mut completed: HashMap<(i64, OutputId), u32> = HashMap::new();
    let mut session_alert: HashMap<SessionId, i64> = HashMap::new();
    for event in &events {
        match event {
            Event::Start {
                session,
                alert,
                outputs,
                ..
            } => {
                session_alert.insert(*session, *alert);
                for o in outputs {
                    *starts_per.entry((*alert, *o)).or_default() += 1;
                }
            }
            Event::Stop {
                session,
                outputs,
                reason: StopReason::Finished,
            } => {
                for o in outputs {
                    *completed.entry((session_alert[session], *o)).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    for ((alert, output), n) in completed {
        let repeat = 1 + (alert % 3) as u32;
        assert!(
            n <= repeat,
            "alert {alert} completed {n} plays on output {output}, asked {repeat}"
        );
    }
    assert!(s.next_deadline().is_none(), "everything ended");
}

#[test]
fn an_earlier_alert_of_equal_rank_waits_for_the_playing_one_instead_of_preempting_it() {
    let mut s = Scheduler::new(Duration::zero());
    // After a restart the later alert may be ready to play first.
    s.add(job(2, Level::Blue, &[0]), t(0));
    let events = s.add(job(1, Level::Blue, &[0]), t(1));
    assert_eq!(stops(&events), [], "no pre-emption among equals");
    assert_eq!(states(&events), [(1, AlertState::Queued)]);
    let events = s.poll(t(10));
    assert_eq!(
        starts(&events),
        [(1, vec![0])],
        "then the earlier one goes first"
    );
}
