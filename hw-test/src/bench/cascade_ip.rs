//! The cascade over IP: one alert from a district through its streets to every village
//! and every village's receipt back, with the daemon's own cascade task at each node
//! (`gateway::node::cascade::Cascade`: UDP sockets on loopback, SQLite stores, SM2,
//! acknowledgements, retries), all in this one process.
//!
//! Each node is configured as a real one would be, from a TOML configuration this
//! benchmark writes with its keys into a scratch folder (`/dev/shm` where there is one,
//! so the stores' syncs cost what a battery-backed disk costs, not a laptop's SSD). What
//! stands in for each node's alert playout takes every alert as stored at once and,
//! at a village, sends its receipt up the moment the alert arrives: the playing and the
//! loudspeakers' reports (seconds of speech, RTCP intervals) are not in these figures.
//!
//! A round sends one alert for the whole district and ends when the district has every
//! village's receipt. It is timed from the request to the district's cascade to the
//! last village's delivery and to the last receipt at the district.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gateway::alert::model::{AreaCode, Level};
use gateway::cascade::frame::{BearerKind, Receipt};
use gateway::cascade::keys::NodeKey;
use gateway::config::Config;
use gateway::node::cascade::{Cascade, Delivered, Request, Sinks};
use serde::Serialize;
use tokio::sync::mpsc;

use super::cascade::{percentile, sorted};

/// The district every alert comes from.
const DISTRICT: &str = "410503";

/// What to run.
#[derive(Debug, Clone)]
pub struct CascadeIpOptions {
    pub streets: usize,
    /// Villages per street.
    pub villages: usize,
    pub rounds: usize,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct CascadeIpFigures {
    pub nodes: usize,
    pub rounds: usize,
    /// Seconds from the first node's start to every link up.
    pub start_s: f64,
    /// Per round, milliseconds to the last village's delivery.
    pub delivered_ms: Vec<f64>,
    /// Per round, milliseconds to the last receipt at the district.
    pub receipts_ms: Vec<f64>,
    pub delivered_p50_ms: f64,
    pub delivered_p99_ms: f64,
    pub receipts_p50_ms: f64,
    pub receipts_p99_ms: f64,
    /// Where the stores were.
    pub scratch: String,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum CascadeIpError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("round {round}: {what} after {waited:?}")]
    Stalled {
        round: usize,
        what: &'static str,
        waited: Duration,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CascadeIpError {
    let what = what.into();
    move |source| CascadeIpError::Io { what, source }
}

/// One node of the bench: its area, the area of the node above, its listen port.
struct NodePlan {
    name: String,
    area: String,
    port: u16,
    /// Index of the node above; `None` for the district.
    up: Option<usize>,
}

/// What a stand-in playout saw: a village's delivery, or a receipt at the district.
enum Seen {
    Delivered,
    Receipt,
}

/// Runs the benchmark on a runtime of its own.
pub fn run(options: &CascadeIpOptions) -> Result<CascadeIpFigures, CascadeIpError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io("tokio runtime"))?;
    runtime.block_on(run_async(options))
}

