//! stateright's own Explorer, one per configuration, each on a loopback port
//! of its own and reached through ours under `/explorer/<key>/`: its server
//! (tiny_http, run by `CheckerBuilder::serve`) cannot be mounted, and its UI
//! fetches absolute paths, which [`rewrite`] makes relative to the mount.

use crate::Problem;
use stateright::Model;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tally_model::{ModelConfig, TallyModel};
use tally_verification::checked::CheckedModel;

/// The most configurations served at once.
pub const UPSTREAMS_MAX: usize = 16;
/// How long a stateright Explorer may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer relayed from a stateright Explorer, in bytes.
const ANSWER_BYTES_MAX: u64 = 64 << 20;

struct Upstream {
    key: String,
    config: ModelConfig,
    port: Option<u16>,
}

/// The stateright Explorers, started on first use.
#[derive(Default)]
pub struct Upstreams {
    inner: Mutex<Vec<Upstream>>,
}

/// What a stateright Explorer answered.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl Upstreams {
    /// The key under which `config`'s Explorer is mounted (its name, made
    /// safe, and made unique if another configuration has the same name).
    pub fn key(&self, config: &ModelConfig) -> Result<String, Problem> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = inner.iter().find(|u| u.config == *config) {
            return Ok(u.key.clone());
        }
        if inner.len() >= UPSTREAMS_MAX {
            return Err(Problem::unavailable(format!(
                "this Explorer already serves {UPSTREAMS_MAX} configurations: restart `tally explore`"
            )));
        }
        let base = tally_verification::trace::slugify(&config.name);
        let base = if base.is_empty() {
            "config".to_string()
        } else {
            base
        };
        let mut key = base.clone();
        let mut n = 2;
        while inner.iter().any(|u| u.key == key) {
            key = format!("{base}-{n}");
            n += 1;
        }
        inner.push(Upstream {
            key: key.clone(),
            config: config.clone(),
            port: None,
        });
        Ok(key)
    }

    /// The configuration mounted under `key`.
    #[must_use]
    pub fn config(&self, key: &str) -> Option<ModelConfig> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.config.clone())
    }

    /// Relays one request to `key`'s Explorer, starting it if need be.
    pub fn forward(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Answer, Problem> {
        let port = self.port(key)?;
        match request(port, method, path, body) {
            Ok(answer) => Ok(answer),
            Err(e) => {
                // A stateright Explorer whose thread died answers nothing:
                // start a new one on the next request.
                self.forget(key);
                Err(Problem::bad_gateway(format!(
                    "stateright's Explorer for {key} did not answer ({e}); reload to restart it"
                )))
            }
        }
    }

    fn port(&self, key: &str) -> Result<u16, Problem> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(u) = inner.iter_mut().find(|u| u.key == key) else {
            return Err(Problem::not_found(
                "unknown configuration",
                format!("no configuration is served as {key:?}"),
            ));
        };
        if let Some(port) = u.port {
            return Ok(port);
        }
        let port = start(&u.config)?;
        u.port = Some(port);
        Ok(port)
    }

    fn forget(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = inner.iter_mut().find(|u| u.key == key) {
            u.port = None;
        }
    }
}

/// Starts stateright's Explorer for `config` on a free loopback port and
/// waits until it listens.
fn start(config: &ModelConfig) -> Result<u16, Problem> {
    let model = TallyModel::new(config.clone())
        .map(CheckedModel::new)
        .map_err(|e| Problem::unprocessable(format!("invalid configuration: {e}")))?;
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Problem::unavailable(format!("no free loopback port: {e}")))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    std::thread::Builder::new()
        .name(format!("stateright-explorer-{port}"))
        .spawn(move || {
            model.checker().serve(addr);
        })
        .map_err(|e| Problem::unavailable(format!("cannot start stateright's Explorer: {e}")))?;
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(port);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(Problem::bad_gateway(format!(
        "stateright's Explorer did not start listening on {addr}"
    )))
}

/// One HTTP/1.0 request to the loopback `port`.
fn request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    // `.runtocompletion` runs the whole search before it answers.
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.take(ANSWER_BYTES_MAX).read_to_end(&mut raw)?;
    let invalid = || std::io::Error::other("not an HTTP answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(invalid)?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(invalid)?;
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    Ok(Answer { status, body })
}

/// Makes stateright's UI work under a mount point (every path it fetches or
/// links to becomes relative) and adds a link back to the traces.
#[must_use]
pub fn rewrite(file: &str, body: Vec<u8>) -> Vec<u8> {
    let Ok(text) = String::from_utf8(body.clone()) else {
        return body;
    };
    let text = match file {
        "index.htm" => text
            .replace(r#"<a href="/">Stateright Explorer</a>"#, r#"<a href="./">Stateright Explorer</a>"#)
            .replace(
                r#"<span class="header-links-container">"#,
                r#"<span class="header-links-container"><a id="tally-traces" href="/traces">Tally counterexamples</a>"#,
            ),
        "app.js" => text
            // Its pane prints the expectation before the name: our
            // `sometimes` names would read "Sometimes sometimes ...".
            .replace("name: p[1],", "name: p[1].replace(/^sometimes /, ''),")
            .replace("fetch('/.status')", "fetch('.status')")
            .replace("fetch(`/.states${", "fetch(`.states${")
            .replace("fetch('/.runtocompletion'", "fetch('.runtocompletion'"),
        _ => text,
    };
    text.into_bytes()
}
