//! Writes the seed corpus of every fuzz target into `corpus/<target>/`.
//!
//! Run from anywhere with `cargo +nightly run --example seeds` in the fuzz crate. The
//! seeds are built with emcomm's own packetiser and RTCP builder, so each is a packet or
//! a program a real node would produce; the fuzzer starts from them and reaches the
//! deep paths (a playing jitter buffer, a forwarded and transcoded stream) at once.
//! Existing files of the same name are overwritten; others are left alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drivers::rtp::ntp::NtpAnchor;
use drivers::rtp::packet::{OutgoingHeader, build_packet};
use drivers::rtp::packetizer::Packetizer;
use drivers::rtp::payload::PayloadFormat;
use drivers::rtp::rtcp::{CompoundSpec, SenderInfo, build_compound};
use drivers::rtp::stats::ReportBlockData;
use emcomm_fuzz::forwarder::{self, RTCP, RTP, TIMER};
use emcomm_fuzz::jitter::{ADVANCE, INSERT, INSERT_NEXT, POLL, VARIANT_G711, VARIANT_SMALL};

/// The smallest Opus packet a decoder takes as 20 ms: TOC config 31 (CELT fullband,
/// 20 ms), one frame, and two bytes of frame data.
const OPUS_20MS: [u8; 3] = [0xf8, 0xff, 0xfe];

/// A PCMU frame of 20 ms of silence (µ-law 0xff is zero).
const PCMU_20MS: [u8; 160] = [0xff; 160];

const UPSTREAM_SSRC: u32 = 0xd157_0001;

fn main() -> io::Result<()> {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    write_all(&corpus.join("rtp_packet"), rtp_seeds())?;
    write_all(&corpus.join("rtcp_compound"), rtcp_seeds())?;
    write_all(&corpus.join("jitter_buffer"), jitter_seeds())?;
    write_all(&corpus.join("forwarder"), forwarder_seeds())?;
    write_all(&corpus.join("config"), config_seeds()?)?;
    write_all(&corpus.join("live_console"), live_console_seeds())?;
    write_all(&corpus.join("radio_external"), radio_external_seeds())?;
    write_all(&corpus.join("dtmf"), dtmf_seeds())?;
    write_all(&corpus.join("beidou_nmea"), beidou_seeds()?)?;
    write_all(&corpus.join("iridium_sbd"), iridium_seeds())?;
    write_all(&corpus.join("beidou_bd1"), bd1_seeds())?;
    write_all(&corpus.join("cascade_frame"), cascade_frame_seeds())?;
    write_all(
        &corpus.join("cascade_reassembly"),
        cascade_reassembly_seeds(),
    )?;
    write_all(
        &corpus.join("sms_pdu"),
        vec![(
            "hellohello-deliver",
            b"07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37".to_vec(),
        )],
    )?;
    Ok(())
}

fn write_all(dir: &Path, seeds: Vec<(&str, Vec<u8>)>) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

fn header(payload_type: u8) -> OutgoingHeader {
    OutgoingHeader {
        marker: true,
        payload_type,
        sequence: 0xfff0,
        timestamp: 0xffff_f000,
        ssrc: UPSTREAM_SSRC,
    }
}

/// An RTP packet with the optional parts of RFC 3550 §5.1 and §5.3.1: a CSRC list, a
/// header extension (one-byte form of RFC 8285), and `padding` bytes of padding.
fn rtp_with(csrcs: &[u32], extension: Option<&[u8]>, padding: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = build_packet(&header(111), &[]);
    packet[0] |= csrcs.len() as u8;
    for csrc in csrcs {
        packet.extend_from_slice(&csrc.to_be_bytes());
    }
    if let Some(extension) = extension {
        packet[0] |= 0x10;
        packet.extend_from_slice(&[0xbe, 0xde]);
        packet.extend_from_slice(&((extension.len() / 4) as u16).to_be_bytes());
        packet.extend_from_slice(extension);
    }
    packet.extend_from_slice(payload);
    if padding > 0 {
        packet[0] |= 0x20;
        packet.extend(std::iter::repeat_n(0, usize::from(padding - 1)));
        packet.push(padding);
    }
    packet
}