async fn run_async(options: &CascadeIpOptions) -> Result<CascadeIpFigures, CascadeIpError> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("emcomm-cascade-ip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("keys")).map_err(io("scratch folder"))?;

    let mut held = Vec::new();
    let plans = plan(options, &mut held)?;
    write_keys(&dir, &plans)?;
    let mut texts = Vec::new();
    for n in 0..plans.len() {
        texts.push(configuration(&dir, &plans, n, &mut held)?);
    }
    drop(held);

    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut cascades = Vec::new();
    let started = Instant::now();
    for (n, node) in plans.iter().enumerate() {
        let text = &texts[n];
        let path = dir.join(format!("{}.toml", node.name));
        std::fs::write(&path, text).map_err(io(path.display().to_string()))?;
        let config = Config::parse(&path, text)
            .map_err(|e| CascadeIpError::Setup(format!("{}: {e}", node.name)))?;
        let (playout, delivered) = mpsc::unbounded_channel();
        let sinks = Sinks {
            playout: Some(playout),
            grants: None,
        };
        let cascade = Cascade::start(&config, None, sinks)
            .await
            .map_err(|e| CascadeIpError::Setup(format!("{}: {e}", node.name)))?
            .ok_or_else(|| CascadeIpError::Setup(format!("{}: no [cascade]", node.name)))?;
        let role = match node.up {
            None => Role::District,
            Some(0) => Role::Street,
            Some(_) => Role::Village(
                node.area
                    .parse()
                    .map_err(|_| CascadeIpError::Setup(format!("{}: bad area", node.name)))?,
            ),
        };
        tokio::spawn(stand_in_playout(
            role,
            cascade.handle.clone(),
            delivered,
            seen_tx.clone(),
        ));
        cascades.push(cascade);
    }

    // Every node's every link up: each has heard its neighbours' first heartbeats.
    let links: usize = plans.iter().filter(|p| p.up.is_some()).count() * 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let up: usize = cascades
            .iter()
            .map(|c| {
                c.handle
                    .routes
                    .borrow()
                    .values()
                    .filter(|r| **r == Some(BearerKind::Ip))
                    .count()
            })
            .sum();
        if up == links {
            break;
        }
        if Instant::now() > deadline {
            let down: Vec<String> = plans
                .iter()
                .zip(&cascades)
                .filter_map(|(p, c)| {
                    let routes = c.handle.routes.borrow();
                    let expected = usize::from(p.up.is_some())
                        + plans
                            .iter()
                            .filter(|q| q.up.is_some_and(|u| plans[u].name == p.name))
                            .count();
                    let up = routes
                        .values()
                        .filter(|r| **r == Some(BearerKind::Ip))
                        .count();
                    (up < expected).then(|| format!("{} ({up} of {expected}: {routes:?})", p.name))
                })
                .collect();
            return Err(CascadeIpError::Setup(format!(
                "only {up} of {links} link ends came up in 120 s; not all up at {}",
                down.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start_s = started.elapsed().as_secs_f64();

    let villages = options.streets * options.villages;
    let mut delivered_ms = Vec::new();
    let mut receipts_ms = Vec::new();
    for round in 0..options.rounds {
        let sent = Instant::now();
        let request = Request::Alert {
            number: 1000 + round as u32,
            level: Level::Red,
            targets: vec![
                DISTRICT
                    .parse()
                    .map_err(|_| CascadeIpError::Setup("district area".into()))?,
            ],
            text: "【红色预警】暴雨红色预警，立即转移。".into(),
            valid_until: chrono::Utc::now() + chrono::Duration::hours(1),
        };
        cascades[0]
            .handle
            .requests
            .send(request)
            .map_err(|_| CascadeIpError::Setup("the district's cascade stopped".into()))?;
        let (mut delivered, mut receipts) = (0, 0);
        let (mut last_delivery, mut last_receipt) = (Duration::ZERO, Duration::ZERO);
        let limit = Duration::from_secs(120);
        while delivered < villages || receipts < villages {
            let next = tokio::time::timeout(limit.saturating_sub(sent.elapsed()), seen.recv());
            match next.await {
                Ok(Some(Seen::Delivered)) => {
                    delivered += 1;
                    last_delivery = sent.elapsed();
                }
                Ok(Some(Seen::Receipt)) => {
                    receipts += 1;
                    last_receipt = sent.elapsed();
                }
                Ok(None) | Err(_) => {
                    return Err(CascadeIpError::Stalled {
                        round,
                        what: if delivered < villages {
                            "not every village had the alert"
                        } else {
                            "not every receipt was back"
                        },
                        waited: sent.elapsed(),
                    });
                }
            }
        }
        delivered_ms.push(last_delivery.as_secs_f64() * 1000.0);
        receipts_ms.push(last_receipt.as_secs_f64() * 1000.0);
        // Let the last acknowledgements land before the next round.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for cascade in cascades {
        cascade.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    Ok(CascadeIpFigures {
        nodes: plans.len(),
        rounds: options.rounds,
        start_s,
        delivered_p50_ms: percentile(&sorted(&delivered_ms), 0.50),
        delivered_p99_ms: percentile(&sorted(&delivered_ms), 0.99),
        receipts_p50_ms: percentile(&sorted(&receipts_ms), 0.50),
        receipts_p99_ms: percentile(&sorted(&receipts_ms), 0.99),
        delivered_ms,
        receipts_ms,
        scratch: base.display().to_string(),
    })
}

#[derive(Clone)]
enum Role {
    District,
    Street,
    Village(AreaCode),
}

/// Takes what the cascade delivers as a node with `[alerts]` would, without playing:
/// stored at once; a village's receipt goes up as soon as it has the alert, one
/// loudspeaker played.
async fn stand_in_playout(
    role: Role,
    cascade: gateway::node::cascade::CascadeHandle,
    mut delivered: mpsc::UnboundedReceiver<Delivered>,
    seen: mpsc::UnboundedSender<Seen>,
) {
    let mut taken = HashSet::new();
    while let Some(what) = delivered.recv().await {
        match what {
            Delivered::Alert { frame, stored } => {
                let _ = stored.send(true);
                let Role::Village(area) = &role else {
                    continue;
                };
                // A copy that comes again is the same alert.
                if !taken.insert(frame.number) {
                    continue;
                }
                let _ = seen.send(Seen::Delivered);
                let receipt = Receipt {
                    alert_origin: frame.origin.clone(),
                    alert_number: frame.number,
                    area: area.clone(),
                    played: 1,
                    loudspeakers: 1,
                    bearer: BearerKind::Ip,
                };
                let _ = cascade.requests.send(Request::Receipt(receipt));
            }
            Delivered::Receipt { stored, .. } => {
                let _ = stored.send(true);
                if matches!(role, Role::District) {
                    let _ = seen.send(Seen::Receipt);
                }
            }
            Delivered::Cancel { stored, .. } => {
                let _ = stored.send(true);
            }
        }
    }
}

/// The district first, then each street followed by its villages; a free UDP port each.
fn plan(
    options: &CascadeIpOptions,
    held: &mut Vec<std::net::UdpSocket>,
) -> Result<Vec<NodePlan>, CascadeIpError> {
    if options.streets == 0
        || options.villages == 0
        || options.streets > 999
        || options.villages > 999
    {
        return Err(CascadeIpError::Setup(
            "--streets and --villages are 1 to 999 (three digits of a code)".into(),
        ));
    }
    let mut plans = vec![NodePlan {
        name: "district".into(),
        area: DISTRICT.into(),
        port: free_port(held)?,
        up: None,
    }];
    for s in 1..=options.streets {
        let street = plans.len();
        let area = format!("{DISTRICT}{s:03}");
        plans.push(NodePlan {
            name: format!("street-{s:03}"),
            area: area.clone(),
            port: free_port(held)?,
            up: Some(0),
        });
        for v in 1..=options.villages {
            plans.push(NodePlan {
                name: format!("village-{s:03}-{v:03}"),
                area: format!("{area}{v:03}"),
                port: free_port(held)?,
                up: Some(street),
            });
        }
    }
    Ok(plans)
}

/// A free UDP port, held by a socket in `held` until the nodes start, so no two nodes
/// are given the same one.
fn free_port(held: &mut Vec<std::net::UdpSocket>) -> Result<u16, CascadeIpError> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io("a free UDP port"))?;
    let port = socket.local_addr().map_err(io("a free UDP port"))?.port();
    held.push(socket);
    Ok(port)
}

/// Each node's SM2 key, its private half readable by its owner only.
fn write_keys(dir: &Path, plans: &[NodePlan]) -> Result<(), CascadeIpError> {
    use std::os::unix::fs::PermissionsExt;
    for node in plans {
        let key = NodeKey::generate().map_err(|e| CascadeIpError::Setup(e.to_string()))?;
        let private = dir.join("keys").join(format!("{}.sm2.key", node.name));
        std::fs::write(&private, key.to_hex()).map_err(io(private.display().to_string()))?;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600))
            .map_err(io(private.display().to_string()))?;
        let public = dir.join("keys").join(format!("{}.sm2.pub", node.name));
        std::fs::write(&public, key.public().to_hex()).map_err(io(public.display().to_string()))?;
    }
    Ok(())
}

/// Node `n`'s configuration: its links to the node above and the nodes below, and as
/// origins the district, the node above (its heartbeats and acknowledgements) and every
/// node below it (whose receipts it passes up).
fn configuration(
    dir: &Path,
    plans: &[NodePlan],
    n: usize,
    held: &mut Vec<std::net::UdpSocket>,
) -> Result<String, CascadeIpError> {
    let node = &plans[n];
    let keys = dir.join("keys");
    let tier = match node.up {
        None => "district",
        Some(0) => "street",
        Some(_) => "village",
    };
    let mut text = format!(
        "[node]\nname = \"{}\"\ntier = \"{tier}\"\narea = \"{}\"\n\n",
        node.name, node.area
    );
    match node.up {
        None => text.push_str("[source]\ndevice = \"default\"\n\n"),
        Some(_) => text.push_str(&format!(
            "[rtp]\nlisten = \"127.0.0.1:{}\"\n\n",
            free_port(held)?
        )),
    }
    text.push_str(&format!(
        "[[downstream]]\nname = \"pole\"\naddress = \"127.0.0.1:9\"\narea = \"{}\"\n\n",
        node.area
    ));
    text.push_str(&format!(
        "[cascade]\nkey = \"{}\"\nstate_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\nheartbeat_s = 10\n\n",
        keys.join(format!("{}.sm2.key", node.name)).display(),
        dir.join("state").join(&node.name).display(),
        node.port
    ));
    let below = |m: usize| {
        let mut up = plans[m].up;
        while let Some(u) = up {
            if u == n {
                return true;
            }
            up = plans[u].up;
        }
        false
    };
    for (m, other) in plans.iter().enumerate() {
        let above = node.up == Some(m);
        if (m == 0 && n != 0) || above || below(m) {
            text.push_str(&format!(
                "[[cascade.origin]]\narea = \"{}\"\npublic_key = \"{}\"\n\n",
                other.area,
                keys.join(format!("{}.sm2.pub", other.name)).display()
            ));
        }
    }
    if let Some(up) = node.up {
        text.push_str(&format!(
            "[[cascade.link]]\nname = \"up\"\npeer = \"{}\"\ndirection = \"up\"\nip = \"127.0.0.1:{}\"\n\n",
            plans[up].area, plans[up].port
        ));
    }
    for other in plans.iter().filter(|p| p.up == Some(n)) {
        text.push_str(&format!(
            "[[cascade.link]]\nname = \"{}\"\npeer = \"{}\"\ndirection = \"down\"\nip = \"127.0.0.1:{}\"\n\n",
            other.name, other.area, other.port
        ));
    }
    Ok(text)
}

/// The figures as a table for the terminal.
pub fn table(f: &CascadeIpFigures) -> String {
    format!(
        "cascade over IP: {} nodes, {} rounds, stores on {}\n\
         all links up after        {:.1} s\n\
         alert to every village    p50 {:.0} ms   p99 {:.0} ms\n\
         alert to every receipt    p50 {:.0} ms   p99 {:.0} ms\n\
         rounds (receipts, ms)     {}\n",
        f.nodes,
        f.rounds,
        f.scratch,
        f.start_s,
        f.delivered_p50_ms,
        f.delivered_p99_ms,
        f.receipts_p50_ms,
        f.receipts_p99_ms,
        f.receipts_ms
            .iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_cascade_over_ip_brings_every_alert_and_receipt_home_each_round() {
        let options = CascadeIpOptions {
            streets: 2,
            villages: 2,
            rounds: 2,
        };
        let figures = run(&options).expect("runs");
        assert_eq!(figures.nodes, 1 + 2 + 2 * 2);
        assert_eq!(figures.receipts_ms.len(), 2);
        assert_eq!(figures.delivered_ms.len(), 2);
        for (delivered, receipts) in figures.delivered_ms.iter().zip(&figures.receipts_ms) {
            assert!(delivered <= receipts, "{figures:?}");
        }
        let json = serde_json::to_string(&figures).expect("serialises");
        let back: serde_json::Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(back["rounds"], 2);
        assert!(
            table(&figures).contains("7 nodes, 2 rounds"),
            "{}",
            table(&figures)
        );
    }
}
