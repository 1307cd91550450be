//! `emcomm keys generate`: a node's SM2 key pair, and optionally a link key, as files;
//! `emcomm keys srtp`: the SRTP key of one voice link between two gateways.
//!
//! The files are those `cascade::keys` reads (hexadecimal text, `#` comments). Secret
//! files are created with mode 0600 and never overwritten: a key that exists stays, and
//! the command is refused.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::Outcome;
use crate::cascade::keys::{LinkKey, NodeKey, SrtpKey};

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make a node's SM2 key pair (NODE.sm2.key, NODE.sm2.pub) and print the
    /// `[[cascade.origin]]` table its neighbours configure with a copy of NODE.sm2.pub.
    Generate {
        /// The folder to write the files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The node's name: letters, digits, '-', '_' and '.'.
        #[arg(long)]
        node: String,
        /// Also make a random 32-byte HMAC-SM3 link key (NODE.link.key).
        #[arg(long)]
        link_key: bool,
        #[arg(long)]
        json: bool,
    },
    /// Make the SRTP key of one voice link (LINK.srtp.key, 30 random bytes: master key
    /// and salt), for `srtp_key` in the sender's [[downstream]] and the receiver's
    /// [upstream].
    Srtp {
        /// The folder to write the file into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The link's name, such as the two gateways': letters, digits, '-', '_', '.'.
        #[arg(long)]
        link: String,
        #[arg(long)]
        json: bool,
    },
}

/// Runs a keys command.
pub fn run(command: KeysCommand) -> Outcome {
    match command {
        KeysCommand::Generate {
            out,
            node,
            link_key,
            json,
        } => generate(&out, &node, link_key, json),
        KeysCommand::Srtp { out, link, json } => srtp(&out, &link, json),
    }
}

/// Whether `name` can name a key file: letters, digits, '-', '_' and '.', not leading.
fn file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn srtp(out: &Path, link: &str, json: bool) -> Outcome {
    if !file_name(link) {
        eprintln!("{link:?} is not a link name: letters, digits, '-', '_' and '.' only");
        return Outcome::Refused;
    }
    let path = out.join(format!("{link}.srtp.key"));
    if path.exists() {
        eprintln!("{}: exists; a key is never overwritten", path.display());
        return Outcome::Refused;
    }
    let key = match SrtpKey::generate() {
        Ok(key) => key,
        Err(e) => {
            eprintln!("{e}");
            return Outcome::Failed;
        }
    };
    let text = format!(
        "# SRTP master key and salt (AES_CM_128_HMAC_SHA1_80) of voice link {link}:\n\
         # both gateways of the link hold this file, nobody else\n{}\n",
        key.to_hex()
    );
    if let Err(e) = std::fs::create_dir_all(out).and_then(|()| write_new(&path, 0o600, &text)) {
        eprintln!("{}: cannot write: {e}", path.display());
        return Outcome::Failed;
    }
    let sender = format!(
        "srtp_key = \"{}\"  # in the sender's [[downstream]] table",
        path.display()
    );
    let receiver = format!(
        "srtp_key = \"{}\"  # in the receiver's [upstream] table",
        path.display()
    );
    if json {
        say!(
            "{:#}",
            json!({ "link": link, "srtp_key": path, "sender": sender, "receiver": receiver })
        );
    } else {
        say!(
            "wrote {} (mode 0600): copy it to the gateway at the other end of the link by a safe way",
            path.display()
        );
        say!("{sender}");
        say!("{receiver}");
    }
    Outcome::Done
}

fn generate(out: &Path, node: &str, with_link_key: bool, json: bool) -> Outcome {
    if !file_name(node) {
        eprintln!("{node:?} is not a node name: letters, digits, '-', '_' and '.' only");
        return Outcome::Refused;
    }
    let private_path = out.join(format!("{node}.sm2.key"));
    let public_path = out.join(format!("{node}.sm2.pub"));
    let link_path = out.join(format!("{node}.link.key"));
    let mut planned = vec![&private_path, &public_path];
    if with_link_key {
        planned.push(&link_path);
    }
    if let Some(existing) = planned.iter().find(|p| p.exists()) {
        eprintln!("{}: exists; a key is never overwritten", existing.display());
        return Outcome::Refused;
    }

    let keys = NodeKey::generate().and_then(|node_key| {
        let link = with_link_key.then(LinkKey::generate).transpose()?;
        Ok((node_key, link))
    });
    let (node_key, link) = match keys {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("cannot make keys: {e}");
            return Outcome::Failed;
        }
    };
    let public = node_key.public().to_hex();
    let mut files = vec![
        (
            &private_path,
            0o600,
            format!(
                "# SM2 private key of node {node}: keep it on that node only\n{}\n",
                node_key.to_hex()
            ),
        ),
        (
            &public_path,
            0o644,
            format!("# SM2 public key of node {node}\n{public}\n"),
        ),
    ];
    if let Some(link) = &link {
        files.push((
            &link_path,
            0o600,
            format!(
                "# HMAC-SM3 link key made by node {node}: give it to the other end only\n{}\n",
                link.to_hex()
            ),
        ));
    }
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("{}: cannot create: {e}", out.display());
        return Outcome::Failed;
    }
    for (path, mode, text) in files {
        if let Err(e) = write_new(path, mode, &text) {
            eprintln!("{}: cannot write: {e}", path.display());
            return Outcome::Failed;
        }
    }

    // What a neighbour puts in its configuration: the public key file, copied over.
    let line = format!(
        "[[cascade.origin]]\narea = \"...\"  # {node}'s area code\npublic_key = \"{}\"  # a copy of this file",
        public_path.display()
    );
    if json {
        let document = json!({
            "node": node,
            "private_key": private_path,
            "public_key": public_path,
            "public_key_hex": public,
            "link_key": link.as_ref().map(|_| &link_path),
            "config_line": line,
        });
        say!("{document:#}");
    } else {
        say!(
            "wrote {} (mode 0600) and {}",
            private_path.display(),
            public_path.display()
        );
        if link.is_some() {
            say!(
                "wrote {} (mode 0600): copy it to the node at the other end of the link by a safe way",
                link_path.display()
            );
        }
        say!(
            "give every node that takes this node's frames a copy of {} (public: no secret) and, in its configuration:",
            public_path.display()
        );
        say!("{line}");
    }
    Outcome::Done
}

/// Creates `path` with `mode`, refusing to replace a file that appeared meanwhile.
fn write_new(path: &Path, mode: u32, text: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
