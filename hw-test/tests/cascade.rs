//! The cascade between real daemons: district, street and village nodes, each an
//! `emcomm run` with a `[cascade]` table, their frames over UDP on the loopback through
//! fault relays (`emcomm-bench faults`) that can cut a link, and, between district and
//! street, a pair of simulated BeiDou terminals (1 s service interval) as the fallback.
//!
//! A field report sent at the village reaches the district over IP, then, with the
//! street's IP link to the district cut, over BeiDou; the district lists each once. An
//! alert sent at the district with that link cut plays at street and village, each
//! loudspeaker's receipt reaches the district by area and bearer, and a street killed
//! and restarted plays nothing twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hw_test::process::{Supervised, await_ready, free_port_pair, watch};
use serde_json::Value;

/// The tests here run one at a time: each binds many ports, chosen free before they are
/// bound, and the fault relays' own sockets take ephemeral ports that another test may
/// have just chosen.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const OPERATORS: &str =
    "[[operator]]\nname = \"li.na\"\nrole = \"operator\"\ntoken = \"operator-token-0123456789\"\n";

struct Node {
    dir: PathBuf,
    api: String,
    /// The network namespace the node runs in, if any.
    netns: Option<String>,
    process: Supervised,
}

/// `program`, inside `netns` when given.
fn command_in(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl Node {
    /// Kills the node with SIGKILL, then starts it again on the same configuration.
    fn kill_and_restart(&mut self, name: &str) {
        self.process.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.process.wait(Duration::from_secs(10));
        self.process = run(
            &self.dir,
            name,
            self.netns.as_deref(),
            "daemon-after-kill.log",
        );
    }

    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let (emcomm, _) = common::binaries();
        let out = command_in(self.netns.as_deref(), &emcomm)
            .args(args)
            .args(["--node", &self.api, "--token-file"])
            .arg(self.dir.join("operator.token"))
            .output()
            .expect("emcomm cli");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn reports(&self) -> Vec<Value> {
        let (code, out, err) = self.cli(&["report", "list", "--json"]);
        assert_eq!(code, Some(0), "{out}{err}");
        let list: Value = serde_json::from_str(&out).expect("json");
        list["reports"].as_array().cloned().unwrap_or_default()
    }
}

fn keys(dir: &Path, node: &str, link_key: bool) {
    let (emcomm, _) = common::binaries();
    let mut command = Command::new(emcomm);
    command
        .args(["keys", "generate", "--out"])
        .arg(dir)
        .args(["--node", node]);
    if link_key {
        command.arg("--link-key");
    }
    let out = command.output().expect("emcomm keys");
    assert!(out.status.success(), "{out:?}");
}

fn start(dir: &Path, name: &str, config: &str, netns: Option<&str>) -> Node {
    std::fs::create_dir_all(dir).expect("node folder");
    std::fs::write(dir.join("operators.toml"), OPERATORS).expect("operators");
    std::fs::write(dir.join("operator.token"), "operator-token-0123456789").expect("token");
    let api_port = free_tcp_port();
    let config = config.replace("API", &format!("127.0.0.1:{api_port}"));
    std::fs::write(dir.join("node.toml"), config).expect("config");
    Node {
        dir: dir.to_path_buf(),
        api: format!("http://127.0.0.1:{api_port}"),
        netns: netns.map(str::to_owned),
        process: run(dir, name, netns, "daemon.log"),
    }
}

/// A TCP port free now on the loopback, for a control API.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

/// Runs `emcomm run` on the node's configuration in `dir`, its journal to `log`.
fn run(dir: &Path, name: &str, netns: Option<&str>, log: &str) -> Supervised {
    let (emcomm, _) = common::binaries();
    let mut child = command_in(netns, &emcomm)
        .args(["run", "--config"])
        .arg(dir.join("node.toml"))
        .env("EMCOMM_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("emcomm run");
    let ready = watch(
        child.stderr.take().expect("stderr"),
        dir.join(log),
        "control API listening",
    );
    let process = Supervised::new(name, child);
    await_ready(name, &ready, Duration::from_secs(30)).expect("daemon up");
    process
}

fn relay(dir: &Path, name: &str, listen: u16, to: u16) -> Supervised {
    let (_, bench) = common::binaries();
    let mut child = Command::new(bench)
        .args(["faults", "--listen", &format!("127.0.0.1:{listen}"), "--to"])
        .arg(format!("127.0.0.1:{to}"))
        .arg("--cut-file")
        .arg(dir.join(format!("{name}.cut")))
        .stdout(Stdio::piped())
        // Kept, so a relay that stopped says why.
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).expect("relay's log"))
        .spawn()
        .expect("fault relay");
    let ready = watch(
        child.stdout.take().expect("stdout"),
        dir.join(format!("{name}.out")),
        "fault relay",
    );
    let process = Supervised::new(name, child);
    await_ready(name, &ready, Duration::from_secs(10)).expect("relay up");
    process
}

fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Four fault relays on the loopback, one each way between district and street and
/// between street and village (cut with `dir/FROM-TO.cut`), and the addresses that go
/// through them.
fn loopback(dir: &Path) -> (Vec<Supervised>, Addresses) {
    let ports: Vec<u16> = (0..7).map(|_| free_port_pair().expect("port")).collect();
    let local = |port: u16| format!("127.0.0.1:{port}");
    let relays = vec![
        relay(dir, "street-district", ports[3], ports[0]),
        relay(dir, "district-street", ports[4], ports[1]),
        relay(dir, "village-street", ports[5], ports[1]),
        relay(dir, "street-village", ports[6], ports[2]),
    ];
    let at = Addresses {
        district: local(ports[0]),
        street: local(ports[1]),
        village: local(ports[2]),
        street_to_district: local(ports[3]),
        district_to_street: local(ports[4]),
        village_to_street: local(ports[5]),
        street_to_village: local(ports[6]),
    };
    (relays, at)
}

/// Where each node listens for frames and where it sends them to each neighbour.
struct Addresses {
    district: String,
    street: String,
    village: String,
    district_to_street: String,
    street_to_district: String,
    street_to_village: String,
    village_to_street: String,
}

/// The three nodes' configurations: district and street each with a BeiDou terminal
/// (at `links`) as the fallback between them; the keys made in `dir/keys`.
fn configs(dir: &Path, at: &Addresses, links: (&Path, &Path)) -> (String, String, String) {
    let keys_dir = dir.join("keys");
    for (node, link) in [("district", true), ("street", true), ("village", false)] {
        keys(&keys_dir, node, link);
    }
    let k = |f: &str| keys_dir.join(f).display().to_string();
    let origins = format!(
        "[[cascade.origin]]\narea = \"410503\"\npublic_key = \"{}\"\n\n\
         [[cascade.origin]]\narea = \"410503001\"\npublic_key = \"{}\"\n\n\
         [[cascade.origin]]\narea = \"410503001001\"\npublic_key = \"{}\"\n\n",
        k("district.sm2.pub"),
        k("street.sm2.pub"),
        k("village.sm2.pub")
    );
    let head = |name: &str, tier: &str, area: &str, listen: &str| {
        // Receivers report often, so receipts come soon after a play.
        let rtp = if tier == "district" {
            "[rtp]\nrtcp_interval_ms = 500\n\n".to_string()
        } else {
            format!(
                "[rtp]\nlisten = \"127.0.0.1:{}\"\nrtcp_interval_ms = 500\n\n",
                free_port_pair().expect("port")
            )
        };
        format!(
            "[node]\nname = \"{name}\"\ntier = \"{tier}\"\narea = \"{area}\"\n\n{rtp}\
             [api]\nlisten = \"API\"\noperators = \"operators.toml\"\n\n\
             [cascade]\nkey = \"{}\"\nstate_dir = \"state\"\nlisten = \"{listen}\"\nheartbeat_s = 1\n\n{origins}",
            k(&format!("{name}.sm2.key"))
        )
    };
    let terminal = |link: &Path| {
        format!(
            "[satellite]\nstate_dir = \"state\"\n\n\
             [[terminal]]\nname = \"bd-1\"\nkind = \"beidou\"\nport = \"{}\"\n\n",
            link.display()
        )
    };
    let link = |name: &str, peer: &str, direction: &str, ip: &str, key: &str| {
        format!(
            "[[cascade.link]]\nname = \"{name}\"\npeer = \"{peer}\"\ndirection = \"{direction}\"\n\
             ip = \"{ip}\"\nlink_key = \"{}\"\n",
            k(key)
        )
    };
    let over_beidou =
        |to: &str| format!("terminal = \"bd-1\"\nterminal_to = \"{to}\"\nterminal_ack_s = 20\n\n");
    let district = format!(
        "{}{}{}{}",
        head("district", "district", "410503", &at.district),
        terminal(links.0),
        link(
            "street-1",
            "410503001",
            "down",
            &at.district_to_street,
            "district.link.key"
        ),
        over_beidou("0247718"),
    );
    let street = format!(
        "{}{}{}{}{}",
        head("street", "street", "410503001", &at.street),
        terminal(links.1),
        link(
            "district",
            "410503",
            "up",
            &at.street_to_district,
            "district.link.key"
        ),
        over_beidou("0166166"),
        link(
            "village-1",
            "410503001001",
            "down",
            &at.street_to_village,
            "street.link.key"
        ),
    );
    let village = format!(
        "{}{}",
        head("village", "village", "410503001001", &at.village),
        link(
            "street",
            "410503001",
            "up",
            &at.village_to_street,
            "street.link.key"
        ),
    );
    (district, street, village)
}

