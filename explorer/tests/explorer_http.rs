//! The Explorer's HTTP server, in process on a free port: the timeline of a
//! real counterexample, and a clear error page with its status for every
//! request it cannot answer (unknown trace, malformed or tampered trace,
//! step out of range), after which it still serves.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use tally_core::Mutation;
use tally_explorer::{ExploreOptions, Explorer};
use tally_verification::check::{CheckOptions, Search, check_config};
use tally_verification::mutations::hunt_config;

struct Fixture {
    addr: SocketAddr,
    dir: PathBuf,
    trace: serde_json::Value,
}

/// One server for every test: the `timeout-frees-slot` S1 trace given as
/// `--trace`, and a trace directory for the broken files.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tally-explorer-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = hunt_config(Mutation::TimeoutFreesSlot);
        let opts = CheckOptions {
            threads: 1,
            search: Search::Bfs,
            liveness: false,
            stop_at: Some(BTreeSet::from(["S1 singleton"])),
            trace_out: Some(dir.join("found")),
            ..CheckOptions::default()
        };
        let report = check_config(&cfg, &opts).unwrap();
        let file = report
            .traces
            .iter()
            .find(|t| t.to_string_lossy().ends_with("s1-singleton.json"))
            .expect("an S1 trace")
            .clone();
        let text = std::fs::read_to_string(&file).unwrap();
        let trace: serde_json::Value = serde_json::from_str(&text).unwrap();
        let broken_dir = dir.join("dir");
        std::fs::create_dir_all(&broken_dir).unwrap();
        let explorer = Explorer::bind(
            ("127.0.0.1", 0),
            ExploreOptions {
                config: None,
                traces: vec![file],
                trace_dir: Some(broken_dir.clone()),
            },
        )
        .unwrap();
        let addr = explorer.addr();
        std::thread::spawn(move || explorer.run());
        Fixture {
            addr,
            dir: broken_dir,
            trace,
        }
    })
}

const NAME: &str = "hunt-timeout-frees-slot--s1-singleton";

