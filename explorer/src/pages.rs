//! The Explorer's HTML pages. The timeline itself is drawn in the browser by
//! `explorer/assets/timeline.js` from the trace embedded in its page;
//! both assets are compiled into the binary.

use crate::store::{Checked, Source};
use crate::{Problem, Shared};
use tally_core::Mutation;
use tally_model::ModelConfig;
use tally_verification::mutations;

/// The timeline's script.
pub const TIMELINE_JS: &str = include_str!("../assets/timeline.js");
/// The pages' style.
pub const TIMELINE_CSS: &str = include_str!("../assets/timeline.css");

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"/assets/timeline.css\">\n</head>\n\
         <body>\n<header class=\"top\"><a class=\"brand\" href=\"/traces\">Tally Explorer</a>\
         <span class=\"crumb\">{}</span></header>\n{body}\n</body>\n</html>\n",
        esc(title),
        esc(title)
    )
}

/// An error page.
#[must_use]
pub fn problem(p: &Problem) -> String {
    page(
        &format!("{} {}", p.status, p.title),
        &format!(
            "<main class=\"problem\" id=\"problem\" data-status=\"{}\"><h1>{} {}</h1>\
             <p>{}</p><p><a href=\"/traces\">All traces</a></p></main>",
            p.status,
            p.status,
            esc(&p.title),
            esc(&p.detail)
        ),
    )
}

/// What each mutation does, in one line (the core's documentation of
/// `Mutation`, shortened): the `/traces` table says it beside a trace found
/// with it, and the hunt list beside its link.
#[must_use]
pub fn meaning(m: Mutation) -> &'static str {
    match m {
        Mutation::TimeoutFreesSlot => {
            "a boot timeout marks the instance stopped and frees its slot (2012)"
        }
        Mutation::UnboundedRetries => "no retry budget at all (2012)",
        Mutation::NoSelfFencing => "agents keep instances past their lease (2012)",
        Mutation::TrustLateMessages => {
            "agents ignore generations: a late or duplicated launch runs (2012)"
        }
        Mutation::RefuseOnlyOlder => "agents refuse only generations below the highest seen",
        Mutation::StopWithoutTombstone => "a stop of a never-started instance leaves no tombstone",
        Mutation::AbsenceConfirmsDeath => "an instance missing from a report is taken as dead",
        Mutation::LeaseFromReceipt => {
            "the first lease runs from the launch's receipt, not its sending"
        }
        Mutation::JournalForgetsGenerations => {
            "journal compaction drops each slot's highest generation"
        }
        Mutation::BudgetNotJournaled => "a restarted manager refills the retry budget",
        Mutation::ExpiryIgnoresDrift => {
            "the manager expires a lease after its duration alone, without drift"
        }
        Mutation::HostWideRenewal => "a report renews every instance on its host, even gone ones",
        Mutation::BreakerProbeOnly => {
            "no probe credit: only the breaker's half-open probe relaunches"
        }
        Mutation::ProbeNotJournaled => "a restarted manager finds a fresh probe credit",
        Mutation::RefillOnRevive => "every return to up refills the budget",
        Mutation::AdmissionCountsLaunching => {
            "admission counts only launching instances, not booting ones"
        }
        Mutation::BreakerNeverHalfOpens => "an open breaker never half-opens",
        Mutation::MarginIgnoresKill => {
            "the expiry margin covers drift but not the time a kill takes"
        }
        Mutation::FleetWideBudget => {
            "one budget and probe credit for every app: a broken app drains the others"
        }
        Mutation::BreakerCountsOneApp => {
            "the fleet breaker counts failures, not failing apps: one broken app stops all"
        }
        Mutation::UnfencedAppend => {
            "a journal append without the term compare: an old leader's append commits"
        }
        Mutation::UnguardedLeader => "a leader acts without a guard until an append fails",
        Mutation::TakeoverTrustsLedger => "a new leader leases instances only until its takeover",
        Mutation::GuardFromAppend => {
            "a fenced append restarts the guard without extending the store lease"
        }
        Mutation::GuardIgnoresDrift => {
            "the guard is lease minus margin on the manager's clock, without drift"
        }
    }
}

/// One row of the trace table: the trace, its property, its length, where
/// it breaks, its configuration (with its stateright Explorer) and the
/// mutations it was found with; or why it cannot be shown.
fn trace_row(shared: &Shared, name: &str, source: Source) -> String {
    let link = format!(
        "<a class=\"trace-link\" href=\"/trace/{0}\">{0}</a>",
        esc(name)
    );
    let from = format!("<td class=\"source\">{}</td>", esc(source.words()));
    let checked = shared
        .store
        .text(name)
        .map_err(|p| p.detail)
        .and_then(|text| crate::store::check(&text));
    let c = match checked {
        Ok(c) => c,
        Err(why) => {
            return format!(
                "<tr data-name=\"{}\" class=\"unusable\"><td>{link}</td>\
                 <td colspan=\"5\" class=\"muted\">cannot be shown: {}</td>{from}</tr>",
                esc(name),
                esc(&why)
            );
        }
    };
    let property = c
        .json
        .get("property")
        .and_then(|p| p.as_str())
        .unwrap_or("a property");
    let key = shared.upstreams.key(&c.config).unwrap_or_default();
    let mutations: String = c
        .config
        .core
        .mutations
        .iter()
        .map(|m| {
            format!(
                "<span class=\"mutation\" data-mutation=\"{0}\"><code>{0}</code>: {1}</span>",
                esc(m.name()),
                esc(meaning(m))
            )
        })
        .collect::<Vec<_>>()
        .join("<br>");
    let mutations = if mutations.is_empty() {
        "<span class=\"muted\">none (the shipped code)</span>".to_string()
    } else {
        mutations
    };
    format!(
        "<tr data-name=\"{n}\"><td>{link}</td><td class=\"property\">{p}</td>\
         <td class=\"length\">{len}</td>\
         <td class=\"broken\"><a href=\"/trace/{n}?step={b}\">{b}</a></td>\
         <td class=\"config\"><a href=\"/explorer/{k}/\" title=\"its state space in stateright's Explorer\">{cfg}</a></td>\
         <td class=\"mutations\">{mutations}</td>{from}</tr>",
        n = esc(name),
        p = esc(property),
        len = c.steps,
        b = c.broken_at,
        k = esc(&key),
        cfg = esc(&c.config.name),
    )
}