/// Sends a report at the village and waits until the district lists `count` reports;
/// gives the newest.
fn report_reaches_district(village: &Node, district: &Node, text: &str, count: usize) -> Value {
    let (code, out, err) = village.cli(&["report", "send", text]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_until(
        "the report at the district",
        Duration::from_secs(90),
        || district.reports().len() == count,
    );
    let newest = district.reports()[0].clone();
    assert_eq!(newest["origin"], "410503001001");
    assert_eq!(newest["text"], text);
    newest
}

#[test]
fn a_field_report_reaches_the_district_over_ip_and_over_beidou_when_ip_is_cut() {
    let _serial = one_at_a_time();
    let dir = common::scratch("cascade-report");
    // Frames between two nodes go through a fault relay each way, so a test can cut a
    // link; a node sends to its peer's relay and hears the peer from the other relay.
    let (_relays, at) = loopback(&dir);
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired_beidou(&dir);
    let (district, street, village) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let district = start(&dir.join("district"), "district", &district, None);
    let street = start(&dir.join("street"), "street", &street, None);
    let village = start(&dir.join("village"), "village", &village, None);

    let first = report_reaches_district(&village, &district, "3组：桥梁冲毁，2户被困", 1);
    assert_eq!(first["bearer"], "ip");
    assert_eq!(street.reports().len(), 1, "the street lists what passed it");

    // The street's IP link to the district is cut: the next report goes by BeiDou.
    for cut in ["street-district.cut", "district-street.cut"] {
        std::fs::write(dir.join(cut), b"").expect("cut");
    }
    std::thread::sleep(Duration::from_secs(6));
    let second = report_reaches_district(&village, &district, "5组：道路中断", 2);
    assert_eq!(second["bearer"], "beidou", "{second}");
    // Nothing twice, even once IP heals and late copies arrive.
    for cut in ["street-district.cut", "district-street.cut"] {
        std::fs::remove_file(dir.join(cut)).expect("heal");
    }
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(district.reports().len(), 2);
    // The relay acted on each report once: a second delivery would log a second line
    // (the list itself ignores a copy).
    let log = std::fs::read_to_string(district.dir.join("daemon.log")).expect("log");
    assert_eq!(log.matches("field report received").count(), 2, "{log}");
}

#[test]
fn between_network_namespaces_a_report_goes_by_beidou_while_the_veth_is_down_and_by_ip_again_after()
{
    let _serial = one_at_a_time();
    let dir = common::scratch("cascade-netns");
    let mut lab = hw_test::netns::Lab::new("cas").expect("a lab (root and iproute2)");
    let hosts: Vec<_> = ["d", "s", "v"]
        .iter()
        .map(|n| lab.host(n).expect("host"))
        .collect();
    let upper = lab
        .link(&hosts[0], &hosts[1])
        .expect("veth district-street");
    let lower = lab.link(&hosts[1], &hosts[2]).expect("veth street-village");
    let at = Addresses {
        district: format!("{}:7400", upper.a_addr),
        street: "0.0.0.0:7400".into(),
        village: format!("{}:7400", lower.b_addr),
        district_to_street: format!("{}:7400", upper.b_addr),
        street_to_district: format!("{}:7400", upper.a_addr),
        street_to_village: format!("{}:7400", lower.b_addr),
        village_to_street: format!("{}:7400", lower.a_addr),
    };
    // The terminals' simulators stay in the machine's own namespace: a pseudo-terminal is
    // a file, which every namespace sees.
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired_beidou(&dir);
    let (district, street, village) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let district = start(
        &dir.join("district"),
        "district",
        &district,
        Some(&hosts[0].netns),
    );
    let _street = start(
        &dir.join("street"),
        "street",
        &street,
        Some(&hosts[1].netns),
    );
    let village = start(
        &dir.join("village"),
        "village",
        &village,
        Some(&hosts[2].netns),
    );

    let first = report_reaches_district(&village, &district, "1组：山体滑坡", 1);
    assert_eq!(first["bearer"], "ip");
    lab.set_link(&upper, false)
        .expect("cut the district's fibre");
    std::thread::sleep(Duration::from_secs(6));
    let second = report_reaches_district(&village, &district, "2组：通信中断", 2);
    assert_eq!(second["bearer"], "beidou", "{second}");
    lab.set_link(&upper, true).expect("heal");
    std::thread::sleep(Duration::from_secs(6));
    let third = report_reaches_district(&village, &district, "3组：已撤离", 3);
    assert_eq!(
        third["bearer"], "ip",
        "back on IP once the link heals: {third}"
    );
}

#[test]
fn a_street_killed_with_a_report_queued_sends_it_after_its_restart_and_the_district_lists_it_once()
{
    let _serial = one_at_a_time();
    let dir = common::scratch("cascade-sigkill");
    let (_relays, at) = loopback(&dir);
    // Terminals that reach nobody: with IP cut, the street has no way up.
    let (_bd_d, bd_d_link) = common::start_sim("beidou", "beidou simulator", &dir, "bd-d", &[]);
    let (_bd_s, bd_s_link) = common::start_sim("beidou", "beidou simulator", &dir, "bd-s", &[]);
    let (district, street, village) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let district = start(&dir.join("district"), "district", &district, None);
    let mut street = start(&dir.join("street"), "street", &street, None);
    let village = start(&dir.join("village"), "village", &village, None);
    wait_until(
        "the street's link up on IP",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(dir.join("street/daemon.log"))
                .is_ok_and(|l| l.contains("cascade link route link=district bearer=Ip"))
        },
    );
    for cut in ["street-district.cut", "district-street.cut"] {
        std::fs::write(dir.join(cut), b"").expect("cut");
    }
    let (code, out, err) = village.cli(&["report", "send", "7组：房屋倒塌"]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_until(
        "the report stored at the street",
        Duration::from_secs(20),
        || street.reports().len() == 1,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(district.reports().is_empty(), "it has no way up yet");

    street.kill_and_restart("street");
    for cut in ["street-district.cut", "district-street.cut"] {
        std::fs::remove_file(dir.join(cut)).expect("heal");
    }
    wait_until(
        "the report at the district after the restart",
        Duration::from_secs(60),
        || district.reports().len() == 1,
    );
    assert_eq!(district.reports()[0]["text"], "7组：房屋倒塌");
    std::thread::sleep(Duration::from_secs(5));
    let log = std::fs::read_to_string(dir.join("district/daemon.log")).expect("log");
    assert_eq!(log.matches("field report received").count(), 1, "{log}");
    let restarted = std::fs::read_to_string(dir.join("street/daemon-after-kill.log")).expect("log");
    assert!(
        restarted.contains("cascade frames queued before the restart go again"),
        "{restarted}"
    );
}

#[test]
fn forged_unknown_expired_and_replayed_reports_sent_to_a_street_never_reach_the_district() {
    let _serial = one_at_a_time();
    use gateway::cascade::auth::{Sealer, seal};
    use gateway::cascade::frame::{Body, FieldReport};
    use gateway::cascade::keys::NodeKey;

    let dir = common::scratch("cascade-forged");
    let (_relays, at) = loopback(&dir);
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired_beidou(&dir);
    let (district, street, village) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let district = start(&dir.join("district"), "district", &district, None);
    let _street = start(&dir.join("street"), "street", &street, None);
    let _village = start(&dir.join("village"), "village", &village, None);

    let village_key = NodeKey::load(&dir.join("keys/village.sm2.key")).expect("the village's key");
    let stranger = NodeKey::generate().expect("a key nobody trusts");
    let now = chrono::Utc::now();
    let header = |origin: &str, sequence: u32, from: i64, until: i64| {
        header_at(now, origin, sequence, from, until)
    };
    let report = |text: &str| Body::FieldReport(FieldReport { text: text.into() });
    let frames = [
        // In the village's name, signed by a stranger.
        seal(
            &header("410503001001", 9000, 0, 3600),
            &report("伪造"),
            Sealer::Sm2(&stranger),
        ),
        // From a division nobody configured.
        seal(
            &header("410599001001", 1, 0, 3600),
            &report("陌生"),
            Sealer::Sm2(&stranger),
        ),
        // The village's own key, but expired an hour ago.
        seal(
            &header("410503001001", 9001, -7200, -3600),
            &report("过期"),
            Sealer::Sm2(&village_key),
        ),
        // Genuine: sent twice, a replay the second time.
        seal(
            &header("410503001001", 9002, 0, 3600),
            &report("真实报告"),
            Sealer::Sm2(&village_key),
        ),
    ];
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    inject(&socket, &at.street, &frames);
    wait_until(
        "the genuine report at the district",
        Duration::from_secs(30),
        || district.reports().len() == 1,
    );
    socket
        .send_to(frames[3].as_ref().expect("sealed"), &at.street)
        .expect("replayed");
    std::thread::sleep(Duration::from_secs(4));
    let reports = district.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["text"], "真实报告");
    let log = std::fs::read_to_string(dir.join("street/daemon.log")).expect("log");
    for code in ["bad_signature", "unknown_origin", "expired"] {
        assert!(
            log.contains(&format!("code=\"{code}\"")) || log.contains(&format!("code={code}")),
            "{code}: {log}"
        );
    }
    let district_log = std::fs::read_to_string(dir.join("district/daemon.log")).expect("log");
    assert_eq!(district_log.matches("field report received").count(), 1);
}

#[test]
fn an_alert_accepted_at_the_district_goes_down_the_cascade_as_a_frame_once() {
    let _serial = one_at_a_time();
    let dir = common::scratch("cascade-alert");
    let (_relays, at) = loopback(&dir);
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired_beidou(&dir);
    let (district, street, village) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    // An alert district: its voice goes to an address nobody listens on, its frames down
    // the cascade.
    let district = format!(
        "{district}\n[alerts]\nstate_dir = \"state\"\nattention = \"none\"\ngap_ms = 200\nrepeat = 1\n\n\
         [[downstream]]\nname = \"street-1\"\naddress = \"127.0.0.1:{}\"\ncodec = \"opus\"\narea = \"410503001\"\n",
        free_port_pair().expect("port")
    );
    let mut district = start(&dir.join("district"), "district", &district, None);
    let _street = start(&dir.join("street"), "street", &street, None);
    let _village = start(&dir.join("village"), "village", &village, None);
    send_flood_warning(&district);
    let received = |node: &str| logged(&dir, node, "alert received down the cascade");
    wait_until("the alert at the village", Duration::from_secs(60), || {
        received("village") == 1
    });
    assert_eq!(received("street"), 1, "the street is in its area too");
    let village_log = std::fs::read_to_string(dir.join("village/daemon.log")).expect("log");
    assert!(village_log.contains("山洪预警"), "{village_log}");
    // A restart renders the alert again; it is not sent down again.
    district.kill_and_restart("district");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(received("village"), 1);
}

/// A frame header for `origin`, valid from `from` to `until` seconds after `now`.
fn header_at(
    now: chrono::DateTime<chrono::Utc>,
    origin: &str,
    sequence: u32,
    from: i64,
    until: i64,
) -> gateway::cascade::frame::Header {
    use gateway::cascade::frame::Timestamp;
    let at = |s: i64| Timestamp::from_datetime(now + chrono::Duration::seconds(s)).expect("t");
    gateway::cascade::frame::Header {
        origin: origin.parse().expect("area"),
        sequence,
        valid_from: at(from),
        valid_until: at(until),
    }
}

/// Sends sealed frames straight to a node's frame port from `socket`, as anyone on its
/// network could, 200 ms apart.
fn inject<E: std::fmt::Debug>(
    socket: &std::net::UdpSocket,
    to: &str,
    frames: &[Result<Vec<u8>, E>],
) {
    for frame in frames {
        socket
            .send_to(frame.as_ref().expect("sealed"), to)
            .expect("sent");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `[alerts]` for a node that plays alerts itself, and one `[[downstream]]` table.
const ALERTS: &str =
    "\n[alerts]\nstate_dir = \"state\"\nattention = \"none\"\ngap_ms = 200\nrepeat = 1\n";

fn downstream(name: &str, port: u16, area: &str, kind: &str) -> String {
    format!(
        "\n[[downstream]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\ncodec = \"opus\"\n\
         area = \"{area}\"\nkind = \"{kind}\"\n"
    )
}

/// How many times `what` is in the journals of the node in `dir/node`, before and after
/// a restart.
fn logged(dir: &Path, node: &str, what: &str) -> usize {
    ["daemon.log", "daemon-after-kill.log"]
        .iter()
        .map(|log| {
            std::fs::read_to_string(dir.join(node).join(log))
                .unwrap_or_default()
                .matches(what)
                .count()
        })
        .sum()
}

/// `emcomm alert send` at the district with `flags`, for a blue flood warning for the
/// street.
fn flood_warning(district: &Node, flags: &[&str]) -> (Option<i32>, String, String) {
    let text = "山洪预警：沿河村民立即转移到高处。";
    let mut args = vec!["alert", "send"];
    args.extend_from_slice(flags);
    args.extend(["--text", text, "--level", "blue", "--area", "410503001"]);
    district.cli(&args)
}

/// Sends a blue flood warning for the street at the district; its alert number.
fn send_flood_warning(district: &Node) -> i64 {
    let (code, out, err) = flood_warning(district, &["--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    serde_json::from_str::<Value>(&out).expect("json")["id"]
        .as_i64()
        .expect("id")
}

#[test]
fn with_ip_to_the_street_cut_an_alert_plays_at_street_and_village_and_both_receipts_reach_the_district()
 {
    let _serial = one_at_a_time();
    let dir = common::scratch("cascade-alert-plays");
    let (_relays, at) = loopback(&dir);
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired_beidou(&dir);
    let (district, street, village) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let (_street_pole, street_port) = common::spawn_speaker(&dir, "street-pole", "opus");
    let (_village_pole, village_port) = common::spawn_speaker(&dir, "village-pole", "opus");
    // The district's street is a gateway it reaches by frames (its voice address is
    // dead); street and village play what comes down the cascade on their own poles.
    let dead = free_port_pair().expect("port");
    let district = format!(
        "{district}{ALERTS}{}",
        downstream("street-1", dead, "410503001", "gateway")
    );
    let street = format!(
        "{street}{ALERTS}{}",
        downstream("street-pole", street_port, "410503001", "loudspeaker")
    );
    let village = format!(
        "{village}{ALERTS}{}",
        downstream("village-pole", village_port, "410503001001", "loudspeaker")
    );
    let district = start(&dir.join("district"), "district", &district, None);
    let mut street = start(&dir.join("street"), "street", &street, None);
    let _village = start(&dir.join("village"), "village", &village, None);

    for cut in ["street-district.cut", "district-street.cut"] {
        std::fs::write(dir.join(cut), b"").expect("cut");
    }
    std::thread::sleep(Duration::from_secs(6));
    // The preview says what goes down, over which bearer, in how many messages and how
    // long: BeiDou, one message a second here after the first.
    let (code, out, err) = flood_warning(&district, &["--json", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let preview: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        preview["cascade_text"],
        "【蓝色预警】山洪预警：沿河村民立即转移到高处。"
    );
    let plan = &preview["cascade"][0];
    assert_eq!(plan["link"], "street-1", "{preview}");
    assert_eq!(plan["peer"], "410503001");
    assert_eq!(plan["bearer"], "beidou", "{preview}");
    let messages = plan["messages"].as_u64().expect("messages");
    assert!(messages >= 2, "{plan}");
    let seconds = plan["seconds"].as_f64().expect("seconds");
    assert!(seconds >= (messages - 1) as f64, "{plan}");
    let (_, human, _) = flood_warning(&district, &["--dry-run"]);
    println!("{human}");
    assert!(
        human.contains("down the cascade as: 【蓝色预警】") && human.contains("over beidou, about"),
        "{human}"
    );
    assert_eq!(
        logged(&dir, "district", "sent down the cascade"),
        0,
        "a dry run sends nothing"
    );
    let id = send_flood_warning(&district).to_string();
    let areas = || {
        let (code, out, err) = district.cli(&["alert", "status", &id, "--json"]);
        assert_eq!(code, Some(0), "{out}{err}");
        let view: Value = serde_json::from_str(&out).expect("json");
        view["area_receipts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    wait_until(
        "both receipts at the district",
        Duration::from_secs(150),
        || areas().len() == 2,
    );
    let areas = areas();
    let brief: Vec<(String, u64, u64, String)> = areas
        .iter()
        .map(|a| {
            (
                a["area"].as_str().unwrap_or_default().to_string(),
                a["played"].as_u64().unwrap_or_default(),
                a["loudspeakers"].as_u64().unwrap_or_default(),
                a["bearer"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            ("410503001".to_string(), 1, 1, "beidou".to_string()),
            ("410503001001".to_string(), 1, 1, "ip".to_string()),
        ],
        "the street heard it over BeiDou, the village from the street over IP"
    );
    // The street reported by its receipt frame: it is not waited for as a relay.
    let (_, out, _) = district.cli(&["alert", "status", &id, "--json"]);
    let view: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        view["summary"]["silent_gateways"].as_array().map(Vec::len),
        Some(0),
        "{}",
        view["summary"]
    );
    assert!(
        !view["summary"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("no report yet"),
        "{}",
        view["summary"]
    );

    // IP heals and the street is killed and started again: nothing plays twice.
    for cut in ["street-district.cut", "district-street.cut"] {
        std::fs::remove_file(dir.join(cut)).expect("heal");
    }
    street.kill_and_restart("street");
    std::thread::sleep(Duration::from_secs(8));
    for node in ["street", "village"] {
        let accepted = logged(&dir, node, "alert from the cascade accepted");
        assert_eq!(accepted, 1, "{node} took the alert once");
        assert_eq!(
            logged(&dir, node, "play started"),
            1,
            "{node} played it once"
        );
    }
}

/// The district's preview reaches one hop further than its own links: from the street's
/// heartbeats it says how the street would pass the alert on to its village, and that
/// there is no route there once the village's IP is cut.
#[test]
fn the_districts_preview_says_per_village_how_the_street_would_pass_the_alert_on() {
    let _serial = one_at_a_time();
    let dir = common::scratch("cascade-preview-beyond");
    let (_relays, at) = loopback(&dir);
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired_beidou(&dir);
    let (district, street, village) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let dead = free_port_pair().expect("port");
    let district = format!(
        "{district}{ALERTS}{}",
        downstream("street-1", dead, "410503001", "gateway")
    );
    let district = start(&dir.join("district"), "district", &district, None);
    let _street = start(&dir.join("street"), "street", &street, None);
    let _village = start(&dir.join("village"), "village", &village, None);

    let village_plan = || {
        let (code, out, err) = flood_warning(&district, &["--json", "--dry-run"]);
        assert_eq!(code, Some(0), "{out}{err}");
        let preview: Value = serde_json::from_str(&out).expect("json");
        let plan = preview["cascade"][0].clone();
        assert_eq!(plan["bearer"], "ip", "{preview}");
        plan["beyond"][0].clone()
    };
    wait_until(
        "the street's heartbeat telling of its village over IP",
        Duration::from_secs(30),
        || village_plan()["bearer"] == "ip",
    );
    let village = village_plan();
    assert_eq!(village["peer"], "410503001001", "{village}");
    assert_eq!(village["total_seconds"], 0.0, "{village}");
    let (_, human, _) = flood_warning(&district, &["--dry-run"]);
    assert!(
        human.contains("then 410503001001") && human.contains("over ip, at once"),
        "{human}"
    );

    for cut in ["street-village.cut", "village-street.cut"] {
        std::fs::write(dir.join(cut), b"").expect("cut");
    }
    wait_until(
        "the street's heartbeat telling its village has no route",
        Duration::from_secs(30),
        || village_plan()["bearer"].is_null(),
    );
    let (_, human, _) = flood_warning(&district, &["--dry-run"]);
    assert!(human.contains("no route up there now"), "{human}");
    assert_eq!(logged(&dir, "district", "sent down the cascade"), 0);
}

/// Frames an attacker or a broken district sends to a street: only the genuine alert
/// plays, once at each node; one cancelled mid-play still earns each node's receipt.
#[test]
fn forged_unknown_expired_replayed_and_cancelled_alerts_never_reach_a_loudspeaker_and_the_genuine_one_plays_once()
 {
    let _serial = one_at_a_time();
    use gateway::alert::model::Level;
    use gateway::cascade::auth::{Sealer, seal};
    use gateway::cascade::frame::{Alert, Body, Content};
    use gateway::cascade::keys::NodeKey;

    let dir = common::scratch("cascade-forged-alerts");
    let (_relays, at) = loopback(&dir);
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired_beidou(&dir);
    let (_, street, village) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let (_street_pole, street_port) = common::spawn_speaker(&dir, "street-pole", "opus");
    let (_village_pole, village_port) = common::spawn_speaker(&dir, "village-pole", "opus");
    let street = format!(
        "{street}{ALERTS}{}",
        downstream("street-pole", street_port, "410503001", "loudspeaker")
    );
    let village = format!(
        "{village}{ALERTS}{}",
        downstream("village-pole", village_port, "410503001001", "loudspeaker")
    );
    let _street = start(&dir.join("street"), "street", &street, None);
    let _village = start(&dir.join("village"), "village", &village, None);

    let district_key = NodeKey::load(&dir.join("keys/district.sm2.key")).expect("district key");
    let stranger = NodeKey::generate().expect("a key nobody trusts");
    let now = chrono::Utc::now();
    let header = |origin: &str, sequence: u32, from: i64, until: i64| {
        header_at(now, origin, sequence, from, until)
    };
    let alert = |number: u32, text: &str| {
        Body::Alert(Alert {
            number,
            level: Level::Red,
            targets: vec!["410503001".parse().expect("area")],
            content: Content::Text(text.into()),
        })
    };
    let frames = [
        // In the district's name, signed by a stranger.
        seal(
            &header("410503", 500, 0, 600),
            &alert(1, "【红色预警】伪造的撤离命令。"),
            Sealer::Sm2(&stranger),
        ),
        // From a division nobody configured.
        seal(
            &header("410599", 1, 0, 600),
            &alert(2, "【红色预警】陌生来源。"),
            Sealer::Sm2(&stranger),
        ),
        // The district's own key, but expired an hour ago.
        seal(
            &header("410503", 501, -7200, -3600),
            &alert(3, "【红色预警】过期的预警。"),
            Sealer::Sm2(&district_key),
        ),
        // Genuine: sent twice, a replay the second time.
        seal(
            &header("410503", 502, 0, 600),
            &alert(4, "【红色预警】山洪预警，立即转移。"),
            Sealer::Sm2(&district_key),
        ),
    ];
    // Sent straight to the street's frame port, as an attacker on its network would.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    inject(&socket, &at.street, &frames);
    wait_until(
        "the genuine alert played at the village",
        Duration::from_secs(60),
        || logged(&dir, "village", "play started") == 1,
    );
    socket
        .send_to(frames[3].as_ref().expect("sealed"), &at.street)
        .expect("replayed");
    // The same alert again under a new sequence number (a district that restarted between
    // sending it and recording that it did): the relay takes it as new, the store as
    // the same alert.
    let again = seal(
        &header("410503", 503, 0, 600),
        &alert(4, "【红色预警】山洪预警，立即转移。"),
        Sealer::Sm2(&district_key),
    );
    // A cancel that overtakes its alert: the alert, when it comes, never plays.
    let cancel = seal(
        &header("410503", 504, 0, 600),
        &Body::Cancel(gateway::cascade::frame::Cancel { number: 5 }),
        Sealer::Sm2(&district_key),
    );
    let cancelled = seal(
        &header("410503", 505, 0, 600),
        &alert(5, "【红色预警】已撤销的预警。"),
        Sealer::Sm2(&district_key),
    );
    inject(&socket, &at.street, &[again, cancel, cancelled]);
    wait_until(
        "the late alert refused as cancelled at the village",
        Duration::from_secs(30),
        || logged(&dir, "village", "already cancelled by its origin") == 1,
    );
    std::thread::sleep(Duration::from_secs(2));

    for node in ["street", "village"] {
        assert_eq!(
            logged(&dir, node, "alert from the cascade accepted"),
            1,
            "{node}"
        );
        assert_eq!(logged(&dir, node, "play started"), 1, "{node} played once");
        assert_eq!(
            logged(&dir, node, "already cancelled by its origin"),
            1,
            "{node}"
        );
    }
    let street_log = std::fs::read_to_string(dir.join("street/daemon.log")).expect("log");
    assert!(street_log.contains("山洪预警，立即转移"), "{street_log}");
    for text in ["伪造", "陌生来源", "过期的预警"] {
        assert!(
            !street_log.contains(text),
            "{text} reached playout: {street_log}"
        );
    }
    for code in ["bad_signature", "unknown_origin", "expired"] {
        assert!(
            street_log.contains(&format!("code=\"{code}\""))
                || street_log.contains(&format!("code={code}")),
            "{code}: {street_log}"
        );
    }

    // A genuine alert cancelled while it plays: each node still tells the district
    // that none of its loudspeakers played it whole.
    let long = seal(
        &header("410503", 506, 0, 600),
        &alert(
            6,
            "【红色预警】水库泄洪，沿河两岸群众立即向高处转移，不要返回取物。",
        ),
        Sealer::Sm2(&district_key),
    );
    inject(&socket, &at.street, &[long]);
    wait_until(
        "the long alert playing at the village",
        Duration::from_secs(60),
        || logged(&dir, "village", "play started") == 2,
    );
    let stop = seal(
        &header("410503", 507, 0, 600),
        &Body::Cancel(gateway::cascade::frame::Cancel { number: 6 }),
        Sealer::Sm2(&district_key),
    );
    inject(&socket, &at.street, &[stop]);
    for node in ["street", "village"] {
        wait_until(
            &format!("the {node}'s receipt for the cancelled alert"),
            Duration::from_secs(30),
            || {
                logged(
                    &dir,
                    node,
                    "sent up the cascade number=6 played=0 loudspeakers=1",
                ) == 1
            },
        );
    }
}

/// The RTP address a node's configuration listens on.
fn rtp_listen(config: &str) -> String {
    let at = config.find("[rtp]\nlisten = \"").expect("an [rtp] listen") + 16;
    config[at..].split('"').next().expect("address").to_string()
}

/// Sends one second of Opus speech-band tone as RTP stream `ssrc` to `to`, at real pace.
/// One second of Opus RTP under `ssrc` to `to`, as SRTP under `srtp` where given.
fn send_opus(to: &str, ssrc: u32, mut srtp: Option<&mut gateway::voice::srtp::SrtpLink>) {
    use drivers::rtp::packetizer::Packetizer;
    use drivers::rtp::payload::PayloadFormat;
    let mut encoder =
        gateway::voice::encoder::FrameEncoder::new(PayloadFormat::OPUS, 32_000).expect("opus");
    let mut stream = Packetizer::with_origin(PayloadFormat::OPUS, ssrc, 1, 1);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    for k in 0..50 {
        let frame: Vec<i16> = (0..960)
            .map(|i| (((k * 960 + i) as f32 * 0.0575).sin() * 9000.0) as i16)
            .collect();
        let payload = encoder.encode(&frame).expect("encode").to_vec();
        let mut datagram = stream.packetize(&payload, Instant::now()).to_vec();
        if let Some(link) = srtp.as_deref_mut() {
            datagram = link.protect_rtp(&datagram).expect("protected");
        }
        socket.send_to(&datagram, to).expect("sent");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes the SRTP key of voice link `link` in `dir` with `emcomm keys srtp`.
fn srtp_key(dir: &Path, link: &str) -> std::path::PathBuf {
    let (emcomm, _) = common::binaries();
    let out = Command::new(emcomm)
        .args(["keys", "srtp", "--out"])
        .arg(dir)
        .args(["--link", link])
        .output()
        .expect("emcomm keys srtp");
    assert!(out.status.success(), "{out:?}");
    dir.join(format!("{link}.srtp.key"))
}

#[test]
fn a_street_in_the_cascade_forwards_the_districts_granted_srtp_and_no_stream_without_a_grant_or_the_key()
 {
    let _serial = one_at_a_time();
    let dir = common::scratch("cascade-grants");
    let (_relays, at) = loopback(&dir);
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired_beidou(&dir);
    let (district, street, _) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let (_pole, pole_port) = common::spawn_speaker(&dir, "street-pole", "opus");
    // The street relays voice as before (no [alerts]); the district sends it its voice
    // as SRTP under their link's key.
    let key = srtp_key(&dir.join("keys"), "district-street-1");
    let street_rtp: u16 = rtp_listen(&street)
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let district = format!(
        "{district}{ALERTS}{}srtp_key = \"{}\"\n",
        downstream("street-1", street_rtp, "410503001", "gateway"),
        key.display()
    );
    let street = format!(
        "{street}{}\n[upstream]\nsrtp_key = \"{}\"\n",
        downstream("street-pole", pole_port, "410503001", "loudspeaker"),
        key.display()
    );
    let district = start(&dir.join("district"), "district", &district, None);
    let _street = start(&dir.join("street"), "street", &street, None);
    let heard = || {
        std::fs::read_to_string(dir.join("street-pole.log"))
            .unwrap_or_default()
            .matches("stream started")
            .count()
    };
    let to_street = format!("127.0.0.1:{street_rtp}");

    // Plain RTP, as anyone on the path could send: refused before any grant is asked.
    send_opus(&to_street, 0x5eed, None);
    // SRTP under the link's key, but with no grant: refused too.
    let key = gateway::cascade::keys::SrtpKey::load(&key).expect("key");
    let mut link = gateway::voice::srtp::SrtpLink::new(&key).expect("link");
    send_opus(&to_street, 0x5eee, Some(&mut link));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(heard(), 0, "a stream reached the loudspeaker");
    assert_eq!(logged(&dir, "street", "RTP from above refused"), 1);
    assert_eq!(
        logged(&dir, "street", "voice stream without a stream grant"),
        1
    );

    // The district's alert: its stream is granted down the cascade and plays.
    send_flood_warning(&district);
    wait_until(
        "the district's voice at the street's loudspeaker",
        Duration::from_secs(30),
        || heard() == 1,
    );
    assert_eq!(logged(&dir, "street", "stream grant received"), 1);
    assert_eq!(
        logged(&dir, "street", "voice stream without a stream grant"),
        1,
        "the granted stream was never refused"
    );
    assert_eq!(logged(&dir, "street", "RTP from above refused"), 1);
}

#[test]
fn a_street_whose_beidou_time_differs_from_its_system_clock_says_so_and_stamps_frames_by_beidou_time()
 {
    let _serial = one_at_a_time();
    let dir = common::scratch("cascade-beidou-time");
    let (_relays, at) = loopback(&dir);
    // The street's terminal gives UTC two minutes ahead of the system clock: as if the
    // street's own clock were two minutes behind and BeiDou were right.
    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired(
        "beidou",
        "beidou simulator",
        &dir,
        &["--card", "0166166", "--interval-s", "1"],
        &[
            "--card",
            "0247718",
            "--interval-s",
            "1",
            "--zda-offset-s",
            "120",
        ],
    );
    let (district, street, _) = configs(&dir, &at, (&bd_d_link, &bd_s_link));
    let street = street.replace(
        "heartbeat_s = 1\n",
        "heartbeat_s = 1\ntime_from = \"bd-1\"\n",
    );
    assert!(street.contains("time_from"), "{street}");
    let _district = start(&dir.join("district"), "district", &district, None);
    let _street = start(&dir.join("street"), "street", &street, None);

    wait_until(
        "the street to say its clock differs from BeiDou time",
        Duration::from_secs(20),
        || {
            logged(
                &dir,
                "street",
                "THE SYSTEM CLOCK DIFFERS FROM BEIDOU TIME BY 120 s",
            ) == 1
        },
    );
    // Its frames carry BeiDou time, two minutes ahead of the district's clock: the
    // district says so rather than refusing them in silence.
    wait_until(
        "the district to say the street's clock differs",
        Duration::from_secs(20),
        || logged(&dir, "district", "CLOCK IS 1") == 1,
    );
    let district_log = std::fs::read_to_string(dir.join("district/daemon.log")).expect("log");
    // Frames are stamped in whole seconds, so the offset read from one is 120 s give or
    // take the second each clock was into when it stamped or read.
    let said = ["119", "120", "121"].iter().any(|s| {
        district_log.contains(&format!(
            "CLOCK IS {s} s behind its neighbour's on link street-1"
        ))
    });
    assert!(said, "{district_log}");
    assert!(district_log.contains("not_yet_valid"), "{district_log}");
}
