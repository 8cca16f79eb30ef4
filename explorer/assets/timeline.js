// The counterexample timeline: one lane per host, one row per instance with
// its ground truth (thick bar) and the manager's ledger view (thin bar),
// messages as arrows between the manager and the hosts, and the step where
// the property breaks highlighted. Reads the trace embedded in the page
// (`#trace-data`); fetches nothing. Written without libraries on purpose:
// the page must work with no network.
'use strict';

(function () {
  const D = JSON.parse(document.getElementById('trace-data').textContent);
  const T = D.trace;
  const steps = T.steps;
  const last = steps.length - 1;
  const SVG = 'http://www.w3.org/2000/svg';

  // Geometry: a column per state; actions happen on the boundaries.
  // With a store (two manager processes), the manager lane grows a line per
  // process: its role, term and state at each step.
  const HA = steps.length > 0 && (steps[0].managers || []).length > 0;
  const W = 46, LEFT = 150, HEAD = 140, MANAGER_H = HA ? 72 : 44, HOST_HEAD = 26, ROW_H = 30, GAP = 10;
  const xb = (i) => LEFT + i * W; // boundary before state i
  const LATE_TICKS = 2;

  // ---- reading the trace -------------------------------------------------

  const kindOf = (a) => (a == null ? null : typeof a === 'string' ? a : Object.keys(a)[0]);
  const argOf = (a) => (a != null && typeof a === 'object' ? a[kindOf(a)] : null);
  // The actions that move a message, and the message's index.
  const MOVES = ['deliver', 'deliver-duplicate', 'lose', 'deliver-to', 'deliver-then-pause'];
  const msgIndex = (a) => (['deliver-to', 'deliver-then-pause'].includes(kindOf(a)) ? argOf(a)[0] : argOf(a));
  const phaseName = (p) => (typeof p === 'string' ? p : Object.keys(p)[0]);
  const phaseLabel = (p) => (typeof p === 'string' ? p : `${Object.keys(p)[0]} (${Object.values(p)[0]})`);
  const types = (T.config.core && T.config.core.process_types) || [];
  const instName = (id) => {
    const t = types[id.slot.process_type];
    return `${t ? t.name : '?'}.${id.slot.index + 1}@g${id.generation}`;
  };
  const explorerHref = (i) =>
    steps[i] && steps[i].explorer_path != null ? `${D.explorer}#/steps/${steps[i].explorer_path}` : null;

  function actionShort(i) {
    const a = steps[i].action, k = kindOf(a), x = argOf(a);
    if (k == null) return '';
    const msg = () => {
      const m = steps[i].messages[msgIndex(a)];
      return m ? `${m.kind} h${m.host}` : `#${msgIndex(a)}`;
    };
    switch (k) {
      case 'tick': return 'tick';
      case 'tick-with-clock-stall': return `tick, h${x} stalls`;
      case 'deliver': return `deliver ${msg()}`;
      case 'deliver-duplicate': return `dup ${msg()}`;
      case 'lose': return `lose ${msg()}`;
      case 'boot-completes': return `up ${instName(x[0])}`;
      case 'boot-fails': return `boot fails ${instName(x[0])}`;
      case 'dyno-crashes': return `crash ${instName(x[0])}`;
      case 'host-crashes': return `h${x} crashes`;
      case 'partition': return `h${x} cut off`;
      case 'heal': return `h${x} heals`;
      case 'manager-restarts': return 'manager restarts';
      case 'deliver-to': return `${msg()} → m${x[1]}`;
      case 'deliver-then-pause': return `${msg()} → m${x[1]}, pauses`;
      case 'manager-pauses': return `m${x} pauses`;
      case 'manager-resumes': return `m${x} resumes`;
      case 'manager-crashes': return `m${x} crashes`;
      case 'takes-over': return `m${x} takes over`;
      case 'tick-with-manager-clock-stall': return `tick, m${x} stalls`;
      case 'keep-alives-cut': return `m${x} keep-alives cut`;
      case 'keep-alives-restored': return `m${x} keep-alives back`;
      case 'command': return 'command';
      default: return k;
    }
  }

  // The action from state i, with the message it moves.
  function actionLong(i) {
    const a = steps[i].action, k = kindOf(a);
    const m = MOVES.includes(k) ? steps[i].messages[msgIndex(a)] : null;
    const what = m ? ` — ${m.kind} ${m.kind === 'report' ? 'from' : 'to'} host ${m.host}: ${m.summary}` : '';
    return `${steps[i].action_label}${what}`;
  }

  // Instance rows per host, in order of first appearance.
  const hosts = [];
  for (let h = 0; h < T.config.hosts; h++) hosts.push({ host: h, rows: [] });
  const note = (h, name) => {
    const lane = hosts[h];
    if (lane && !lane.rows.includes(name)) lane.rows.push(name);
  };
  // A second process of one instance on one host (a launch started twice:
  // the very thing a picture of `trust-late-messages` must show) gets a row
  // of its own, `clock.1@g1 #2`.
  const copy = (name, k) => (k === 0 ? name : `${name} #${k + 1}`);
  const copies = (s, h, name) => s.processes.filter((p) => p.host === h && p.instance === name);
  for (const s of steps) {
    s.processes.forEach((p) => copies(s, p.host, p.instance).forEach((_, k) => note(p.host, copy(p.instance, k))));
    s.ledger.forEach((r) => note(r.host, r.instance));
    s.agents.forEach((a) => a.instances.forEach((x) => note(a.host, x[0])));
  }
  // The instance of a row, and which of its copies the row shows.
  const rowOf = (row) => {
    const m = /^(.*) #(\d+)$/.exec(row);
    return m ? { name: m[1], k: Number(m[2]) - 1 } : { name: row, k: 0 };
  };

  function truthAt(i, h, row) {
    const s = steps[i];
    const { name, k } = rowOf(row);
    const p = copies(s, h, name)[k];
    if (!p) return null;
    const agent = s.agents.find((a) => a.host === h);
    const local = agent && agent.instances.find((x) => x[0] === name);
    if (p.dying || (local && local[1] === 'killing')) return 'stopping';
    return p.booting ? 'booting' : 'up';
  }
  function ledgerAt(i, h, row) {
    const { name, k } = rowOf(row);
    const r = k === 0 && steps[i].ledger.find((r) => r.host === h && r.instance === name);
    return r ? r.phase : null;
  }
  // Runs of equal states: [{from, to, state}] with `to` inclusive.
  function runs(stateAt, same) {
    const out = [];
    for (let i = 0; i <= last; i++) {
      const st = stateAt(i);
      const prev = out[out.length - 1];
      if (st == null) continue;
      if (prev && prev.to === i - 1 && same(prev.state, st)) prev.to = i;
      else out.push({ from: i, to: i, state: st });
    }
    return out;
  }
  function endReason(i) {
    // The process was there in state i and is gone in state i + 1.
    const k = kindOf(steps[i].action);
    const ev = (steps[i + 1] && steps[i + 1].events) || [];
    if (ev.some((e) => e.startsWith('self-fenced'))) return 'fenced';
    if (k === 'boot-fails') return 'boot failed';
    if (k === 'dyno-crashes') return 'crashed';
    if (k === 'host-crashes') return 'killed: host crash';
    return 'killed';
  }

  // Messages: from the state where one first appears to the action that
  // delivers (or loses) it.
  function arrows() {
    const out = [];
    const dupKeys = new Set();
    steps.forEach((s, k) => {
      const kind = kindOf(s.action);
      if (!MOVES.includes(kind)) return;
      const idx = msgIndex(s.action);
      const msg = s.network[idx], row = s.messages[idx];
      if (!msg || !row) return;
      const key = JSON.stringify(msg);
      let from = k;
      while (from > 0 && steps[from - 1].network.some((m) => JSON.stringify(m) === key)) from--;
      const dup = kind === 'deliver-duplicate' || dupKeys.has(key);
      if (kind === 'deliver-duplicate') dupKeys.add(key);
      const dt = s.now - steps[from].now;
      // A message that waited while time advanced twice or more.
      out.push({ from, to: k + 1, step: k, kind, row, dup, late: dt >= LATE_TICKS, dt });
    });
    return out;
  }

  // ---- drawing ----------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  const tip = (text) => el('title', {}, text);

  // Lane positions.
  let y = HEAD;
  const managerY = y + MANAGER_H / 2;
  y += MANAGER_H + GAP;
  for (const lane of hosts) {
    lane.top = y;
    lane.mid = y + HOST_HEAD / 2;
    y += HOST_HEAD + Math.max(1, lane.rows.length) * ROW_H + GAP;
    lane.bottom = y - GAP;
  }
  const height = y + 10;
  // Wide enough for the managers' legend, however short the trace.
  const width = Math.max(xb(steps.length) + 20, HA ? LEFT + 640 : 0);
  const svg = el('svg', { id: 'timeline', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
  svg.append(el('defs', {},
    el('marker', { id: 'arrowhead', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      el('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' })),
    el('pattern', { id: 'cut-off', width: 8, height: 8, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
      el('line', { x1: 0, y1: 0, x2: 0, y2: 8, class: 'hatch' }))));

  // The broken step, under everything.
  const broken = T.broken_at;
  svg.append(el('rect', { id: 'violation-column', class: 'violation-column', x: xb(broken), y: HEAD - 28, width: W, height: height - HEAD + 18 },
    tip(T.summary)));
  const selection = el('rect', { class: 'selected-column', x: 0, y: HEAD - 28, width: W, height: height - HEAD + 18 });
  svg.append(selection);

  // Header: step numbers, time, action.
  steps.forEach((s, i) => {
    const x = xb(i) + W / 2;
    svg.append(el('text', { x, y: 16, class: 'step-number' + (i === broken ? ' broken' : '') }, String(i)));
    svg.append(el('text', { x, y: 30, class: 'step-time' }, `t${s.now}`));
    const href = explorerHref(i);
    if (href) {
      svg.append(el('a', { href, class: 'explorer-link', 'data-step': i },
        el('text', { x, y: 44, class: 'explorer-glyph' }, '↗'),
        tip(`state ${i} in stateright's Explorer`)));
    }
    if (s.action != null) {
      const ay = HEAD - 30;
      svg.append(el('text', { x: xb(i + 1) - 2, y: ay, class: 'action-label', transform: `rotate(-35 ${xb(i + 1) - 2} ${ay})` },
        actionShort(i), tip(`action ${i} → ${i + 1}: ${s.action_label || ''}`)));
    }
  });
  if (broken <= last) {
    svg.append(el('text', { x: xb(broken) + W / 2, y: HEAD - 16, class: 'broken-mark' }, '✗ ' + T.property.split(' ')[0]));
  }

  // Lane and instance names go in a group pinned to the left edge of the
  // view (moved with the scroll, on an opaque band), so that they stay in
  // view however far right the timeline is scrolled.
  const pinned = el('g', { class: 'pinned-labels' });
  pinned.append(el('rect', { x: 0, y: HEAD - 6, width: LEFT - 4, height: height - HEAD + 6, class: 'pinned-band' }));

  // Lanes.
  pinned.append(el('text', { x: 8, y: (HA ? managerY - 14 : managerY) + 4, class: 'lane-label' }, HA ? 'managers' : 'manager'));
  svg.append(el('line', { x1: LEFT, x2: xb(steps.length), y1: managerY, y2: managerY, class: 'lane-line' }));
  if (HA) {
    // One line per manager process: L leader, Z deposed but unaware,
    // S standby, D down; its term; ‖ paused, ~ keep-alives cut, ! outside
    // its guard.
    const ROLE = { leader: 'L', zombie: 'Z', standby: 'S', down: 'D' };
    svg.append(el('text', { x: LEFT + 4, y: managerY + 33, class: 'manager-legend' },
      'L leader · Z deposed, unaware · S standby · D down · then its term · ‖ paused · ~ keep-alives cut · ! outside its guard'));
    [0, 1].forEach((p) => {
      const py = managerY + 10 + p * 12;
      pinned.append(el('text', { x: 20, y: py + 3, class: 'instance-label' }, `process ${p}`));
      steps.forEach((s, i) => {
        const m = (s.managers || [])[p];
        if (!m) return;
        const marks = `${ROLE[m.role] || '?'}${m.term != null ? m.term : ''}${m.paused ? '‖' : ''}${m.keepalives_cut ? '~' : ''}${m.term != null && !m.leads ? '!' : ''}`;
        svg.append(el('text', { x: xb(i) + W / 2, y: py + 3, class: `manager-role role-${m.role}`, 'data-step': i, 'data-process': p },
          marks, tip(`state ${i}: process ${p} ${m.role}${m.term != null ? ` in term ${m.term}` : ''}${m.paused ? ', paused' : ''}${m.keepalives_cut ? ', keep-alives cut' : ''}${m.term != null ? (m.leads ? ', within its guard' : ', outside its guard') : ''}${m.pending ? `, ${m.pending} effect(s) waiting` : ''}`)));
      });
    });
  }
  steps.forEach((s, i) => {
    if (s.events.length) {
      svg.append(el('circle', { cx: xb(i), cy: managerY - 12, r: 4, class: 'event-dot' },
        tip(`after action ${i - 1}: ${s.events.join(', ')}`)));
    }
  });
  const culprits = (T.summary || '').match(/[a-z][\w-]*\.\d+@g\d+/g) || [];
  for (const lane of hosts) {
    const hst = lane.host;
    svg.append(el('rect', { x: 2, y: lane.top, width: width - 4, height: lane.bottom - lane.top, class: 'lane-box' }));
    // Partitioned stretches, hatched.
    runs((i) => (steps[i].agents.find((a) => a.host === hst) || {}).partitioned || null, (a, b) => a === b)
      .forEach((r) => svg.append(el('rect', { x: xb(r.from), y: lane.top, width: (r.to - r.from + 1) * W, height: lane.bottom - lane.top, class: 'cut-off' },
        tip(`host ${hst} cut off`))));
    pinned.append(el('text', { x: 8, y: lane.mid + 4, class: 'lane-label' }, `host ${hst}`));
    svg.append(el('line', { x1: LEFT, x2: xb(steps.length), y1: lane.mid, y2: lane.mid, class: 'lane-line' }));
    lane.rows.forEach((name, r) => {
      const top = lane.top + HOST_HEAD + r * ROW_H;
      const row = el('g', { class: 'instance-row', 'data-instance': name, 'data-host': hst });
      pinned.append(el('text', { x: 20, y: top + 13, class: 'instance-label' + (culprits.includes(rowOf(name).name) ? ' culprit' : ''), 'data-instance': rowOf(name).name, 'data-row': name, 'data-host': hst }, name));
      runs((i) => truthAt(i, hst, name), (a, b) => a === b).forEach((run) => {
        row.append(el('rect', {
          x: xb(run.from) + 1, y: top + 2, width: (run.to - run.from + 1) * W - 2, height: 14, rx: 3,
          class: `truth state-${run.state}` + (culprits.includes(rowOf(name).name) && run.from <= broken && broken <= run.to ? ' culprit' : ''),
          'data-instance': rowOf(name).name, 'data-row': name, 'data-host': hst, 'data-state': run.state, 'data-from': run.from, 'data-to': run.to,
        }, tip(`${name} on host ${hst}: ${run.state}, states ${run.from}–${run.to} (ground truth)`)));
        if (run.to < last && truthAt(run.to + 1, hst, name) == null) {
          const why = endReason(run.to);
          row.append(el('text', { x: xb(run.to + 1) + 3, y: top + 13, class: 'end-label' }, '✕ ' + why));
        }
      });
      runs((i) => ledgerAt(i, hst, name), (a, b) => phaseLabel(a) === phaseLabel(b)).forEach((run) => {
        const phase = phaseName(run.state);
        row.append(el('rect', {
          x: xb(run.from) + 1, y: top + 19, width: (run.to - run.from + 1) * W - 2, height: 6, rx: 2,
          class: `ledger phase-${phase}`, 'data-instance': name, 'data-host': hst, 'data-phase': phase,
          'data-from': run.from, 'data-to': run.to,
        }, tip(`${name} in the ledger on host ${hst}: ${phaseLabel(run.state)}, states ${run.from}–${run.to}`)));
      });
      svg.append(row);
    });
  }

  // Messages.
  for (const a of arrows()) {
    const lane = hosts[a.row.host];
    if (!lane) continue;
    const up = a.row.kind === 'report';
    const y1 = up ? lane.mid : managerY, y2 = up ? managerY : lane.mid;
    const x1 = xb(a.from) + 3, x2 = xb(a.to) - 3;
    const cls = ['message', a.row.kind, a.kind === 'lose' ? 'lost' : 'delivered', a.dup ? 'duplicated' : null, a.late ? 'late' : null]
      .filter(Boolean).join(' ');
    const g = el('g', { class: cls, 'data-step': a.step });
    const x2s = a.kind === 'lose' ? (x1 + x2) / 2 : x2, y2s = a.kind === 'lose' ? (y1 + y2) / 2 : y2;
    g.append(el('line', { x1, y1, x2: x2s, y2: y2s, 'marker-end': a.kind === 'lose' ? null : 'url(#arrowhead)' }));
    if (a.kind === 'lose') g.append(el('text', { x: x2s, y: y2s + 4, class: 'lost-mark' }, '✗'));
    const marks = [a.dup ? '×2' : null, a.late ? `late +${a.dt}` : null].filter(Boolean).join(' ');
    if (marks) g.append(el('text', { x: (x1 + x2s) / 2 + 4, y: (y1 + y2s) / 2 - 3, class: 'message-mark' }, marks));
    const verb = a.kind === 'lose' ? 'lost' : a.dup ? 'delivered, and a copy stays in flight' : 'delivered';
    g.append(tip(`${a.row.kind} ${up ? 'from' : 'to'} host ${a.row.host} (sent at ${a.row.sent_at}): ${a.row.summary}; sent before state ${a.from}, ${verb} by action ${a.step}${a.late ? `, ${a.dt} tick(s) late` : ''}`));
    svg.append(g);
  }

  // Click anywhere in a column to select its state.
  steps.forEach((s, i) => {
    const hit = el('rect', { x: xb(i), y: 0, width: W, height, class: 'column-hit', 'data-step': i });
    hit.addEventListener('click', () => select(i));
    svg.append(hit);
  });
  // Links stay clickable above the hit areas; the names above everything.
  svg.querySelectorAll('a.explorer-link').forEach((a) => svg.append(a));
  svg.append(pinned);

  // ---- page -------------------------------------------------------------

  const app = document.getElementById('app');
  const brokenHref = explorerHref(broken);
  app.append(
    h('section', { class: 'summary' },
      h('h1', { text: D.name }),
      h('p', { class: 'muted', text: `configuration ${T.config.name} · ${steps.length} states · property ${T.property}` }),
      h('div', { id: 'violation', class: 'violation', 'data-step': broken, 'data-property': T.property },
        h('a', { href: `?step=${broken}`, class: 'violation-step', text: `Step ${broken}` }),
        ' — ', h('span', { class: 'violation-text', text: T.summary }),
        brokenHref ? h('span', {}, ' · ', h('a', { href: brokenHref, id: 'violation-explorer-link', text: "this state in stateright's Explorer" })) : null)),
    legend(),
    h('div', { class: 'scroll', id: 'timeline-scroll' }, svg),
    h('section', { id: 'detail', class: 'detail' }));
  const scroller = document.getElementById('timeline-scroll');
  scroller.addEventListener('scroll', () => {
    pinned.setAttribute('transform', `translate(${scroller.scrollLeft} 0)`);
  });

  /// Scrolls the timeline so that state `i`'s column is in view, beside the
  /// pinned names (centred when it was out of view).
  function reveal(i) {
    const x = xb(i), view = scroller.clientWidth;
    if (x - LEFT < scroller.scrollLeft || x + W > scroller.scrollLeft + view) {
      scroller.scrollLeft = Math.max(0, x - LEFT - (view - LEFT - W) / 2);
    }
  }

  function legend() {
    const sw = (cls, text) => h('span', { class: 'swatch' }, h('i', { class: cls }), text);
    return h('p', { class: 'legend' },
      h('b', { text: 'ground truth ' }), sw('truth-booting', 'booting'), sw('truth-up', 'up'), sw('truth-stopping', 'stopping'),
      h('b', { text: ' ledger ' }), sw('ledger-launching', 'launching'), sw('ledger-up', 'up'), sw('ledger-stopping', 'stopping'), sw('ledger-unknown', 'unknown'),
      h('b', { text: ' messages ' }), sw('msg-delivered', 'delivered'), sw('msg-lost', 'lost ✗'), h('span', { class: 'swatch', text: '×2 duplicated' }),
      h('span', { class: 'swatch', text: 'late +n: in flight n ≥ 2 ticks' }),
      h('span', { class: 'swatch', text: '↗ open the state in stateright' }));
  }

  function table(headers, rows) {
    if (!rows.length) return h('p', { class: 'muted', text: 'none' });
    return h('table', {}, h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { text: t })))),
      h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', { text: String(c) }))))));
  }

  // The manager's flow control in words, not JSON.
  const apps = [...new Set(types.map((t) => t.app))];
  const perType = (v) => (v || []).map((n, t) => `${types[t] ? types[t].name : t}=${n}`).join(' ');
  function breakerWords(b) {
    if (!b || typeof b !== 'object') return String(b);
    switch (b.state) {
      case 'closed': {
        const n = b.failing ? `${b.failing.length} failing app(s)${b.failing.length ? ` (${b.failing.map((a) => apps[a] || a).join(', ')})` : ''}`
          : `${b.failures} failure(s)`;
        return `closed: ${n} in the window from t${b.window_start}`;
      }
      case 'open': return `open since t${b.since}${b.manual ? ', by an operator' : ''}`;
      case 'half-open': return `half-open: ${b.probe ? `probing with ${instName(b.probe)}` : 'one probe may launch'}`;
      default: return JSON.stringify(b);
    }
  }
  function managerRows(m) {
    const rows = [];
    for (const [k, v] of Object.entries(m)) {
      if (k === 'budgets') {
        v.forEach((b, a) => rows.push([`budget of ${apps[a] || a}`,
          `${b.tokens_milli / 1000} token(s), probe ${b.probe_ready ? 'ready' : `at t${b.probe_refresh_at}`}`]));
      } else if (k === 'breakers') {
        v.forEach((b, a) => rows.push([`breaker of ${apps[a] || a}`, breakerWords(b)]));
      } else if (k === 'fleet_breaker') {
        rows.push(['fleet breaker', breakerWords(v)]);
      } else if (k === 'formation') {
        rows.push(['formation', perType(v)]);
      } else if (k === 'free_launches_granted') {
        rows.push(['F (free launches granted)', perType(v)]);
      } else {
        rows.push([k, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
      }
    }
    return rows;
  }

  // S3 term by term, for the fleet and each app; a bound exceeded in red.
  function boundTable(rows) {
    if (!rows.length) return h('p', { class: 'muted', text: 'not in this trace' });
    const r = (b) => b.refill_milli / 1000;
    return h('table', {}, h('thead', {}, h('tr', {}, ...['', 'launches', 'bound', 'F', 'n·B', 'r·S', 'n·P']
      .map((t) => h('th', { text: t })))),
      h('tbody', {}, ...rows.map((b) => h('tr', { class: b.launches > b.bound ? 'over' : null, 'data-scope': b.scope },
        ...[b.scope, b.launches, b.bound, b.first_launches, `${b.buckets}·${b.capacity}`,
          `${r(b)}·${b.successful_boots}`, `${b.buckets}·${b.cooldowns}`].map((c) => h('td', { text: String(c) }))))));
  }

  function select(i) {
    i = Math.max(0, Math.min(last, i));
    selection.setAttribute('x', xb(i));
    reveal(i);
    const url = new URL(window.location.href);
    url.searchParams.set('step', i);
    history.replaceState(null, '', url.pathname + url.search);
    const s = steps[i];
    const href = explorerHref(i);
    const detail = document.getElementById('detail');
    detail.setAttribute('data-step', i);
    detail.replaceChildren(...[
      h('h2', {}, `State ${i} of ${last} · t${s.now} `,
        h('button', { id: 'prev', type: 'button', text: '◀' }), h('button', { id: 'next', type: 'button', text: '▶' })),
      href ? h('p', {}, h('a', { id: 'explorer-step-link', href, text: `Open state ${i} in stateright's Explorer ↗` }))
        : h('p', { class: 'muted', text: 'this state has no path in stateright’s Explorer' }),
      h('p', {}, h('b', { text: 'Reached by: ' }), i > 0 ? actionLong(i - 1) : 'the initial state'),
      s.events.length ? h('p', {}, h('b', { text: 'Which caused: ' }), s.events.join(', ')) : null,
      s.violated.length ? h('p', { class: 'broken-list' }, h('b', { text: 'Broken here: ' }), s.violated.join(', ')) : null,
      h('p', {}, h('b', { text: 'Next action: ' }), s.action != null ? actionLong(i) : 'none (end of trace)'),
      h('div', { class: 'tables' },
        h('div', {}, h('h3', { text: 'Ground truth' }), table(['instance', 'host', 'state'],
          s.processes.map((p, j) => {
            const row = copy(p.instance, s.processes.slice(0, j).filter((q) => q.host === p.host && q.instance === p.instance).length);
            return [row, p.host, truthAt(i, p.host, row)];
          }))),
        h('div', {}, h('h3', { text: 'Ledger' }), table(['instance', 'host', 'phase'],
          s.ledger.map((r) => [r.instance, r.host, phaseLabel(r.phase)]))),
        h('div', {}, h('h3', { text: 'Agents' }), table(['host', 'inc.', 'lag', 'cut off', ...(HA ? ['term heard'] : []), 'instances (phase, lease until)'],
          s.agents.map((a) => [a.host, a.incarnation, a.lag, a.partitioned ? 'yes' : '', ...(HA ? [a.term] : []),
            a.instances.map((x) => `${x[0]} ${x[1]} ≤${x[2]}`).join(', ')]))),
        HA ? h('div', { id: 'managers' }, h('h3', { text: s.store
          ? `Managers · store: term ${s.store.term}, key ${s.store.holder != null ? `held by process ${s.store.holder} until t${s.store.key_until}` : 'free'}${s.store.journal_differs ? ', journal ahead of the leader’s ledger or behind it' : ''}`
          : 'Managers' }),
        table(['process', 'role', 'term', 'guard', 'paused', 'keep-alives', 'clock lag', 'waiting effects'],
          (s.managers || []).map((m) => [m.process, m.role, m.term != null ? m.term : '', m.term != null ? (m.leads ? 'acts' : 'outside') : '',
            m.paused ? 'yes' : '', m.keepalives_cut ? 'cut' : '', m.lag, m.pending || '']))) : null,
        h('div', {}, h('h3', { text: 'In flight' }), table(['#', 'kind', 'host', 'sent at', 'carries'],
          s.messages.map((m, k) => [k, m.kind, m.host, m.sent_at, m.summary]))),
        h('div', { id: 'launch-bound' }, h('h3', { text: 'Launch bound (S3): launches ≤ F + n·B + r·S + n·P' }),
          boundTable(s.bound || [])),
        h('div', {}, h('h3', { text: 'Manager' }), table(['field', 'value'], managerRows(s.manager))))].filter((c) => c != null));
    document.getElementById('prev').addEventListener('click', () => select(i - 1));
    document.getElementById('next').addEventListener('click', () => select(i + 1));
  }

  document.addEventListener('keydown', (ev) => {
    const cur = Number(document.getElementById('detail').getAttribute('data-step'));
    if (ev.key === 'ArrowLeft') select(cur - 1);
    if (ev.key === 'ArrowRight') select(cur + 1);
  });
  select(D.step != null ? D.step : broken);
  document.body.setAttribute('data-ready', 'true');
})();
