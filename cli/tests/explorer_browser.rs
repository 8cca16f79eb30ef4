//! The Explorer in a real browser: `tally explore` on the `timeout-frees-slot`
//! counterexample, driven in headless Chromium through chromedriver
//! (fantoccini). It checks that the timeline shows two overlapping `clock`
//! instances on two hosts and names S1 at the step where it breaks, explains
//! it (a card per process), marks what the step changed, follows that step's
//! link into stateright's Explorer, and saves screenshots under `target/`
//! (`explorer-screenshot.png`, `explorer-narrow.png`: opened in a narrow
//! window, scrolled to the step with the lane names still in view,
//! `explorer-stateright.png`). Other tests: two processes of one instance in
//! two rows, the S3 and L1 panels (a long L1 trace opened at its breaking
//! column), an HA trace, and the `/traces` table with hunted traces that
//! never take a file's name.
//!
//! It needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`) and fails, not skips, without them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use fantoccini::{ClientBuilder, Locator};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Kills the child when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tally check` writes the counterexample; its S1 trace. (A hunt,
/// `tally check --mutation timeout-frees-slot`, stops at the shorter S2
/// counterexample; this is the whole BFS of the same configuration, which
/// also breaks S1.)
fn s1_trace(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let cfg = tally_verification::mutations::hunt_config(tally_core::Mutation::TimeoutFreesSlot);
    let file = dir.join("hunt-timeout-frees-slot.json");
    std::fs::write(&file, serde_json::to_string(&cfg).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "check",
            "--bfs",
            "--threads",
            "1",
            "--no-liveness",
            "--config",
        ])
        .arg(&file)
        .arg("--trace-out")
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the mutation must be refuted");
    dir.join("hunt-timeout-frees-slot--s1-singleton.json")
}

/// `tally explore --trace FILE --port 0`, and the URL it prints.
fn explore(trace: &Path) -> (Killed, String) {
    explore_with("--trace", trace)
}

/// `tally explore --port 0 FLAG PATH`, and the URL it prints.
fn explore_with(flag: &str, path: &Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["explore", "--port", "0", flag])
        .arg(path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Killed(child);
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    // Keep reading what it says later: a closed pipe would make its next
    // line to stderr fail, and the Explorer with it.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    });
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (child, url)
}

/// Kills a child's whole process group when the test ends, however it
/// ends, then the child itself.
struct Group(Killed);

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.0.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn chromedriver() -> (Group, u16) {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: apt-get install -y chromium chromium-driver"
        );
    }
    let port = free_port();
    // In a process group of its own, with the Chromium it starts: a test
    // that fails before it closes its session must not leave a browser
    // running (`Group` kills them all).
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let child = Group(Killed(child));
    let started = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

