//! The API's client, as the `tally` verbs use it: the manager found through
//! its data dir (`api.addr` and `token`), one typed call per verb. The
//! binary prints what it answers.

use crate::api::Ps;
use crate::server::api_endpoint;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Why a call did not do what it asked.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The data dir does not name a manager (no `api.addr` or `token`).
    #[error("{0}")]
    Endpoint(String),
    /// Nothing answers at the manager's address.
    #[error(
        "cannot reach the manager at {addr}: {source} (is `tally run` running with --data-dir {}?)",
        dir.display()
    )]
    Unreachable {
        /// The address in `api.addr`.
        addr: SocketAddr,
        /// The data dir.
        dir: PathBuf,
        /// Why.
        source: Box<ureq::Error>,
    },
    /// A standby named a leader that does not answer: the leader is gone
    /// and no standby has taken over yet.
    #[error(
        "the manager of {} is a standby; the leader it names, at {leader}, does not answer ({source}): it is gone, and a standby takes over within the store lease; try again in a few seconds",
        dir.display()
    )]
    LeaderGone {
        /// The leader's API address, as the standby named it.
        leader: SocketAddr,
        /// The data dir.
        dir: PathBuf,
        /// Why.
        source: Box<ureq::Error>,
    },
    /// The answer is not JSON.
    #[error("bad answer from the manager: {0}")]
    NotJson(Box<ureq::Error>),
    /// The answer to `/ps` is not a `Ps`.
    #[error("bad answer: {0}")]
    NotPs(serde_json::Error),
    /// The manager refused: its reason, as it gave it.
    #[error("{0}")]
    Refused(String),
}

/// The manager whose data dir this is.
#[derive(Clone, Debug)]
pub struct Client {
    data_dir: PathBuf,
}

impl Client {
    /// The manager started with `tally run --data-dir DATA_DIR`.
    #[must_use]
    pub fn new(data_dir: &Path) -> Client {
        Client {
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// `(status, json)`.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), ClientError> {
        let dir = &self.data_dir;
        let (addr, token) = api_endpoint(dir).map_err(ClientError::Endpoint)?;
        let (status, json) = self.call_at(addr, &token, method, path, body.clone())?;
        // A standby of a highly available group answers 421 with the
        // leader's API address (the token is the group's): ask it there.
        if status == 421 {
            if let Some(leader) = json
                .get("leader_api")
                .and_then(|a| a.as_str())
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .filter(|a| *a != addr)
            {
                return self
                    .call_at(leader, &token, method, path, body)
                    .map_err(|e| match e {
                        ClientError::Unreachable { source, dir, .. } => ClientError::LeaderGone {
                            leader,
                            dir,
                            source,
                        },
                        other => other,
                    });
            }
        }
        Ok((status, json))
    }

    /// One call to the API at `addr`.
    fn call_at(
        &self,
        addr: SocketAddr,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), ClientError> {
        let dir = &self.data_dir;
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        );
        let url = format!("http://{addr}{path}");
        let auth = format!("Bearer {token}");
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            (_, Some(b)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(&b),
            (_, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
        };
        let mut response = response.map_err(|e| ClientError::Unreachable {
            addr,
            dir: dir.clone(),
            source: Box::new(e),
        })?;
        let status = response.status().as_u16();
        let json = response
            .body_mut()
            .read_json::<serde_json::Value>()
            .map_err(|e| ClientError::NotJson(Box::new(e)))?;
        Ok((status, json))
    }

    /// The answer's JSON when 200, else the manager's reason.
    fn accepted(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let (status, json) = self.call(method, path, body)?;
        if status == 200 {
            Ok(json)
        } else {
            let why = json
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("refused")
                .to_string();
            Err(ClientError::Refused(why))
        }
    }

    /// `GET /ps`, as the manager wrote it.
    ///
    /// # Errors
    /// No manager, or a refusal.
    pub fn ps_json(&self) -> Result<serde_json::Value, ClientError> {
        self.accepted("GET", "/ps", None)
    }

    /// `GET /ps`.
    ///
    /// # Errors
    /// No manager, a refusal, or an answer that is not a [`Ps`].
    pub fn ps(&self) -> Result<Ps, ClientError> {
        serde_json::from_value(self.ps_json()?).map_err(ClientError::NotPs)
    }

    /// Sets these desired counts, all or none.
    ///
    /// # Errors
    /// No manager, or a refusal (nothing changes then).
    pub fn scale(&self, counts: &BTreeMap<String, u16>) -> Result<(), ClientError> {
        let body = counts
            .iter()
            .map(|(name, count)| (name.clone(), serde_json::Value::from(*count)))
            .collect();
        self.accepted("POST", "/scale", Some(serde_json::Value::Object(body)))
            .map(drop)
    }

    /// Replaces the dynos of one type, or of all types.
    ///
    /// # Errors
    /// No manager, or a refusal (lockdown).
    pub fn restart(&self, process_type: Option<&str>) -> Result<(), ClientError> {
        let body = match process_type {
            Some(t) => serde_json::json!({ "type": t }),
            None => serde_json::json!({}),
        };
        self.accepted("POST", "/restart", Some(body)).map(drop)
    }

    /// Replaces every dyno of one app.
    ///
    /// # Errors
    /// No manager, or a refusal (lockdown, no such app).
    pub fn restart_app(&self, app: &str) -> Result<(), ClientError> {
        let body = serde_json::json!({ "app": app });
        self.accepted("POST", "/restart", Some(body)).map(drop)
    }

    /// Replaces one dyno (`web.1`).
    ///
    /// # Errors
    /// No manager, or a refusal (lockdown, no such dyno).
    pub fn restart_dyno(&self, dyno: &str) -> Result<(), ClientError> {
        self.accepted(
            "POST",
            "/restart",
            Some(serde_json::json!({ "dyno": dyno })),
        )
        .map(drop)
    }

    /// Stops one dyno (`web.1`); the formation, which still asks for it,
    /// replaces it.
    ///
    /// # Errors
    /// No manager, or a refusal (lockdown, no such dyno).
    pub fn stop_dyno(&self, dyno: &str) -> Result<(), ClientError> {
        self.accepted("POST", "/stop", Some(serde_json::json!({ "dyno": dyno })))
            .map(drop)
    }

    /// App-management lockdown on or off.
    ///
    /// # Errors
    /// No manager.
    pub fn lockdown(&self, on: bool) -> Result<(), ClientError> {
        let body = serde_json::json!({ "on": on });
        self.accepted("POST", "/lockdown", Some(body)).map(drop)
    }

    /// Opens (no launches) or closes the launch breaker by hand.
    ///
    /// # Errors
    /// No manager.
    pub fn breaker(&self, open: bool) -> Result<(), ClientError> {
        let body = serde_json::json!({ "open": open });
        self.accepted("POST", "/breaker", Some(body)).map(drop)
    }

    /// Pauses (`paused`) or resumes launches on one host, or everywhere.
    ///
    /// # Errors
    /// No manager.
    pub fn pause(&self, host: Option<u16>, paused: bool) -> Result<(), ClientError> {
        let path = if paused { "/pause" } else { "/resume" };
        let body = serde_json::json!({ "host": host });
        self.accepted("POST", path, Some(body)).map(drop)
    }
}
