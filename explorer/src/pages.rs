//! The Explorer's HTML pages. The timeline itself is drawn in the browser by
//! `explorer/assets/timeline.js` from the trace embedded in its page;
//! both assets are compiled into the binary.

use crate::store::Checked;
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

/// What a trace shows, in one line for the list: the property, where it
/// breaks, its length and configuration; or why it cannot be shown.
fn summary(shared: &Shared, name: &str) -> String {
    let checked = shared
        .store
        .text(name)
        .map_err(|p| p.detail)
        .and_then(|text| crate::store::check(&text));
    match checked {
        Ok(c) => format!(
            "{} broken at step {} of {}, in {}",
            c.json
                .get("property")
                .and_then(|p| p.as_str())
                .unwrap_or("a property"),
            c.broken_at,
            c.steps.saturating_sub(1),
            c.config.name
        ),
        Err(why) => format!("cannot be shown: {why}"),
    }
}

/// The trace list, the file picker and the mutations to hunt.
#[must_use]
pub fn index(shared: &Shared) -> String {
    let key = shared.upstreams.key(&shared.config).unwrap_or_default();
    let traces: String = shared
        .store
        .names()
        .iter()
        .map(|n| {
            format!(
                "<li><a href=\"/trace/{0}\">{0}</a> <span class=\"muted\">{1}</span></li>",
                esc(n),
                esc(&summary(shared, n))
            )
        })
        .collect();
    let traces = if traces.is_empty() {
        "<p>No trace yet: open a file, hunt a mutation below, or start with \
         <code>tally explore --trace FILE</code>.</p>"
            .to_string()
    } else {
        format!("<ul class=\"traces\">{traces}</ul>")
    };
    let hunts: String = Mutation::ALL
        .iter()
        .map(|m| {
            format!(
                "<li><a href=\"/hunt/{0}\">{0}</a> <span class=\"muted\">breaks {1}</span></li>",
                esc(m.name()),
                esc(&mutations::expected(*m).join(" or "))
            )
        })
        .collect();
    let body = format!(
        "<main class=\"index\">\
         <section><h2>Configuration</h2><p><b>{cfg}</b>: \
         <a id=\"explorer-root\" href=\"/explorer/{key}/\">browse its state space in stateright's Explorer</a></p></section>\
         <section><h2>Counterexamples</h2>{traces}\
         <p><label>Open a trace written by <code>tally check --trace-out</code>: \
         <input type=\"file\" id=\"trace-file\" accept=\".json,application/json\"></label></p></section>\
         <section><h2>Hunt a mutation</h2><p class=\"muted\">Breadth-first search in the mutation's \
         small configuration; the shortest counterexample opens (seconds).</p><ul class=\"hunts\">{hunts}</ul></section>\
         </main>\n<script>{OPEN_JS}</script>",
        cfg = esc(&shared.config.name),
        key = esc(&key),
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
