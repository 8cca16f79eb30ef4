//! # tally-explorer
//!
//! `tally explore`: one loopback HTTP server for a counterexample timeline of
//! our own and, under `/explorer/<key>/`, stateright's Explorer for each
//! configuration a trace was found in (so every step's link resolves). The
//! traces and checks are `tally-verification`'s; this crate only serves them.
//!
//! Pages (all built into the binary, nothing fetched from the network):
//!
//! - `/traces`: a table of the traces known (property, length, breaking
//!   step, configuration, mutation and what it does), a file picker to open
//!   one, the mutations to hunt; `/` opens the `--trace` given, else this
//!   list.
//! - `/trace/<name>?step=N`: the timeline of trace `<name>` at step `N`;
//!   `/trace/<name>.json`: the trace itself.
//! - `POST /traces?name=<name>`: opens the trace in the body.
//! - `/hunt/<mutation>`: finds a shortest counterexample (BFS, the mutation's
//!   hunting configuration) and opens it, as `hunted-<mutation>--<property>`
//!   (never a file trace's name: a trace's name keeps its meaning).
//! - `/explorer/<key>/`: stateright's Explorer; a state is
//!   `/explorer/<key>/#/steps/<explorer_path>`.
//!
//! A request that cannot be answered gets an error page with its status
//! ([`Problem`]): an unknown trace is 404, a malformed one 422, a step out of
//! range 404.

mod pages;
pub mod store;
mod upstream;

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use store::Store;
use tally_core::Mutation;
use tally_model::ModelConfig;
use tally_verification::hunt::{self, HuntOptions};
use tally_verification::mutations;
use upstream::Upstreams;

/// The most requests handled at once; more are answered 503.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 32;
/// The largest request body read (an uploaded trace), in bytes.
pub const BODY_BYTES_MAX: u64 = store::TRACE_BYTES_MAX;

/// What to serve.
#[derive(Clone, Debug, Default)]
pub struct ExploreOptions {
    /// The configuration chosen on the command line (`--preset`,
    /// `--config`, `--mutation`), whose Explorer the trace list heads with;
    /// `None`: each trace's own (the first `--trace`'s is the one
    /// `explorer_url` names).
    pub config: Option<ModelConfig>,
    /// Trace files; the first opens at `/`.
    pub traces: Vec<PathBuf>,
    /// A directory of traces (`tally check --trace-out`), read on each request.
    pub trace_dir: Option<PathBuf>,
}

/// Why `tally explore` cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// The port is taken, or not ours to take.
    #[error("cannot listen on {addr}: {reason} (pick another --port)")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A `--trace` file cannot be shown.
    #[error("{path}: {reason}")]
    Trace {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Neither a configuration nor a trace nor a trace directory.
    #[error("nothing to explore: give a configuration, a --trace or a --trace-dir")]
    Nothing,
    /// `--trace-dir` is not a directory.
    #[error(
        "--trace-dir {path}: not a directory (create it, or point to the one `tally check --trace-out` wrote)"
    )]
    TraceDir {
        /// The path given.
        path: String,
    },
}

/// An answer that is not the page asked for: a status and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: u16,
    /// A few words (`unknown trace`).
    pub title: String,
    /// One sentence for the person reading.
    pub detail: String,
}

impl Problem {
    /// 400.
    #[must_use]
    pub fn bad_request(detail: String) -> Problem {
        Problem {
            status: 400,
            title: "bad request".to_string(),
            detail,
        }
    }
    /// 404.
    #[must_use]
    pub fn not_found(title: &str, detail: String) -> Problem {
        Problem {
            status: 404,
            title: title.to_string(),
            detail,
        }
    }
    /// 422: the request is understood, its content is not a usable trace.
    #[must_use]
    pub fn unprocessable(detail: String) -> Problem {
        Problem {
            status: 422,
            title: "unusable trace".to_string(),
            detail,
        }
    }
    /// 502.
    #[must_use]
    pub fn bad_gateway(detail: String) -> Problem {
        Problem {
            status: 502,
            title: "stateright's Explorer is unavailable".to_string(),
            detail,
        }
    }
    /// 503.
    #[must_use]
    pub fn unavailable(detail: String) -> Problem {
        Problem {
            status: 503,
            title: "busy".to_string(),
            detail,
        }
    }
}

