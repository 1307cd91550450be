//! The fault relay (`emcomm-bench faults`) as a process between two real sockets: it
//! loses about the share it is told to, duplicates, answers back to the sender, and a
//! cut stops everything until it heals.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hw_test::process::{Supervised, await_ready, watch};

/// Sends `count` numbered datagrams from `from` through the relay at `relay`, paced; gives
/// the numbers `sink` received (duplicates included), read as they come.
fn send_through(from: &UdpSocket, relay: &str, sink: &UdpSocket, count: u32) -> Vec<u32> {
    let reader = sink.try_clone().expect("sink clone");
    let collector = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buffer = [0u8; 16];
        let mut idle_since = Instant::now();
        while idle_since.elapsed() < Duration::from_millis(500) {
            if let Ok(n) = reader.recv(&mut buffer) {
                idle_since = Instant::now();
                if n == 4 {
                    got.push(u32::from_be_bytes([
                        buffer[0], buffer[1], buffer[2], buffer[3],
                    ]));
                }
            }
        }
        got
    });
    for k in 0..count {
        from.send_to(&k.to_be_bytes(), relay).expect("send");
        if k % 20 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    collector.join().expect("collector")
}

#[test]
fn the_relay_loses_duplicates_answers_back_and_cuts_as_told() {
    let dir = common::scratch("faults");
    let (_, bench) = common::binaries();
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let relay_port = hw_test::process::free_port_pair().expect("port");
    let relay = format!("127.0.0.1:{relay_port}");
    let cut = dir.join("cut");
    let mut child = Command::new(bench)
        .args(["faults", "--listen", &relay, "--to"])
        .arg(sink.local_addr().expect("addr").to_string())
        .args([
            "--drop",
            "0.3",
            "--duplicate",
            "0.1",
            "--seed",
            "5",
            "--cut-file",
        ])
        .arg(&cut)
        .stdout(Stdio::piped())
        .spawn()
        .expect("emcomm-bench faults");
    let ready = watch(
        child.stdout.take().expect("stdout"),
        dir.join("relay.out"),
        "fault relay",
    );
    let _relay = Supervised::new("relay", child);
    await_ready("relay", &ready, Duration::from_secs(10)).expect("relay up");

    let from = UdpSocket::bind("127.0.0.1:0").expect("sender");
    from.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let got = send_through(&from, &relay, &sink, 2000);
    let mut distinct = got.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // 70 % arrive, a tenth of those twice.
    assert!(
        (1250..1550).contains(&distinct.len()),
        "{} distinct",
        distinct.len()
    );
    assert!(
        got.len() > distinct.len() + 60,
        "duplicates: {}",
        got.len() - distinct.len()
    );

    // The far side answers where the datagrams came from; the answer reaches the sender.
    from.send_to(&7u32.to_be_bytes(), &relay).expect("send");
    let mut buffer = [0u8; 8];
    let mut inner = None;
    for _ in 0..20 {
        match sink.recv_from(&mut buffer) {
            Ok((_, addr)) => {
                inner = Some(addr);
                break;
            }
            Err(_) => {
                from.send_to(&7u32.to_be_bytes(), &relay).expect("send");
            }
        }
    }
    let inner = inner.expect("a datagram through the relay");
    let answered = (0..20).any(|_| {
        sink.send_to(b"ack!", inner).expect("answer");
        from.recv(&mut buffer)
            .is_ok_and(|n| &buffer[..n] == b"ack!")
    });
    assert!(answered, "the answer came back to the sender");
    while from.recv(&mut buffer).is_ok() {}

    std::fs::write(&cut, b"").expect("cut");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        send_through(&from, &relay, &sink, 200).is_empty(),
        "nothing crosses a cut"
    );
    std::fs::remove_file(&cut).expect("heal");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        send_through(&from, &relay, &sink, 200).len() > 100,
        "flows again once healed"
    );
}

#[test]
fn two_namespaced_hosts_talk_over_their_veth_until_the_link_is_cut() {
    let mut lab = hw_test::netns::Lab::new("ft").expect("a lab (root and iproute2)");
    let street = lab.host("street").expect("host");
    let village = lab.host("village").expect("host");
    let link = lab.link(&street, &village).expect("veth");
    let (_, bench) = common::binaries();
    // The fault relay inside the street host forwards to the village's address, where a
    // second relay hands on to a socket on the village's loopback: two hops, two hosts.
    let dir = common::scratch("netns");
    let start = |host: &hw_test::netns::Host, listen: String, to: String, name: &str| {
        let mut child = lab
            .command(host, &bench)
            .args(["faults", "--listen", &listen, "--to", &to])
            .stdout(Stdio::piped())
            .spawn()
            .expect("relay in a namespace");
        let ready = watch(
            child.stdout.take().expect("stdout"),
            dir.join(format!("{name}.out")),
            "fault relay",
        );
        let relay = Supervised::new(name, child);
        await_ready(name, &ready, Duration::from_secs(10)).expect("relay up");
        relay
    };
    let _village_relay = start(
        &village,
        format!("{}:7100", link.b_addr),
        "127.0.0.1:7200".into(),
        "village",
    );
    let _street_relay = start(
        &street,
        "127.0.0.1:7000".into(),
        format!("{}:7100", link.b_addr),
        "street",
    );
    // Probe from inside the street namespace with a one-shot program: emcomm-bench
    // cannot open a socket in another namespace from this process, so a python3 one-liner
    // sends and a second, in the village, listens.
    let listen = |seconds: u32| {
        lab.command(&village, "python3")
            .args([
                "-c",
                &format!(
                    "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                     s.bind(('127.0.0.1',7200))\ns.settimeout({seconds})\n\
                     try:\n  print(s.recv(64).decode())\nexcept Exception:\n  print('nothing')"
                ),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("listener")
    };
    let send = || {
        let status = lab
            .command(&street, "python3")
            .args([
                "-c",
                "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 for _ in range(20):\n  s.sendto(b'alert',('127.0.0.1',7000))\n  time.sleep(0.05)",
            ])
            .status()
            .expect("sender");
        assert!(status.success());
    };
    let heard = |listener: std::process::Child| {
        String::from_utf8_lossy(&listener.wait_with_output().expect("listener").stdout)
            .trim()
            .to_string()
    };
    let listener = listen(3);
    send();
    assert_eq!(heard(listener), "alert");
    lab.set_link(&link, false).expect("cut");
    let listener = listen(2);
    send();
    assert_eq!(heard(listener), "nothing", "a cut link carries nothing");
    lab.set_link(&link, true).expect("heal");
    let listener = listen(3);
    send();
    assert_eq!(heard(listener), "alert");
}
