//! Satellite terminals driven by the daemon: `emcomm run` with a `[[terminal]]` on a
//! simulated BeiDou terminal (`emcomm-bench sim beidou`, 1 s service interval), paired
//! with a second simulator that another daemon drives. Messages go through the CLI and
//! the control API; the terminal is pulled out and plugged back in; the daemon is
//! killed with messages queued. One test does the same with two paired Iridium modems.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hw_test::process::{Supervised, await_ready, watch};
use nix::sys::signal::Signal;
use serde_json::Value;

const CARD_A: &str = "0166166";
const CARD_B: &str = "0247718";
const OPERATORS: &str = "[[operator]]\nname = \"zhang.wei\"\nrole = \"operator\"\ntoken = \"operator-token-0123456789\"\n\n\
     [[operator]]\nname = \"wang.fang\"\nrole = \"viewer\"\ntoken = \"viewer-token-0123456789ab\"\n";

/// One daemon with one terminal (BeiDou `bd-1` unless said) on a simulator's link.
struct Daemon {
    dir: PathBuf,
    node: String,
    /// The terminal's name.
    terminal: &'static str,
    process: Option<Supervised>,
}

impl Daemon {
    /// Writes the configuration of a daemon in `dir` whose BeiDou terminal is at `link`,
    /// and starts it.
    fn start(dir: &Path, link: &Path) -> Daemon {
        Daemon::start_with(dir, "beidou", "bd-1", link)
    }

    /// The same with a terminal of `kind` named `terminal`.
    fn start_with(dir: &Path, kind: &str, terminal: &'static str, link: &Path) -> Daemon {
        std::fs::create_dir_all(dir).expect("daemon folder");
        std::fs::write(dir.join("operators.toml"), OPERATORS).expect("operators");
        std::fs::write(dir.join("operator.token"), "operator-token-0123456789").expect("token");
        std::fs::write(dir.join("viewer.token"), "viewer-token-0123456789ab").expect("token");
        let rtp = hw_test::process::free_port_pair().expect("port");
        let api = hw_test::process::free_port_pair().expect("port");
        let config = format!(
            "[node]\nname = \"village-relay\"\ntier = \"village\"\narea = \"410503001001\"\n\n\
             [rtp]\nlisten = \"127.0.0.1:{rtp}\"\n\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\noperators = \"operators.toml\"\n\n\
             [satellite]\nstate_dir = \"state\"\n\n\
             [[terminal]]\nname = \"{terminal}\"\nkind = \"{kind}\"\nport = \"{}\"\n",
            link.display()
        );
        std::fs::write(dir.join("node.toml"), config).expect("config");
        let mut daemon = Daemon {
            dir: dir.to_path_buf(),
            node: format!("http://127.0.0.1:{api}"),
            terminal,
            process: None,
        };
        daemon.run();
        daemon
    }

    /// Starts (or starts again) the daemon's process.
    fn run(&mut self) {
        let (emcomm, _) = common::binaries();
        let mut child = Command::new(emcomm)
            .args(["run", "--config"])
            .arg(self.dir.join("node.toml"))
            .env("EMCOMM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("emcomm starts");
        let runs = std::fs::read_dir(&self.dir).map_or(0, |d| d.count());
        let ready = watch(
            child.stderr.take().expect("stderr"),
            self.dir.join(format!("daemon-{runs}.log")),
            "control API listening",
        );
        let process = Supervised::new("daemon", child);
        await_ready("daemon", &ready, Duration::from_secs(20)).expect("daemon up");
        self.process = Some(process);
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.signal(Signal::SIGKILL);
            let _ = process.wait(Duration::from_secs(10));
        }
    }

    /// Runs `emcomm ARGS` against this daemon with the operator's token (or the
    /// viewer's); gives the exit code, stdout and stderr.
    fn cli_as(&self, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let (emcomm, _) = common::binaries();
        let output = Command::new(emcomm)
            .args(args)
            .args(["--node", &self.node, "--token-file"])
            .arg(self.dir.join(token))
            .output()
            .expect("emcomm cli");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.cli_as("operator.token", args)
    }

    fn json(&self, args: &[&str]) -> Value {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let (code, out, err) = self.cli_as("viewer.token", &args);
        assert_eq!(code, Some(0), "{out}{err}");
        serde_json::from_str(&out).expect("json")
    }

    fn terminal(&self) -> Value {
        self.json(&["terminal", "list"])["terminals"][0].clone()
    }

    fn messages(&self) -> Value {
        self.json(&["terminal", "messages", self.terminal])
    }