fn rtp_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let t0 = Instant::now();
    let mut opus = Packetizer::with_origin(PayloadFormat::OPUS, UPSTREAM_SSRC, 1, 0);
    let mut pcmu = Packetizer::with_origin(PayloadFormat::Pcmu, UPSTREAM_SSRC, 1, 0);
    let extension = [0x10, 0xaa, 0x21, 0xbb, 0xcc, 0x00, 0x00, 0x00];
    vec![
        ("opus-20ms", opus.packetize(&OPUS_20MS, t0)),
        ("pcmu-20ms", pcmu.packetize(&PCMU_20MS, t0)),
        (
            "opus-code3-three-frames",
            rtp_with(&[], None, 0, &[0xfb, 0x03, 1, 2, 3]),
        ),
        ("opus-padded", rtp_with(&[], None, 4, &OPUS_20MS)),
        ("opus-two-csrcs", rtp_with(&[7, 8], None, 0, &OPUS_20MS)),
        (
            "opus-extension",
            rtp_with(&[], Some(&extension), 0, &OPUS_20MS),
        ),
        (
            "opus-csrc-extension-padding",
            rtp_with(&[7], Some(&extension), 3, &OPUS_20MS),
        ),
    ]
}

fn block(ssrc: u32) -> ReportBlockData {
    ReportBlockData {
        ssrc,
        fraction_lost: 25,
        cumulative_lost: 12,
        extended_highest_sequence: 0x0001_0040,
        jitter: 96,
        last_sr: 0x2345_6789,
        delay_since_last_sr: 65_536,
    }
}

fn sender_info() -> SenderInfo {
    SenderInfo {
        ssrc: UPSTREAM_SSRC,
        ntp: 0xe9a0_0000_8000_0000,
        rtp_timestamp: 48_000,
        packet_count: 50,
        octet_count: 150,
    }
}

fn compound(spec: &CompoundSpec<'_>) -> Vec<u8> {
    build_compound(spec).unwrap_or_default()
}

fn rtcp_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let blocks = [block(0xaaaa_0001), block(0xaaaa_0002)];
    let sr = compound(&CompoundSpec {
        ssrc: UPSTREAM_SSRC,
        sender: Some(sender_info()),
        blocks: &blocks,
        cname: "district@410503",
        bye_reason: None,
        note: None,
    });
    let rr = compound(&CompoundSpec {
        ssrc: 0xbbbb_0001,
        blocks: &blocks[..1],
        cname: "street@410503001",
        ..Default::default()
    });
    let rr_bye = compound(&CompoundSpec {
        ssrc: 0xbbbb_0001,
        cname: "village",
        bye_reason: Some("upstream went silent"),
        note: None,
        ..Default::default()
    });
    let sr_bye = compound(&CompoundSpec {
        ssrc: UPSTREAM_SSRC,
        sender: Some(sender_info()),
        cname: "district@410503",
        bye_reason: Some("end of message"),
        note: None,
        ..Default::default()
    });
    // A lone BYE: drop the empty RR (8 bytes) and the SDES after it, whose length
    // field counts 32-bit words less one (RFC 3550 §6.4.1).
    let lone_bye = rr_bye
        .get(10..12)
        .map(|len| 8 + (usize::from(u16::from_be_bytes([len[0], len[1]])) + 1) * 4)
        .and_then(|start| rr_bye.get(start..))
        .unwrap_or_default()
        .to_vec();
    vec![
        ("sr-two-blocks-sdes", sr),
        ("rr-one-block-sdes", rr),
        ("rr-sdes-bye", rr_bye),
        ("sr-sdes-bye", sr_bye),
        ("lone-bye", lone_bye),
    ]
}

fn jitter_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let first = |program: &mut Vec<u8>, payload_len: u8| {
        program.push(INSERT);
        program.extend_from_slice(&100u16.to_be_bytes());
        program.extend_from_slice(&0xffff_f000u32.to_be_bytes());
        program.extend_from_slice(&0u16.to_be_bytes());
        program.push(payload_len);
    };
    let frame = |program: &mut Vec<u8>, step: i8, jitter: i8, advance_ms: u8| {
        program.extend_from_slice(&[INSERT_NEXT, step as u8, jitter as u8, 3]);
        program.extend_from_slice(&[ADVANCE, advance_ms, POLL]);
    };

    let mut steady = vec![0];
    first(&mut steady, 3);
    for _ in 0..60 {
        frame(&mut steady, 1, 0, 20);
    }

    // Late, lost and reordered packets with uneven arrival, then a pause long enough
    // for playout to stop and a second talkspurt.
    let mut rough = vec![VARIANT_G711];
    first(&mut rough, 160);
    for (i, (step, jitter, advance)) in [(1, 0, 20), (2, 0, 45), (-1, 0, 0), (2, 3, 15)]
        .into_iter()
        .cycle()
        .take(40)
        .enumerate()
    {
        frame(&mut rough, step, jitter, advance + (i % 3) as u8 * 10);
    }
    for _ in 0..8 {
        rough.extend_from_slice(&[ADVANCE, 200, POLL]);
    }
    for _ in 0..20 {
        frame(&mut rough, 1, 0, 20);
    }

    // More packets at once than the small buffer holds.
    let mut burst = vec![VARIANT_SMALL];
    first(&mut burst, 3);
    for _ in 0..10 {
        burst.extend_from_slice(&[INSERT_NEXT, 1, 0, 3]);
    }
    for _ in 0..20 {
        burst.extend_from_slice(&[ADVANCE, 20, POLL]);
    }

    vec![
        ("opus-steady", steady),
        ("g711-rough-two-talkspurts", rough),
        ("opus-small-capacity-burst", burst),
    ]
}

