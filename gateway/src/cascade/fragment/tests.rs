use super::*;

/// A frame-like byte string that does not start with the fragment marker.
fn frame_of(len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    bytes[0] = 1;
    bytes
}

fn config() -> ReassemblyConfig {
    ReassemblyConfig {
        timeout: Duration::from_secs(600),
        max_frames: 3,
        max_bytes: 1000,
    }
}

#[test]
fn a_frame_that_fits_one_message_goes_as_it_is() {
    let frame = frame_of(78);
    assert_eq!(fragment(&frame, BEIDOU_MESSAGE), Ok(vec![frame.clone()]));
    let mut reassembler = Reassembler::new(config());
    let now = Instant::now();
    assert_eq!(reassembler.push(&frame, now), Pushed::Complete(frame));
}

#[test]
fn a_long_frame_is_cut_for_each_bearer_with_headers_that_fit_its_message() {
    let frame = frame_of(600);
    for (message, pieces) in [
        (BEIDOU_MESSAGE, 9),
        (SMS_8BIT_MESSAGE, 5),
        (IRIDIUM_MT_MESSAGE, 3),
        (IRIDIUM_MO_MESSAGE, 2),
    ] {
        let fragments = fragment(&frame, message).expect("cut");
        assert_eq!(fragments.len(), pieces, "message of {message} bytes");
        for (index, f) in fragments.iter().enumerate() {
            assert!(f.len() <= message);
            let read = read_fragment(f).expect("a fragment");
            assert_eq!((read.index as usize, read.count as usize), (index, pieces));
            assert_eq!(read.key, frame_key(&frame));
        }
    }
}

#[test]
fn fragments_in_any_order_with_duplicates_complete_the_frame_once() {
    let frame = frame_of(300);
    let fragments = fragment(&frame, BEIDOU_MESSAGE).expect("cut");
    let key = frame_key(&frame);
    let mut reassembler = Reassembler::new(config());
    let now = Instant::now();
    assert_eq!(
        reassembler.push(&fragments[4], now),
        Pushed::Pending {
            key,
            have: 1,
            count: 5
        }
    );
    assert_eq!(
        reassembler.push(&fragments[4], now),
        Pushed::Duplicate { key, index: 4 }
    );
    for i in [2, 0, 3] {
        assert!(matches!(
            reassembler.push(&fragments[i], now),
            Pushed::Pending { .. }
        ));
    }
    assert_eq!(
        reassembler.push(&fragments[1], now),
        Pushed::Complete(frame)
    );
    assert_eq!(
        (reassembler.in_progress(), reassembler.held_bytes()),
        (0, 0)
    );
    assert_eq!(reassembler.stats().duplicates, 1);
    assert_eq!(reassembler.stats().completed, 1);
}

#[test]
fn a_fragment_with_another_count_under_the_same_key_is_dropped() {
    let fragments = fragment(&frame_of(300), BEIDOU_MESSAGE).expect("cut");
    let mut reassembler = Reassembler::new(config());
    let now = Instant::now();
    reassembler.push(&fragments[0], now);
    let mut other = fragments[1].clone();
    other[6] = 9;
    let key = read_fragment(&other).expect("fragment").key;
    assert_eq!(
        reassembler.push(&other, now),
        Pushed::Discarded(Discard::CountDisagrees {
            key,
            held: 5,
            given: 9
        })
    );
}

#[test]
fn a_fragment_with_other_bytes_at_a_held_index_is_dropped() {
    let fragments = fragment(&frame_of(300), BEIDOU_MESSAGE).expect("cut");
    let mut reassembler = Reassembler::new(config());
    let now = Instant::now();
    reassembler.push(&fragments[2], now);
    let mut other = fragments[2].clone();
    other[20] ^= 0xff;
    let key = read_fragment(&other).expect("fragment").key;
    assert_eq!(
        reassembler.push(&other, now),
        Pushed::Discarded(Discard::BytesDisagree { key, index: 2 })
    );
    assert_eq!(reassembler.stats().disagreeing, 1);
}

