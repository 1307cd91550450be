//! The CLI's side of the control API: one blocking HTTP request per command.
//!
//! The node is `--node URL` or `EMCOMM_NODE` (default `http://127.0.0.1:8470`), the
//! operator's token `--token-file FILE` or `EMCOMM_TOKEN`. A token is never taken on
//! the command line, where other users could read it in the process list.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::Outcome;

/// Where the node is and who is asking.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The node's control API.
    #[arg(long, env = "EMCOMM_NODE", default_value = "http://127.0.0.1:8470")]
    pub node: String,
    /// A file holding the operator's token (else the EMCOMM_TOKEN variable).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// A node's answer: its HTTP status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// How a script should read it: 2xx done, 4xx refused, anything else failed.
    pub fn outcome(&self) -> Outcome {
        match self.status {
            200..=299 => Outcome::Done,
            400..=499 => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }

    /// The node's error, in one line and then one line per CAP fault.
    pub fn error_text(&self) -> String {
        let mut text = format!(
            "refused ({}): {}",
            self.body["error"].as_str().unwrap_or("error"),
            self.body["message"].as_str().unwrap_or("(no message)")
        );
        for fault in self.body["faults"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "\n  line {}: {}: {}",
                fault["line"],
                fault["path"].as_str().unwrap_or(""),
                fault["message"].as_str().unwrap_or("")
            ));
        }
        text
    }
}

/// Why a request got no answer from the node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no token: give --token-file FILE or set EMCOMM_TOKEN (the operators file of the node lists tokens)"
    )]
    NoToken,
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot reach the node at {node}: {reason}")]
    Unreachable { node: String, reason: String },
    #[error("the node at {node} answered {status} with a body that is not JSON")]
    NotJson { node: String, status: u16 },
}

impl Connection {
    fn token(&self) -> Result<String, ClientError> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path).map_err(|source| ClientError::TokenFile {
                path: path.clone(),
                source,
            })?;
            return Ok(text.trim().to_string());
        }
        std::env::var("EMCOMM_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or(ClientError::NoToken)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.trim_end_matches('/'))
    }

    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, ClientError> {
        let mut response = response.map_err(|e| ClientError::Unreachable {
            node: self.node.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Unreachable {
                node: self.node.clone(),
                reason: e.to_string(),
            })?;
        let body = serde_json::from_str(&text).map_err(|_| ClientError::NotJson {
            node: self.node.clone(),
            status,
        })?;
        Ok(Answer { status, body })
    }

    pub fn get(&self, path: &str) -> Result<Answer, ClientError> {
        let token = self.token()?;
        let response = Self::agent()
            .get(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .call();
        self.answer(response)
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Answer, ClientError> {
        let token = self.token()?;
        let response = Self::agent()
            .post(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .content_type(content_type)
            .send(body);
        self.answer(response)
    }

    pub fn delete(&self, path: &str) -> Result<Answer, ClientError> {
        let token = self.token()?;
        let response = Self::agent()
            .delete(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .call();
        self.answer(response)
    }
}