/// The trace table, the file picker and the mutations to hunt.
#[must_use]
pub fn index(shared: &Shared) -> String {
    let rows: String = shared
        .store
        .list()
        .into_iter()
        .map(|(n, source)| trace_row(shared, &n, source))
        .collect();
    let traces = if rows.is_empty() {
        "<p>No trace yet: open a file, hunt a mutation below, or start with \
         <code>tally explore --trace FILE</code>.</p>"
            .to_string()
    } else {
        format!(
            "<table class=\"traces\" id=\"traces\"><thead><tr><th>trace</th><th>property broken</th>\
             <th>states</th><th>breaks at step</th><th>configuration</th><th>mutation: what it does</th>\
             <th>from</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let hunts: String = Mutation::ALL
        .iter()
        .map(|m| {
            format!(
                "<li><a href=\"/hunt/{0}\">{0}</a> <span class=\"muted\">{1}; breaks {2}</span></li>",
                esc(m.name()),
                esc(meaning(*m)),
                esc(&mutations::expected(*m).join(" or "))
            )
        })
        .collect();
    // Only a configuration chosen on the command line heads the page: with
    // traces alone, each row links to its own configuration's Explorer.
    let chosen = match (&shared.config, shared.chosen) {
        (Some(config), true) => format!(
            "<section><h2>Configuration</h2><p><b>{cfg}</b>: \
             <a id=\"explorer-root\" href=\"/explorer/{key}/\">browse its state space in stateright's Explorer</a></p></section>",
            cfg = esc(&config.name),
            key = esc(&shared.upstreams.key(config).unwrap_or_default()),
        ),
        _ => String::new(),
    };
    let body = format!(
        "<main class=\"index\">{chosen}\
         <section><h2>Counterexamples</h2>{traces}\
         <p><label>Open a trace written by <code>tally check --trace-out</code>: \
         <input type=\"file\" id=\"trace-file\" accept=\".json,application/json\"></label></p></section>\
         <section><h2>Hunt a mutation</h2><p class=\"muted\">Breadth-first search in the mutation's \
         small configuration; the shortest counterexample opens (seconds) as \
         <code>hunted-&lt;mutation&gt;--&lt;property&gt;</code>, beside any file trace.</p><ul class=\"hunts\">{hunts}</ul></section>\
         </main>\n<script>{OPEN_JS}</script>"
    );
    page("traces", &body)
}

/// Sends a picked file to `POST /traces` and follows the answer.
const OPEN_JS: &str = r"
document.getElementById('trace-file').addEventListener('change', async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  const name = file.name.replace(/\.json$/, '');
  const res = await fetch('/traces?name=' + encodeURIComponent(name), {method: 'POST', body: await file.text()});
  if (res.redirected || res.ok && res.url.indexOf('/trace/') >= 0) { window.location = res.url; return; }
  document.open(); document.write(await res.text()); document.close();
});
";

/// The timeline page of trace `name`, opened at `step` (else where its
/// property breaks).
#[must_use]
pub fn timeline(name: &str, key: &str, trace: &Checked, step: Option<usize>) -> String {
    let data = serde_json::json!({
        "name": name,
        "explorer": format!("/explorer/{key}/"),
        "step": step,
        "analysis": trace.analysis,
        "trace": trace.json,
    });
    // `<` only occurs inside JSON strings, where `\u003c` means the same.
    let data = data.to_string().replace('<', "\\u003c");
    let body = format!(
        "<main id=\"app\" class=\"timeline-page\"><noscript>The timeline needs JavaScript; \
         the trace itself is at <a href=\"/trace/{0}.json\">/trace/{0}.json</a>.</noscript></main>\n\
         <script id=\"trace-data\" type=\"application/json\">{data}</script>\n\
         <script src=\"/assets/timeline.js\"></script>",
        esc(name)
    );
    page(name, &body)
}

/// A hunt that found nothing.
#[must_use]
pub fn nothing_found(cfg: &ModelConfig) -> String {
    page(
        "no counterexample",
        &format!(
            "<main class=\"problem\"><h1>No counterexample</h1><p>Every property the mutation \
             should break holds in {}.</p><p><a href=\"/traces\">All traces</a></p></main>",
            esc(&cfg.name)
        ),
    )
}