#[test]
fn fragments_of_two_frames_under_one_key_join_to_nothing() {
    let a = fragment(&frame_of(150), BEIDOU_MESSAGE).expect("cut");
    let mut forged = fragment(&frame_of(151), BEIDOU_MESSAGE).expect("cut");
    // The second frame's last piece, relabelled as the first frame's.
    forged[2][1..5].copy_from_slice(&a[0][1..5]);
    let key = read_fragment(&a[0]).expect("fragment").key;
    let mut reassembler = Reassembler::new(config());
    let now = Instant::now();
    reassembler.push(&a[0], now);
    reassembler.push(&a[1], now);
    assert_eq!(
        reassembler.push(&forged[2], now),
        Pushed::Discarded(Discard::KeyMismatch { key })
    );
    assert_eq!(reassembler.in_progress(), 0);
}

#[test]
fn malformed_fragments_are_dropped() {
    let mut reassembler = Reassembler::new(config());
    let now = Instant::now();
    for message in [
        vec![MARKER],
        vec![MARKER, 0, 0, 0, 1, 0, 2],
        vec![MARKER, 0, 0, 0, 1, 2, 2, 0xaa],
        vec![MARKER, 0, 0, 0, 1, 0, 0, 0xaa],
    ] {
        assert_eq!(
            reassembler.push(&message, now),
            Pushed::Discarded(Discard::Malformed),
            "{message:02x?}"
        );
    }
    assert_eq!(reassembler.stats().malformed, 4);
}

#[test]
fn a_frame_that_never_completes_expires_at_its_deadline() {
    let fragments = fragment(&frame_of(300), BEIDOU_MESSAGE).expect("cut");
    let mut reassembler = Reassembler::new(config());
    let t0 = Instant::now();
    assert_eq!(reassembler.next_deadline(), None);
    reassembler.push(&fragments[0], t0);
    reassembler.push(&fragments[1], t0 + Duration::from_secs(60));
    let deadline = t0 + Duration::from_secs(600);
    assert_eq!(reassembler.next_deadline(), Some(deadline));

    assert_eq!(
        reassembler.expire(deadline - Duration::from_millis(1)),
        Vec::<u32>::new()
    );
    assert_eq!(
        reassembler.expire(deadline),
        vec![frame_key(&frame_of(300))]
    );
    assert_eq!(reassembler.next_deadline(), None);
    assert_eq!(
        (reassembler.held_bytes(), reassembler.stats().expired),
        (0, 1)
    );

    // The rest arriving late start a new frame; it does not complete from what expired.
    for f in &fragments[2..] {
        assert!(matches!(
            reassembler.push(f, deadline),
            Pushed::Pending { .. }
        ));
    }
}

#[test]
fn the_oldest_frame_in_progress_is_evicted_when_the_frame_cap_is_reached() {
    let mut reassembler = Reassembler::new(config());
    let t0 = Instant::now();
    let frames: Vec<Vec<u8>> = (0..4).map(|i| frame_of(200 + i)).collect();
    for (i, frame) in frames.iter().enumerate() {
        let first = &fragment(frame, BEIDOU_MESSAGE).expect("cut")[0];
        reassembler.push(first, t0 + Duration::from_secs(i as u64));
    }
    assert_eq!(reassembler.in_progress(), 3);
    assert_eq!(reassembler.stats().evicted, 1);
    assert_eq!(
        reassembler.next_deadline(),
        Some(t0 + Duration::from_secs(601))
    );
}

#[test]
fn held_bytes_never_exceed_the_cap() {
    let mut reassembler = Reassembler::new(ReassemblyConfig {
        max_bytes: 200,
        ..config()
    });
    let now = Instant::now();
    for i in 0..20 {
        for f in fragment(&frame_of(400 + i), BEIDOU_MESSAGE)
            .expect("cut")
            .iter()
            .take(3)
        {
            reassembler.push(f, now);
            assert!(reassembler.held_bytes() <= 200);
        }
    }
    assert!(reassembler.stats().evicted > 0);
    // A frame that needs more than all the room can never be held whole.
    let big = fragment(&frame_of(400), BEIDOU_MESSAGE).expect("cut");
    let mut results = big.iter().map(|f| reassembler.push(f, now));
    assert!(results.any(|r| matches!(r, Pushed::Discarded(Discard::TooLarge { .. }))));
}

#[test]
fn a_message_too_small_for_the_header_or_a_frame_too_long_is_refused() {
    assert_eq!(
        fragment(&frame_of(100), HEADER_BYTES),
        Err(FragmentError::MessageTooSmall(HEADER_BYTES))
    );
    assert_eq!(
        fragment(&frame_of(256 * 2), HEADER_BYTES + 2),
        Err(FragmentError::FrameTooLarge {
            frame: 512,
            message: 9
        })
    );
}