    /// Queues `text` for `to`; gives the message id.
    fn send(&self, to: &str, text: &str, urgent: bool) -> u64 {
        let mut args = vec![
            "terminal",
            "send",
            self.terminal,
            "--to",
            to,
            "--text",
            text,
        ];
        if urgent {
            args.push("--urgent");
        }
        args.push("--json");
        let (code, out, err) = self.cli(&args);
        assert_eq!(code, Some(0), "{out}{err}");
        let accepted: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(accepted["state"], "queued", "{accepted}");
        accepted["id"].as_u64().expect("an id")
    }

    /// `field` of each message in the `list` (outbox or inbox), oldest first.
    fn listed<T>(&self, list: &str, field: impl Fn(&Value) -> T) -> Vec<T> {
        self.messages()[list]
            .as_array()
            .into_iter()
            .flatten()
            .map(field)
            .collect()
    }

    /// The texts in the inbox, with who sent them.
    fn inbox(&self) -> Vec<(String, String)> {
        self.listed("inbox", |m| {
            let text = |key: &str| m[key].as_str().unwrap_or("").to_string();
            (text("from"), text("text"))
        })
    }

    /// The state of each message in the outbox, by id.
    fn outbox_states(&self) -> Vec<(u64, String)> {
        self.listed("outbox", |m| {
            (
                m["id"].as_u64().unwrap_or(0),
                m["state"].as_str().unwrap_or("").to_string(),
            )
        })
    }
}

/// Waits until `done` holds, checking every 200 ms, up to `limit`.
fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn is_up(daemon: &Daemon) -> bool {
    daemon.terminal()["up"] == true
}

