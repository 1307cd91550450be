//! `emcomm keys generate`, as an operator runs it before configuring a node.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gateway::cascade::keys::{LinkKey, NodeKey, NodePublicKey};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("emcomm-cli-keys-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn generate(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emcomm"))
        .args(["keys", "generate", "--node", "street-410503001", "--out"])
        .arg(dir)
        .args(extra)
        .output()
        .expect("runs")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn generate_writes_a_private_key_only_its_owner_reads_and_prints_the_table_that_names_its_public_key()
 {
    let dir = scratch("pair");
    let out = generate(&dir, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let private_path = dir.join("street-410503001.sm2.key");
    let public_path = dir.join("street-410503001.sm2.pub");
    assert_eq!(mode(&private_path), 0o600);
    let private = NodeKey::load(&private_path).expect("loads");
    let public = NodePublicKey::load(&public_path).expect("loads");
    assert_eq!(private.public(), public);

    // It ends with the table a neighbour configures, naming the public key file.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let table = stdout
        .split_once("[[cascade.origin]]")
        .map(|(_, t)| format!("[[cascade.origin]]{t}"))
        .expect("the origin table");
    let parsed: toml::Value = toml::from_str(&table).expect("TOML a configuration takes");
    let named = parsed["cascade"]["origin"][0]["public_key"]
        .as_str()
        .expect("public_key");
    assert_eq!(std::path::Path::new(named), public_path);
    assert_eq!(NodePublicKey::load(named.as_ref()).expect("loads"), public);
    assert!(!dir.join("street-410503001.link.key").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn generate_with_link_key_writes_a_random_32_byte_key_with_mode_0600() {
    let dir = scratch("link");
    let out = generate(&dir, &["--link-key", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("street-410503001.link.key");
    assert_eq!(mode(&path), 0o600);
    let key = LinkKey::load(&path).expect("loads");
    assert_ne!(key, LinkKey::from_bytes([0; 32]));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(document["link_key"], path.to_string_lossy().as_ref());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn generate_never_overwrites_a_key_and_exits_1() {
    let dir = scratch("again");
    assert_eq!(generate(&dir, &[]).status.code(), Some(0));
    let before = std::fs::read(dir.join("street-410503001.sm2.key")).expect("key");
    let out = generate(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwritten"));
    assert_eq!(
        std::fs::read(dir.join("street-410503001.sm2.key")).expect("key"),
        before
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn generate_refuses_a_node_name_that_is_not_a_plain_file_name() {
    let dir = scratch("name");
    let out = Command::new(env!("CARGO_BIN_EXE_emcomm"))
        .args(["keys", "generate", "--node", "../escape", "--out"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.exists());
}
