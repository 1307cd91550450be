//! Operators, their tokens and what their roles allow.
//!
//! The operators file is TOML, one `[[operator]]` table each:
//!
//! ```toml
//! [[operator]]
//! name = "zhang.wei"
//! role = "operator"        # viewer, operator, supervisor or node
//! token = "…at least 20 characters…"
//! ```
//!
//! A request carries `Authorization: Bearer TOKEN`. Tokens are compared by their
//! SHA-256 digests, so the comparison takes the same time whichever byte differs.
//! The file holds secrets: the daemon warns when others than its owner can read it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The shortest token accepted: a guessable token is no authentication.
pub const MIN_TOKEN_CHARS: usize = 20;

/// What an operator may do. Each role may do what the roles before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads alerts, receipts, status and the audit log.
    Viewer,
    /// A gateway of the next tier down: reports receipts and its loudspeakers.
    Node,
    /// Previews, sends, updates and cancels alerts; starts and stops broadcasts.
    Operator,
    /// Also confirms alerts that need a second operator.
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Node => "node",
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something an API request does, for the permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    ReportReceipts,
    Send,
    Confirm,
    /// Make, change and remove live patches.
    Patch,
    /// Re-read the node's configuration.
    Reload,
    /// Send messages through the node's satellite terminals.
    Message,
}

impl Action {
    /// What the action is, and who may do it, for a refusal.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Read => "read this",
            Action::ReportReceipts => "report receipts: only a node may",
            Action::Send => "send, update or cancel alerts: only an operator or a supervisor may",
            Action::Confirm => "confirm alerts: only a supervisor may",
            Action::Patch => "change patches: only an operator or a supervisor may",
            Action::Reload => "reload the configuration: only a supervisor may",
            Action::Message => {
                "send messages through satellite terminals: only an operator or a supervisor may"
            }
        }
    }

    /// The least role that may do this. A node may only read and report: it must not
    /// be able to send alerts into its parent.
    pub fn allowed(self, role: Role) -> bool {
        match self {
            Action::Read => true,
            Action::ReportReceipts => matches!(role, Role::Node | Role::Supervisor),
            Action::Send => role >= Role::Operator,
            Action::Confirm | Action::Reload => role == Role::Supervisor,
            Action::Patch | Action::Message => role >= Role::Operator,
        }
    }
}

/// One operator, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    pub role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    operator: Vec<RawOperator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    name: String,
    role: Role,
    token: String,
}

/// The operators file, loaded.
#[derive(Clone)]
pub struct Operators {
    entries: Vec<(Operator, [u8; 32])>,
}

impl fmt::Debug for Operators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(o, _)| o.name.as_str()).collect();
        f.debug_struct("Operators").field("names", &names).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct OperatorsError {
    pub path: PathBuf,
    pub message: String,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Operators {
    pub fn load(path: &Path) -> Result<Operators, OperatorsError> {
        let error = |message: String| OperatorsError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
        let operators = Operators::parse(&text).map_err(error)?;
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "the operators file holds tokens and can be read by others than its owner: chmod 600 it"
                );
            }
        }
        Ok(operators)
    }

    pub fn parse(text: &str) -> Result<Operators, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut entries: Vec<(Operator, [u8; 32])> = Vec::new();
        for (i, o) in raw.operator.into_iter().enumerate() {
            if o.name.trim().is_empty() {
                return Err(format!("operator[{i}].name is empty"));
            }
            if o.token.chars().count() < MIN_TOKEN_CHARS {
                return Err(format!(
                    "operator {:?}: the token must have at least {MIN_TOKEN_CHARS} characters",
                    o.name
                ));
            }
            let hash = digest(&o.token);
            if entries.iter().any(|(e, _)| e.name == o.name) {
                return Err(format!("operator {:?} is listed twice", o.name));
            }
            if entries.iter().any(|(_, h)| *h == hash) {
                return Err(format!(
                    "operator {:?} shares a token with another operator",
                    o.name
                ));
            }
            entries.push((
                Operator {
                    name: o.name,
                    role: o.role,
                },
                hash,
            ));
        }
        if entries.is_empty() {
            return Err("no [[operator]]: nobody could use the API".into());
        }
        Ok(Operators { entries })
    }

    /// The operator holding `token`.
    pub fn authenticate(&self, token: &str) -> Option<&Operator> {
        let hash = digest(token);
        let mut found = None;
        // Every entry is compared, so the time taken does not tell which one matched.
        for (operator, candidate) in &self.entries {
            let same = candidate
                .iter()
                .zip(hash.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same {
                found = Some(operator);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[operator]]
name = "zhang.wei"
role = "operator"
token = "op-token-0123456789abcdef"

[[operator]]
name = "li.na"
role = "supervisor"
token = "sup-token-0123456789abcdef"
"#;

    #[test]
    fn a_token_identifies_its_operator_and_role() {
        let operators = Operators::parse(FILE).expect("valid");
        let op = operators
            .authenticate("sup-token-0123456789abcdef")
            .expect("known");
        assert_eq!((op.name.as_str(), op.role), ("li.na", Role::Supervisor));
        assert!(
            operators
                .authenticate("sup-token-0123456789abcdeX")
                .is_none()
        );
        assert!(operators.authenticate("").is_none());
    }

    #[test]
    fn roles_allow_what_they_should_and_no_more() {
        assert!(Action::Read.allowed(Role::Viewer));
        assert!(!Action::Send.allowed(Role::Viewer));
        assert!(
            !Action::Send.allowed(Role::Node),
            "a child node cannot send alerts up"
        );
        assert!(Action::ReportReceipts.allowed(Role::Node));
        assert!(!Action::ReportReceipts.allowed(Role::Operator));
        assert!(Action::Send.allowed(Role::Operator));
        assert!(!Action::Confirm.allowed(Role::Operator));
        assert!(Action::Confirm.allowed(Role::Supervisor));
        assert!(Action::Message.allowed(Role::Operator));
        assert!(
            !Action::Message.allowed(Role::Node),
            "a child node cannot send through its parent's terminals"
        );
        assert!(!Action::Message.allowed(Role::Viewer));
    }

    #[test]
    fn short_shared_or_missing_tokens_are_refused() {
        let short = FILE.replace("op-token-0123456789abcdef", "short");
        assert!(
            Operators::parse(&short)
                .expect_err("short")
                .contains("at least 20")
        );
        let shared = FILE.replace("sup-token", "op-token");
        assert!(
            Operators::parse(&shared)
                .expect_err("shared")
                .contains("shares a token")
        );
        assert!(Operators::parse("").expect_err("empty").contains("nobody"));
        let bad_role = FILE.replace("\"supervisor\"", "\"admin\"");
        assert!(Operators::parse(&bad_role).is_err());
    }
}