fn forwarder_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use forwarder::record;

    let t0 = Instant::now();
    let frame = Duration::from_millis(20);

    // An Opus talk: 50 packets 20 ms apart, a sender report after one second, one lost
    // and one repeated packet, and BYE at the end.
    let mut opus = Vec::new();
    let mut stream = Packetizer::with_origin(PayloadFormat::OPUS, UPSTREAM_SSRC, 0xfff0, 0);
    let anchor = NtpAnchor::new(t0, 0xe9a0_0000_0000_0000);
    for k in 0..50u32 {
        let packet = stream.packetize(&OPUS_20MS, t0 + frame * k);
        if k == 20 {
            continue;
        }
        opus.extend(record(RTP, 0, 20, &packet));
        if k == 30 {
            opus.extend(record(RTP, 0, 0, &packet));
        }
        if k == 25 {
            let sr = stream
                .sender_info(t0 + frame * k, &anchor)
                .map(|info| {
                    compound(&CompoundSpec {
                        ssrc: UPSTREAM_SSRC,
                        sender: Some(info),
                        cname: "district@410503",
                        ..Default::default()
                    })
                })
                .unwrap_or_default();
            opus.extend(record(RTCP, 1, 0, &sr));
        }
    }
    let bye = compound(&CompoundSpec {
        ssrc: UPSTREAM_SSRC,
        cname: "district@410503",
        bye_reason: Some("end of message"),
        note: None,
        ..Default::default()
    });
    opus.extend(record(RTCP, 1, 0, &bye));

    // A PCMU talk that goes silent until the input times out, with a stranger and a
    // competing source mixed in.
    let mut pcmu = Vec::new();
    let mut stream = Packetizer::with_origin(PayloadFormat::Pcmu, UPSTREAM_SSRC, 7, 160);
    let mut rival = Packetizer::with_origin(PayloadFormat::Pcmu, 0xbad0_0001, 9, 0);
    for k in 0..30u32 {
        pcmu.extend(record(
            RTP,
            0,
            20,
            &stream.packetize(&PCMU_20MS, t0 + frame * k),
        ));
        if k % 10 == 5 {
            pcmu.extend(record(RTP, 2, 0, &rival.packetize(&PCMU_20MS, t0)));
            pcmu.extend(record(RTP, 0, 0, &rival.packetize(&PCMU_20MS, t0)));
        }
    }
    for _ in 0..12 {
        pcmu.extend(record(TIMER, 0, 250, &[]));
    }

    vec![("opus-talk-sr-bye", opus), ("pcmu-talk-timeout", pcmu)]
}

/// A console's talk as `live_console` reads it: each datagram led by its length.
fn live_console_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let t0 = Instant::now();
    let frame = Duration::from_millis(20);
    let talk = |format: PayloadFormat, payload: &[u8]| {
        let mut stream = Packetizer::with_origin(format, UPSTREAM_SSRC, 0xfffe, 0);
        let mut bytes = Vec::new();
        for k in 0..10u32 {
            let packet = stream.packetize(payload, t0 + frame * k);
            bytes.push(packet.len() as u8);
            bytes.extend(packet);
        }
        bytes
    };
    vec![
        ("opus-talk", talk(PayloadFormat::OPUS, &OPUS_20MS)),
        ("pcmu-talk", talk(PayloadFormat::Pcmu, &PCMU_20MS)),
    ]
}

