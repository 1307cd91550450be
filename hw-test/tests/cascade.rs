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
    _process: Supervised,
}

impl Node {
    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let (emcomm, _) = common::binaries();
        let out = Command::new(emcomm)
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

fn start(dir: &Path, name: &str, config: &str) -> Node {
    std::fs::create_dir_all(dir).expect("node folder");
    std::fs::write(dir.join("operators.toml"), OPERATORS).expect("operators");
    std::fs::write(dir.join("operator.token"), "operator-token-0123456789").expect("token");
    let api_port = free_port_pair().expect("port");
    let config = config.replace("API", &format!("127.0.0.1:{api_port}"));
    std::fs::write(dir.join("node.toml"), config).expect("config");
    let (emcomm, _) = common::binaries();
    let mut child = Command::new(emcomm)
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

#[test]
fn a_field_report_reaches_the_district_over_ip_and_over_beidou_when_ip_is_cut() {
    let dir = common::scratch("cascade-report");
    let keys_dir = dir.join("keys");
    for (node, link) in [("district", true), ("street", true), ("village", false)] {
        keys(&keys_dir, node, link);
    }
    let k = |f: &str| keys_dir.join(f).display().to_string();
    // Frames between two nodes go through a fault relay each way, so a test can cut a
    // link; a node sends to its peer's relay and hears the peer from the other relay.
    let ports: Vec<u16> = (0..7).map(|_| free_port_pair().expect("port")).collect();
    let (district_udp, street_udp, village_udp) = (ports[0], ports[1], ports[2]);
    let (to_district, to_street_from_district) = (ports[3], ports[4]);
    let (to_street_from_village, to_village) = (ports[5], ports[6]);
    let _r1 = relay(&dir, "street-district", to_district, district_udp);
    let _r2 = relay(&dir, "district-street", to_street_from_district, street_udp);
    let _r3 = relay(&dir, "village-street", to_street_from_village, street_udp);
    let _r4 = relay(&dir, "street-village", to_village, village_udp);

    let ((_bd_d, bd_d_link), (_bd_s, bd_s_link)) = common::paired(
        "beidou",
        "beidou simulator",
        &dir,
        &["--card", "0166166", "--interval-s", "1"],
        &["--card", "0247718", "--interval-s", "1"],
    );
    let origins = format!(
        "[[cascade.origin]]\narea = \"410503\"\npublic_key = \"{}\"\n\n\
         [[cascade.origin]]\narea = \"410503001\"\npublic_key = \"{}\"\n\n\
         [[cascade.origin]]\narea = \"410503001001\"\npublic_key = \"{}\"\n\n",
        k("district.sm2.pub"),
        k("street.sm2.pub"),
        k("village.sm2.pub")
    );
    let head = |name: &str, tier: &str, area: &str, key: &str, udp: u16| {
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
             [cascade]\nkey = \"{}\"\nstate_dir = \"state\"\nlisten = \"127.0.0.1:{udp}\"\nheartbeat_s = 1\n\n{origins}",
            k(key)
        )
    };
    let district = format!(
        "{}[satellite]\nstate_dir = \"state\"\n\n\
         [[terminal]]\nname = \"bd-1\"\nkind = \"beidou\"\nport = \"{}\"\n\n\
         [[cascade.link]]\nname = \"street-1\"\npeer = \"410503001\"\ndirection = \"down\"\n\
         ip = \"127.0.0.1:{to_street_from_district}\"\nlink_key = \"{}\"\nterminal = \"bd-1\"\nterminal_to = \"0247718\"\nterminal_ack_s = 20\n",
        head(
            "district",
            "district",
            "410503",
            "district.sm2.key",
            district_udp
        ),
        bd_d_link.display(),
        k("district.link.key"),
    );
    let street = format!(
        "{}[satellite]\nstate_dir = \"state\"\n\n\
         [[terminal]]\nname = \"bd-1\"\nkind = \"beidou\"\nport = \"{}\"\n\n\
         [[cascade.link]]\nname = \"district\"\npeer = \"410503\"\ndirection = \"up\"\n\
         ip = \"127.0.0.1:{to_district}\"\nlink_key = \"{}\"\nterminal = \"bd-1\"\nterminal_to = \"0166166\"\nterminal_ack_s = 20\n\n\
         [[cascade.link]]\nname = \"village-1\"\npeer = \"410503001001\"\ndirection = \"down\"\n\
         ip = \"127.0.0.1:{to_village}\"\nlink_key = \"{}\"\n",
        head(
            "street",
            "street",
            "410503001",
            "street.sm2.key",
            street_udp
        ),
        bd_s_link.display(),
        k("district.link.key"),
        k("street.link.key"),
    );
    let village = format!(
        "{}[[cascade.link]]\nname = \"street\"\npeer = \"410503001\"\ndirection = \"up\"\n\
         ip = \"127.0.0.1:{to_street_from_village}\"\nlink_key = \"{}\"\n",
        head(
            "village",
            "village",
            "410503001001",
            "village.sm2.key",
            village_udp
        ),
        k("street.link.key"),
    );
    let district = start(&dir.join("district"), "district", &district);
    let street = start(&dir.join("street"), "street", &street);
    let village = start(&dir.join("village"), "village", &village);

    let (code, out, err) = village.cli(&["report", "send", "3组：桥梁冲毁，2户被困"]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_until(
        "the report at the district",
        Duration::from_secs(30),
        || district.reports().len() == 1,
    );
    let first = &district.reports()[0];
    assert_eq!(first["origin"], "410503001001");
    assert_eq!(first["text"], "3组：桥梁冲毁，2户被困");
    assert_eq!(first["bearer"], "ip");
    assert_eq!(street.reports().len(), 1, "the street lists what passed it");

    // The street's IP link to the district is cut: the next report goes by BeiDou.
    for cut in ["street-district.cut", "district-street.cut"] {
        std::fs::write(dir.join(cut), b"").expect("cut");
    }
    std::thread::sleep(Duration::from_secs(6));
    let (code, out, err) = village.cli(&["report", "send", "5组：道路中断"]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_until(
        "the second report at the district, over BeiDou",
        Duration::from_secs(90),
        || district.reports().len() == 2,
    );
    let second = &district.reports()[0];
    assert_eq!(second["text"], "5组：道路中断");
    assert_eq!(second["bearer"], "beidou", "{second}");
    // Nothing twice, even once IP heals and late copies arrive.
    for cut in ["street-district.cut", "district-street.cut"] {
        std::fs::remove_file(dir.join(cut)).expect("heal");
    }
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(district.reports().len(), 2);
}
