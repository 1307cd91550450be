use chrono::{Duration, TimeZone};

use super::*;
use crate::alert::intake::{Admitted, Kind};
use crate::alert::model::{Level, Purpose};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("emcomm-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 21, 0, 0, 0)
        .single()
        .expect("time")
}

fn admitted(identifier: &str) -> Admitted {
    Admitted {
        kind: Kind::Alert,
        identifier: identifier.into(),
        sender: "zhang@district".into(),
        sent: now(),
        purpose: Purpose::Actual,
        msg_type: "Alert".into(),
        replaces: vec![],
        level: Level::Red,
        language: "zh-CN".into(),
        headline: "暴雨红色预警".into(),
        text: "暴雨红色预警。".into(),
        description: None,
        instruction: None,
        areas: vec!["410503001".parse().expect("code")],
        targets: vec!["street-001".into()],
        skipped: vec![],
        effective: now(),
        expires: now() + Duration::hours(1),
        repeat: 2,
        attention: "chime".into(),
        audio: Some(vec![1, 2, 3]),
        has_audio: true,
        broadcast: None,
        needs_confirmation: true,
        cascade: None,
    }
}

fn new(alert: Admitted, state: AlertState, operator: String) -> NewAlert {
    NewAlert {
        alert,
        state,
        operator,
        cap: None,
        loudspeakers: vec!["pole-1".into()],
        stop_replaced: true,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn an_alert_survives_reopening_the_database() {
    let dir = scratch("reopen");
    let rt = runtime();
    let id = rt.block_on(async {
        let store = Store::open(&dir).expect("open");
        store
            .insert(
                new(
                    admitted("A-1"),
                    AlertState::AwaitingConfirmation,
                    "zhang".into(),
                ),
                now(),
            )
            .await
            .map(|i| i.id)
            .expect("insert")
    });
    let record = rt.block_on(async {
        let store = Store::open(&dir).expect("reopen");
        store.get(id).await.expect("get")
    });
    assert_eq!(record.state, AlertState::AwaitingConfirmation);
    assert_eq!(record.alert.headline, "暴雨红色预警");
    assert_eq!(
        record.alert.audio, None,
        "audio is kept apart from the record"
    );
    let audio = rt.block_on(async {
        Store::open(&dir)
            .expect("open")
            .audio(id)
            .await
            .expect("audio")
    });
    assert_eq!(audio, Some(vec![1, 2, 3]));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_same_alert_twice_is_a_conflict() {
    let dir = scratch("twice");
    runtime().block_on(async {
        let store = Store::open(&dir).expect("open");
        store
            .insert(
                new(admitted("A-1"), AlertState::Accepted, "zhang".into()),
                now(),
            )
            .await
            .map(|i| i.id)
            .expect("first");
        let second = store
            .insert(
                new(admitted("A-1"), AlertState::Accepted, "li".into()),
                now(),
            )
            .await
            .map(|i| i.id);
        assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
        assert_eq!(store.list(false, 10).await.expect("list").len(), 1);
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_submitter_cannot_confirm_their_own_alert() {
    let dir = scratch("confirm");
    runtime().block_on(async {
        let store = Store::open(&dir).expect("open");
        let id = store
            .insert(
                new(
                    admitted("A-1"),
                    AlertState::AwaitingConfirmation,
                    "zhang".into(),
                ),
                now(),
            )
            .await
            .map(|i| i.id)
            .expect("insert");
        let own = store
            .transition(id, Transition::confirm(), "zhang".into(), now())
            .await;
        assert!(matches!(own, Err(StoreError::Conflict(m)) if m.contains("second operator")));
        let other = store
            .transition(id, Transition::confirm(), "li".into(), now())
            .await
            .expect("confirmed by another");
        assert_eq!(other.confirmed_by.as_deref(), Some("li"));
        assert_eq!(other.state, AlertState::Accepted);
        let again = store
            .transition(id, Transition::confirm(), "wang".into(), now())
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(m)) if m.contains("is accepted")));
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_audit_log_is_append_only() {
    let dir = scratch("audit");
    runtime().block_on(async {
        let store = Store::open(&dir).expect("open");
        let id = store
            .insert(
                new(admitted("A-1"), AlertState::Accepted, "zhang".into()),
                now(),
            )
            .await
            .map(|i| i.id)
            .expect("insert");
        store
            .transition(
                id,
                Transition::cancel("false alarm".into()),
                "li".into(),
                now(),
            )
            .await
            .expect("cancel");
        let log = store.audit_log(0, 100).await.expect("log");
        let actions: Vec<(&str, &str)> = log
            .iter()
            .map(|e| (e.operator.as_str(), e.action.as_str()))
            .collect();
        assert_eq!(actions, [("zhang", "submitted"), ("li", "cancelled")]);
        assert_eq!(log[1].detail, "false alarm");
        let tamper = store
            .call(|db| Ok(db.execute("DELETE FROM audit", [])?))
            .await;
        assert!(tamper.is_err(), "deleting audit rows must fail");
        let tamper = store
            .call(|db| Ok(db.execute("UPDATE audit SET operator = 'x'", [])?))
            .await;
        assert!(tamper.is_err(), "rewriting audit rows must fail");
        assert_eq!(store.audit_log(0, 100).await.expect("log").len(), 2);
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failing_call_leaves_the_rest_of_its_group_committed() {
    let dir = scratch("group");
    runtime().block_on(async {
        let store = Store::open(&dir).expect("open");
        let mut calls = Vec::new();
        for i in 0..50 {
            let store = store.clone();
            let identifier = if i == 25 {
                "A-0".to_string()
            } else {
                format!("A-{i}")
            };
            calls.push(tokio::spawn(async move {
                store
                    .insert(
                        new(admitted(&identifier), AlertState::Accepted, "zhang".into()),
                        now(),
                    )
                    .await
                    .map(|i| i.id)
            }));
        }
        let mut failed = 0;
        for call in calls {
            if call.await.expect("task").is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 1, "only the duplicate fails");
        assert_eq!(store.list(false, 100).await.expect("list").len(), 49);
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn playout_progress_never_goes_back_and_final_states_stick() {
    let dir = scratch("progress");
    runtime().block_on(async {
        let store = Store::open(&dir).expect("open");
        let id = store
            .insert(
                new(admitted("A-1"), AlertState::Accepted, "zhang".into()),
                now(),
            )
            .await
            .map(|i| i.id)
            .expect("insert");
        store
            .set_progress(id, AlertState::Playing, 2, None, now())
            .await
            .expect("progress");
        store
            .set_progress(id, AlertState::Playing, 1, None, now())
            .await
            .expect("progress");
        assert_eq!(store.get(id).await.expect("get").plays_started, 2);
        store
            .set_progress(id, AlertState::Done, 2, None, now())
            .await
            .expect("done");
        store
            .set_progress(id, AlertState::Playing, 3, None, now())
            .await
            .expect("ignored");
        let record = store.get(id).await.expect("get");
        assert_eq!((record.state, record.plays_started), (AlertState::Done, 2));
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn receipts_replace_earlier_ones_of_the_same_loudspeaker() {
    let dir = scratch("receipts");
    runtime().block_on(async {
        let store = Store::open(&dir).expect("open");
        let id = store
            .insert(
                new(admitted("A-1"), AlertState::Accepted, "zhang".into()),
                now(),
            )
            .await
            .map(|i| i.id)
            .expect("insert");
        let receipt = |state: &str| Receipt {
            loudspeaker: "pole-1".into(),
            via: "street-001".into(),
            state: state.into(),
            detail: String::new(),
        };
        store
            .put_receipts(id, vec![receipt("pending")], now())
            .await
            .expect("put");
        store
            .put_receipts(id, vec![receipt("played")], now())
            .await
            .expect("put");
        assert_eq!(
            store.receipts(id).await.expect("receipts"),
            [receipt("played")]
        );
        assert!(matches!(
            store.put_receipts(99, vec![], now()).await,
            Err(StoreError::NotFound(99))
        ));
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_cancel_stops_what_it_replaces_in_the_same_commit_and_skips_what_is_over() {
    let dir = scratch("cancel");
    runtime().block_on(async {
        let store = Store::open(&dir).expect("open");
        let live = store
            .insert(
                new(admitted("A-1"), AlertState::Playing, "zhang".into()),
                now(),
            )
            .await
            .expect("insert")
            .id;
        let over = store
            .insert(
                new(admitted("A-2"), AlertState::Accepted, "zhang".into()),
                now(),
            )
            .await
            .expect("insert")
            .id;
        store
            .set_progress(over, AlertState::Done, 2, None, now())
            .await
            .expect("done");
        let mut cancel = admitted("C-1");
        cancel.msg_type = "Cancel".into();
        cancel.replaces = vec![live, over];
        let inserted = store
            .insert(new(cancel, AlertState::Done, "li".into()), now())
            .await
            .expect("cancel stored");
        assert_eq!(inserted.stopped, [live], "the finished alert is left alone");
        let record = store.get(live).await.expect("get");
        assert_eq!(record.state, AlertState::Cancelled);
        assert!(
            record
                .state_reason
                .as_deref()
                .unwrap_or("")
                .contains("CAP Cancel")
        );
        let receipts = store.receipts(live).await.expect("receipts");
        assert_eq!(
            receipts[0].state, "missed",
            "a loudspeaker that never heard it says so"
        );
        assert_eq!(store.get(over).await.expect("get").state, AlertState::Done);
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_expired_alert_cannot_be_confirmed() {
    let dir = scratch("confirm-expired");
    runtime().block_on(async {
        let store = Store::open(&dir).expect("open");
        let id = store
            .insert(
                new(
                    admitted("A-1"),
                    AlertState::AwaitingConfirmation,
                    "zhang".into(),
                ),
                now(),
            )
            .await
            .expect("insert")
            .id;
        let late = now() + Duration::hours(2);
        let refused = store.confirm(id, "li".into(), late).await;
        assert!(matches!(refused, Err(StoreError::Conflict(m)) if m.contains("expired")));
        assert_eq!(store.get(id).await.expect("get").state, AlertState::Expired);
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_newer_receipt_from_the_same_area_replaces_the_older_one_whatever_order_they_come_in() {
    let dir = scratch("area-receipts");
    let rt = runtime();
    let receipts = rt.block_on(async {
        let store = Store::open(&dir).expect("open");
        let id = store
            .insert(
                new(admitted("A-1"), AlertState::Accepted, "zhang".into()),
                now(),
            )
            .await
            .expect("insert")
            .id;
        let receipt = |area: &str, played, bearer: &str, sequence| AreaReceipt {
            area: area.into(),
            played,
            loudspeakers: 3,
            bearer: bearer.into(),
            sequence,
            updated_at: now(),
        };
        for r in [
            receipt("410503001001", 1, "beidou", 7),
            receipt("410503001002", 3, "ip", 2),
            receipt("410503001001", 3, "beidou", 8),
            // A retried copy of the first, arriving last: older, so nothing changes.
            receipt("410503001001", 1, "beidou", 7),
        ] {
            store.put_area_receipt(id, r).await.expect("put");
        }
        assert!(matches!(
            store
                .put_area_receipt(id + 1, receipt("410503001001", 1, "ip", 9))
                .await,
            Err(StoreError::NotFound(_))
        ));
        store.area_receipts(id).await.expect("read")
    });
    let counts: Vec<(&str, u16, &str)> = receipts
        .iter()
        .map(|r| (r.area.as_str(), r.played, r.bearer.as_str()))
        .collect();
    assert_eq!(
        counts,
        [("410503001001", 3, "beidou"), ("410503001002", 3, "ip")]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_cancel_from_the_cascade_is_remembered_across_reopening() {
    let dir = scratch("cascade-cancels");
    let rt = runtime();
    rt.block_on(async {
        let store = Store::open(&dir).expect("open");
        assert!(
            !store
                .cancelled_in_cascade("410503".into(), 7)
                .await
                .expect("read")
        );
        store
            .cancel_from_cascade("410503".into(), 7, now())
            .await
            .expect("stored");
        store
            .cancel_from_cascade("410503".into(), 7, now())
            .await
            .expect("twice is once");
    });
    rt.block_on(async {
        let store = Store::open(&dir).expect("reopen");
        assert!(
            store
                .cancelled_in_cascade("410503".into(), 7)
                .await
                .expect("read")
        );
        assert!(
            !store
                .cancelled_in_cascade("410503".into(), 8)
                .await
                .expect("read")
        );
        assert!(
            !store
                .cancelled_in_cascade("410599".into(), 7)
                .await
                .expect("read")
        );
    });
    let _ = std::fs::remove_dir_all(dir);
}