#[tokio::test(flavor = "current_thread")]
async fn the_timeline_shows_the_double_clock_and_links_to_stateright() {
    let target = workspace().join("target");
    let trace_file = s1_trace(&target.join("explorer-browser-traces"));
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace_file).unwrap()).unwrap();
    let broken = trace["broken_at"].as_u64().unwrap();
    let (_tally, url) = explore(&trace_file);
    let (client, _driver, profile) = open(&url, "timeline", (1600, 1000)).await;

    // S1 is named at the step where it breaks.
    let violation = client.find(Locator::Id("violation")).await.unwrap();
    assert_eq!(
        violation.attr("data-property").await.unwrap().as_deref(),
        Some("S1 singleton")
    );
    assert_eq!(
        violation.attr("data-step").await.unwrap(),
        Some(broken.to_string())
    );
    let text = violation.text().await.unwrap();
    assert!(
        text.contains(&format!("Step {broken}")) && text.contains("S1 singleton"),
        "{text}"
    );
    let column = client.find(Locator::Id("violation-column")).await.unwrap();
    assert!(column.attr("x").await.unwrap().is_some());

    // Two clock instances, on two hosts, both running at that step.
    let bars = client
        .execute(
            "return [...document.querySelectorAll('rect.truth')].map(r => ({
                instance: r.dataset.instance, host: r.dataset.host,
                from: Number(r.dataset.from), to: Number(r.dataset.to) }));",
            vec![],
        )
        .await
        .unwrap();
    let at_broken: Vec<(String, String)> = bars
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["instance"].as_str().unwrap().starts_with("clock."))
        .filter(|b| b["from"].as_u64().unwrap() <= broken && broken <= b["to"].as_u64().unwrap())
        .map(|b| {
            (
                b["instance"].as_str().unwrap().into(),
                b["host"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        at_broken.len(),
        2,
        "two clock bars overlap at step {broken}: {bars}"
    );
    assert_ne!(at_broken[0].0, at_broken[1].0, "two instances");
    assert_ne!(at_broken[0].1, at_broken[1].1, "on two hosts");
    for (instance, host) in &at_broken {
        assert!(
            text.contains(&format!("{instance} on host {host}")),
            "{text}"
        );
    }

    // The S1 panel: one card per process, each saying who launched it
    // (step, host, generation) and what the ledger believed at the step.
    let cards = client
        .execute(
            "const why = document.getElementById('why');
             return { property: why && why.dataset.property,
                      cards: [...document.querySelectorAll('#why .why-card')].map(c =>
                        ({ instance: c.dataset.instance, host: c.dataset.host, text: c.textContent })) };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(cards["property"], "S1 singleton", "{cards}");
    let cards = cards["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 2, "a card per process: {cards:?}");
    for (instance, host) in &at_broken {
        let card = cards
            .iter()
            .find(|c| c["instance"] == instance.as_str() && c["host"] == host.as_str())
            .unwrap_or_else(|| panic!("no card for {instance} on host {host}: {cards:?}"));
        let said = card["text"].as_str().unwrap();
        let generation = instance.rsplit("@g").next().unwrap();
        assert!(
            said.contains("Launched by the manager at step")
                && said.contains(&format!("as generation {generation} on host"))
                && said.contains(&format!("Started on host {host} at step"))
                && said.contains("The ledger at step"),
            "{said}"
        );
    }
    // The ledger dropped one of them while it ran on (the 2012 bug).
    assert!(
        cards.iter().any(|c| {
            let t = c["text"].as_str().unwrap();
            t.contains("does not hold it") && t.contains("boot timed out")
        }),
        "{cards:?}"
    );

    // "Broken here" names the banner's property only; S2, broken earlier,
    // is listed apart with its own step.
    let lines = client
        .execute(
            "const t = (id) => { const e = document.getElementById(id); return e && e.textContent; };
             return { here: t('broken-here'), also: t('also-false') };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        lines["here"], "Broken here: S1 singleton",
        "only the banner's property: {lines}"
    );
    assert!(
        lines["also"]
            .as_str()
            .is_some_and(|t| t.contains("S2 no phantom (since step")),
        "{lines}"
    );

    // What the step changed is marked: the process it started is a new row
    // of the ground truth.
    let marks = client
        .execute(
            "return { changed: [...document.querySelectorAll('#detail .var[data-changed=true]')].map(v => v.id),
                      added: [...document.querySelectorAll('#truth tr.added')].map(r => r.dataset.key),
                      line: document.getElementById('changed').textContent };",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        marks["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "truth"),
        "{marks}"
    );
    let added = marks["added"].as_array().unwrap();
    assert!(
        added.len() == 1
            && at_broken
                .iter()
                .any(|(i, h)| added[0] == format!("{i}/{h}").as_str()),
        "the process started at step {broken} is marked new: {marks}"
    );
    assert!(
        marks["line"].as_str().unwrap().contains("Ground truth"),
        "{marks}"
    );

    // Action labels stay clear of the step numbers and times above them,
    // and inside the picture on the right.
    let labels = client
        .execute(
            "const svg = document.getElementById('timeline').getBoundingClientRect();
             const header = Math.max(...[...document.querySelectorAll('text.step-time, text.explorer-glyph, text.step-number')]
               .map(t => t.getBoundingClientRect().bottom));
             return [...document.querySelectorAll('text.action-label')].map(t => {
               const r = t.getBoundingClientRect();
               return { text: t.textContent, top: r.top, right: r.right, header, svgRight: svg.right };
             });",
            vec![],
        )
        .await
        .unwrap();
    for l in labels.as_array().unwrap() {
        let f = |k: &str| l[k].as_f64().unwrap();
        assert!(f("top") >= f("header"), "a label over the header: {l}");
        assert!(f("right") <= f("svgRight"), "a label clipped: {l}");
    }

    // The URL names the step, to paste in a ticket.
    let here = client.current_url().await.unwrap();
    assert!(
        here.as_str().ends_with(&format!("?step={broken}")),
        "{here}"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(target.join("explorer-screenshot.png"), png).unwrap();

    // In a window narrower than the trace, the timeline opens scrolled to
    // the breaking step, and the lane names stay in view beside it.
    client.set_window_size(520, 900).await.unwrap();
    rendered(&client, &url).await;
    let view = client
        .execute(
            "const sc = document.getElementById('timeline-scroll');
             const box = sc.getBoundingClientRect();
             const col = document.getElementById('violation-column').getBoundingClientRect();
             const lane = [...document.querySelectorAll('.lane-label')].find(t => t.textContent === 'host 0').getBoundingClientRect();
             return { overflow: sc.scrollWidth > sc.clientWidth, scrolled: sc.scrollLeft,
                      boxLeft: box.left, boxRight: box.left + sc.clientWidth,
                      colLeft: col.left, colRight: col.right, laneLeft: lane.left, laneRight: lane.right };",
            vec![],
        )
        .await
        .unwrap();
    let f = |k: &str| view[k].as_f64().unwrap();
    assert_eq!(
        view["overflow"], true,
        "the trace is wider than the window: {view}"
    );
    assert!(
        f("colLeft") >= f("boxLeft") && f("colRight") <= f("boxRight"),
        "the breaking column is in view: {view}"
    );
    // Where the column starts unscrolled: the timeline's LEFT + broken * W.
    let unscrolled = 150.0 + 46.0 * broken as f64;
    if unscrolled + 46.0 > f("boxRight") - f("boxLeft") {
        assert!(f("scrolled") > 0.0, "scrolled to the step: {view}");
    }
    assert!(
        f("laneLeft") >= f("boxLeft") && f("laneRight") <= f("colLeft"),
        "the lane name stays in view, left of the column: {view}"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(target.join("explorer-narrow.png"), png).unwrap();
    client.set_window_size(1600, 1000).await.unwrap();
    rendered(&client, &url).await;

    // The step's link opens the same state in stateright's Explorer.
    client
        .find(Locator::Id("explorer-step-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // stateright lists its pre-init root, the initial state, then each action.
    let want = usize::try_from(broken).unwrap() + 2;
    let started = Instant::now();
    loop {
        let n = client
            .execute(
                "return document.querySelectorAll('ol.path-list li').length;",
                vec![],
            )
            .await
            .unwrap();
        if n.as_u64() == Some(u64::try_from(want).unwrap()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the Explorer shows {n} steps, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let here = client.current_url().await.unwrap();
    let path = trace["steps"][broken as usize]["explorer_path"]
        .as_str()
        .unwrap();
    assert!(
        here.as_str().contains("/explorer/hunt-timeout-frees-slot/"),
        "{here}"
    );
    assert!(
        here.as_str().ends_with(&format!("#/steps/{path}")),
        "{here}"
    );
    let last_action = client
        .execute(
            "const li = document.querySelectorAll('ol.path-list li'); return li[li.length - 1].textContent.trim();",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        last_action.as_str(),
        trace["steps"][broken as usize - 1]["action_label"].as_str(),
        "the Explorer's last action is the trace's"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(target.join("explorer-stateright.png"), png).unwrap();
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}

/// `tally check --mutation trust-late-messages` writes its S1 trace: one
/// launch started twice on one host after a duplicated reply.
fn twice_started_trace(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["check", "--mutation", "trust-late-messages", "--trace-out"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the mutation must be refuted");
    dir.join("hunt-trust-late-messages--s1-singleton.json")
}

#[tokio::test(flavor = "current_thread")]
async fn two_processes_of_one_instance_are_two_rows() {
    let target = workspace().join("target");
    let trace_file = twice_started_trace(&target.join("explorer-browser-twice"));
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace_file).unwrap()).unwrap();
    let broken = trace["broken_at"].as_u64().unwrap();
    let (_tally, url) = explore(&trace_file);
    let (client, _driver, profile) = open(&url, "twice", (1200, 900)).await;
    let bars = client
        .execute(
            "return [...document.querySelectorAll('rect.truth')].map(r => ({
                instance: r.dataset.instance, row: r.dataset.row, host: r.dataset.host,
                from: Number(r.dataset.from), to: Number(r.dataset.to) }));",
            vec![],
        )
        .await
        .unwrap();
    let at_broken: Vec<&serde_json::Value> = bars
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["from"].as_u64().unwrap() <= broken && broken <= b["to"].as_u64().unwrap())
        .collect();
    assert_eq!(at_broken.len(), 2, "two processes, two bars: {bars}");
    assert_eq!(
        at_broken[0]["instance"], at_broken[1]["instance"],
        "of one instance: {bars}"
    );
    assert_eq!(
        at_broken[0]["host"], at_broken[1]["host"],
        "on one host: {bars}"
    );
    assert_ne!(
        at_broken[0]["row"], at_broken[1]["row"],
        "in two rows: {bars}"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(target.join("explorer-twice.png"), png).unwrap();
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}

/// A headless Chromium session through a fresh chromedriver, with the page
/// at `url` rendered.
async fn open(url: &str, name: &str, size: (u32, u32)) -> (fantoccini::Client, Group, PathBuf) {
    let (client, driver, profile) = session(name, size).await;
    rendered(&client, url).await;
    (client, driver, profile)
}

/// A headless Chromium session through a fresh chromedriver.
async fn session(name: &str, (width, height): (u32, u32)) -> (fantoccini::Client, Group, PathBuf) {
    let (driver, port) = chromedriver();
    let profile = workspace()
        .join("target")
        .join(format!("explorer-chromium-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--window-size={width},{height}"), format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("chromedriver session");
    (client, driver, profile)
}

/// A headless Chromium session at `url`, a page that is not a timeline.
async fn open_page(
    url: &str,
    name: &str,
    size: (u32, u32),
) -> (fantoccini::Client, Group, PathBuf) {
    let (client, driver, profile) = session(name, size).await;
    client.goto(url).await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("main.index"))
        .await
        .expect("the page renders");
    (client, driver, profile)
}

/// Opens `url` and waits until the timeline has rendered.
/// Attribute `attr` of the element with id `id`.
async fn attr_of(client: &fantoccini::Client, id: &str, attr: &str) -> Option<String> {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .attr(attr)
        .await
        .unwrap()
}

/// The text of the element with id `id`.
async fn text_of(client: &fantoccini::Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn rendered(client: &fantoccini::Client, url: &str) {
    client.goto(url).await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("body[data-ready='true']"))
        .await
        .expect("the timeline renders");
}

/// The trace `tally check --mutation MUTATION --trace-out DIR` writes (it
/// must refute it: exit 1), `DIR` a fresh one under `target/`.
fn hunted(mutation: &str, property: &str) -> PathBuf {
    let dir = workspace()
        .join("target")
        .join(format!("explorer-browser-{mutation}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["check", "--mutation", mutation, "--trace-out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{mutation} must be refuted");
    dir.join(format!("hunt-{mutation}--{property}.json"))
}

#[tokio::test(flavor = "current_thread")]
async fn the_s3_panel_shows_the_launches_against_the_bound_term_by_term() {
    let target = workspace().join("target");
    let trace_file = hunted("unbounded-retries", "s3-launch-bound");
    let (_tally, url) = explore(&trace_file);
    let (client, _driver, profile) = open(&url, "s3", (1200, 1400)).await;
    let text = text_of(&client, "violation").await;
    assert!(
        text.contains("launches >") && text.contains("F "),
        "the banner says the numbers: {text}"
    );
    let rows = client
        .execute(
            "return [...document.querySelectorAll('#launch-bound tbody tr')].map(r =>
                ({ scope: r.dataset.scope, over: r.classList.contains('over'),
                   cells: [...r.children].map(c => c.textContent) }));",
            vec![],
        )
        .await
        .unwrap();
    let fleet = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scope"] == "fleet")
        .unwrap_or_else(|| panic!("no fleet row: {rows}"));
    assert_eq!(fleet["over"], true, "the exceeded bound is marked: {rows}");
    let cells: Vec<u64> = fleet["cells"].as_array().unwrap()[1..3]
        .iter()
        .map(|c| c.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(cells[0] > cells[1], "launches over the bound: {rows}");
    // The S3 panel lists every launch that counts, and says the terms.
    let why = client
        .execute(
            "const why = document.getElementById('why');
             return { property: why.dataset.property, text: why.textContent,
                      launches: document.querySelectorAll('#why .why-launches li').length };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(why["property"], "S3 launch bound", "{why}");
    assert_eq!(why["launches"].as_u64(), Some(cells[0]), "{why}");
    assert!(
        why["text"].as_str().unwrap().contains(&format!(
            "{} launches, more than the bound {}",
            cells[0], cells[1]
        )),
        "{why}"
    );
    // The manager's flow control in words, not JSON.
    let pane = text_of(&client, "detail").await;
    assert!(
        pane.contains("budget of shop")
            && pane.contains("fleet breaker")
            && pane.contains("closed:"),
        "{pane}"
    );
    assert!(
        !pane.contains("tokens_milli"),
        "raw JSON in the pane: {pane}"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(target.join("explorer-s3.png"), png).unwrap();
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failover_trace_shows_each_manager_process_and_the_store() {
    let target = workspace().join("target");
    let trace_file = hunted("unfenced-append", "s6-fencing-tokens-unique");
    let (_tally, url) = explore(&trace_file);
    let (client, _driver, profile) = open(&url, "ha", (1400, 1200)).await;
    // At the broken step (selected on load): the old leader, deposed but
    // unaware, beside the new leader, and the store's key with its term.
    let pane = text_of(&client, "managers").await;
    assert!(
        pane.contains("zombie") && pane.contains("leader") && pane.contains("term 2"),
        "{pane}"
    );
    // One line per manager process on the timeline, role and term per step.
    let roles = client
        .execute(
            "return [...document.querySelectorAll('text.manager-role')].map(t =>
                t.dataset.process + ':' + t.firstChild.textContent);",
            vec![],
        )
        .await
        .unwrap();
    let roles: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        roles.contains(&"0:Z1!") && roles.contains(&"1:L2") && roles.contains(&"0:L1‖"),
        "{roles:?}"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(target.join("explorer-ha.png"), png).unwrap();
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}

/// `tally explore --trace-dir DIR --port 0`, and the URL it prints.
fn explore_dir(dir: &Path) -> (Killed, String) {
    explore_with("--trace-dir", dir)
}

#[tokio::test(flavor = "current_thread")]
async fn a_long_l1_trace_opens_at_its_breaking_column_and_says_why() {
    let target = workspace().join("target");
    let trace_file = hunted("host-wide-renewal", "l1-convergence");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace_file).unwrap()).unwrap();
    let broken = trace["broken_at"].as_u64().unwrap();
    let cfg: tally_model::ModelConfig = serde_json::from_value(trace["config"].clone()).unwrap();
    let (_tally, url) = explore(&trace_file);
    let (client, _driver, profile) = open(&url, "l1", (1000, 1300)).await;

    // Wider than the window, opened with the breaking column in view.
    let view = client
        .execute(
            "const sc = document.getElementById('timeline-scroll');
             const box = sc.getBoundingClientRect();
             const col = document.getElementById('violation-column').getBoundingClientRect();
             return { overflow: sc.scrollWidth > sc.clientWidth, boxLeft: box.left,
                      boxRight: box.left + sc.clientWidth, colLeft: col.left, colRight: col.right };",
            vec![],
        )
        .await
        .unwrap();
    let f = |k: &str| view[k].as_f64().unwrap();
    assert_eq!(view["overflow"], true, "{view}");
    assert!(
        f("colLeft") >= f("boxLeft") && f("colRight") <= f("boxRight"),
        "the breaking column is in view: {view}"
    );

    // The L1 panel: the calm point, T from the configuration, and the
    // state where progress stops, slot by slot, with what gates a launch.
    let why = client
        .execute(
            "const why = document.getElementById('why');
             const slot = document.querySelector('#why-slots tr[data-slot=\"clock.1\"]');
             return { property: why.dataset.property, text: why.textContent,
                      slot: slot && [...slot.children].map(c => c.textContent),
                      gates: [...document.querySelectorAll('#why-gates tr')].map(r => r.textContent) };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(why["property"], "L1 convergence", "{why}");
    let text = why["text"].as_str().unwrap();
    let t = cfg.core.recovery_bound_ticks();
    for want in [
        "Calm point: step".to_string(),
        format!("T = {t} ticks"),
        format!("up by t{}", cfg.recovery_deadline()),
        format!("to step {broken}"),
        "Progress stops".to_string(),
    ] {
        assert!(text.contains(&want), "{want:?} in {text}");
    }
    let slot: Vec<&str> = why["slot"]
        .as_array()
        .unwrap_or_else(|| panic!("no row for clock.1: {why}"))
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(slot[1], "nothing runs", "{slot:?}");
    assert!(
        slot[3] == "held by the ledger" && slot[4].contains("clock.1@g1"),
        "the ledger's stale entry holds the slot: {slot:?}"
    );
    let gates = why["gates"].to_string();
    assert!(
        gates.contains("breaker of shop")
            && gates.contains("budget of shop")
            && gates.contains("backoff"),
        "{gates}"
    );
    assert!(!text.contains('{'), "JSON in the panel: {text}");
    let png = client.screenshot().await.unwrap();
    std::fs::write(target.join("explorer-l1.png"), png).unwrap();
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}

#[tokio::test(flavor = "current_thread")]
async fn the_trace_table_and_hunted_names_that_keep_their_meaning() {
    let target = workspace().join("target");
    let dir = target.join("explorer-browser-dir");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A file trace under the very name a hunt of timeout-frees-slot would
    // take (another trace: trust-late-messages' S1), and one more.
    let taken = "hunted-timeout-frees-slot--s2-no-phantom";
    let s1 = hunted("trust-late-messages", "s1-singleton");
    std::fs::copy(&s1, dir.join(format!("{taken}.json"))).unwrap();
    // (Each test hunts its own mutations: `hunted` writes a directory per
    // mutation, and the tests run at once.)
    let s2 = hunted("absence-confirms-death", "s2-no-phantom");
    std::fs::copy(
        &s2,
        dir.join("hunt-absence-confirms-death--s2-no-phantom.json"),
    )
    .unwrap();
    let (_tally, url) = explore_dir(&dir);
    assert!(url.ends_with("/traces"), "{url}");
    let (client, _driver, profile) = open_page(&url, "table", (1400, 1000)).await;

    // A table, each trace with its own configuration (no unrelated `ci`).
    let rows = client
        .execute(
            "return { root: document.getElementById('explorer-root') != null,
                      rows: [...document.querySelectorAll('#traces tbody tr')].map(r =>
                        ({ name: r.dataset.name, cells: [...r.children].map(c => c.textContent),
                           config: r.querySelector('td.config a').getAttribute('href') })) };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        rows["root"], false,
        "no configuration heads the list: {rows}"
    );
    let row = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "hunt-absence-confirms-death--s2-no-phantom")
        .unwrap_or_else(|| panic!("{rows}"));
    let s2_trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s2).unwrap()).unwrap();
    let cells: Vec<&str> = row["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cells[1], "S2 no phantom", "{cells:?}");
    assert_eq!(
        cells[2],
        s2_trace["steps"].as_array().unwrap().len().to_string()
    );
    assert_eq!(cells[3], s2_trace["broken_at"].to_string());
    assert_eq!(cells[4], "hunt-absence-confirms-death");
    assert!(
        cells[5].starts_with("absence-confirms-death: an instance missing from a report"),
        "{cells:?}"
    );
    assert_eq!(row["config"], "/explorer/hunt-absence-confirms-death/");

    // Hunting from the list opens a trace of its own name, beside the file.
    client
        .find(Locator::Css("a[href='/hunt/timeout-frees-slot']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(120))
        .for_element(Locator::Css("body[data-ready='true']"))
        .await
        .expect("the hunted trace renders");
    let here = client.current_url().await.unwrap();
    assert!(
        here.path().ends_with(&format!("/trace/{taken}-2")),
        "{here}"
    );
    let hunted_property = attr_of(&client, "violation", "data-property").await;
    assert_eq!(hunted_property.as_deref(), Some("S2 no phantom"));
    // The S2 panel names the phantom and what the ledger believed.
    let why = text_of(&client, "why").await;
    assert!(
        why.contains("the phantom") && why.contains("does not hold it"),
        "{why}"
    );
    // The file's name, with a step, still shows the file's trace.
    let file_url = url.replace("/traces", &format!("/trace/{taken}?step=2"));
    rendered(&client, &file_url).await;
    let property = attr_of(&client, "violation", "data-property").await;
    assert_eq!(
        property.as_deref(),
        Some("S1 singleton"),
        "the file's trace"
    );
    let step = attr_of(&client, "detail", "data-step").await;
    assert_eq!(step.as_deref(), Some("2"));
    // Hunting again opens the same hunted trace; the table lists both.
    let hunt_url = url.replace("/traces", "/hunt/timeout-frees-slot");
    rendered(&client, &hunt_url).await;
    let again = client.current_url().await.unwrap();
    assert_eq!(again.path(), here.path());
    client.goto(&url).await.unwrap();
    let names = client
        .execute(
            "return [...document.querySelectorAll('#traces tbody tr')].map(r =>
                r.dataset.name + ' ' + r.querySelector('td.source').textContent);",
            vec![],
        )
        .await
        .unwrap();
    let names = names.to_string();
    assert!(
        names.contains(&format!("{taken} directory"))
            && names.contains(&format!("{taken}-2 hunted here")),
        "{names}"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(target.join("explorer-traces.png"), png).unwrap();
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}
