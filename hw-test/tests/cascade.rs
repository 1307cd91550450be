//! The cascade between real daemons: district, street and village nodes, each an
//! `emcomm run` with a `[cascade]` table, their frames over UDP on the loopback through
//! fault relays (`emcomm-bench faults`) that can cut a link, and, between district and
//! street, a pair of simulated BeiDou terminals (1 s service interval) as the fallback.
//!
//! A field report sent at the village reaches the district over IP, then, with the
//! street's IP link to the district cut, over BeiDou; the district lists each once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hw_test::process::{Supervised, await_ready, free_port_pair, watch};
use serde_json::Value;

const OPERATORS: &str =
    "[[operator]]\nname = \"li.na\"\nrole = \"operator\"\ntoken = \"operator-token-0123456789\"\n";

struct Node {
    dir: PathBuf,
    api: String,
    /// The network namespace the node runs in, if any.
    netns: Option<String>,
    _process: Supervised,
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
    let api_port = free_port_pair().expect("port");
    let config = config.replace("API", &format!("127.0.0.1:{api_port}"));
    std::fs::write(dir.join("node.toml"), config).expect("config");
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
        dir.join("daemon.log"),
        "control API listening",
    );
    let process = Supervised::new(name, child);
    await_ready(name, &ready, Duration::from_secs(30)).expect("daemon up");
    Node {
        dir: dir.to_path_buf(),
        api: format!("http://127.0.0.1:{api_port}"),
        netns: netns.map(str::to_owned),
        _process: process,
    }
}

fn relay(dir: &Path, name: &str, listen: u16, to: u16) -> Supervised {
    let (_, bench) = common::binaries();
    let mut child = Command::new(bench)
        .args(["faults", "--listen", &format!("127.0.0.1:{listen}"), "--to"])
        .arg(format!("127.0.0.1:{to}"))
        .arg("--cut-file")
        .arg(dir.join(format!("{name}.cut")))
        .stdout(Stdio::piped())
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
        let rtp = if tier == "district" {
            String::new()
        } else {
            format!(
                "[rtp]\nlisten = \"127.0.0.1:{}\"\n\n",
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
    let dir = common::scratch("cascade-report");
    // Frames between two nodes go through a fault relay each way, so a test can cut a
    // link; a node sends to its peer's relay and hears the peer from the other relay.
    let ports: Vec<u16> = (0..7).map(|_| free_port_pair().expect("port")).collect();
    let local = |port: u16| format!("127.0.0.1:{port}");
    let _r1 = relay(&dir, "street-district", ports[3], ports[0]);
    let _r2 = relay(&dir, "district-street", ports[4], ports[1]);
    let _r3 = relay(&dir, "village-street", ports[5], ports[1]);
    let _r4 = relay(&dir, "street-village", ports[6], ports[2]);
    let at = Addresses {
        district: local(ports[0]),
        street: local(ports[1]),
        village: local(ports[2]),
        street_to_district: local(ports[3]),
        district_to_street: local(ports[4]),
        village_to_street: local(ports[5]),
        street_to_village: local(ports[6]),
    };
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