/// The BeiDou simulator named `name` in `dir`, paired: listening on `listen`, sending to
/// `peer`; `extra` arguments after its card and a 1 s interval.
fn simulator(
    dir: &Path,
    name: &str,
    card: &str,
    (listen, peer): (&str, &str),
    extra: &[&str],
) -> (Supervised, PathBuf) {
    let own: Vec<&str> = ["--card", card, "--interval-s", "1"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let args = common::pairing_args(&own, listen, peer);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::start_sim("beidou", "beidou simulator", dir, name, &args)
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn chinese_text_goes_to_the_paired_terminal_and_an_answer_comes_back_into_the_inbox() {
    let dir = common::scratch("terminal-daemon-pair");
    let (a_listen, b_listen) = common::pair_addresses();
    let (_a, a_link) = simulator(&dir, "a", CARD_A, (&a_listen, &b_listen), &[]);
    let (_b, b_link) = simulator(&dir, "b", CARD_B, (&b_listen, &a_listen), &[]);
    let here = Daemon::start(&dir.join("here"), &a_link);
    let there = Daemon::start(&dir.join("there"), &b_link);
    wait_until("both terminals up", LIMIT, || is_up(&here) && is_up(&there));
    let status = here.terminal();
    assert_eq!(status["identity"], CARD_A, "{status}");
    assert_eq!(status["kind"], "beidou");
    assert_eq!(status["dialect"], "auto");

    let id = here.send(CARD_B, "村委会：桥梁冲毁，请绕行", false);
    wait_until("the text at the peer", LIMIT, || {
        there.inbox() == vec![(CARD_A.to_string(), "村委会：桥梁冲毁，请绕行".to_string())]
    });
    wait_until("the message shown sent", LIMIT, || {
        here.outbox_states() == vec![(id, "sent".to_string())]
    });
    let (code, out, _) = here.cli_as("viewer.token", &["terminal", "messages", "bd-1"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("sent: 村委会：桥梁冲毁，请绕行"), "{out}");

    there.send(CARD_A, "收到，已绕行", true);
    wait_until("the answer in the inbox", LIMIT, || {
        here.inbox() == vec![(CARD_B.to_string(), "收到，已绕行".to_string())]
    });

    // Refusals: exit 1 with the node's reason.
    let refused = |token: &str, args: &[&str], says: &str| {
        let (code, out, err) = here.cli_as(token, args);
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains(says), "{err}");
    };
    refused(
        "operator.token",
        &["terminal", "send", "bd-9", "--to", CARD_B, "--text", "x"],
        "no terminal \"bd-9\"",
    );
    refused(
        "operator.token",
        &["terminal", "send", "bd-1", "--to", CARD_B, "--hex", "0g"],
        "hex byte 1",
    );
    refused(
        "operator.token",
        &[
            "terminal",
            "send",
            "bd-1",
            "--to",
            CARD_B,
            "--hex",
            &"00".repeat(200),
        ],
        "do not fit",
    );
    refused(
        "viewer.token",
        &["terminal", "send", "bd-1", "--to", CARD_B, "--text", "x"],
        "forbidden",
    );
}

#[test]
fn a_terminal_pulled_out_mid_send_is_shown_down_and_delivers_once_plugged_back_in() {
    let dir = common::scratch("terminal-daemon-unplug");
    let (a_listen, b_listen) = common::pair_addresses();
    // Without signal the terminal refuses every send: the message is mid-send, waiting.
    let (mut a, a_link) = simulator(&dir, "a", CARD_A, (&a_listen, &b_listen), &["--no-signal"]);
    let (_b, b_link) = simulator(&dir, "b", CARD_B, (&b_listen, &a_listen), &[]);
    let here = Daemon::start(&dir.join("here"), &a_link);
    let there = Daemon::start(&dir.join("there"), &b_link);
    wait_until("both terminals up", LIMIT, || is_up(&here) && is_up(&there));
    let id = here.send(CARD_B, "不要丢失", false);
    wait_until("the terminal refused it once", LIMIT, || {
        std::fs::read_to_string(dir.join("a.jsonl")).is_ok_and(|log| log.contains("$BDFKI,TXA,N"))
    });

    a.signal(Signal::SIGKILL);
    let _ = a.wait(Duration::from_secs(5));
    wait_until("the terminal shown down", LIMIT, || {
        let t = here.terminal();
        t["up"] == false && t["port_open"] == false && t["queued"] == 1
    });
    let (_, out, _) = here.cli_as("viewer.token", &["terminal", "list"]);
    assert!(out.contains("DOWN"), "{out}");

    // Plugged back in: a terminal with signal on the same link.
    let (_a, _) = simulator(&dir, "a", CARD_A, (&a_listen, &b_listen), &[]);
    wait_until("the message at the peer", LIMIT, || {
        !there.inbox().is_empty()
    });
    wait_until("the message shown sent", LIMIT, || {
        here.outbox_states() == vec![(id, "sent".to_string())]
    });
    // Two service intervals more: nothing comes a second time.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        there.inbox(),
        vec![(CARD_A.to_string(), "不要丢失".to_string())]
    );
    assert_eq!(here.terminal()["queued"], 0);
}

#[test]
fn messages_queued_when_the_daemon_is_killed_are_delivered_after_its_restart_once_each() {
    let dir = common::scratch("terminal-daemon-restart");
    let _ = std::fs::remove_dir_all(dir.join("here"));
    let _ = std::fs::remove_dir_all(dir.join("there"));
    let a_link = dir.join("a.pty");
    let _ = std::fs::remove_file(&a_link);
    // No terminal yet: the messages wait in the outbox.
    let mut here = Daemon::start(&dir.join("here"), &a_link);
    wait_until("the terminal shown down", LIMIT, || {
        here.terminal()["last_error"].is_string()
    });
    let first = here.send(CARD_B, "第一条：道路中断", false);
    let second = here.send(CARD_B, "第二条：急需药品", true);
    assert_eq!(here.terminal()["queued"], 2);
    here.kill();

    let (a_listen, b_listen) = common::pair_addresses();
    let (_a, _) = simulator(&dir, "a", CARD_A, (&a_listen, &b_listen), &[]);
    let (_b, b_link) = simulator(&dir, "b", CARD_B, (&b_listen, &a_listen), &[]);
    let there = Daemon::start(&dir.join("there"), &b_link);
    here.run();
    wait_until("both messages at the peer", LIMIT, || {
        there.inbox().len() >= 2
    });
    wait_until("both shown sent", LIMIT, || {
        here.outbox_states() == vec![(first, "sent".to_string()), (second, "sent".to_string())]
    });
    std::thread::sleep(Duration::from_secs(3));
    // The urgent one went first.
    assert_eq!(
        there.inbox(),
        vec![
            (CARD_A.to_string(), "第二条：急需药品".to_string()),
            (CARD_A.to_string(), "第一条：道路中断".to_string()),
        ]
    );
}

#[test]
fn an_iridium_modem_in_the_daemon_carries_a_report_to_a_paired_modem_after_a_ring() {
    let dir = common::scratch("terminal-daemon-iridium");
    let ((_a, a_link), (_b, b_link)) = common::paired(
        "iridium",
        "iridium simulator",
        &dir,
        &["--session-ms", "200"],
        &["--session-ms", "200"],
    );
    let here = Daemon::start_with(&dir.join("here"), "iridium", "sbd-1", &a_link);
    let there = Daemon::start_with(&dir.join("there"), "iridium", "sbd-1", &b_link);
    wait_until("both modems up", LIMIT, || is_up(&here) && is_up(&there));
    assert_eq!(here.terminal()["kind"], "iridium");

    let id = here.send("gateway", "灾情：桥梁冲毁 2 处", true);
    wait_until("the report at the paired modem's daemon", LIMIT, || {
        there.inbox() == vec![("Iridium".to_string(), "灾情：桥梁冲毁 2 处".to_string())]
    });
    wait_until("the report shown sent", LIMIT, || {
        here.outbox_states() == vec![(id, "sent".to_string())]
    });
}
