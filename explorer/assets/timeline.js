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
  const W = 46, LEFT = 150, MANAGER_H = HA ? 72 : 44, HOST_HEAD = 26, ROW_H = 30, GAP = 10;
  const xb = (i) => LEFT + i * W; // boundary before state i
  const LATE_TICKS = 2;

  // ---- reading the trace -------------------------------------------------

  // The trace's message summaries print the core's exit outcomes glued
  // (`bootfailed`): in words.
  const OUTCOMES = { bootfailed: 'boot failed', neverstarted: 'never started' };
  steps.forEach((s) => s.messages.forEach((m) => {
    m.summary = m.summary.replace(/\b(bootfailed|neverstarted)\b/g, (w) => OUTCOMES[w]);
  }));
  const kindOf = (a) => (a == null ? null : typeof a === 'string' ? a : Object.keys(a)[0]);
  const argOf = (a) => (a != null && typeof a === 'object' ? a[kindOf(a)] : null);
  // The actions that move a message, and the message's index.
  const MOVES = ['deliver', 'deliver-duplicate', 'lose', 'deliver-to', 'deliver-then-pause'];
  const msgIndex = (a) => (['deliver-to', 'deliver-then-pause'].includes(kindOf(a)) ? argOf(a)[0] : argOf(a));
  const phaseName = (p) => (typeof p === 'string' ? p : Object.keys(p)[0]);
  // `{stopping: 'boot-timed-out'}` reads `stopping (boot timed out)`.
  const phaseLabel = (p) => (typeof p === 'string' ? p
    : `${Object.keys(p)[0]} (${typeof Object.values(p)[0] === 'string' ? Object.values(p)[0].replace(/-/g, ' ') : fmt(Object.values(p)[0])})`);
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

  // The action from state i in words, with the message it moves (never
  // Rust's `Debug` text: stateright's own label is shown beside it only
  // where it is short, to match its Explorer's pane).
  function actionLong(i) {
    const s = steps[i], a = s.action, k = kindOf(a), x = argOf(a);
    if (k == null) return '';
    const m = MOVES.includes(k) ? s.messages[msgIndex(a)] : null;
    const msg = m ? (m.kind === 'report' ? `host ${m.host}'s report (${m.summary})` : `the manager's reply (${m.summary})`) : 'a message';
    const lost = m ? (m.kind === 'report' ? msg : `the manager's reply to host ${m.host} (${m.summary})`) : msg;
    const to = m ? (m.kind === 'report' ? 'the manager' : `host ${m.host}`) : 'its receiver';
    switch (k) {
      case 'tick': return `time passes: t${s.now} → t${s.now + 1}`;
      case 'tick-with-clock-stall': return `time passes, t${s.now} → t${s.now + 1}; host ${x}'s clock stalls`;
      case 'tick-with-manager-clock-stall': return `time passes, t${s.now} → t${s.now + 1}; manager process ${x}'s clock stalls`;
      case 'deliver': return `${to} receives ${msg}`;
      case 'deliver-duplicate': return `${to} receives ${msg}, and the network keeps a copy in flight`;
      case 'lose': return `the network loses ${lost}`;
      case 'deliver-to': return `manager process ${x[1]} receives ${msg}`;
      case 'deliver-then-pause': return `manager process ${x[1]} receives ${msg}, then pauses before sending its effects`;
      case 'boot-completes': return `${instName(x[0])} finishes booting on host ${x[1]}`;
      case 'boot-fails': return `${instName(x[0])}'s boot fails on host ${x[1]}`;
      case 'dyno-crashes': return `${instName(x[0])} crashes on host ${x[1]}`;
      case 'host-crashes': return `host ${x} crashes: its processes die, its agent restarts empty`;
      case 'partition': return `host ${x} is cut off (its processes run on, unheard)`;
      case 'heal': return `host ${x} is reachable again`;
      case 'manager-restarts': return 'the manager restarts from its journal';
      case 'manager-pauses': return `manager process ${x} pauses`;
      case 'manager-resumes': return `manager process ${x} resumes`;
      case 'manager-crashes': return `manager process ${x} crashes`;
      case 'takes-over': return `manager process ${x} takes the leader key`;
      case 'keep-alives-cut': return `manager process ${x}'s keep-alives to the store are cut`;
      case 'keep-alives-restored': return `manager process ${x}'s keep-alives reach the store again`;
      case 'command': return 'an operator\'s command is issued';
      default: return actionShort(i);
    }
  }
  // stateright's label for action i when it reads as a name (`Deliver(0)`),
  // not a struct dump.
  const stateLabel = (i) => {
    const l = steps[i].action_label;
    return l && !/[{}]/.test(l) ? l : null;
  };
  // A value in words: no JSON braces.
  function fmt(v) {
    if (v == null) return '—';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (Array.isArray(v)) return v.length ? v.map(fmt).join(', ') : 'none';
    if (typeof v === 'object') return Object.entries(v).map(([k, x]) => `${k.replace(/_/g, ' ')} ${fmt(x)}`).join(', ');
    return String(v);
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

  // Action labels slant up from the boundary after their state, between
  // the header rows (step, time, ↗, down to y = 50) and the lanes: the
  // header is as tall as the longest label needs (one cut at LABEL_MAX
  // characters ends in '…', whole in its tooltip), and the picture wide
  // enough for the last label's run to the right.
  const LABEL_MAX = 26, CHAR_W = 6.1, SLANT = 35 * Math.PI / 180;
  const labels = steps.map((s, i) => {
    const t = actionShort(i);
    return t.length > LABEL_MAX ? `${t.slice(0, LABEL_MAX - 1)}…` : t;
  });
  const labelChars = Math.max(8, ...labels.map((t) => t.length));
  const HEAD = Math.ceil(52 + 30 + 4 + labelChars * CHAR_W * Math.sin(SLANT));
  const labelRun = labelChars * CHAR_W * Math.cos(SLANT);

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
  const width = Math.ceil(Math.max(xb(steps.length) + 20, xb(last) + labelRun + 12, HA ? LEFT + 640 : 0));
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
        labels[i], tip(`action ${i} → ${i + 1}: ${actionLong(i)}`)));
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

  // A table of state i's rows ({key, cells, attrs}) beside state i - 1's:
  // a row new at this step is marked `added`, a cell that differs
  // `changed` (its tooltip says what it was), a row gone is kept, struck
  // through, as `removed`; columns in `ignore` (a message's index, which
  // shifts as others go) are not compared. Returns the table and whether
  // anything changed.
  function diffTable(headers, rows, prev, ignore = []) {
    const before = new Map((prev || []).map((r) => [r.key, r]));
    const now = new Set(rows.map((r) => r.key));
    let changed = false;
    const tr = (r, cls, cellCls) => h('tr', { ...(r.attrs || {}), class: [r.attrs && r.attrs.class, cls].filter(Boolean).join(' ') || null, 'data-key': r.key },
      ...r.cells.map((c, k) => {
        const was = cellCls ? cellCls(k) : null;
        return h('td', { text: String(c), class: was != null ? 'changed' : null, title: was != null ? `was: ${was}` : null });
      }));
    const body = rows.map((r) => {
      const p = before.get(r.key);
      if (prev && !p) { changed = true; return tr(r, 'added'); }
      if (!p) return tr(r, null);
      const differs = (k) => (!ignore.includes(k) && String(p.cells[k]) !== String(r.cells[k]) ? String(p.cells[k]) : null);
      if (r.cells.some((_, k) => differs(k) != null)) changed = true;
      return tr(r, null, differs);
    });
    for (const p of prev || []) {
      if (!now.has(p.key)) { changed = true; body.push(tr(p, 'removed')); }
    }
    const out = body.length
      ? h('table', {}, h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { text: t })))), h('tbody', {}, ...body))
      : h('p', { class: 'muted', text: 'none' });
    return { el: out, changed };
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
      default: return fmt(b);
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
        rows.push([k.replace(/_/g, ' '), fmt(v)]);
      }
    }
    return rows;
  }

  // S3 term by term, for the fleet and each app; a bound exceeded in red.
  const BOUND_HEADERS = ['', 'launches', 'bound', 'F', 'n·B', 'r·S', 'n·P'];
  function boundRows(rows) {
    const r = (b) => b.refill_milli / 1000;
    return rows.map((b) => ({ key: b.scope, attrs: { class: b.launches > b.bound ? 'over' : null, 'data-scope': b.scope },
      cells: [b.scope, b.launches, b.bound, b.first_launches, `${b.buckets}·${b.capacity}`,
        `${r(b)}·${b.successful_boots}`, `${b.buckets}·${b.cooldowns}`] }));
  }

  // State i's variables, each a table of keyed rows.
  function variables(i) {
    const s = steps[i];
    const messageKeys = new Map();
    const vars = [
      { id: 'truth', title: 'Ground truth', headers: ['instance', 'host', 'state'],
        rows: s.processes.map((p, j) => {
          const row = copy(p.instance, s.processes.slice(0, j).filter((q) => q.host === p.host && q.instance === p.instance).length);
          return { key: `${row}/${p.host}`, cells: [row, p.host, truthAt(i, p.host, row)] };
        }) },
      { id: 'ledger', title: 'Ledger', headers: ['instance', 'host', 'phase'],
        rows: s.ledger.map((r) => ({ key: `${r.instance}/${r.host}`, cells: [r.instance, r.host, phaseLabel(r.phase)] })) },
      { id: 'agents', title: 'Agents', headers: ['host', 'inc.', 'lag', 'cut off', ...(HA ? ['term heard'] : []), 'instances (phase, lease until)'],
        rows: s.agents.map((a) => ({ key: `host ${a.host}`, cells: [a.host, a.incarnation, a.lag, a.partitioned ? 'yes' : '', ...(HA ? [a.term] : []),
          a.instances.map((x) => `${x[0]} ${fmt(x[1])} ≤t${x[2]}`).join(', ')] })) },
    ];
    if (HA) {
      vars.push({ id: 'managers', title: s.store
        ? `Managers · store: term ${s.store.term}, key ${s.store.holder != null ? `held by process ${s.store.holder} until t${s.store.key_until}` : 'free'}${s.store.journal_differs ? ', journal ahead of the leader’s ledger or behind it' : ''}`
        : 'Managers',
      headers: ['process', 'role', 'term', 'guard', 'paused', 'keep-alives', 'clock lag', 'waiting effects'],
      rows: (s.managers || []).map((m) => ({ key: `process ${m.process}`, cells: [m.process, m.role, m.term != null ? m.term : '', m.term != null ? (m.leads ? 'acts' : 'outside') : '',
        m.paused ? 'yes' : '', m.keepalives_cut ? 'cut' : '', m.lag, m.pending || ''] })) });
    }
    vars.push(
      { id: 'in-flight', title: 'In flight', headers: ['#', 'kind', 'host', 'sent at', 'carries'], ignore: [0],
        rows: s.messages.map((m, k) => {
          const base = `${m.kind}/${m.host}/${m.sent_at}/${m.summary}`;
          const n = (messageKeys.get(base) || 0) + 1;
          messageKeys.set(base, n);
          return { key: `${base}#${n}`, cells: [k, m.kind, m.host, `t${m.sent_at}`, m.summary] };
        }) },
      { id: 'launch-bound', title: 'Launch bound (S3): launches ≤ F + n·B + r·S + n·P', headers: BOUND_HEADERS,
        rows: boundRows(s.bound || []), empty: 'not in this trace' },
      { id: 'manager', title: 'Manager', headers: ['field', 'value'],
        rows: managerRows(s.manager).map(([k, v]) => ({ key: k, cells: [k, v] })) });
    return vars;
  }

  // The properties broken at state i: at the breaking step only the one the
  // banner names (others false there broke earlier, or at once beside it:
  // they are listed apart, each with the step it broke at); elsewhere those
  // that break at this very step.
  function brokenLines(i) {
    const s = steps[i];
    const since = (p) => { let k = i; while (k > 0 && steps[k - 1].violated.includes(p)) k--; return k; };
    const here = i === broken ? [T.property] : s.violated.filter((p) => since(p) === i);
    const also = s.violated.filter((p) => !here.includes(p));
    return [
      here.length ? h('p', { class: 'broken-list', id: 'broken-here' }, h('b', { text: 'Broken here: ' }), here.join(', ')) : null,
      also.length ? h('p', { class: 'muted', id: 'also-false' }, h('b', { text: 'Also false in this state: ' }),
        also.map((p) => `${p} (since step ${since(p)})`).join(', ')) : null,
    ];
  }

  // ---- why it broke --------------------------------------------------

  const slotOf = (inst) => inst.replace(/@g\d+$/, '');
  const genOf = (inst) => Number((/@g(\d+)$/.exec(inst) || [])[1]);
  const typeOf = (inst) => types.find((t) => t.name === inst.split('.')[0]);
  const at = (i) => `step ${i} (t${steps[i].now})`;
  const stepLink = (i, text) => h('a', { href: `?step=${i}`, class: 'step-link', 'data-step': i, text: text || at(i) });
  const line = (...parts) => h('li', {}, ...parts);

  // How process `k` of `inst` on host `hst`, running at step b, came to
  // run, and what the ledger believed of it: the manager's decision, the
  // launch reaching the host, its boot, its lease, the ledger at b.
  function story(inst, hst, k, b) {
    let s = b;
    while (s > 0 && copies(steps[s - 1], hst, inst).length > k) s--;
    const out = [];
    const decided = steps.findIndex((st, i) => i <= b && st.ledger.some((r) => r.instance === inst));
    if (decided > 0) {
      const r = steps[decided].ledger.find((x) => x.instance === inst);
      const ev = steps[decided].events.length ? ` (${steps[decided].events.join(', ')})` : '';
      out.push(line('Launched by the manager at ', stepLink(decided), ` as generation ${genOf(inst)} on host ${r.host}${ev}, when ${actionLong(decided - 1)}.`));
    } else if (decided === 0) {
      out.push(line(`In the ledger from the initial state, generation ${genOf(inst)}.`));
    } else {
      out.push(line(`Never in the manager's ledger up to step ${b}: the manager did not decide this launch.`));
    }
    if (s === 0) {
      out.push(line(`Running on host ${hst} from the initial state.`));
    } else {
      const a = steps[s - 1].action, kind = kindOf(a);
      let how = actionLong(s - 1);
      if (MOVES.includes(kind)) {
        const key = JSON.stringify(steps[s - 1].network[msgIndex(a)]);
        const dup = steps.findIndex((st, j) => j < s - 1 && kindOf(st.action) === 'deliver-duplicate'
          && JSON.stringify(st.network[msgIndex(st.action)]) === key);
        if (dup >= 0) how += `: a second copy of the reply first delivered at step ${dup + 1}, which the network duplicated`;
      }
      out.push(line(`Started on host ${hst} at `, stepLink(s), `: ${how}.`));
    }
    const upAt = steps.findIndex((st, i) => i > s && i <= b && truthAt(i, hst, copy(inst, k)) === 'up');
    const state = truthAt(b, hst, copy(inst, k));
    out.push(line(state === 'booting' ? `Still booting at step ${b}.`
      : upAt >= 0 ? h('span', {}, 'Boot completed at ', stepLink(upAt), `; ${state} at step ${b}.`) : `${state} at step ${b}.`));
    const agent = steps[b].agents.find((x) => x.host === hst);
    const local = agent && agent.instances.find((x) => x[0] === inst);
    out.push(line(local ? `Host ${hst}'s agent holds it ${fmt(local[1])}, with a lease until t${local[2]} on its clock.`
      : `Host ${hst}'s agent does not track it (it runs unleased).`));
    const r = steps[b].ledger.find((x) => x.instance === inst);
    if (r && r.host === hst) {
      out.push(line(`The ledger at step ${b}: ${phaseLabel(r.phase)} on host ${hst}.`));
    } else if (r) {
      out.push(line(h('b', { text: `The ledger at step ${b} has it on host ${r.host}, not host ${hst}.` })));
    } else {
      let l = b - 1;
      while (l >= 0 && !steps[l].ledger.some((x) => x.instance === inst)) l--;
      if (l >= 0) {
        const gone = l + 1;
        const ev = steps[gone].events.length ? steps[gone].events.join(', ') : actionLong(l);
        out.push(line(h('b', { text: `The ledger at step ${b} does not hold it: ` }), 'it was dropped at ', stepLink(gone),
          ` (${ev}), while it ${state === 'booting' ? 'was still booting' : 'kept running'} on host ${hst}.`));
      } else {
        out.push(line(h('b', { text: `The ledger at step ${b} does not hold it, and never did.` })));
      }
    }
    return out;
  }

  function card(inst, hst, k, b, role) {
    const row = copy(inst, k);
    return h('div', { class: 'why-card', 'data-instance': inst, 'data-row': row, 'data-host': hst },
      h('h4', {}, `${row} on host ${hst}`, role ? h('span', { class: 'muted', text: ` · ${role}` }) : null),
      h('ul', {}, ...story(inst, hst, k, b)));
  }

  // The running processes of state b with their copy index.
  const running = (b) => steps[b].processes.map((p, j) => ({ p,
    k: steps[b].processes.slice(0, j).filter((q) => q.host === p.host && q.instance === p.instance).length }));

  function whyS1(b) {
    const procs = running(b).filter(({ p }) => { const t = typeOf(p.instance); return t && t.kind === 'singleton'; });
    const bySlot = new Map();
    procs.forEach((x) => { const sl = slotOf(x.p.instance); bySlot.set(sl, [...(bySlot.get(sl) || []), x]); });
    const pair = [...bySlot.entries()].find(([, xs]) => xs.length > 1);
    if (!pair) return null;
    const [slot, xs] = pair;
    const held = steps[b].ledger.filter((r) => slotOf(r.instance) === slot);
    return [
      h('p', { class: 'why-lead' }, `${slot} is a singleton, yet at step ${b} ${xs.length === 2 ? 'two' : xs.length} processes of it run: `,
        xs.map(({ p, k }) => `${copy(p.instance, k)} on host ${p.host} (${truthAt(b, p.host, copy(p.instance, k))})`).join(' and '),
        xs.every(({ p }) => p.instance === xs[0].p.instance) ? ` — one launch, ${xs[0].p.instance}, started ${xs.length === 2 ? 'twice' : `${xs.length} times`}` : '',
        `. The ledger holds ${held.length ? held.map((r) => `${r.instance} (${phaseLabel(r.phase)} on host ${r.host})`).join(', ') : 'nothing'} for ${slot}.`),
      h('div', { class: 'why-cards' }, ...xs.map(({ p, k }) => card(p.instance, p.host, k, b))),
    ];
  }

  function whyS2(b) {
    const all = running(b);
    const phantom = all.find(({ p }) => !steps[b].ledger.some((r) => r.instance === p.instance && r.host === p.host && phaseName(r.phase) !== 'stopped'));
    if (!phantom) return null;
    const slot = slotOf(phantom.p.instance);
    const others = all.filter((x) => x !== phantom && slotOf(x.p.instance) === slot);
    const held = steps[b].ledger.filter((r) => slotOf(r.instance) === slot);
    const r = held.find((x) => x.instance === phantom.p.instance);
    const cards = [card(phantom.p.instance, phantom.p.host, phantom.k, b, 'the phantom'),
      ...others.map(({ p, k }) => card(p.instance, p.host, k, b, 'also running in this slot'))];
    const believed = held.filter((x) => !all.some(({ p }) => p.instance === x.instance && p.host === x.host));
    return [
      h('p', { class: 'why-lead' }, `At step ${b}, ${phantom.p.instance} runs on host ${phantom.p.host}, `,
        r ? `but the ledger places it on host ${r.host}` : 'but the manager\'s ledger does not hold it',
        `: nothing will renew, stop or count it. For ${slot} the ledger holds `,
        held.length ? held.map((x) => `${x.instance} (${phaseLabel(x.phase)} on host ${x.host})`).join(', ') : 'nothing', '.',
        believed.length ? ` It believes in ${believed.map((x) => x.instance).join(', ')}, which ${believed.length > 1 ? 'do' : 'does'} not run there.` : ''),
      h('div', { class: 'why-cards' }, ...cards),
    ];
  }

  // L1: the calm point, the bound T, and the state where the behaviour
  // ends, slot by slot, with what holds each vacant one back.
  function whyL1(b) {
    const A = D.analysis || {};
    const S = A.steps || [];
    const calm = S.findIndex((x) => x.calm);
    const end = steps[b];
    const out = [];
    const facts = [];
    if (calm >= 0) {
      facts.push(line(h('b', { text: 'Calm point: ' }), stepLink(calm), ` — no fault strikes from t${A.calm_at} on (every message delivered, every partition healed, every due boot completed before time passes).`));
    }
    if (A.recovery_bound_ticks != null) {
      facts.push(line(h('b', { text: 'Recovery bound: ' }), `T = ${A.recovery_bound_ticks} ticks (Config::recovery_bound_ticks), so every slot must be up by t${A.deadline} = calm t${A.calm_at} + T; the model's time ends at t${A.horizon}.`));
    }
    const convergedAfter = S.findIndex((x, i) => i >= Math.max(calm, 0) && x.converged);
    facts.push(line(h('b', { text: 'Converged: ' }), convergedAfter >= 0
      ? h('span', {}, 'at ', stepLink(convergedAfter), `, but not at step ${b}.`)
      : `never, from the calm point to step ${b} (t${end.now}), where ${kindOf(end.action) == null ? 'this behaviour ends' : 'the bound is passed'}.`));
    let still = b;
    const sig = (i) => JSON.stringify([steps[i].processes, steps[i].ledger]);
    while (still > 0 && sig(still - 1) === sig(b)) still--;
    if (still < b) {
      facts.push(line(h('b', { text: 'Progress stops: ' }), 'ground truth and the ledger are the same from ', stepLink(still),
        ` to step ${b}: ${b - still} more step(s) of messages and ticks change neither.`));
    }
    out.push(h('ul', { class: 'why-facts' }, ...facts));

    // Slot by slot at b.
    const vacant = (S[b] && S[b].vacant) || [];
    const formation = end.manager.formation || [];
    const rows = [];
    types.forEach((t, ti) => {
      for (let n = 0; n < Math.max(formation[ti] || 0, 1); n++) {
        const slot = `${t.name}.${n + 1}`;
        if (n >= (formation[ti] || 0)) {
          if (running(b).some(({ p }) => slotOf(p.instance) === slot)) rows.push({ slot, verdict: 'extra', why: 'runs though the formation wants none' });
          continue;
        }
        const procs = running(b).filter(({ p }) => slotOf(p.instance) === slot);
        const held = end.ledger.filter((r) => slotOf(r.instance) === slot);
        const truth = procs.map(({ p, k }) => `${copy(p.instance, k)} ${truthAt(b, p.host, copy(p.instance, k))} on host ${p.host}`).join(', ') || 'nothing runs';
        const ledger = held.map((r) => `${r.instance} ${phaseLabel(r.phase)} on host ${r.host}`).join(', ') || 'nothing';
        const up = procs.filter(({ p, k }) => truthAt(b, p.host, copy(p.instance, k)) === 'up');
        let verdict, why;
        if (up.length === 1 && procs.length === 1) { verdict = 'up'; why = 'converged'; }
        else if (procs.length > 1) { verdict = 'crowded'; why = `${procs.length} processes run where one should`; }
        else if (procs.length === 1) { verdict = 'booting'; why = 'still booting'; }
        else if (held.length) {
          const r = held[0];
          let since = b;
          while (since > 0 && steps[since - 1].ledger.some((x) => x.instance === r.instance && phaseLabel(x.phase) === phaseLabel(r.phase))) since--;
          verdict = 'held by the ledger';
          why = `the ledger still counts ${r.instance} (${phaseLabel(r.phase)} on host ${r.host}, since step ${since}), so the slot is not vacant and the manager launches nothing for it`;
        } else {
          verdict = 'vacant';
          const reasons = holds(b, t, vacant.find((v) => v.slot === slot));
          why = reasons.length ? `vacant, and no relaunch is sent: ${reasons.join('; ')}` : 'vacant; nothing shown holds its relaunch back';
        }
        rows.push({ slot, truth, ledger, verdict, why });
      }
    });
    out.push(h('table', { class: 'why-slots', id: 'why-slots' },
      h('thead', {}, h('tr', {}, ...['slot', 'ground truth', 'ledger', '', `why, at step ${b}`].map((x) => h('th', { text: x })))),
      h('tbody', {}, ...rows.map((r) => h('tr', { 'data-slot': r.slot, class: r.verdict === 'up' ? 'ok' : 'stuck' },
        ...[r.slot, r.truth || '', r.ledger || '', r.verdict, r.why].map((c) => h('td', { text: c })))))));
    // What gates a launch, whether or not it holds one back now.
    const gates = managerRows(end.manager).filter(([k]) => /^(budget|breaker|fleet breaker|lockdown)/.test(k));
    const because = rows.map((r) => r.why).join(' ');
    vacant.forEach((v) => gates.push([`backoff of ${v.slot}`, v.not_before > end.now ? `no relaunch before t${v.not_before} (${v.attempts} failure(s))` : `none (${v.attempts} failure(s))`]));
    const bo = T.config.core.budget;
    gates.push(['backoff rule', `base ${bo.backoff_base_ticks}, max ${bo.backoff_max_ticks}, jitter ≤ ${bo.jitter_max_ticks} tick(s)`]);
    out.push(h('p', { class: 'muted why-gates-head', text: `What gates a launch at step ${b}:` }),
      h('table', { class: 'why-gates', id: 'why-gates' }, h('tbody', {}, ...gates.map(([k, v]) => {
        // A gate that holds a slot back now, in red.
        const holding = because.includes(k) || (k === 'lockdown' && /lockdown is on/.test(because))
          || (k.startsWith('backoff of') && v.startsWith('no relaunch'));
        return h('tr', { class: holding ? 'holds' : null }, h('td', { text: k }), h('td', { text: v }));
      }))));
    return out;
  }

  // What holds the relaunch of a vacant slot of type `t` back at step b.
  function holds(b, t, v) {
    const s = steps[b], m = s.manager, now = s.now;
    const ai = apps.indexOf(t.app);
    const out = [];
    const budget = (m.budgets || [])[ai];
    if (budget && budget.tokens_milli < 1000 && !budget.probe_ready) {
      out.push(`the budget of ${t.app} is empty (${budget.tokens_milli / 1000} token(s)) and its probe credit returns only at t${budget.probe_refresh_at}`);
    }
    const br = (m.breakers || [])[ai];
    if (br && br.state === 'open') {
      const cd = T.config.core.breaker.cooldown_ticks;
      let tripped = b;
      while (tripped > 0 && !steps[tripped].events.includes('breaker tripped')) tripped--;
      const when = steps[tripped].events.includes('breaker tripped') ? ` (tripped at step ${tripped} by failed boots)` : '';
      out.push(`the breaker of ${t.app} is open since t${br.since}${br.manual ? ' (by an operator)' : when}; its cool-down of ${cd} tick(s) ended at t${br.since + cd}${br.since + cd <= now ? ', yet it has not half-opened' : ''}`);
    }
    if (br && br.state === 'half-open' && br.probe) out.push(`the breaker of ${t.app} is half-open, waiting on its probe ${instName(br.probe)}`);
    const fb = m.fleet_breaker;
    if (fb && fb.state === 'open') out.push(`the fleet breaker is open since t${fb.since}`);
    if (m.lockdown) out.push('lockdown is on');
    if (v && v.not_before > now) out.push(`its backoff allows no relaunch before t${v.not_before}`);
    return out;
  }

  // S3: the bound term by term at the breaking step, and every launch
  // that counts against it, with what paid for it.
  function whyS3(b) {
    const rows = steps[b].bound || [];
    const over = rows.find((r) => r.launches > r.bound);
    if (!over) return null;
    const launches = [];
    steps.forEach((st, i) => {
      if (i === 0 || i > b) return;
      st.ledger.filter((r) => !steps[i - 1].ledger.some((x) => x.instance === r.instance)
        && !steps.slice(0, i).some((x) => x.ledger.some((y) => y.instance === r.instance)))
        .forEach((r) => launches.push({ i, r }));
    });
    const ended = (inst) => {
      const k = steps.findIndex((st, i) => i > 0 && i <= b && kindOf(steps[i - 1].action) === 'boot-fails' && instName(argOf(steps[i - 1].action)[0]) === inst);
      return k >= 0 ? h('span', {}, '; its boot failed at ', stepLink(k)) : '';
    };
    const r = (x) => x.refill_milli / 1000;
    return [
      h('p', { class: 'why-lead' }, `At step ${b}, ${over.scope === 'fleet' ? 'the fleet' : over.scope} has made ${over.launches} launches, more than the bound ${over.bound} = `,
        `F ${over.first_launches} (free first launches) + n·B ${over.buckets}·${over.capacity} (the budget's buckets) + r·S ${r(over)}·${over.successful_boots} (refill per successful boot) + n·P ${over.buckets}·${over.cooldowns} (probe cool-downs elapsed)`,
        over.successful_boots === 0 ? ': no boot has succeeded, so nothing refilled the budget.' : '.'),
      h('ul', { class: 'why-launches' }, ...launches.map(({ i, r: row }) => line(`${row.instance} on host ${row.host}: launched at `, stepLink(i),
        steps[i].events.length ? ` (${steps[i].events.join(', ')})` : i === launches[0].i ? ' (a first launch)' : '', ended(row.instance)))),
    ];
  }

  function whyPanel() {
    const p = T.property;
    const b = broken;
    const body = p === 'S1 singleton' ? whyS1(b) : p === 'S2 no phantom' ? whyS2(b) : p === 'S3 launch bound' ? whyS3(b)
      : /^L1/.test(p) ? whyL1(b) : null;
    if (!body) return null;
    const title = p === 'S1 singleton' ? 'Why S1 breaks: two processes of one singleton slot, and how each came to run'
      : p === 'S2 no phantom' ? 'Why S2 breaks: a process the ledger does not hold there, and how it came to run'
        : p === 'S3 launch bound' ? 'Why S3 breaks: more launches than the budget allows, and each launch counted'
        : 'Why L1 breaks: faults stop, yet the fleet never converges';
    return h('section', { id: 'why', class: 'why', 'data-property': p }, h('h2', { text: title }), ...body);
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
    // Each variable beside the previous state's, what changed marked (as
    // TLA+'s trace explorer does).
    const before = i > 0 ? variables(i - 1) : null;
    const changedNames = [];
    const tables = variables(i).map((v, k) => {
      const d = diffTable(v.headers, v.rows, before && before[k].rows, v.ignore);
      if (d.changed) changedNames.push(v.title.split(' ·')[0].split(':')[0].replace(/ \(S3\)$/, ''));
      const el = v.rows.length || (before && before[k].rows.length) ? d.el : h('p', { class: 'muted', text: v.empty || 'none' });
      return h('div', { id: v.id, class: d.changed ? 'var changed-var' : 'var', 'data-changed': d.changed ? 'true' : 'false' },
        h('h3', { text: v.title }), el);
    });
    const changedLine = i === 0 ? h('p', { class: 'muted', id: 'changed', text: 'The initial state.' })
      : h('p', { id: 'changed', class: 'changed-line' }, h('b', { text: 'Changed by this step: ' }),
        changedNames.length ? changedNames.join(', ') : s.now !== steps[i - 1].now ? `only the time, t${steps[i - 1].now} → t${s.now}` : 'nothing shown (the model\'s own counters only)',
        h('span', { class: 'muted', text: ' · changed cells highlighted, new rows green, gone rows struck through' }));
    detail.replaceChildren(...[
      h('h2', {}, `State ${i} of ${last} · t${s.now} `,
        h('button', { id: 'prev', type: 'button', text: '◀' }), h('button', { id: 'next', type: 'button', text: '▶' })),
      href ? h('p', {}, h('a', { id: 'explorer-step-link', href, text: `Open state ${i} in stateright's Explorer ↗` }))
        : h('p', { class: 'muted', text: 'this state has no path in stateright’s Explorer' }),
      h('p', {}, h('b', { text: 'Reached by: ' }), i > 0 ? actionLong(i - 1) : 'the initial state',
        i > 0 && stateLabel(i - 1) ? h('span', { class: 'muted', text: ` (stateright: ${stateLabel(i - 1)})` }) : null),
      s.events.length ? h('p', {}, h('b', { text: 'Which caused: ' }), s.events.join(', ')) : null,
      ...brokenLines(i),
      h('p', {}, h('b', { text: 'Next action: ' }), s.action != null ? actionLong(i) : 'none (end of trace)',
        s.action != null && stateLabel(i) ? h('span', { class: 'muted', text: ` (stateright: ${stateLabel(i)})` }) : null),
      changedLine,
      h('div', { class: 'tables' }, ...tables)].filter((c) => c != null));
    document.getElementById('prev').addEventListener('click', () => select(i - 1));
    document.getElementById('next').addEventListener('click', () => select(i + 1));
  }

  document.addEventListener('keydown', (ev) => {
    const cur = Number(document.getElementById('detail').getAttribute('data-step'));
    if (ev.key === 'ArrowLeft') select(cur - 1);
    if (ev.key === 'ArrowRight') select(cur + 1);
  });
  const why = whyPanel();
  if (why) document.getElementById('violation').after(why);
  // A step named in a panel selects it in place.
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a.step-link');
    if (!a) return;
    ev.preventDefault();
    select(Number(a.getAttribute('data-step')));
  });
  select(D.step != null ? D.step : broken);
  document.body.setAttribute('data-ready', 'true');
})();
