// The ladder diagram, ported from handshake_probe/views/ladder.py (ladder_steps) and
// handshake_probe/views/ladder_svg.py (_Block, _document): the same items, the same layout, the same SVG
// text. Its constants come from ladder_svg.py through the report's data (data.layout_constants), and
// tests/test_report.py holds this port's output equal, byte for byte, to ladder_svg() for every flow of
// every bundled capture. Change the layout there and here together.
"use strict";

const HPLadder = (function () {
  // ---------------------------------------------------------------- Python's formatting, exactly
  // f"{x:.{d}f}": JS's toFixed picks the larger candidate on an exact tie, Python the even one.
  function pyFixed(x, d) {
    const neg = x < 0 || Object.is(x, -0);
    const a = Math.abs(x);
    let s = a.toFixed(d);
    if (a < 1e21) {
      const exact = a.toFixed(100);
      const dot = exact.indexOf(".");
      const rest = exact.slice(dot + 1 + d);
      if (/^50*$/.test(rest)) {
        const down = d ? exact.slice(0, dot + 1 + d) : exact.slice(0, dot);
        const last = down.charCodeAt(down.length - 1) - 48;
        if (last % 2 === 0) s = down;
      }
    }
    return (neg ? "-" : "") + s;
  }
  function maxOf(init, values) { let m = init; for (const v of values) if (v > m) m = v; return m; }
  function num(x) { return pyFixed(x, 1).replace(/0+$/, "").replace(/\.$/, ""); }
  function escape(text) {
    return String(text).replace(/&/g, "&amp;").replace(/>/g, "&gt;").replace(/</g, "&lt;");
  }
  function quoteattr(value) {      // xml.sax.saxutils.quoteattr
    let data = escape(value).replace(/\n/g, "&#10;").replace(/\r/g, "&#13;").replace(/\t/g, "&#9;");
    if (data.indexOf('"') >= 0) {
      if (data.indexOf("'") >= 0) return '"' + data.replace(/"/g, "&quot;") + '"';
      return "'" + data + "'";
    }
    return '"' + data + '"';
  }
  // textwrap.wrap(text, width, break_on_hyphens=False) with textwrap's other defaults.
  function wrap(text, width) {
    text = text.replace(/\t/g, "        ").replace(/[\t\n\x0b\x0c\r ]/g, " ");
    const chunks = text.split(/( +)/).filter(c => c !== "").reverse();
    const lines = [];
    while (chunks.length) {
      const line = [];
      let len = 0;
      if (chunks[chunks.length - 1].trim() === "" && lines.length) chunks.pop();
      while (chunks.length) {
        const l = chunks[chunks.length - 1].length;
        if (len + l <= width) { line.push(chunks.pop()); len += l; } else break;
      }
      if (chunks.length && chunks[chunks.length - 1].length > width) {
        const left = width < 1 ? 1 : width - len;
        const c = chunks[chunks.length - 1];
        line.push(c.slice(0, left));
        len += left;
        chunks[chunks.length - 1] = c.slice(left);
      }
      if (line.length && line[line.length - 1].trim() === "") { len -= line[line.length - 1].length; line.pop(); }
      if (line.length) lines.push(line.join(""));
    }
    return lines;
  }

  // ---------------------------------------------------------------- ladder_steps
  function kind(flagNames) {
    const names = flagNames.split("|");
    for (const name of ["RST", "SYN", "FIN"]) if (names.indexOf(name) >= 0) return name.toLowerCase();
    return "ack";
  }
  function number(abs, rel, absolute) { return absolute || rel === null ? abs : rel; }
  function label(step) { return "[" + step.flags + "] " + numbers(step) + (step.options ? " " + step.options : ""); }
  function numbers(step) {
    let text = "seq=" + step.seq;
    if (step.ack !== null) text += " ack=" + step.ack;
    if (step.length) text += " len=" + step.length;
    return text;
  }

  // flow: {number, client, server, direction, packets, close, client_initial, server_initial,
  //        violations: [{frame, endpoint, state, reason}], transitions: [{ms, frame, endpoint, to, cause}],
  //        rows: [{frame, ms, from_client, tcpdump_flags, flag_names, seq, ack, rel_seq, rel_ack, len,
  //                client_state, server_state, notes}]}
  function steps(flow, L, absolute, maxRows, head, tail) {
    const rows = flow.rows;
    const lad = {number: flow.number, client: flow.client, server: flow.server, direction: flow.direction,
      packets: flow.packets, close: L.close_text[flow.close] !== undefined ? L.close_text[flow.close] : flow.close,
      absolute: absolute, client_initial: flow.client_initial, server_initial: flow.server_initial, items: []};
    const n = rows.length;
    const elide = maxRows !== null && n > maxRows && n > head + tail;
    const problems = new Map();
    for (const v of flow.violations) {
      const text = "violation: " + v.endpoint + " in " + v.state + ": " + v.reason;
      if (!problems.has(v.frame)) problems.set(v.frame, []);
      problems.get(v.frame).push(text);
    }
    const byFrame = new Map();
    for (const t of flow.transitions) {
      if (t.frame !== null) {
        if (!byFrame.has(t.frame)) byFrame.set(t.frame, []);
        byFrame.get(t.frame).push(t);
      }
    }
    const shown = {client: lad.client_initial, server: lad.server_initial};
    let gap = null;
    for (let i = 0; i < n; i++) {
      const row = rows[i];
      const frame = row.frame;
      const entered = {client: [], server: []};
      for (const t of byFrame.get(frame) || []) entered[t.endpoint].push(t.to);
      for (const [role, state] of [["client", row.client_state], ["server", row.server_state]]) {
        if (!entered[role].length && state !== shown[role]) entered[role].push(state);
        if (entered[role].length) shown[role] = entered[role][entered[role].length - 1];
      }
      if (elide && !(i < head || i >= n - tail)) {
        if (gap === null) gap = [0, frame, frame, 0];
        gap[0] += 1;
        gap[2] = frame;
        gap[3] += (byFrame.get(frame) || []).length;
        continue;
      }
      if (gap !== null) {
        const prev = rows[i - 1];
        lad.items.push({type: "gap", count: gap[0], first_frame: gap[1], last_frame: gap[2],
          client_state: prev.client_state, server_state: prev.server_state, transitions: gap[3]});
        gap = null;
      }
      const notes = row.notes.length ? row.notes.slice() : (problems.get(frame) || []);
      const ack = row.ack === null ? null : number(row.ack, row.rel_ack, absolute);
      lad.items.push({type: "step", frame: frame, ms: row.ms, from_client: row.from_client,
        flags: row.tcpdump_flags, kind: kind(row.flag_names), seq: number(row.seq, row.rel_seq, absolute),
        ack: ack, length: row.len, client_states: entered.client, server_states: entered.server, notes: notes,
        options: row.syn_options || ""});
    }
    for (const t of flow.transitions) {
      if (t.frame === null) {
        const timer = {type: "timer", ms: t.ms, endpoint: t.endpoint, state: t.to, cause: t.cause};
        let at = lad.items.findIndex(item => item.type === "step" && item.ms > timer.ms);
        if (at < 0) at = lad.items.length;
        lad.items.splice(at, 0, timer);
      }
    }
    return lad;
  }

  // ---------------------------------------------------------------- the SVG (_Block, _document)
  function block(lad, L) {
    const CH = L.ch, SLANT = L.slant, ROW = L.row, BOX_H = L.box_h, BOX_STEP = L.box_step;
    const w = (chars, size) => chars * size * CH;
    const text = (x, y, t, size, anchor, fill, extra) => {
      size = size === undefined ? 12 : size;
      anchor = anchor || "start";
      fill = fill || "#212121";
      extra = extra || "";
      return '<text x="' + num(x) + '" y="' + num(y) + '" font-size="' + num(size) + '" text-anchor="' +
        anchor + '" fill="' + fill + '"' + extra + ">" + escape(t) + "</text>";
    };
    const out = [];
    const stepsOnly = lad.items.filter(i => i.type === "step");
    const timers = lad.items.filter(i => i.type === "timer");
    const times = stepsOnly.map(s => pyFixed(s.ms, 3) + " ms").concat(timers.map(t => pyFixed(t.ms, 3) + " ms"));
    const frames = stepsOnly.map(s => "#" + s.frame);
    const B = {};
    B.frame_w = w(maxOf(0, frames.map(f => f.length)), 10) + 6;
    B.axis_x = 14 + B.frame_w + w(maxOf(6, times.map(t => t.length)), 12) + 10;
    B.box_w = w(12, 11) + 16;
    const longest = maxOf(0, stepsOnly.map(s => label(s).length));
    const gapW = Math.max(440.0, w(longest, 12) + 120);
    B.cx = B.axis_x + 18 + B.box_w + 8;
    B.sx = B.cx + gapW;
    const headC = w(lad.client.length, 12) + 24;
    const headS = w(lad.server.length, 12) + 24;
    B.width = Math.max(B.sx + 8 + B.box_w + 16, B.sx + headS / 2 + 12);
    const first = "flow " + lad.number + ": client " + lad.client + " \u2192 server " + lad.server;
    let second = lad.packets + " segment" + (lad.packets === 1 ? "" : "s") + " \u00b7 close: " + lad.close +
      " \u00b7 " + (lad.absolute ? "seq/ack absolute" : "seq/ack relative to each side's ISN");
    if (lad.direction !== "observed") second += " \u00b7 direction " + lad.direction;
    B.width = Math.max(B.width, w(first.length, 14) + 40, w(second.length, 12) + 40);
    let shown = {client: lad.client_initial, server: lad.server_initial};

    const stateBox = (role, y, state, initial) => {
      const x = role === "client" ? B.cx - 8 - B.box_w : B.sx + 8;
      const lifeline = role === "client" ? B.cx : B.sx;
      const [fill, stroke] = initial ? ["#eceff1", "#90a4ae"] : [L.state_fill, L.state_stroke];
      out.push("<g class=\"state\" data-endpoint=" + quoteattr(role) + ">" +
        '<rect x="' + num(x) + '" y="' + num(y - BOX_H / 2) + '" width="' + num(B.box_w) + '" ' +
        'height="' + BOX_H + '" rx="4" fill="' + fill + '" stroke="' + stroke + '"/>' +
        text(x + B.box_w / 2, y + 4, state, 11, "middle", "#3e2723", ' font-weight="bold"') +
        '<circle cx="' + num(lifeline) + '" cy="' + num(y) + '" r="3" fill="' + stroke + '"/></g>');
    };
    const tick = (y, ms, frame) => {
      out.push('<line x1="' + num(B.axis_x - 4) + '" y1="' + num(y) + '" x2="' + num(B.axis_x + 4) + '" ' +
        'y2="' + num(y) + '" stroke="#9e9e9e"/>');
      out.push(text(B.axis_x - 8, y + 4, pyFixed(ms, 3) + " ms", 12, "end", "#424242"));
      if (frame !== null) out.push(text(14, y + 4, "#" + frame, 10, "start", "#9e9e9e"));
    };
    const arrow = (step, y) => {
      const colour = L.colours[step.kind];
      const [x1, x2] = step.from_client ? [B.cx, B.sx] : [B.sx, B.cx];
      const y1 = y, y2 = y + SLANT;
      out.push('<g class="segment" data-frame="' + step.frame + '" data-kind="' + step.kind + '">');
      out.push('<line class="arrow" x1="' + num(x1) + '" y1="' + num(y1) + '" x2="' + num(x2) + '" y2="' +
        num(y2) + '" stroke="' + colour + '" stroke-width="1.6" marker-end="url(#hp-head-' + step.kind + ')"/>');
      out.push('<circle cx="' + num(x1) + '" cy="' + num(y1) + '" r="2.5" fill="' + colour + '"/>');
      const [lx, ly, rx, ry] = x1 < x2 ? [x1, y1, x2, y2] : [x2, y2, x1, y1];
      const angle = Math.atan2(ry - ly, rx - lx) * (180 / Math.PI);
      const mx = (lx + rx) / 2, my = (ly + ry) / 2;
      out.push('<text x="' + num(mx) + '" y="' + num(my - 6) + '" font-size="12" text-anchor="middle" ' +
        'fill="#212121" transform="rotate(' + pyFixed(angle, 2) + " " + num(mx) + " " + num(my) + ')">' +
        '<tspan font-weight="bold" fill="' + colour + '">[' + escape(step.flags) + "]</tspan> " +
        escape(numbers(step)) +
        (step.options ? ' <tspan class="options" fill="#5d4037">' + escape(step.options) + "</tspan>" : "") + "</text>");
      out.push("</g>");
    };

    // _draw
    out.push(text(14, 24, first, 14, undefined, undefined, ' font-weight="bold"'));
    out.push(text(14, 42, second, 12, undefined, "#616161"));
    const headY = 58;
    for (const [role, x, lbl, wd] of [["client", B.cx, lad.client, headC], ["server", B.sx, lad.server, headS]]) {
      const left = role === "server" ? Math.min(Math.max(x - wd / 2, 6), B.width - wd - 6) : Math.max(x - wd / 2, 6);
      out.push('<rect x="' + num(left) + '" y="' + headY + '" width="' + num(wd) + '" height="38" rx="5" ' +
        'fill="#f5f5f5" stroke="#616161"/>');
      out.push(text(left + wd / 2, headY + 16, role, 12, "middle", undefined, ' font-weight="bold"'));
      out.push(text(left + wd / 2, headY + 31, lbl, 12, "middle", "#424242"));
    }
    const top = headY + 38;
    const lifelineAt = out.length;
    let y = top + 26;
    stateBox("client", y, lad.client_initial, true);
    stateBox("server", y, lad.server_initial, true);
    out.push(text(B.axis_x, top + 47, "time \u2193", 10, "middle", "#757575"));
    y += 34;
    const firstTick = y;
    const gaps = [];
    for (const item of lad.items) {
      if (item.type === "gap") {
        const g0 = y - 14, g1 = y + 40;
        gaps.push([g0, g1]);
        const noun = item.count === 1 ? "segment" : "segments";
        out.push(text((B.cx + B.sx) / 2, y + 12, "\u22ee " + item.count + " " + noun + " (frames " +
          item.first_frame + "\u2013" + item.last_frame + ") \u22ee", 12, "middle", "#616161",
          ' font-style="italic" class="gap"'));
        y = g1 + 14;
        if (item.client_state !== shown.client) stateBox("client", y - 10, item.client_state);
        if (item.server_state !== shown.server) stateBox("server", y - 10, item.server_state);
        shown = {client: item.client_state, server: item.server_state};
        y += 16;
        continue;
      }
      if (item.type === "timer") {
        tick(y, item.ms, null);
        stateBox(item.endpoint, y, item.state);
        shown[item.endpoint] = item.state;
        const x = item.endpoint === "client" ? B.cx + 14 : B.sx - 14;
        out.push(text(x, y + 4, item.cause, 11, item.endpoint === "client" ? "start" : "end", "#616161",
          ' font-style="italic" class="timer"'));
        y += ROW - 10;
        continue;
      }
      tick(y, item.ms, item.frame);
      arrow(item, y);
      let depth = ROW;
      for (const role of ["client", "server"]) {
        const states = role === "client" ? item.client_states : item.server_states;
        const sender = (role === "client") === item.from_client;
        const base = sender ? y : y + SLANT;
        states.forEach((state, k) => stateBox(role, base + k * BOX_STEP, state));
        if (states.length) {
          shown[role] = states[states.length - 1];
          depth = Math.max(depth, base - y + (states.length - 1) * BOX_STEP + BOX_STEP + 4);
        }
      }
      const width = Math.trunc((B.sx - B.cx - 40) / w(1, 11));
      const lines = [];
      for (const note of item.notes) for (const line of wrap(note, width)) lines.push(line);
      lines.forEach((line, k) => out.push(text((B.cx + B.sx) / 2, y + SLANT / 2 + 17 + k * L.note_step, line, 11,
        "middle", "#b71c1c", ' font-style="italic" class="note"')));
      if (lines.length) depth = Math.max(depth, 40 + lines.length * L.note_step);
      y += depth;
    }
    const bottom = y - 10;
    const lifelines = [];
    if (lad.items.length) {
      const edges = [firstTick - 6].concat(...gaps, [bottom]);
      for (let k = 0; k + 1 < edges.length; k += 2) {
        lifelines.push('<line class="axis" x1="' + num(B.axis_x) + '" y1="' + num(edges[k]) + '" x2="' +
          num(B.axis_x) + '" y2="' + num(edges[k + 1]) + '" stroke="#bdbdbd"/>');
      }
    }
    for (const x of [B.cx, B.sx]) {
      const edges = [top].concat(...gaps, [bottom]);
      for (let k = 0; k + 1 < edges.length; k += 2) {
        lifelines.push('<line class="lifeline" x1="' + num(x) + '" y1="' + num(edges[k]) + '" x2="' + num(x) +
          '" y2="' + num(edges[k + 1]) + '" stroke="#616161" stroke-width="1.5"/>');
      }
      for (const [a, b] of gaps) {
        lifelines.push('<line x1="' + num(x) + '" y1="' + num(a) + '" x2="' + num(x) + '" y2="' + num(b) + '" ' +
          'stroke="#9e9e9e" stroke-width="1.5" stroke-dasharray="2 5"/>');
      }
    }
    out.splice(lifelineAt, 0, ...lifelines);  // a few lines: gaps are at most one
    y = bottom + 30;
    let x = 14.0;
    for (const [k, name] of L.legend) {
      out.push('<line x1="' + num(x) + '" y1="' + num(y - 4) + '" x2="' + num(x + 28) + '" y2="' + num(y - 4) + '" ' +
        'stroke="' + L.colours[k] + '" stroke-width="1.6" marker-end="url(#hp-head-' + k + ')"/>');
      out.push(text(x + 36, y, name, 11, undefined, "#424242"));
      x += 36 + w(name.length, 11) + 24;
    }
    out.push(text(x, y, "arrows fall with time; boxes: the state entered there", 11, undefined, "#757575"));
    B.width = Math.max(B.width, x + w(52, 11) + 14);
    B.height = y + 14;
    B.out = out;
    B.ladder = lad;
    return B;
  }

  function documentOf(blocks, L) {
    const width = Math.ceil(Math.max(...blocks.map(b => b.width), 320));
    const parts = [];
    let y = 0.0;
    blocks.forEach((b, i) => {
      if (i) {
        parts.push('<line x1="8" y1="' + num(y + 12) + '" x2="' + (width - 8) + '" y2="' + num(y + 12) + '" ' +
          'stroke="#e0e0e0" stroke-width="2"/>');
        y += 24;
      }
      parts.push('<g class="flow" data-flow="' + b.ladder.number + '" transform="translate(0 ' + num(y) + ')">');
      for (const p of b.out) parts.push(p);
      parts.push("</g>");
      y += b.height;
    });
    const height = Math.ceil(y + 6);
    const title = blocks.map(b => "TCP flow " + b.ladder.number + ": " + b.ladder.client + " to " + b.ladder.server).join("; ");
    const markers = Object.entries(L.colours).map(([k, colour]) =>
      '<marker id="hp-head-' + k + '" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" ' +
      'orient="auto" markerUnits="strokeWidth"><path d="M0,0 L10,5 L0,10 z" fill="' + colour + '"/></marker>').join("");
    return '<?xml version="1.0" encoding="UTF-8"?>\n' +
      '<svg xmlns="http://www.w3.org/2000/svg" width="' + width + '" height="' + height + '" ' +
      'viewBox="0 0 ' + width + " " + height + '" font-family=' + quoteattr(L.font) + ">\n" +
      "<title>" + escape(title) + "</title>\n<defs>" + markers + "</defs>\n" +
      '<rect width="100%" height="100%" fill="#ffffff"/>\n' + parts.join("\n") + "\n</svg>\n";
  }

  // ladder_svg(rec, rows, absolute, max_rows, head, tail): maxRows null draws every segment.
  function svg(flow, L, absolute, maxRows, head, tail) {
    head = head === undefined ? L.head : head;
    tail = tail === undefined ? L.tail : tail;
    maxRows = maxRows === undefined ? head + tail : maxRows;
    if (!flow.rows.length) throw new Error("flow " + flow.number + " has no segments in this report");
    return documentOf([block(steps(flow, L, !!absolute, maxRows, head, tail), L)], L);
  }

  return {svg: svg, steps: steps, pyFixed: pyFixed, wrap: wrap};
})();