/// An HTTP answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// `Location`, for redirects.
    pub location: Option<String>,
}

impl Reply {
    fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
            location: None,
        }
    }
    fn html(body: String) -> Reply {
        Reply::ok("text/html; charset=utf-8", body)
    }
    fn redirect(status: u16, location: String) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("see {location}\n").into_bytes(),
            location: Some(location),
        }
    }
}

impl From<Problem> for Reply {
    fn from(p: Problem) -> Reply {
        Reply {
            status: p.status,
            content_type: "text/html; charset=utf-8",
            body: pages::problem(&p).into_bytes(),
            location: None,
        }
    }
}

/// The server's state, shared by the request threads.
pub struct Shared {
    /// The configuration chosen, else the first `--trace`'s; `None` with
    /// only a trace directory (each trace links to its own).
    config: Option<ModelConfig>,
    /// Whether `config` was chosen on the command line (the trace list
    /// heads with it) rather than taken from a trace.
    chosen: bool,
    start: Option<String>,
    store: Store,
    upstreams: Upstreams,
    hunt: Mutex<()>,
}

/// `tally explore`'s server, bound and ready to run.
pub struct Explorer {
    server: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Explorer {
    /// Checks the `--trace` files and binds `addr` (port 0 picks one).
    pub fn bind(addr: impl ToSocketAddrs, opts: ExploreOptions) -> Result<Explorer, ExploreError> {
        if let Some(dir) = opts.trace_dir.as_ref().filter(|d| !d.is_dir()) {
            // An empty list from a mistyped path would look like "no
            // counterexamples": say so instead.
            return Err(ExploreError::TraceDir {
                path: dir.display().to_string(),
            });
        }
        let mut first_config = None;
        for path in &opts.traces {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ExploreError::Trace {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let checked = store::check(&text).map_err(|reason| ExploreError::Trace {
                path: shown,
                reason,
            })?;
            first_config.get_or_insert(checked.config);
        }
        let chosen = opts.config.is_some();
        let config = opts.config.or(first_config);
        if config.is_none() && opts.trace_dir.is_none() {
            return Err(ExploreError::Nothing);
        }
        let shown = addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        let bind_error = |reason: String| ExploreError::Bind {
            addr: shown.clone(),
            reason,
        };
        let server = tiny_http::Server::http(addr).map_err(|e| bind_error(e.to_string()))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| bind_error("not an IP address".to_string()))?;
        let shared = Shared {
            start: opts.traces.first().map(|p| store::name_of(p)),
            store: Store::new(&opts.traces, opts.trace_dir),
            upstreams: Upstreams::default(),
            hunt: Mutex::new(()),
            config,
            chosen,
        };
        // Registered first, so that its key is its plain name.
        if let Some(config) = &shared.config {
            let _ = shared.upstreams.key(config);
        }
        Ok(Explorer {
            server: Arc::new(server),
            shared: Arc::new(shared),
            addr,
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page to open first: the `--trace` given, else the trace list.
    #[must_use]
    pub fn start_url(&self) -> String {
        match &self.shared.start {
            Some(name) => format!("http://{}/trace/{name}", self.addr),
            None => format!("http://{}/traces", self.addr),
        }
    }

    /// Where stateright's Explorer for the chosen configuration (else the
    /// first trace's) is; with only a trace directory, the trace list, where
    /// each trace links to its own.
    #[must_use]
    pub fn explorer_url(&self) -> String {
        match &self.shared.config {
            Some(config) => {
                let key = self.shared.upstreams.key(config).unwrap_or_default();
                format!("http://{}/explorer/{key}/", self.addr)
            }
            None => format!("http://{}/traces", self.addr),
        }
    }

    /// Serves until the process ends, each request on a thread of its own
    /// (at most [`REQUESTS_IN_FLIGHT_MAX`] at once).
    pub fn run(self) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        for request in self.server.incoming_requests() {
            if in_flight.fetch_add(1, Ordering::SeqCst) >= REQUESTS_IN_FLIGHT_MAX {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let busy = Problem::unavailable("too many requests at once; retry".to_string());
                respond(request, busy.into());
                continue;
            }
            let shared = Arc::clone(&self.shared);
            let done = Arc::clone(&in_flight);
            let spawned = std::thread::Builder::new()
                .name("explore-request".to_string())
                .spawn(move || {
                    serve_one(&shared, request);
                    done.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

fn serve_one(shared: &Shared, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_ascii_uppercase();
    let url = request.url().to_string();
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(BODY_BYTES_MAX + 1)
        .read_to_end(&mut body);
    let reply = if read.is_err() {
        Problem::bad_request("the request body could not be read".to_string()).into()
    } else if body.len() as u64 > BODY_BYTES_MAX {
        Problem {
            status: 413,
            title: "too large".to_string(),
            detail: format!("a trace is at most {BODY_BYTES_MAX} bytes"),
        }
        .into()
    } else {
        handle(shared, &method, &url, &body)
    };
    respond(request, reply);
}

fn respond(request: tiny_http::Request, reply: Reply) {
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let headers = [
        ("Content-Type", Some(reply.content_type)),
        ("Cache-Control", Some("no-store")),
        ("Location", reply.location.as_deref()),
    ];
    for (name, value) in headers {
        if let Some(h) = value.and_then(|v| tiny_http::Header::from_bytes(name, v).ok()) {
            response.add_header(h);
        }
    }
    // The client may have gone: nothing to do about it.
    let _ = request.respond(response);
}

/// The tab icon: a tally mark.
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><path d=\"M3 2v12M6 2v12M9 2v12M12 2v12M1 12L15 4\" stroke=\"#2a6\" stroke-width=\"1.6\"/></svg>";

/// Answers one request: the whole routing table.
pub fn handle(shared: &Shared, method: &str, url: &str, body: &[u8]) -> Reply {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    let result = match (method, segments.as_slice()) {
        ("GET", [""]) => Ok(match &shared.start {
            Some(name) => Reply::redirect(303, format!("/trace/{name}")),
            None => Reply::redirect(303, "/traces".to_string()),
        }),
        ("GET", ["traces"]) => Ok(Reply::html(pages::index(shared))),
        ("POST", ["traces"]) => upload(shared, query, body),
        ("GET", ["trace", name]) => match name.strip_suffix(".json") {
            Some(name) => {
                load(shared, name).map(|(_, c)| Reply::ok("application/json", c.json.to_string()))
            }
            None => timeline(shared, name, query),
        },
        ("GET", ["hunt", mutation]) => hunt(shared, mutation),
        // Browsers ask for it on every page; a 404 there is noise.
        ("GET", ["favicon.ico"]) => Ok(Reply::ok("image/svg+xml", FAVICON)),
        ("GET", ["assets", file]) => asset(file),
        ("GET", ["explorer", key]) => Ok(Reply::redirect(308, format!("/explorer/{key}/"))),
        (_, ["explorer", key, rest]) => explorer(shared, method, key, rest, query, body),
        ("GET" | "POST", _) => Err(Problem::not_found(
            "no such page",
            format!("{path} is not a page of this Explorer; start at /traces"),
        )),
        _ => Err(Problem {
            status: 405,
            title: "method not allowed".to_string(),
            detail: format!("{method} is not served here"),
        }),
    };
    result.unwrap_or_else(Reply::from)
}

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Trace `name`, checked; and the key of its configuration's Explorer.
fn load(shared: &Shared, name: &str) -> Result<(String, store::Checked), Problem> {
    let text = shared.store.text(name)?;
    let checked = store::check(&text)
        .map_err(|detail| Problem::unprocessable(format!("trace {name:?}: {detail}")))?;
    let key = shared.upstreams.key(&checked.config)?;
    Ok((key, checked))
}

fn timeline(shared: &Shared, name: &str, query: &str) -> Result<Reply, Problem> {
    let step = match query_value(query, "step") {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<usize>()
                .map_err(|_| Problem::bad_request(format!("step {s:?} is not a step number")))?,
        ),
    };
    let (key, checked) = load(shared, name)?;
    if let Some(step) = step.filter(|s| *s >= checked.steps) {
        return Err(Problem::not_found(
            "step out of range",
            format!(
                "trace {name:?} has steps 0 to {}; there is no step {step}",
                checked.steps.saturating_sub(1)
            ),
        ));
    }
    Ok(Reply::html(pages::timeline(name, &key, &checked, step)))
}

fn upload(shared: &Shared, query: &str, body: &[u8]) -> Result<Reply, Problem> {
    let name = query_value(query, "name").unwrap_or("uploaded");
    let name = store::name_of(std::path::Path::new(name));
    if !store::valid_name(&name) {
        return Err(Problem::bad_request(format!(
            "{name:?} is not a trace name"
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| Problem::unprocessable("the trace is not UTF-8 text".to_string()))?;
    let checked =
        store::check(text).map_err(|d| Problem::unprocessable(format!("trace {name:?}: {d}")))?;
    // Under a name of its own if a file (or another trace) has this one.
    let name = shared
        .store
        .remember(&name, Arc::from(text), store::Origin::Uploaded);
    Ok(Reply::redirect(
        303,
        format!("/trace/{name}?step={}", checked.broken_at),
    ))
}

/// Finds a shortest counterexample of `mutation` in its hunting
/// configuration, keeps it as a trace and opens it. It is named
/// `hunted-<mutation>--<property>`, never the name of a file trace (`tally
/// check --mutation` writes `hunt-<mutation>--<property>.json`, which may
/// be served beside it), so that no link to a file trace changes meaning;
/// a second hunt of the same mutation opens the first one's trace.
fn hunt(shared: &Shared, mutation: &str) -> Result<Reply, Problem> {
    let m = Mutation::from_name(mutation)
        .map_err(|e| Problem::not_found("unknown mutation", e.to_string()))?;
    let cfg = mutations::hunt_config(m);
    let Ok(_only_one) = shared.hunt.try_lock() else {
        return Err(Problem::unavailable(
            "another hunt is running; retry in a moment".to_string(),
        ));
    };
    if let Some(name) = shared.store.hunted(m) {
        return Ok(Reply::redirect(303, format!("/trace/{name}")));
    }
    // The same hunt as `tally check --mutation` (one thread, BFS, stopped
    // at the first state that breaks an expected property).
    let found = hunt::hunt(m, &cfg, &HuntOptions::default())
        .map_err(|e| Problem::unprocessable(e.to_string()))?;
    let Some(refutation) = &found.refutation else {
        return Ok(Reply::html(pages::nothing_found(&cfg)));
    };
    let property = refutation.property;
    let text = tally_verification::trace::to_json(&cfg, property, &refutation.path)
        .map_err(|e| Problem::unprocessable(format!("cannot write the trace: {e}")))?;
    let name = hunted_name(m, property);
    let name = shared
        .store
        .remember(&name, Arc::from(text), store::Origin::Hunted(m));
    Ok(Reply::redirect(303, format!("/trace/{name}")))
}

/// `hunted-<mutation>--<property>`: the name a hunt's trace is kept under
/// (before any suffix that keeps it apart from a file's).
#[must_use]
pub fn hunted_name(m: Mutation, property: &str) -> String {
    tally_verification::trace::slugify(&format!("hunted-{}--{property}", m.name()))
}

fn asset(file: &str) -> Result<Reply, Problem> {
    match file {
        "timeline.js" => Ok(Reply::ok(
            "application/javascript; charset=utf-8",
            pages::TIMELINE_JS,
        )),
        "timeline.css" => Ok(Reply::ok("text/css; charset=utf-8", pages::TIMELINE_CSS)),
        _ => Err(Problem::not_found(
            "no such file",
            format!("/assets/{file}"),
        )),
    }
}

fn explorer(
    shared: &Shared,
    method: &str,
    key: &str,
    rest: &str,
    query: &str,
    body: &[u8],
) -> Result<Reply, Problem> {
    if shared.upstreams.config(key).is_none() {
        return Err(Problem::not_found(
            "unknown configuration",
            format!("no configuration is served as {key:?}; open a trace first"),
        ));
    }
    let file = if rest.is_empty() { "index.htm" } else { rest };
    let upstream_path = match (file, query) {
        ("index.htm", _) => "/".to_string(),
        (f, "") => format!("/{f}"),
        (f, q) => format!("/{f}?{q}"),
    };
    let answer = shared
        .upstreams
        .forward(key, method, &upstream_path, body)?;
    let content_type = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("htm") => "text/html; charset=utf-8",
        Some("js") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/json",
    };
    let content_type = if file.starts_with(".states") || file.starts_with(".status") {
        "application/json"
    } else {
        content_type
    };
    Ok(Reply {
        status: answer.status,
        content_type,
        body: upstream::rewrite(file, answer.body),
        location: None,
    })
}