/// One HTTP/1.0 exchange: status and body.
fn call(method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(fixture().addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn get(path: &str) -> (u16, String) {
    call("GET", path, b"")
}

fn write_trace(name: &str, text: &str) {
    std::fs::write(fixture().dir.join(format!("{name}.json")), text).unwrap();
}

/// An error page: its status, its title, and the server still answers.
fn check_problem((status, body): (u16, String), want: u16, says: &str) {
    assert_eq!(status, want, "{body}");
    assert!(body.contains(&format!("data-status=\"{want}\"")), "{body}");
    assert!(body.contains(says), "expected {says:?} in {body}");
    assert_eq!(
        get("/traces").0,
        200,
        "the server stops answering after {says:?}"
    );
}

#[test]
fn the_trace_page_embeds_the_trace_and_opens_at_the_step_asked() {
    let (status, body) = get(&format!("/trace/{NAME}?step=3"));
    assert_eq!(status, 200);
    assert!(body.contains("id=\"trace-data\""));
    assert!(body.contains("\"step\":3"));
    assert!(body.contains("/explorer/hunt-timeout-frees-slot/"));
    let (status, json) = get(&format!("/trace/{NAME}.json"));
    assert_eq!(status, 200);
    let served: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(served, fixture().trace);
    let (status, _) = get("/");
    assert_eq!(status, 303);
}

#[test]
fn the_trace_names_s1_where_two_clocks_first_run() {
    let t = &fixture().trace;
    let at = usize::try_from(t["broken_at"].as_u64().unwrap()).unwrap();
    let summary = t["summary"].as_str().unwrap();
    assert!(summary.starts_with("S1 singleton: "), "{summary}");
    assert!(
        summary.contains("on host 0") && summary.contains("on host 1"),
        "{summary}"
    );
    let clocks = |step: usize| {
        t["steps"][step]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["instance"].as_str().unwrap().starts_with("clock."))
            .count()
    };
    assert_eq!(clocks(at), 2);
    assert!(
        at > 0 && clocks(at - 1) < 2,
        "S1 is named at the first step it breaks"
    );
}

#[test]
fn an_unknown_trace_is_404() {
    check_problem(get("/trace/no-such-trace"), 404, "unknown trace");
    check_problem(get("/trace/no-such-trace.json"), 404, "unknown trace");
}

#[test]
fn a_bad_trace_name_is_400() {
    check_problem(get("/trace/..%2f..%2fetc"), 400, "not a trace name");
}

#[test]
fn a_malformed_trace_is_422() {
    write_trace("malformed", "{\"version\": 3, \"steps\": [");
    check_problem(get("/trace/malformed"), 422, "not valid JSON");
    let version = tally_verification::trace::TRACE_VERSION;
    write_trace(
        "not-a-trace",
        &format!("{{\"version\": {version}, \"hello\": 1}}"),
    );
    check_problem(get("/trace/not-a-trace"), 422, "not a tally trace");
    write_trace("old", "{\"version\": 1}");
    check_problem(get("/trace/old"), 422, "format version 1");
    check_problem(
        call("POST", "/traces?name=up", b"[1, 2"),
        422,
        "not valid JSON",
    );
}

#[test]
fn a_tampered_trace_is_422() {
    let mut t = fixture().trace.clone();
    t["steps"][2]["now"] = serde_json::json!(99);
    write_trace("tampered", &t.to_string());
    check_problem(get("/trace/tampered"), 422, "step 2 is not what this build");
}

#[test]
fn a_step_out_of_range_is_404_and_a_bad_step_400() {
    let steps = fixture().trace["steps"].as_array().unwrap().len();
    check_problem(
        get(&format!("/trace/{NAME}?step={steps}")),
        404,
        "step out of range",
    );
    check_problem(
        get(&format!("/trace/{NAME}?step=-1")),
        400,
        "not a step number",
    );
    assert_eq!(get(&format!("/trace/{NAME}?step={}", steps - 1)).0, 200);
}

#[test]
fn unknown_pages_methods_and_mutations_are_errors() {
    check_problem(get("/nowhere"), 404, "no such page");
    check_problem(call("DELETE", "/traces", b""), 405, "not served");
    check_problem(get("/hunt/no-such-mutation"), 404, "unknown mutation");
    check_problem(
        get("/explorer/no-such-config/"),
        404,
        "unknown configuration",
    );
}

#[test]
fn an_uploaded_trace_opens_at_its_broken_step() {
    let text = fixture().trace.to_string();
    let (status, _) = call("POST", "/traces?name=uploaded-one", text.as_bytes());
    assert_eq!(status, 303);
    assert_eq!(get("/trace/uploaded-one").0, 200);
    assert!(get("/traces").1.contains("uploaded-one"));
}

#[test]
fn stateright_explorer_is_served_for_the_trace_configuration() {
    let base = "/explorer/hunt-timeout-frees-slot";
    let (status, page) = get(&format!("{base}/"));
    assert_eq!(status, 200);
    assert!(page.contains("Stateright Explorer") && page.contains("Tally counterexamples"));
    let (_, js) = get(&format!("{base}/app.js"));
    assert!(
        js.contains("fetch(`.states${"),
        "stateright's UI changed: update upstream::rewrite"
    );
    assert!(!js.contains("fetch('/.") && !js.contains("fetch(`/."));
    // No "Sometimes sometimes ..." in its property pane.
    assert!(
        js.contains("name: p[1].replace(/^sometimes /, ''),"),
        "stateright's UI changed: update upstream::rewrite"
    );
    // The broken step's link resolves: the Explorer reaches it from the
    // step before by the trace's action.
    let t = &fixture().trace;
    let at = usize::try_from(t["broken_at"].as_u64().unwrap()).unwrap();
    let path = |i: usize| t["steps"][i]["explorer_path"].as_str().unwrap().to_string();
    assert_eq!(get(&format!("{base}/.states/{}", path(at))).0, 200);
    let (status, states) = get(&format!("{base}/.states/{}", path(at - 1)));
    assert_eq!(status, 200, "{states}");
    let next: serde_json::Value = serde_json::from_str(&states).unwrap();
    let index: u64 = path(at).rsplit('/').next().unwrap().parse().unwrap();
    let taken = next
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["actionIndex"].as_u64() == Some(index))
        .unwrap();
    assert_eq!(
        taken["action"].as_str().unwrap(),
        t["steps"][at - 1]["action_label"].as_str().unwrap(),
        "the Explorer's action at the link's last index is the trace's"
    );
}

/// Browsers ask every page's `/favicon.ico`: it is served, not a 404.
#[test]
fn the_favicon_is_served() {
    let (status, body) = get("/favicon.ico");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("<svg"), "{body}");
}

