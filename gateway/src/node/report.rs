//! A relay's receipts, reported up: which of its loudspeakers played each alert its
//! parent sent, posted to the parent's control API (`POST /v1/alerts/{id}/receipts`).
//!
//! The parent names the alert a stream carries in the stream's RTCP (SDES NOTE
//! `alert=ID`); the relay's own output streams are judged by the same
//! [`ReceiptTracker`] the district uses for its own loudspeakers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use drivers::rtp::stats::ReportBlockData;
use tracing::{info, warn};

use crate::alert::playout::receipts::{ReceiptTracker, Update};
use crate::alert::store::Receipt;
use crate::config::{Config, DownstreamKind, UpstreamApi};
use crate::voice::forward::OutputStream;

/// How many upstream notes are remembered (one per alert stream recently seen).
const NOTES_KEPT: usize = 64;

pub struct ReceiptReporter {
    api: UpstreamApi,
    node: String,
    tracker: ReceiptTracker,
    /// Upstream SSRC to the parent's alert id and its purpose, newest last.
    notes: Vec<(u32, i64, String)>,
    /// The purpose of each alert seen, for the receipts' detail.
    purposes: HashMap<i64, String>,
    /// Loudspeaker destinations of each output group, by index into the config.
    groups: Vec<Vec<usize>>,
    names: Vec<String>,
    by_rtcp: HashMap<SocketAddr, usize>,
}

impl ReceiptReporter {
    /// A reporter for a relay configured with `[upstream] api`; `None` without one.
    pub fn new(config: &Config, formats: &[drivers::rtp::payload::PayloadFormat]) -> Option<Self> {
        let api = config.upstream_api.clone()?;
        let groups = formats
            .iter()
            .map(|f| {
                config
                    .downstream
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.format == *f && d.kind == DownstreamKind::Loudspeaker)
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        Some(ReceiptReporter {
            api,
            node: config.name.clone(),
            tracker: ReceiptTracker::new(
                chrono::Duration::from_std(config.rtcp_interval * 3)
                    .unwrap_or(chrono::Duration::seconds(15)),
                5.0,
            ),
            notes: Vec::new(),
            purposes: HashMap::new(),
            groups,
            names: config.downstream.iter().map(|d| d.name.clone()).collect(),
            by_rtcp: config
                .downstream
                .iter()
                .enumerate()
                .map(|(i, d)| (super::rtcp_address(d.address), i))
                .collect(),
        })
    }

    /// The parent's note about an upstream source: `alert=ID purpose=PURPOSE`.
    pub fn on_note(&mut self, ssrc: u32, note: &str) {
        let field = |name: &str| {
            note.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_string)
        };
        let Some(alert) = field("alert=").and_then(|id| id.parse::<i64>().ok()) else {
            return;
        };
        let purpose = field("purpose=").unwrap_or_else(|| "actual".into());
        self.purposes.insert(alert, purpose.clone());
        if !self.notes.iter().any(|(s, a, _)| *s == ssrc && *a == alert) {
            self.notes.push((ssrc, alert, purpose));
            if self.notes.len() > NOTES_KEPT {
                self.notes.remove(0);
            }
        }
    }

    /// An upstream stream ended; `outputs` is what went out for it.
    pub fn on_stream_ended(&mut self, ssrc: u32, outputs: &[OutputStream]) {
        let Some(&(_, alert, _)) = self.notes.iter().rev().find(|(s, _, _)| *s == ssrc) else {
            return;
        };
        let now = Utc::now();
        for out in outputs {
            for destination in self.groups.get(out.group).into_iter().flatten() {
                self.tracker.play_sent(
                    alert,
                    *destination,
                    out.ssrc,
                    out.first_sequence,
                    out.packets,
                    now,
                );
            }
        }
    }

    pub fn on_receiver_report(&mut self, from: SocketAddr, block: &ReportBlockData) {
        if let Some(&destination) = self.by_rtcp.get(&from) {
            let updates = self.tracker.report(destination, block);
            self.send(updates);
        }
    }

    pub fn poll(&mut self) {
        let updates = self.tracker.poll(Utc::now());
        self.send(updates);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let at = self.tracker.next_deadline()?;
        Some(Instant::now() + (at - Utc::now()).to_std().unwrap_or_default())
    }

    /// Posts the updates, one request per alert, off the relay's task.
    fn send(&self, updates: Vec<Update>) {
        let mut by_alert: HashMap<i64, Vec<Receipt>> = HashMap::new();
        for update in updates {
            let Some(name) = self.names.get(update.output) else {
                continue;
            };
            info!(alert = update.alert, loudspeaker = %name, receipt = update.verdict.state(), "receipt for the parent");
            by_alert.entry(update.alert).or_default().push(Receipt {
                loudspeaker: name.clone(),
                via: self.node.clone(),
                state: update.verdict.state().to_string(),
                detail: match self.purposes.get(&update.alert).map(String::as_str) {
                    None | Some("actual") => update.verdict.detail(),
                    Some(purpose) => {
                        format!("{}: {}", purpose.to_uppercase(), update.verdict.detail())
                    }
                },
            });
        }
        for (alert, receipts) in by_alert {
            let api = self.api.clone();
            tokio::task::spawn_blocking(move || post(&api, alert, &receipts));
        }
    }
}

fn post(api: &UpstreamApi, alert: i64, receipts: &[Receipt]) {
    let token = match std::fs::read_to_string(&api.token_file) {
        Ok(t) => t.trim().to_string(),
        Err(e) => {
            warn!(file = %api.token_file.display(), error = %e, "cannot read the token for the parent's API: receipts not reported");
            return;
        }
    };
    let body = serde_json::to_vec(receipts).unwrap_or_default();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("{}/v1/alerts/{alert}/receipts", api.url);
    match agent
        .post(&url)
        .header("Authorization", format!("Bearer {token}"))
        .content_type("application/json")
        .send(&body[..])
    {
        Ok(response) if response.status().is_success() => {
            info!(
                alert,
                receipts = receipts.len(),
                "receipts reported to the parent"
            );
        }
        Ok(mut response) => {
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            warn!(alert, status, answer = %text, "the parent refused the receipts");
        }
        Err(e) => {
            warn!(alert, url, error = %e, "cannot reach the parent's API: receipts not reported")
        }
    }
}
