//! Test hosts in network namespaces, joined by veth pairs: several gateways on one
//! machine, each with its own addresses, whose links a test can cut and heal.
//!
//! Needs root and iproute2 (`ip netns`, `ip link`); [`Lab::new`] says plainly when either
//! is missing. Every namespace is named after the lab's prefix and the process id, so
//! tests running at once do not meet, and is deleted when the lab is dropped (the
//! processes in it are the caller's to stop first).

use std::process::Command;

/// Why a lab could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("network namespaces need root (running as uid {0})")]
    NotRoot(u32),
    #[error("`ip {args}` failed: {reason}")]
    Ip { args: String, reason: String },
}

/// A namespace: one host of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The namespace's name, for `ip netns exec`.
    pub netns: String,
}

/// A veth pair between two hosts, each end with its address on a /24.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub a: Host,
    pub b: Host,
    pub a_device: String,
    pub b_device: String,
    pub a_addr: std::net::Ipv4Addr,
    pub b_addr: std::net::Ipv4Addr,
}

/// The hosts and links of one test.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    hosts: Vec<Host>,
    links: u8,
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    let failed = |reason: String| LabError::Ip {
        args: args.join(" "),
        reason,
    };
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

impl Lab {
    /// An empty lab whose namespaces start with `prefix` (a few letters).
    pub fn new(prefix: &str) -> Result<Lab, LabError> {
        let uid = nix::unistd::getuid().as_raw();
        if uid != 0 {
            return Err(LabError::NotRoot(uid));
        }
        Ok(Lab {
            prefix: format!("{prefix}{}", std::process::id()),
            hosts: Vec::new(),
            links: 0,
        })
    }

    /// A new host named `name`, its loopback up.
    pub fn host(&mut self, name: &str) -> Result<Host, LabError> {
        let host = Host {
            netns: format!("{}-{name}", self.prefix),
        };
        ip(&["netns", "add", &host.netns])?;
        self.hosts.push(host.clone());
        ip(&["-n", &host.netns, "link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// A veth pair between `a` and `b`, up, on 10.77.N.0/24 (`a` is .1, `b` is .2).
    pub fn link(&mut self, a: &Host, b: &Host) -> Result<Link, LabError> {
        self.links += 1;
        let n = self.links;
        // Device names are at most 15 bytes: short, and unique inside each namespace.
        let (a_device, b_device) = (format!("v{n}a"), format!("v{n}b"));
        let (a_tmp, b_tmp) = (
            format!("e{}{n}a", std::process::id() % 100_000),
            format!("e{}{n}b", std::process::id() % 100_000),
        );
        ip(&[
            "link", "add", &a_tmp, "type", "veth", "peer", "name", &b_tmp,
        ])?;
        ip(&["link", "set", &a_tmp, "netns", &a.netns, "name", &a_device])?;
        ip(&["link", "set", &b_tmp, "netns", &b.netns, "name", &b_device])?;
        let a_addr = std::net::Ipv4Addr::new(10, 77, n, 1);
        let b_addr = std::net::Ipv4Addr::new(10, 77, n, 2);
        for (host, device, addr) in [(a, &a_device, a_addr), (b, &b_device, b_addr)] {
            ip(&[
                "-n",
                &host.netns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                device,
            ])?;
            ip(&["-n", &host.netns, "link", "set", device, "up"])?;
        }
        Ok(Link {
            a: a.clone(),
            b: b.clone(),
            a_device,
            b_device,
            a_addr,
            b_addr,
        })
    }

    /// Cuts the link (`up` false: both ends down) or heals it.
    pub fn set_link(&self, link: &Link, up: bool) -> Result<(), LabError> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &link.a.netns, "link", "set", &link.a_device, state])?;
        ip(&["-n", &link.b.netns, "link", "set", &link.b_device, state])
    }

    /// `program` to run inside `host`.
    pub fn command(&self, host: &Host, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &host.netns]).arg(program);
        command
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its ends of the veth pairs too.
        for host in &self.hosts {
            let _ = ip(&["netns", "delete", &host.netns]);
        }
    }
}
