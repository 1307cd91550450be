//! A node's SRTP links, taken from its configuration, and the sending of one stream's
//! datagrams to a mix of plain and SRTP destinations.
//!
//! Each `[[downstream]]` with `srtp_key` is a link of its own: RTP and RTCP to its
//! address are protected under that key, and RTCP that comes from its RTCP address is
//! taken only once it unprotects. `[upstream] srtp_key` is the link from the parent:
//! with it, a relaying node takes only SRTP from above.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use drivers::net::fanout::{Fanout, FanoutReport};
use tracing::{debug, info, warn};

use super::{NodeError, rtcp_address};
use crate::cascade::keys::SrtpKey;
use crate::config::{Config, DownstreamKind};
use crate::voice::srtp::{SrtpLink, SrtpRefusal};

/// One downstream destination on an SRTP link.
struct DownstreamLink {
    name: String,
    rtp: SocketAddr,
    rtcp: SocketAddr,
    link: SrtpLink,
    rtp_out: Fanout,
    rtcp_out: Fanout,
}

/// The node's SRTP links, and counts of what they refused.
#[derive(Default)]
pub(crate) struct SrtpLinks {
    downstream: Vec<DownstreamLink>,
    upstream: Option<SrtpLink>,
    /// Received packets refused by a link: forged, replayed, or plain where SRTP is due.
    pub refused: u64,
    /// Packets that could not be protected and were not sent.
    pub unprotected: u64,
}

/// What a datagram is, for the key's use (SRTP or SRTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packet {
    Rtp,
    Rtcp,
}

impl SrtpLinks {
    /// Reads every key file the configuration names; a missing, exposed or malformed
    /// one stops the node. A gateway below without a key is said once at start-up.
    pub fn load(config: &Config) -> Result<SrtpLinks, NodeError> {
        let mut links = SrtpLinks::default();
        for d in &config.downstream {
            let Some(path) = &d.srtp_key else {
                if d.kind == DownstreamKind::Gateway {
                    warn!(destination = %d.name, "voice to this gateway goes as plain RTP: give it an srtp_key");
                }
                continue;
            };
            let link = open(path)?;
            links.downstream.push(DownstreamLink {
                name: d.name.clone(),
                rtp: d.address,
                rtcp: rtcp_address(d.address),
                link,
                rtp_out: Fanout::new(&[d.address]),
                rtcp_out: Fanout::new(&[rtcp_address(d.address)]),
            });
            info!(destination = %d.name, "voice to this destination goes as SRTP");
        }
        if let Some(path) = &config.upstream_srtp_key {
            links.upstream = Some(open(path)?);
            info!("voice from above is taken as SRTP only");
        }
        Ok(links)
    }

    /// Whether `address` (RTP or RTCP) is a destination on an SRTP link.
    pub fn protects(&self, address: SocketAddr) -> bool {
        self.downstream
            .iter()
            .any(|d| d.rtp == address || d.rtcp == address)
    }

    /// Whether voice from above must come as SRTP.
    pub fn upstream_protected(&self) -> bool {
        self.upstream.is_some()
    }

    /// `datagram` from a downstream destination's RTCP address, unprotected if that
    /// destination is on an SRTP link; `None` (and counted) when refused.
    pub fn open_from_downstream(&mut self, datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let Some(d) = self.downstream.iter_mut().find(|d| d.rtcp == from) else {
            return Some(datagram.to_vec());
        };
        match d.link.unprotect_rtcp(datagram) {
            Ok(plain) => Some(plain),
            Err(e) => {
                self.refused += 1;
                debug!(destination = %d.name, %from, reason = %e, "SRTCP refused");
                None
            }
        }
    }

    /// An RTP or RTCP datagram from above, unprotected under the upstream link (as it
    /// is, without one); the caller counts refusals, as an RTCP datagram that is no
    /// SRTCP may be a loudspeaker's plain report.
    pub fn open_from_upstream(
        &mut self,
        datagram: &[u8],
        packet: Packet,
    ) -> Result<Vec<u8>, SrtpRefusal> {
        let Some(link) = self.upstream.as_mut() else {
            return Ok(datagram.to_vec());
        };
        match packet {
            Packet::Rtp => link.unprotect_rtp(datagram),
            Packet::Rtcp => link.unprotect_rtcp(datagram),
        }
    }

    /// An RTCP datagram for the parent, protected under the upstream link if there is one.
    pub fn seal_for_upstream(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let Some(link) = self.upstream.as_mut() else {
            return Some(datagram.to_vec());
        };
        match link.protect_rtcp(datagram) {
            Ok(sealed) => Some(sealed),
            Err(e) => {
                self.unprotected += 1;
                debug!(error = %e, "RTCP for the parent not sent");
                None
            }
        }
    }
}

fn open(path: &std::path::Path) -> Result<SrtpLink, NodeError> {
    let key = SrtpKey::load(path).map_err(|e| NodeError::Setup(e.to_string()))?;
    SrtpLink::new(&key).map_err(|e| NodeError::Setup(format!("{}: {e}", path.display())))
}

/// Where one stream's RTP or RTCP goes: the plain destinations in one fan-out, and each
/// destination on an SRTP link on its own, protected under its key.
#[derive(Debug)]
pub(crate) struct Destinations {
    packet: Packet,
    plain: Fanout,
    protected: Vec<SocketAddr>,
}

impl Destinations {
    pub fn new(packet: Packet, addresses: &[SocketAddr], links: &SrtpLinks) -> Destinations {
        let (protected, plain): (Vec<SocketAddr>, Vec<SocketAddr>) =
            addresses.iter().partition(|a| links.protects(**a));
        Destinations {
            packet,
            plain: Fanout::new(&plain),
            protected,
        }
    }

    /// No destinations at all.
    pub fn none(packet: Packet) -> Destinations {
        Destinations {
            packet,
            plain: Fanout::new(&[]),
            protected: Vec::new(),
        }
    }

    /// Sends `datagram` to every destination from `socket`.
    pub fn send(
        &mut self,
        socket: &impl AsRawFd,
        datagram: &[u8],
        links: &mut SrtpLinks,
    ) -> FanoutReport {
        let mut report = if self.plain.is_empty() {
            FanoutReport::default()
        } else {
            self.plain.send(socket, datagram)
        };
        for address in &self.protected {
            let Some(d) = links
                .downstream
                .iter_mut()
                .find(|d| d.rtp == *address || d.rtcp == *address)
            else {
                continue;
            };
            let (sealed, out) = match self.packet {
                Packet::Rtp => (d.link.protect_rtp(datagram), &mut d.rtp_out),
                Packet::Rtcp => (d.link.protect_rtcp(datagram), &mut d.rtcp_out),
            };
            match sealed {
                Ok(sealed) => {
                    let sent = out.send(socket, &sealed);
                    report.sent += sent.sent;
                    report.failed += sent.failed;
                    report.calls += sent.calls;
                }
                Err(e) => {
                    links.unprotected += 1;
                    report.failed += 1;
                    debug!(destination = %d.name, error = %e, "datagram not protected, not sent");
                }
            }
        }
        report
    }
}