/// A simulator's side of a connection: inputs, a second of audio, a lost sound card;
/// and a gateway's: hello and PTT up and down. Read in pieces of 7 and of 200 bytes.
fn radio_external_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use drivers::radio::external::Message;
    use drivers::serial::modem_lines::{InputLevels, OutputLevels};

    let mut simulator = vec![7u8];
    simulator.extend(
        Message::Inputs(InputLevels {
            dcd: true,
            ..Default::default()
        })
        .encode(),
    );
    for k in 0..50 {
        simulator.extend(Message::Audio(vec![k * 100; 960]).encode());
    }
    simulator.extend(
        Message::AudioLost {
            reason: "unplugged".into(),
        }
        .encode(),
    );
    let mut gateway = vec![200u8];
    for message in [
        Message::Hello {
            port: "tg-1001".into(),
        },
        Message::Outputs(OutputLevels {
            rts: true,
            dtr: true,
        }),
        Message::Outputs(OutputLevels::default()),
    ] {
        gateway.extend(message.encode());
    }
    vec![("simulator", simulator), ("gateway", gateway)]
}

/// Keys `5` and `#` as 100 ms tones at -12 dBFS each, 48 kHz little-endian.
fn dtmf_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let key = |low: f64, high: f64| -> Vec<u8> {
        (0..4800)
            .flat_map(|n| {
                let t = f64::from(n) / 48_000.0;
                let s = 0.25
                    * ((std::f64::consts::TAU * low * t).sin()
                        + (std::f64::consts::TAU * high * t).sin());
                ((s * 32_767.0) as i16).to_le_bytes()
            })
            .collect()
    };
    let mut two = key(770.0, 1336.0);
    two.extend(vec![0u8; 4800]);
    two.extend(key(941.0, 1477.0));
    vec![("five-hash", two)]
}

fn config_seeds() -> io::Result<Vec<(&'static str, Vec<u8>)>> {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut seeds = Vec::new();
    for name in [
        "district.toml",
        "street.toml",
        "village.toml",
        "street-radio.toml",
    ] {
        seeds.push((name, fs::read(examples.join(name))?));
    }
    let live_district = "[node]\nname = \"district-live\"\ntier = \"district\"\n\
        area = \"410503\"\n\n[rtp]\nlisten = \"[::1]:5000\"\nopus_payload_type = 96\n\
        opus_bitrate = 24000\nrtcp_interval_ms = 1000\ninput_timeout_ms = 500\n\n\
        [source]\ndevice = \"default\"\n\n[upstream]\nallow = [\"10.0.0.1\", \"::1\"]\n\n\
        [[downstream]]\nname = \"pole\"\naddress = \"10.0.0.2:6000\"\ncodec = \"pcma\"\n\
        kind = \"loudspeaker\"\n";
    seeds.push((
        "district-live-device.toml",
        live_district.as_bytes().to_vec(),
    ));
    Ok(seeds)
}

/// The 2.1 transcript's sentences as the terminal and the host sent them, read in pieces
/// of 5 bytes.
fn beidou_seeds() -> io::Result<Vec<(&'static str, Vec<u8>)>> {
    let transcript = fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../drivers/tests/fixtures/serial/beidou-rdss-2.1.txt"),
    )?;
    let mut stream = vec![5u8];
    for line in transcript.lines() {
        if let Some(sentence) = line.strip_prefix("> ").or(line.strip_prefix("< ")) {
            stream.extend(sentence.as_bytes());
            stream.extend(b"\r\n");
        }
    }
    Ok(vec![("transcript", stream)])
}

/// A modem's answers to a start, a failed and a good session with an MT message, in
/// pieces of 7 bytes.
fn iridium_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut answers = vec![7u8];
    for line in [
        "",
        "OK",
        "",
        "OK",
        "+CSQ:4",
        "OK",
        "READY",
        "0",
        "OK",
        "+SBDIX: 32, 8, 2, 0, 0, 0",
        "OK",
        "SBDRING",
        "READY",
        "0",
        "OK",
        "+SBDIX: 0, 1, 1, 1, 6, 8",
        "OK",
        "OK",
        "+SBDRT:",
        "hello!",
        "OK",
    ] {
        answers.extend(line.as_bytes());
        answers.extend(b"\r\n");
    }
    vec![("transcript-answers", answers)]
}

/// A 4.0 terminal's card, a rate refusal and a message, read in pieces of 5 bytes.
fn bd1_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use drivers::satellite::beidou::bd1::Frame;
    let mut stream = vec![5u8];
    let mut message = vec![0x46, 0x03, 0xC2, 0xF6, 14, 5, 0, 40];
    message.extend(b"hello");
    message.push(0);
    for frame in [
        Frame::new(b"ICXX", 0x028A1F, vec![0, 0, 0, 11, 6, 0, 60, 3, 0, 0, 0]),
        Frame::new(b"FKXX", 0x028A1F, vec![4, 0, 0, 0, 58]),
        Frame::new(b"TXXX", 0x028A1F, message),
    ] {
        stream.extend(frame.encode());
    }
    vec![("card-feedback-message", stream)]
}

