// The report page: renders everything from the JSON data embedded once (handshake_probe/report/data.py):
// the summary charts, the flow table (filtered, sorted and paginated over index arrays, so 100,000 flows
// cost one pass per change and 100 DOM rows) and the flow view (ladder, segments, transitions), whose
// details are parsed only when a flow is opened.
"use strict";

(function () {
  const t0 = performance.now();
  const D = JSON.parse(document.getElementById("hp-data").textContent);
  const S = D.strings, F = D.flows, L = D.layout, N = F.n.length;
  const CLOSE_TEXT = L.close_text;
  const MANY = D.sources.length > 1;
  const $ = id => document.getElementById(id);
  const esc = s => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  // views/table.py window_cell: tshark's calculated window with the header value and shift beside it.
  const windowText = r => !r.window_scale ? String(r.window) : r.window_scaled + " (" + r.window + "<<" + r.window_scale + ")";
  const fmt = n => Number(n).toLocaleString("en-US");
  const plural = (n, word) => fmt(n) + " " + word + (n === 1 ? "" : "s");
  const fixed = HPLadder.pyFixed;
  const port = addr => Number(addr.slice(addr.lastIndexOf(":") + 1));

  // Anomaly strings ("retransmission=2;duplicate_ack=1"), parsed once per distinct string.
  const anomalyOf = new Map();
  function anomalies(i) {
    const k = F.an[i];
    let m = anomalyOf.get(k);
    if (!m) {
      m = {};
      if (S[k]) for (const part of S[k].split(";")) { const [name, n] = part.split("="); m[name] = Number(n); }
      anomalyOf.set(k, m);
    }
    return m;
  }
  const rtt = i => (F.r1[i] === null || F.r2[i] === null) ? null : F.r1[i] + F.r2[i];
  function handshakeText(i) {
    const st = S[F.hs[i]];
    if (st === "complete") return fixed(F.r1[i], 3) + " / " + fixed(F.r2[i], 3);
    return st;
  }

  // ------------------------------------------------------------------ header and summary
  document.title = D.title;
  $("hp-title").textContent = D.title;
  const when = new Date(D.t0 * 1000);
  $("hp-subtitle").textContent = D.sources.map(s => s.name).join(", ") + (N ? " \u00b7 first segment " +
    when.toISOString().replace("T", " ").replace("Z", " UTC") : "");
  $("hp-footer").textContent = "handshake-probe " + D.version + " \u00b7 one self-contained file: data, script and " +
    "pictures are inside it; nothing is fetched.";

  function sum(key) { return D.sources.reduce((a, s) => a + (s[key] || 0), 0); }
  let violationFlows = 0, violationCount = 0;
  for (let i = 0; i < N; i++) if (F.vc[i]) { violationFlows++; violationCount += F.vc[i]; }
  const skipped = {};
  for (const s of D.sources) for (const [k, v] of Object.entries(s.skipped || {})) skipped[k] = (skipped[k] || 0) + v;
  const stats = [["captures", D.sources.length], ["frames", sum("frames")], ["TCP segments", sum("segments")],
    ["flows", N], ["flows with violations", violationFlows], ["violations", violationCount]];
  for (const [k, v] of Object.entries(skipped)) stats.push(["skipped: " + k, v]);
  $("stats").innerHTML = stats.map(([k, v]) => '<div class="stat" data-stat="' + esc(k) + '"><b>' + fmt(v) + "</b>" + esc(k) + "</div>").join("") +
    D.sources.filter(s => s.error).map(s => '<div class="stat warn">' + esc(s.name) + ": " + esc(s.error) + "</div>").join("");

  // Horizontal bars, each labelled with its name and count (never colour alone); a click filters.
  function barChart(title, entries, filter) {
    const max = Math.max(1, ...entries.map(e => e[1]));
    const lw = Math.max(60, ...entries.map(e => e[0].length * 7.2)) + 8, bw = 260, h = 20;
    let out = '<svg width="' + (lw + bw + 70) + '" height="' + (entries.length * h + 6) + '" role="img" aria-label="' + esc(title) + '">';
    entries.forEach(([name, n, value], k) => {
      const y = k * h + 3, w = n ? Math.max(2, n / max * bw) : 0;
      out += '<g class="bar" tabindex="0" role="button" data-filter="' + esc(filter || "") + '" data-value="' + esc(value) +
        '"><title>' + esc(name + ": " + n) + '</title><text x="' + (lw - 6) + '" y="' + (y + 13) +
        '" text-anchor="end" font-size="12">' + esc(name) + '</text><rect x="' + lw + '" y="' + (y + 2) + '" width="' +
        w.toFixed(1) + '" height="' + (h - 6) + '" fill="#78909c"/><text x="' + (lw + w + 5).toFixed(1) + '" y="' + (y + 13) +
        '" font-size="12">' + fmt(n) + "</text></g>";
    });
    return '<div class="chart"><h3>' + esc(title) + "</h3>" + out + "</svg></div>";
  }
  const closeCounts = {}, connCounts = {}, anomalyFlows = {}, anomalyTotals = {};
  for (let i = 0; i < N; i++) {
    const c = S[F.close[i]], z = S[F.conn[i]];
    closeCounts[c] = (closeCounts[c] || 0) + 1;
    connCounts[z] = (connCounts[z] || 0) + 1;
    const a = anomalies(i);
    for (const k in a) { anomalyFlows[k] = (anomalyFlows[k] || 0) + 1; anomalyTotals[k] = (anomalyTotals[k] || 0) + a[k]; }
  }
  const charts = [];
  charts.push(barChart("How flows closed", D.vocab.close.filter(k => closeCounts[k]).map(k => [CLOSE_TEXT[k] || k, closeCounts[k], k]), "close"));
  charts.push(barChart("Zeek conn_state", D.vocab.conn.filter(k => connCounts[k]).map(k => [k, connCounts[k], k]), "conn"));
  const anomalyKinds = D.vocab.anomalies.filter(k => anomalyFlows[k]);
  charts.push(anomalyKinds.length ?
    barChart("Flows with each anomaly (Wireshark's analysis)", anomalyKinds.map(k => [k + " (" + fmt(anomalyTotals[k]) + ")", anomalyFlows[k], k]), "anomaly") :
    '<div class="chart"><h3>Anomalies</h3><p>none: no retransmission, duplicate ACK, zero window, ... in any flow</p></div>');
  charts.push(barChart("Violations (segments that fit no RFC 9293 transition)",
    [["flows without", N - violationFlows, "-v"], ["flows with", violationFlows, "!v"]], "anomaly"));
  $("charts").innerHTML = charts.join("") + timeChart() + rttChart();

  // Connections over time, stacked by how they ended: each close kind has a pattern as well as a colour.
  function timeChart() {
    if (!N) return "";
    const kinds = D.vocab.close, BINS = 60, W = 820, H = 170, left = 50, bottom = 30;
    let span = 0;
    for (let i = 0; i < N; i++) if (F.t[i] > span) span = F.t[i];
    span = span || 1;
    const counts = kinds.map(() => new Array(BINS).fill(0));
    const kindAt = {};
    kinds.forEach((k, j) => { kindAt[k] = j; });
    for (let i = 0; i < N; i++) counts[kindAt[S[F.close[i]]]][Math.min(BINS - 1, Math.floor(F.t[i] / span * BINS))]++;
    const totals = new Array(BINS).fill(0);
    counts.forEach(c => c.forEach((n, b) => { totals[b] += n; }));
    const max = Math.max(1, ...totals);
    const colours = ["#66bb6a", "#ef5350", "#ffa726", "#ab47bc", "#90a4ae", "#26c6da"];
    const pats = ["", '<path d="M0,6 L6,0" stroke="#000" stroke-width="1"/>', '<circle cx="3" cy="3" r="1.2" fill="#000"/>',
      '<path d="M0,3 L6,3" stroke="#000" stroke-width="1"/>', '<path d="M3,0 L3,6" stroke="#000" stroke-width="1"/>',
      '<path d="M0,0 L6,6" stroke="#000" stroke-width="1"/>'];
    let defs = "";
    kinds.forEach((k, j) => {
      defs += '<pattern id="tp' + j + '" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="' +
        colours[j % colours.length] + '"/>' + pats[j % pats.length] + "</pattern>";
    });
    const bw = (W - left - 10) / BINS, ph = H - bottom - 10;
    let out = '<svg width="' + W + '" height="' + (H + 26) + '" role="img" aria-label="flows started over time, by close kind"><defs>' + defs + "</defs>";
    out += '<line x1="' + left + '" y1="' + (H - bottom) + '" x2="' + (W - 10) + '" y2="' + (H - bottom) + '" stroke="#9e9e9e"/>';
    out += '<text x="' + (left - 6) + '" y="16" text-anchor="end" font-size="11">' + fmt(max) + '</text><text x="' + (left - 6) +
      '" y="' + (H - bottom) + '" text-anchor="end" font-size="11">0</text>';
    for (let b = 0; b < BINS; b++) {
      let y = H - bottom;
      kinds.forEach((k, j) => {
        const n = counts[j][b];
        if (!n) return;
        const h = n / max * ph;
        y -= h;
        out += '<rect class="tbar" data-close="' + k + '" x="' + (left + b * bw + 0.5).toFixed(1) + '" y="' + y.toFixed(1) + '" width="' +
          Math.max(1, bw - 1).toFixed(1) + '" height="' + h.toFixed(1) + '" fill="url(#tp' + j + ')" stroke="#424242" stroke-width="0.3"><title>' +
          esc((CLOSE_TEXT[k] || k) + ": " + n + " flows starting " + fixed(b * span / BINS / 1000, 3) + "\u2013" +
          fixed((b + 1) * span / BINS / 1000, 3) + " s" + (MANY ? " after their capture's first segment" : "")) + "</title></rect>";
      });
    }
    out += '<text x="' + left + '" y="' + (H - bottom + 16) + '" font-size="11">0 s</text><text x="' + (W - 10) + '" y="' +
      (H - bottom + 16) + '" font-size="11" text-anchor="end">' + fixed(span / 1000, 3) + (MANY ? " s after each capture's first segment" : " s after the first segment") + "</text>";
    let x = left;
    kinds.forEach((k, j) => {
      out += '<rect x="' + x + '" y="' + (H + 8) + '" width="14" height="12" fill="url(#tp' + j + ')" stroke="#424242"/><text x="' +
        (x + 18) + '" y="' + (H + 18) + '" font-size="11">' + esc(CLOSE_TEXT[k] || k) + " (" + fmt(closeCounts[k] || 0) + ")</text>";
      x += 30 + (CLOSE_TEXT[k] || k).length * 6.5 + 40;
    });
    return '<div class="chart wide"><h3>Connections over time, by how they ended</h3>' + out + "</svg></div>";
  }

  // Handshake RTT (SYN -> SYN-ACK -> ACK, as seen where the capture was taken), log-scale bins.
  function rttChart() {
    const v = [];
    for (let i = 0; i < N; i++) { const r = rtt(i); if (r !== null) v.push(r); }
    if (!v.length) return '<div class="chart wide"><h3>Handshake RTT</h3><p>no complete handshake in this report</p></div>';
    v.sort((a, b) => a - b);
    const q = p => v[Math.min(v.length - 1, Math.floor(p * v.length))];
    // Log-scale bins when the times spread over more than a factor of 4, else linear ones.
    const logScale = v[v.length - 1] > 4 * Math.max(v[0], 1e-4);
    const tr = logScale ? x => Math.log10(Math.max(x, 1e-4)) : x => x, back = logScale ? x => Math.pow(10, x) : x => x;
    const lo = tr(v[0]), hi = tr(v[v.length - 1]) + 1e-9;
    const BINS = 40, W = 820, H = 150, left = 50, bottom = 30;
    const counts = new Array(BINS).fill(0);
    const width = Math.max(hi - lo, 1e-6);
    for (const r of v) counts[Math.min(BINS - 1, Math.floor((tr(r) - lo) / width * BINS))]++;
    const max = Math.max(...counts), bw = (W - left - 10) / BINS, ph = H - bottom - 10;
    let out = '<svg width="' + W + '" height="' + H + '" role="img" aria-label="handshake RTT distribution">';
    out += '<line x1="' + left + '" y1="' + (H - bottom) + '" x2="' + (W - 10) + '" y2="' + (H - bottom) + '" stroke="#9e9e9e"/>';
    out += '<text x="' + (left - 6) + '" y="16" text-anchor="end" font-size="11">' + fmt(max) + "</text>";
    counts.forEach((n, b) => {
      if (!n) return;
      const h = n / max * ph, a = back(lo + b * width / BINS), z = back(lo + (b + 1) * width / BINS);
      out += '<rect class="rbar" x="' + (left + b * bw + 0.5).toFixed(1) + '" y="' + (H - bottom - h).toFixed(1) + '" width="' +
        Math.max(1, bw - 1).toFixed(1) + '" height="' + h.toFixed(1) + '" fill="#5c6bc0"><title>' + fmt(n) + " flows: " +
        a.toPrecision(3) + "\u2013" + z.toPrecision(3) + " ms</title></rect>";
    });
    out += '<text x="' + left + '" y="' + (H - bottom + 16) + '" font-size="11">' + back(lo).toPrecision(3) +
      ' ms</text><text x="' + (W - 10) + '" y="' + (H - bottom + 16) + '" font-size="11" text-anchor="end">' +
      back(hi).toPrecision(3) + " ms" + (logScale ? " (log scale)" : "") + "</text></svg>";
    return '<div class="chart wide"><h3>Handshake RTT, SYN \u2192 SYN-ACK \u2192 ACK (' + plural(v.length, "complete handshake") +
      "): median " + fixed(q(0.5), 3) + " ms, p90 " + fixed(q(0.9), 3) + " ms, p99 " + fixed(q(0.99), 3) + " ms</h3>" + out + "</div>";
  }

  // ------------------------------------------------------------------ the flow table
  const COLS = [
    ["n", "#", i => F.n[i], "num"], ["src", "capture", i => D.sources[F.src[i]].name.replace(/^.*[\\/]/, ""), ""],
    ["cl", "client", i => F.cl[i], ""], ["sv", "server", i => F.sv[i], ""],
    ["pk", "pkts", i => F.pk[i], "num"], ["t", "start (s)", i => F.t[i], "num"], ["dur", "ms", i => F.dur[i], "num"],
    ["rtt", "handshake ms SYN\u203aSYN-ACK / SYN-ACK\u203aACK", i => rtt(i), ""], ["close", "close", i => CLOSE_TEXT[S[F.close[i]]] || S[F.close[i]], ""],
    ["conn", "conn_state", i => S[F.conn[i]], ""], ["hist", "history", i => S[F.hist[i]], ""],
    ["an", "anomalies", i => S[F.an[i]], "wrap"], ["vc", "viol.", i => F.vc[i], "num"],
    ["cp", "states: client / server", i => S[F.cp[i]], "path"],
  ].filter(c => c[0] !== "src" || MANY);
  const cell = (key, i) => {
    switch (key) {
      case "t": return fixed(F.t[i] / 1000, 3);
      case "dur": return fixed(F.dur[i], 3);
      case "rtt": return handshakeText(i);
      case "an": return S[F.an[i]].replace(/;/g, " ");
      case "cp": return S[F.cp[i]].replace(/>/g, " \u203a ") + "\n" + S[F.sp[i]].replace(/>/g, " \u203a ");
      default: return COLS.find(c => c[0] === key)[2](i);
    }
  };
  let sortKey = "n", sortDir = 1, order = null, page = 0, pageSize = 100, current = -1;
  $("flow-head").innerHTML = COLS.map(c => '<th scope="col" class="' + c[3] + '" data-key="' + c[0] + '" aria-sort="' +
    (c[0] === "n" ? "ascending" : "none") + '"><button type="button">' + esc(c[1]) + "</button></th>").join("");

  function options(select, entries, all) {
    select.innerHTML = '<option value="">' + esc(all) + "</option>" +
      entries.map(([value, text]) => '<option value="' + esc(value) + '">' + esc(text) + "</option>").join("");
  }
  const pathCounts = new Map();
  for (let i = 0; i < N; i++) {
    pathCounts.set("c" + F.cp[i], (pathCounts.get("c" + F.cp[i]) || 0) + 1);
    pathCounts.set("s" + F.sp[i], (pathCounts.get("s" + F.sp[i]) || 0) + 1);
  }
  options($("f-path"), [...pathCounts.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) =>
    [k, (k[0] === "c" ? "client: " : "server: ") + S[Number(k.slice(1))].replace(/>/g, " > ") + " (" + fmt(n) + ")"]), "any");
  options($("f-close"), D.vocab.close.filter(k => closeCounts[k]).map(k => [k, (CLOSE_TEXT[k] || k) + " (" + fmt(closeCounts[k]) + ")"]), "any");
  options($("f-conn"), D.vocab.conn.filter(k => connCounts[k]).map(k => [k, k + " (" + fmt(connCounts[k]) + ")"]), "any");
  options($("f-anomaly"), [["*", "any anomaly"], ["-", "no anomaly"], ["!v", "RFC 9293 violations (" + fmt(violationFlows) + ")"],
    ["-v", "no violation"]].concat(anomalyKinds.map(k => [k, k + " (" + fmt(anomalyFlows[k]) + ")"])), "all flows");

  // Flows are packed in the order they ended (a streamed analysis): the table's own order is by capture,
  // then flow number.
  const base = new Int32Array(N);
  for (let i = 0; i < N; i++) base[i] = i;
  base.sort((a, b) => F.src[a] - F.src[b] || F.n[a] - F.n[b]);
  const rank = new Int32Array(N);
  for (let k = 0; k < N; k++) rank[base[k]] = k;
  function filtered() {
    const text = $("f-text").value.trim().toLowerCase(), path = $("f-path").value, close = $("f-close").value,
      conn = $("f-conn").value, anomaly = $("f-anomaly").value, portText = $("f-port").value.trim();
    const portNum = portText === "" ? null : Number(portText);
    const pathSide = path ? path[0] : "", pathIdx = path ? Number(path.slice(1)) : 0;
    const closeIdx = close ? S.indexOf(close) : -1, connIdx = conn ? S.indexOf(conn) : -1;
    const words = text ? text.split(/\s+/) : [];
    const textOf = new Map();
    const out = new Int32Array(N);
    let n = 0;
    for (let k = 0; k < N; k++) {
      const i = base[k];
      if (path && (pathSide === "c" ? F.cp[i] : F.sp[i]) !== pathIdx) continue;
      if (close && F.close[i] !== closeIdx) continue;
      if (conn && F.conn[i] !== connIdx) continue;
      if (anomaly === "*" && !F.an[i]) continue;
      if (anomaly === "-" && F.an[i]) continue;
      if (anomaly === "!v" && !F.vc[i]) continue;
      if (anomaly === "-v" && F.vc[i]) continue;
      if (anomaly && anomaly[0] !== "*" && anomaly[0] !== "-" && anomaly[0] !== "!" && !anomalies(i)[anomaly]) continue;
      if (portNum !== null && port(F.cl[i]) !== portNum && port(F.sv[i]) !== portNum) continue;
      if (words.length) {
        // Interned columns are lower-cased once per distinct string.
        const key = F.cp[i] + "," + F.sp[i] + "," + F.hist[i] + "," + F.close[i] + "," + F.conn[i];
        let shared = textOf.get(key);
        if (shared === undefined) {
          shared = [S[F.cp[i]], S[F.sp[i]], S[F.hist[i]], S[F.close[i]], CLOSE_TEXT[S[F.close[i]]] || "", S[F.conn[i]]].join(" ").toLowerCase();
          textOf.set(key, shared);
        }
        const hay = F.cl[i] + " " + F.sv[i] + " #" + F.n[i] + " " + (MANY ? D.sources[F.src[i]].name.toLowerCase() + " " : "") + shared;
        if (!words.every(w => hay.indexOf(w) >= 0)) continue;
      }
      out[n++] = i;
    }
    return out.subarray(0, n);
  }
  function sortKeyOf(key) {
    switch (key) {
      case "close": return i => CLOSE_TEXT[S[F.close[i]]] || "";
      case "conn": case "hist": case "an": case "cp": case "sp": return i => S[F[key][i]];
      case "rtt": return i => { const r = rtt(i); return r === null ? Infinity : r; };
      case "src": return i => F.src[i];
      default: return i => F[key][i];
    }
  }
  function sorted(idx) {
    if (sortKey === "n") return sortDir === 1 ? idx : idx.slice().reverse();
    const get = sortKeyOf(sortKey);
    const keys = new Array(N);
    for (const i of idx) keys[i] = get(i);
    const arr = Array.from(idx);
    arr.sort((a, b) => (keys[a] < keys[b] ? -sortDir : keys[a] > keys[b] ? sortDir : rank[a] - rank[b]));
    return arr;
  }
  function update(keepPage) {
    order = sorted(filtered());
    if (!keepPage) page = 0;
    render();
  }
  // Both paths, one block each, a state never split at its hyphen.
  const pathHtml = k => S[k].split(">").map(x => '<span class="st">' + esc(x) + "</span>").join(" \u203a ");
  function pathsHtml(i) {
    return '<div><span class="who">client</span> ' + pathHtml(F.cp[i]) + '</div><div><span class="who">server</span> ' + pathHtml(F.sp[i]) + "</div>";
  }
  function render() {
    const pages = Math.max(1, Math.ceil(order.length / pageSize));
    page = Math.min(page, pages - 1);
    const start = page * pageSize, stop = Math.min(order.length, start + pageSize);
    const html = [];
    for (let k = start; k < stop; k++) {
      const i = order[k];
      html.push('<tr tabindex="-1" data-index="' + i + '" data-flow="' + F.n[i] + '"' + (i === current ? ' class="current"' : "") + ">" +
        COLS.map(c => "<td" + (c[3] ? ' class="' + c[3] + '"' : "") + ">" + (c[0] === "cp" ? pathsHtml(i) : esc(cell(c[0], i))) + "</td>").join("") + "</tr>");
    }
    $("flow-body").innerHTML = html.join("");
    const first = $("flow-body").firstElementChild;
    if (first) first.tabIndex = 0;
    $("count").textContent = order.length === N ? plural(N, "flow") : fmt(order.length) + " of " + plural(N, "flow") + " match the filters";
    $("p-where").textContent = order.length ? "flows " + fmt(start + 1) + "\u2013" + fmt(stop) + " of " + fmt(order.length) +
      " (page " + fmt(page + 1) + " of " + fmt(pages) + ")" : "no flow matches";
    $("p-first").disabled = $("p-prev").disabled = page === 0;
    $("p-next").disabled = $("p-last").disabled = page >= pages - 1;
  }
  function setSort(key) {
    sortDir = key === sortKey ? -sortDir : 1;
    sortKey = key;
    for (const th of $("flow-head").children) {
      th.setAttribute("aria-sort", th.dataset.key === key ? (sortDir === 1 ? "ascending" : "descending") : "none");
    }
    update(false);
  }
  $("flow-head").addEventListener("click", e => { const th = e.target.closest("th"); if (th) setSort(th.dataset.key); });
  for (const id of ["f-path", "f-close", "f-conn", "f-anomaly"]) $(id).addEventListener("change", () => update(false));
  let typing = null;
  for (const id of ["f-text", "f-port"]) $(id).addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => update(false), 120); });
  $("f-reset").addEventListener("click", () => {
    for (const id of ["f-text", "f-port"]) $(id).value = "";
    for (const id of ["f-path", "f-close", "f-conn", "f-anomaly"]) $(id).value = "";
    update(false);
  });
  const go = p => { page = p; render(); const r = $("flow-body").firstElementChild; if (r) r.focus(); };
  $("p-first").addEventListener("click", () => go(0));
  $("p-prev").addEventListener("click", () => go(page - 1));
  $("p-next").addEventListener("click", () => go(page + 1));
  $("p-last").addEventListener("click", () => go(Math.ceil(order.length / pageSize) - 1));
  $("p-size").addEventListener("change", () => { pageSize = Number($("p-size").value); update(false); });
  $("charts").addEventListener("click", e => {
    const bar = e.target.closest(".bar");
    if (!bar || !bar.dataset.filter) return;
    $("f-" + bar.dataset.filter).value = bar.dataset.value;
    update(false);
    $("flows").scrollIntoView();
  });
  $("charts").addEventListener("keydown", e => { if ((e.key === "Enter" || e.key === " ") && e.target.closest(".bar")) { e.preventDefault(); e.target.closest(".bar").dispatchEvent(new MouseEvent("click", {bubbles: true})); } });
  $("flow-body").addEventListener("click", e => { const tr = e.target.closest("tr"); if (tr) openFlow(Number(tr.dataset.index)); });
  $("flow-body").addEventListener("keydown", e => {
    const tr = e.target.closest("tr");
    if (!tr) return;
    const move = el => { if (el) { tr.tabIndex = -1; el.tabIndex = 0; el.focus(); } };
    if (e.key === "ArrowDown") { e.preventDefault(); if (tr.nextElementSibling) move(tr.nextElementSibling); else if ((page + 1) * pageSize < order.length) go(page + 1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); if (tr.previousElementSibling) move(tr.previousElementSibling); else if (page > 0) { go(page - 1); move($("flow-body").lastElementChild); } }
    else if (e.key === "Home") { e.preventDefault(); move($("flow-body").firstElementChild); }
    else if (e.key === "End") { e.preventDefault(); move($("flow-body").lastElementChild); }
    else if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openFlow(Number(tr.dataset.index)); }
  });
  document.addEventListener("keydown", e => {
    const typingIn = /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName);
    if (e.key === "/" && !typingIn) { e.preventDefault(); $("f-text").focus(); }
    else if (e.key === "Escape" && !$("flow-view").hidden) { e.preventDefault(); closeFlow(); }
    else if (e.key === "PageDown" && !typingIn && e.target.closest && e.target.closest("#flows")) { e.preventDefault(); if ((page + 1) * pageSize < order.length) go(page + 1); }
    else if (e.key === "PageUp" && !typingIn && e.target.closest && e.target.closest("#flows")) { e.preventDefault(); if (page > 0) go(page - 1); }
  });

  // ------------------------------------------------------------------ one flow
  const chunks = [];
  function detail(i) {
    const c = Math.floor(i / D.chunk);
    if (!chunks[c]) chunks[c] = JSON.parse(document.getElementById("hp-d" + c).textContent);
    return chunks[c][i % D.chunk];
  }
  const ms = v => typeof v === "number" ? v / 1000 : v[0] * 1000;
  const ROLES = ["client", "server"];
  // The flow as the ladder port takes it (the record's and the rows' own names).
  const shapes = new Map();
  const shape = k => { if (!shapes.has(k)) shapes.set(k, JSON.parse(S[k])); return shapes.get(k); };
  const R = D.radix, MOD = 4294967296;
  function flowOf(i) {
    const d = detail(i);
    const rec = Object.assign({}, shape(d.k), {client_packets: d.v[0], server_packets: d.v[1], client_bytes: d.v[2],
      server_bytes: d.v[3], violations: d.vi || []});
    if (d.ng !== undefined) rec.negotiation = d.ng;
    let frame = 0;
    const whenOf = new Map();
    const rows = d.rows.map(r => {
      frame += r[0];
      const side = r[2] & 1 ? 0 : 1, fl = S[r[2] >> 1], cut = fl.indexOf(" ");
      const seq = Array.isArray(r[3]) ? r[3] : [(d.isn[side] + r[3]) % MOD, r[3]];
      const ack = r[4] === null ? [null, null] : Array.isArray(r[4]) ? r[4] : [(d.isn[1 - side] + r[4]) % MOD, r[4]];
      const st = r[7], win = Array.isArray(r[6]) ? r[6] : [r[6], null];
      if (!whenOf.has(frame)) whenOf.set(frame, r[1]);
      return {frame: frame, ms: ms(r[1]), from_client: side === 0, tcpdump_flags: fl.slice(0, cut), flag_names: fl.slice(cut + 1),
        seq: seq[0], rel_seq: seq[1], ack: ack[0], rel_ack: ack[1], len: r[5], window: win[0], window_scale: win[1],
        window_scaled: win[1] === null ? null : win[0] * 2 ** win[1], syn_options: r[9] === undefined ? "" : S[r[9]],
        client_state: D.states[Math.floor(st / 4 / R)], server_state: D.states[Math.floor(st / 4) % R], moved: st & 3, notes: r[8] || []};
    });
    const transitions = d.tr.map(t => {
      let code = t[1];
      const endpoint = ROLES[code & 1];
      code = Math.floor(code / 2);
      const to = D.states[code % R], from = D.states[Math.floor(code / R) % R], cause = D.causes[Math.floor(code / R / R)];
      return {ms: ms(t.length > 2 ? t[2] : whenOf.get(t[0])), frame: t[0], endpoint: endpoint, from: from, to: to, cause: cause};
    });
    const cs = S[F.cp[i]].split(">"), ss = S[F.sp[i]].split(">");
    return {index: i, number: F.n[i], client: F.cl[i], server: F.sv[i], direction: rec.direction, packets: F.pk[i],
      close: S[F.close[i]], client_initial: cs[0], server_initial: ss[0], client_states: cs, server_states: ss,
      violations: rec.violations, rec: rec, transitions: transitions, rows: rows};
  }
  function negotiationHtml(ng) {
    if (!ng) return "";
    const side = (s, key) => {
      if (!s) return "-";
      const v = s[key];
      if (key === "tfo") return v ? (["cookie_request", "cookie", "data", "data_acked"].map(k => k + "=" + (v[k] === null ? "-" : v[k])).join(" ")) : "-";
      if (key === "ecn") return v ? ["ece", "cwr", "ae"].filter(k => v[k]).join("+") || "none" : "-";
      return v === null || v === undefined ? "-" : String(v);
    };
    const keys = ["isn", "window", "mss", "window_scale", "sack_permitted", "timestamps", "tsval", "tfo", "mptcp", "ecn", "ttl", "df", "options", "p0f", "os"];
    let out = '<h3>Negotiation (SYN and SYN-ACK options)</h3><div class="table-wrap"><table class="nego"><tr><th></th><th scope="col">client (SYN)' +
      (ng.syn_seen ? "" : " \u2014 not seen") + '</th><th scope="col">server (SYN-ACK)' + (ng.synack_seen ? "" : " \u2014 not seen") + "</th></tr>";
    for (const k of keys) out += '<tr><th scope="row">' + esc(k) + "</th><td>" + esc(side(ng.client, k)) + "</td><td>" + esc(side(ng.server, k)) + "</td></tr>";
    out += "</table></div>";
    if (ng.in_effect) {
      out += '<p><b>in effect:</b> ' + Object.entries(ng.in_effect).map(([k, v]) => '<span class="tag">' + esc(k + "=" + (v === null ? "-" : v)) + "</span>").join("") + "</p>";
    } else out += "<p><b>in effect:</b> unknown (SYN or SYN-ACK not seen)</p>";
    if (ng.warnings && ng.warnings.length) out += '<p><b>warnings:</b> ' + ng.warnings.map(w => '<span class="tag">' + esc(w) + "</span>").join("") + "</p>";
    return out;
  }
  function drawLadder(f) {
    const all = $("fv-all").checked, abs = $("fv-abs").checked;
    const svg = HPLadder.svg(f, L, abs, all ? null : undefined);
    $("fv-ladder").innerHTML = svg.replace(/^<\?xml[^>]*>\s*/, "");
  }
  let shownFlow = null;
  function openFlow(i, fromHash, again) {
    const f = again || flowOf(i);
    shownFlow = f;
    current = i;
    const rec = f.rec, hs = rec.handshake || {};
    const src = MANY ? esc(D.sources[F.src[i]].name) + ": " : "";
    $("fv-title").textContent = (MANY ? D.sources[F.src[i]].name + ": " : "") + "flow " + f.number;
    let head = "<p><b>" + src + "flow " + f.number + ":</b> client <code>" + esc(f.client) + "</code> \u2192 server <code>" + esc(f.server) +
      "</code> (direction " + esc(f.direction) + "), " + plural(f.packets, "packet") + " (" + fmt(rec.client_packets) + " from the client, " +
      fmt(rec.server_packets) + " from the server; " + fmt(rec.client_bytes) + " / " + fmt(rec.server_bytes) + " payload bytes), close: <b>" +
      esc(CLOSE_TEXT[f.close] || f.close) + "</b>, " + fixed(F.dur[i], 3) + " ms</p>";
    if (rec.tunnels && rec.tunnels.length) head += "<p>tunnels: " + rec.tunnels.map(t => esc(t.kind + " " + t.outer_client + " <-> " + t.outer_server + " (" + plural(t.packets, "packet") + ")")).join("; ") + "</p>";
    head += "<p>handshake: " + esc(S[F.hs[i]] === "complete" ? "complete (" + handshakeText(i) + " ms: SYN \u2192 SYN-ACK / SYN-ACK \u2192 ACK)" : handshakeText(i)) + (hs.syn_count > 1 ? " \u00b7 " + hs.syn_count + " SYNs" : "") + "</p>";
    head += '<p class="paths">client: ' + esc(f.client_states.join(" > ")) + '<br>server: ' + esc(f.server_states.join(" > ")) + "</p>";
    head += "<p>Zeek: conn_state <b>" + esc(S[F.conn[i]]) + "</b>, history <code>" + esc(S[F.hist[i]]) + "</code> (originator: " + esc(rec.zeek_orig || "-") +
      ") \u00b7 tshark completeness " + esc(rec.completeness) + " (" + esc(rec.completeness_flags || "-") + ")" +
      (rec.reused_port ? " \u00b7 reused port" : "") + "</p>";
    const an = Object.entries(rec.anomalies || {});
    head += "<p>anomalies: " + (an.length ? an.map(([k, n]) => '<span class="tag">' + esc(k + "=" + n) + "</span>").join("") : "none") + "</p>";
    $("fv-head").innerHTML = head;
    $("fv-negotiation").innerHTML = negotiationHtml(rec.negotiation);
    if (f.rows.length) drawLadder(f); else $("fv-ladder").textContent = "(no segments kept for this flow)";
    // A flow of many thousand segments: its first and last ones, and a button for all of them.
    const SEG_MAX = 2000, whole = f.rows.length <= SEG_MAX || f.showAll;
    const listed = whole ? f.rows : f.rows.slice(0, SEG_MAX - 500).concat([null], f.rows.slice(-500));
    const rows = listed.map(r => {
      if (r === null) return '<tr><td colspan="14"><button type="button" id="fv-seg-all">show all ' + fmt(f.rows.length) +
        " segments (" + fmt(f.rows.length - SEG_MAX) + " more)</button></td></tr>";
      const dir = r.from_client ? "client\u2192server" : "server\u2192client";
      return '<tr data-frame="' + r.frame + '"><td>' + r.frame + '</td><td class="num">' + fixed(r.ms, 3) + "</td><td>" + dir +
        "</td><td>" + esc(r.tcpdump_flags) + "</td><td>" + esc(r.flag_names) + '</td><td class="num">' + (r.rel_seq === null ? "" : r.rel_seq) +
        '</td><td class="num">' + (r.rel_ack === null ? "" : r.rel_ack) + '</td><td class="num">' + r.seq + '</td><td class="num">' + (r.ack === null ? "" : r.ack) +
        '</td><td class="num">' + r.len + '</td><td class="num">' + esc(windowText(r)) + '</td><td class="state' + (r.moved & 1 ? " moved" : "") + '" data-endpoint="client">' + esc(r.client_state) +
        (r.moved & 1 ? " *" : "") + '</td><td class="state' + (r.moved & 2 ? " moved" : "") + '" data-endpoint="server">' + esc(r.server_state) + (r.moved & 2 ? " *" : "") +
        '</td><td class="note">' + esc(r.notes.join("; ")) + "</td></tr>";
    });
    $("fv-segments").innerHTML = "<thead><tr>" + ["frame", "ms", "direction", "flags", "names", "seq", "ack", "seq (abs)", "ack (abs)", "len", "win", "client", "server", "notes"]
      .map(h => '<th scope="col">' + h + "</th>").join("") + "</tr></thead><tbody>" + rows.join("") + "</tbody>";
    if (!whole) $("fv-seg-all").addEventListener("click", () => { f.showAll = true; shownFlow = f; openFlow(f.index, true, f); });
    $("fv-transitions").innerHTML = "<thead><tr><th>ms</th><th>at</th><th>endpoint</th><th>from</th><th>to</th><th>cause</th></tr></thead><tbody>" +
      f.transitions.map(t => '<tr><td class="num">' + fixed(t.ms, 3) + "</td><td>" + (t.frame === null ? "timer" : "frame " + t.frame) + "</td><td>" + t.endpoint +
        "</td><td>" + esc(t.from) + "</td><td>" + esc(t.to) + "</td><td>" + esc(t.cause) + "</td></tr>").join("") + "</tbody>";
    $("fv-violations").innerHTML = f.violations.length ? "<h3>Violations (" + fmt(rec.violation_count) + ")</h3><ul>" +
      f.violations.map(v => "<li>frame " + v.frame + ": " + esc(v.endpoint) + " in " + esc(v.state) + ": " + esc(v.reason) + "</li>").join("") + "</ul>" : "";
    $("flow-view").hidden = false;
    for (const tr of $("flow-body").children) tr.classList.toggle("current", Number(tr.dataset.index) === i);
    const hash = "#flow=" + (MANY ? F.src[i] + ":" : "") + f.number;
    if (location.hash !== hash) history.replaceState(null, "", hash);
    if (!fromHash) $("flow-view").focus({preventScroll: true});
    $("flow-view").scrollIntoView();
  }
  function closeFlow() {
    $("flow-view").hidden = true;
    history.replaceState(null, "", location.pathname + location.search);
    const tr = $("flow-body").querySelector('tr[data-index="' + current + '"]') || $("flow-body").firstElementChild;
    if (tr) { tr.tabIndex = 0; tr.focus(); }
  }
  function step(delta) {
    const at = order.indexOf(current);
    const k = at < 0 ? 0 : at + delta;
    if (k >= 0 && k < order.length) { page = Math.floor(k / pageSize); render(); openFlow(order[k]); }
  }
  $("fv-close").addEventListener("click", closeFlow);
  $("fv-prev").addEventListener("click", () => step(-1));
  $("fv-next").addEventListener("click", () => step(1));
  for (const id of ["fv-all", "fv-abs"]) $(id).addEventListener("change", () => { if (shownFlow && shownFlow.rows.length) drawLadder(shownFlow); });
  function fromHash() {
    const m = /^#flow=(?:(\d+):)?(\d+)$/.exec(location.hash);
    if (!m) return;
    const src = m[1] === undefined ? 0 : Number(m[1]), n = Number(m[2]);
    for (let i = 0; i < N; i++) if (F.src[i] === src && F.n[i] === n) { openFlow(i, true); return; }
  }

  update(false);
  fromHash();
  window.addEventListener("hashchange", fromHash);
  // For tests and the load-time bench: when the page was ready, and the ladder port for comparisons.
  window.hpReport = {layout: L, ready: performance.now(), parsedIn: performance.now() - t0, flows: N, open: openFlow,
    flowOf: flowOf, ladder: (i, abs, all) => HPLadder.svg(flowOf(i), L, !!abs, all ? null : undefined), indexOf: (src, n) => {
      for (let i = 0; i < N; i++) if (F.src[i] === src && F.n[i] === n) return i;
      return -1;
    }};
  document.documentElement.dataset.ready = "1";
})();