/// A `--trace-dir` that is not a directory is refused at start, not
/// served as an empty list.
#[test]
fn a_missing_trace_dir_is_refused() {
    let missing = std::env::temp_dir().join("tally-explorer-no-such-dir");
    let _ = std::fs::remove_dir_all(&missing);
    let err = Explorer::bind(
        ("127.0.0.1", 0),
        ExploreOptions {
            config: Some(hunt_config(Mutation::TimeoutFreesSlot)),
            traces: Vec::new(),
            trace_dir: Some(missing.clone()),
        },
    )
    .err()
    .expect("a missing --trace-dir was accepted");
    let says = err.to_string();
    assert!(
        says.contains(&missing.display().to_string()) && says.contains("not a directory"),
        "{says}"
    );
}

/// `/traces` is a table: each trace's property, length, breaking step,
/// configuration and the mutation it was found with, with what it does.
#[test]
fn the_trace_table_tells_each_traces_property_length_step_and_mutation() {
    let t = &fixture().trace;
    let (status, page) = get("/traces");
    assert_eq!(status, 200);
    let start = page
        .find(&format!("<tr data-name=\"{NAME}\">"))
        .unwrap_or_else(|| panic!("no row for {NAME} in {page}"));
    let row = &page[start..start + page[start..].find("</tr>").unwrap()];
    let broken = t["broken_at"].as_u64().unwrap();
    for want in [
        "<td class=\"property\">S1 singleton</td>".to_string(),
        format!(
            "<td class=\"length\">{}</td>",
            t["steps"].as_array().unwrap().len()
        ),
        format!("href=\"/trace/{NAME}?step={broken}\">{broken}</a>"),
        "href=\"/explorer/hunt-timeout-frees-slot/\"".to_string(),
        "<code>timeout-frees-slot</code>: a boot timeout marks the instance stopped".to_string(),
        "<td class=\"source\">file</td>".to_string(),
    ] {
        assert!(row.contains(&want), "{want} in {row}");
    }
    // Each trace links to its own configuration: no configuration chosen
    // on the command line heads the page.
    assert!(!page.contains("id=\"explorer-root\""), "{page}");
}

/// A trace opened from the browser under a file trace's name gets a name
/// of its own: the file's name keeps showing the file.
#[test]
fn an_upload_never_replaces_a_file_trace() {
    let mut other = fixture().trace.clone();
    // The same trace cut at its breaking step: another trace, still valid.
    let broken = usize::try_from(other["broken_at"].as_u64().unwrap()).unwrap();
    let steps = other["steps"].as_array_mut().unwrap();
    steps.truncate(broken + 1);
    steps[broken]["action"] = serde_json::Value::Null;
    steps[broken]["action_label"] = serde_json::Value::Null;
    let (status, body) = call(
        "POST",
        &format!("/traces?name={NAME}"),
        other.to_string().as_bytes(),
    );
    assert_eq!(status, 303, "{body}");
    assert!(
        body.contains(&format!("/trace/{NAME}-2?step={broken}")),
        "{body}"
    );
    let (_, json) = get(&format!("/trace/{NAME}.json"));
    let served: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(served, fixture().trace, "the file's name shows the file");
    let (_, json) = get(&format!("/trace/{NAME}-2.json"));
    let served: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(served, other);
}

/// A hunt's trace is `hunted-<mutation>--<property>`, apart from any file
/// of that name, and a second hunt opens the same one.
#[test]
fn a_hunted_trace_never_replaces_a_file_trace_and_keeps_its_name() {
    let taken = "hunted-timeout-frees-slot--s2-no-phantom";
    write_trace(taken, &fixture().trace.to_string());
    let (status, first) = get("/hunt/timeout-frees-slot");
    assert_eq!(status, 303, "{first}");
    assert!(first.contains(&format!("/trace/{taken}-2")), "{first}");
    let (_, again) = get("/hunt/timeout-frees-slot");
    assert_eq!(first, again, "a second hunt opens the first one's trace");
    let (_, json) = get(&format!("/trace/{taken}.json"));
    let served: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(served, fixture().trace, "the file's name shows the file");
    let (_, json) = get(&format!("/trace/{taken}-2.json"));
    let hunted: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(hunted["property"], "S2 no phantom");
    let (_, page) = get("/traces");
    assert!(
        page.contains(&format!("<tr data-name=\"{taken}-2\">")) && page.contains("hunted here"),
        "{page}"
    );
}

/// With only a trace directory, the server starts (each trace is served
/// with its own configuration).
#[test]
fn a_trace_directory_alone_is_enough() {
    let explorer = Explorer::bind(
        ("127.0.0.1", 0),
        ExploreOptions {
            config: None,
            traces: Vec::new(),
            trace_dir: Some(fixture().dir.clone()),
        },
    )
    .unwrap();
    assert!(explorer.explorer_url().ends_with("/traces"));
}