/// Frames of every kind as a district would seal them: signed with the seed key or
/// tagged with the fuzz link's key, valid around `emcomm_fuzz::cascade::NOW`.
fn cascade_frames() -> Vec<(&'static str, Vec<u8>)> {
    use gateway::alert::model::Level;
    use gateway::cascade::auth::{Sealer, seal};
    use gateway::cascade::frame::{
        Acknowledgement, Alert, BearerKind, Body, Cancel, Content, FieldReport, Header, Heartbeat,
        LinkState, StreamGrant,
        TagLength, Timestamp,
    };
    use gateway::cascade::keys::{LinkKey, NodeKey};
    use gateway::cascade::samples;

    let area = |code: &str| code.parse().expect("area code");
    let key = NodeKey::from_hex(&"11".repeat(32)).expect("seed key");
    let link = LinkKey::from_bytes(emcomm_fuzz::cascade::LINK_KEY);
    let header = |sequence| Header {
        origin: area("410503"),
        sequence,
        valid_from: Timestamp(emcomm_fuzz::cascade::NOW - 10),
        valid_until: Timestamp(emcomm_fuzz::cascade::NOW + 3600),
    };
    let mut alert = samples::red_alert("暴雨红色预警，立即转移");
    alert.targets.push(area("410503002"));
    let bodies = [
        ("alert", Body::Alert(alert.clone())),
        (
            "update",
            Body::Update(Alert {
                content: Content::Audio("alerts/88.opus".to_string()),
                ..alert
            }),
        ),
        ("cancel", Body::Cancel(Cancel { number: 88 })),
        (
            "acknowledgement",
            Body::Acknowledgement(Acknowledgement {
                origin: area("410503001"),
                sequence: 9,
            }),
        ),
        ("receipt", samples::village_receipt()),
        (
            "field-report",
            Body::FieldReport(FieldReport {
                text: "河堤出现管涌".to_string(),
            }),
        ),
        ("heartbeat", Body::Heartbeat(Heartbeat::default())),
        (
            "heartbeat-up",
            Body::Heartbeat(Heartbeat {
                below: vec![
                    LinkState {
                        peer: area("410503001001"),
                        bearer: Some(BearerKind::Beidou),
                        planned_bearer: BearerKind::Beidou,
                        message_bytes: 78,
                        pacing: Some((2, 60)),
                        queued: 1,
                        radio: true,
                    },
                    LinkState {
                        peer: area("410503001002"),
                        bearer: None,
                        planned_bearer: BearerKind::Ip,
                        message_bytes: 1200,
                        pacing: None,
                        queued: 0,
                        radio: false,
                    },
                ],
            }),
        ),
        (
            "stream-grant",
            Body::StreamGrant(StreamGrant {
                ssrc: 0xd157_0001,
                level: Level::Red,
            }),
        ),
    ];
    let mut seeds = Vec::new();
    for (sequence, (name, body)) in (1..).zip(bodies) {
        let sealer = if sequence % 2 == 0 {
            Sealer::Sm2(&key)
        } else {
            Sealer::Hmac(&link, TagLength::Eight)
        };
        seeds.push((
            name,
            seal(&header(sequence), &body, sealer).expect("sealed"),
        ));
    }
    seeds
}

fn cascade_frame_seeds() -> Vec<(&'static str, Vec<u8>)> {
    cascade_frames()
}

/// The signed update cut for BeiDou, fed out of order with a repeat and a stray frame.
fn cascade_reassembly_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use emcomm_fuzz::cascade::{EXPIRE, RAW};
    use gateway::cascade::fragment::{BEIDOU_MESSAGE, fragment};

    let frames = cascade_frames();
    let mut program = vec![60, 3, 0x04, 0x00];
    let record = |program: &mut Vec<u8>, op: u8, advance: u8, bytes: &[u8]| {
        program.extend_from_slice(&[op, advance, bytes.len() as u8]);
        program.extend_from_slice(bytes);
    };
    let update = &frames[1].1;
    let fragments = fragment(update, BEIDOU_MESSAGE).expect("cut");
    for index in [1, 0, 1] {
        record(&mut program, RAW, 30, &fragments[index]);
    }
    record(&mut program, RAW, 1, &frames[2].1);
    for f in fragments.iter().skip(2) {
        record(&mut program, RAW, 30, f);
    }
    record(&mut program, EXPIRE, 90, &[]);
    vec![("beidou-update-out-of-order", program)]
}
