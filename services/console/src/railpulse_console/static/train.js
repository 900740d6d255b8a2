"use strict";
// One train: a uPlot per channel over the last hour, the catalogue's bands behind the line,
// anomalies as markers on the plots of the channels they are attributed to.
(() => {
  const { el } = RP;
  const train = document.body.dataset.train;
  const plotsEl = document.getElementById("plots");
  const plots = new Map(); // channel -> {u, meta, data, box}
  const anomalies = new Map(); // id -> item
  let windowS = 3600;
  let lastTs = 0;

  const BAND = { ok: "rgba(46, 160, 67, 0.10)", warn: "rgba(210, 153, 34, 0.22)", crit: "rgba(218, 54, 51, 0.22)" };
  const LIMIT = { warn: "rgba(210, 153, 34, 0.9)", crit: "rgba(248, 81, 73, 0.9)" };
  const SEVERITY_COLOR = { critical: "#f85149", warning: "#d29922", info: "#58a6ff" };

  function channelsOf(item) {
    const names = new Set((item.channels || []).map((c) => c.channel));
    const suffix = (item.alert_key || "").split(":")[1];
    if (suffix) names.add(suffix);
    return names;
  }
  function anomaliesFor(channel) {
    const out = [];
    for (const a of anomalies.values()) {
      const names = channelsOf(a);
      if (names.has(channel) || ![...names].some((n) => plots.has(n))) out.push(a);
    }
    return out;
  }

  // The y range always shows the operating band and a visible part of the warning band beyond
  // it; all of the critical range once the data leave the operating band.
  function yRange(meta) {
    return (u, min, max) => {
      let lo = min, hi = max;
      if (meta.operating) {
        const [opLo, opHi] = meta.operating, [crLo, crHi] = meta.critical;
        const outside = min < opLo || max > opHi;
        const showLo = outside ? crLo : opLo - (opLo - crLo) * 0.4;
        const showHi = outside ? crHi : opHi + (crHi - opHi) * 0.4;
        lo = Math.min(lo ?? showLo, showLo);
        hi = Math.max(hi ?? showHi, showHi);
      }
      if (lo == null || hi == null) return [0, 1];
      const pad = (hi - lo || Math.abs(hi) || 1) * 0.04;
      return [lo - pad, hi + pad];
    };
  }

  function drawBands(meta) {
    return (u) => {
      if (!meta.operating) return;
      const { ctx } = u;
      const { left, top, width, height } = u.bbox;
      const y = (v) => Math.min(top + height, Math.max(top, u.valToPos(v, "y", true)));
      const fill = (from, to, color) => {
        const a = y(from), b = y(to);
        ctx.fillStyle = color;
        ctx.fillRect(left, Math.min(a, b), width, Math.abs(a - b));
      };
      ctx.save();
      fill(u.scales.y.min, u.scales.y.max, BAND.crit);
      ctx.clearRect(left, y(meta.critical[1]), width, y(meta.critical[0]) - y(meta.critical[1]));
      fill(meta.critical[0], meta.critical[1], BAND.warn);
      ctx.clearRect(left, y(meta.operating[1]), width, y(meta.operating[0]) - y(meta.operating[1]));
      fill(meta.operating[0], meta.operating[1], BAND.ok);
      // Dashed limit lines: amber at the operating limits, red at the critical ones.
      ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
      ctx.lineWidth = devicePixelRatio;
      for (const [value, color] of [[meta.operating[0], LIMIT.warn], [meta.operating[1], LIMIT.warn],
                                    [meta.critical[0], LIMIT.crit], [meta.critical[1], LIMIT.crit]]) {
        if (value < u.scales.y.min || value > u.scales.y.max) continue;
        const py = Math.round(y(value)) + 0.5;
        ctx.strokeStyle = color;
        ctx.beginPath(); ctx.moveTo(left, py); ctx.lineTo(left + width, py); ctx.stroke();
      }
      ctx.restore();
    };
  }

  function drawMarkers(channel) {
    return (u) => {
      const { ctx } = u;
      const { top, height } = u.bbox;
      const list = anomaliesFor(channel);
      const layer = plots.get(channel)?.markers;
      ctx.save();
      ctx.lineWidth = 2 * devicePixelRatio;
      const shown = [];
      for (const a of list) {
        const x = a.at_ms / 1000;
        if (x < u.scales.x.min || x > u.scales.x.max) continue;
        const px = u.valToPos(x, "x", true);
        ctx.strokeStyle = SEVERITY_COLOR[a.severity_name] || SEVERITY_COLOR.critical;
        ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, top + height); ctx.stroke();
        shown.push([a, u.valToPos(x, "x")]);
      }
      ctx.restore();
      if (layer) {
        // DOM markers over the canvas: hoverable (score, attribution) and findable by tests.
        layer.replaceChildren(...shown.map(([a, left]) =>
          el("div", { class: `marker sev-${a.severity_name}`, style: `left:${left}px`, dataset: { anomalyId: a.id },
            title: `${RP.fmtTime(a.at_ms)} ${a.category} ${a.alert_key}\nscore ${RP.fmtNum(a.score)} / threshold ${RP.fmtNum(a.threshold)}\n${RP.attribution(a.channels)}` },
            el("span", {}, RP.fmtNum(a.score, 1)))));
      }
    };
  }

  function makePlot(meta, ts, values) {
    const box = el("div", { class: "plot", dataset: { channel: meta.name } },
      el("div", { class: "plot-head" },
        el("b", {}, meta.name), " ", el("span", { class: "unit" }, meta.unit),
        el("span", { class: "latest" }, "")));
    plotsEl.append(box);
    const data = [ts.map((t) => t / 1000), values.slice()];
    const opts = {
      // Three plots a row: 8 px gaps, 14 px of padding and border per plot box.
      width: Math.max(280, Math.floor((plotsEl.clientWidth - 16) / 3) - 14),
      height: 140,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: yRange(meta) } },
      axes: [{ stroke: "#8b949e", grid: { stroke: "#21262d" }, size: 30,
               values: (u, splits) => splits.map((s) => RP.fmtTime(s * 1000).slice(0, 5)) },
             { stroke: "#8b949e", grid: { stroke: "#21262d" }, size: 58 }],
      series: [{}, { stroke: "#58a6ff", width: 1.5, spanGaps: false, points: { show: false } }],
      hooks: { drawClear: [drawBands(meta)], draw: [drawMarkers(meta.name)] },
      tzDate: (s) => uPlot.tzDate(new Date(s * 1e3), "Etc/UTC"),
    };
    const u = new uPlot(opts, data, box);
    const markers = el("div", { class: "markers" });
    u.over.append(markers);
    const entry = { u, meta, data, box, markers };
    plots.set(meta.name, entry);
    setLatest(entry);
    u.redraw(false);
  }

  function setLatest(entry) {
    const ys = entry.data[1];
    for (let i = ys.length - 1; i >= 0; i--) {
      if (ys[i] != null) {
        entry.box.querySelector(".latest").textContent = RP.fmtNum(ys[i]);
        return;
      }
    }
  }

  function appendFrames(delta) {
    if (!delta.ts.length) return;
    const cutoff = Date.now() / 1000 - windowS;
    for (const [name, ys] of Object.entries(delta.values)) {
      let entry = plots.get(name);
      if (!entry) {
        makePlot({ name, unit: "", operating: null, critical: null }, [], []);
        entry = plots.get(name);
      }
      const [xs, vs] = entry.data;
      delta.ts.forEach((t, i) => { xs.push(t / 1000); vs.push(ys[i]); });
      let drop = 0;
      while (drop < xs.length && xs[drop] < cutoff) drop++;
      if (drop) { xs.splice(0, drop); vs.splice(0, drop); }
      entry.u.setData(entry.data);
      setLatest(entry);
    }
    lastTs = Math.max(lastTs, delta.ts[delta.ts.length - 1]);
  }

  function renderAnomalies() {
    const rows = [...anomalies.values()].sort((a, b) => b.at_ms - a.at_ms).map((a) =>
      el("tr", { dataset: { id: a.id } },
        el("td", { title: RP.fmtDate(a.at_ms) }, RP.fmtTime(a.at_ms)),
        el("td", {}, RP.severityBadge(a.severity, a.severity_name)),
        el("td", {}, `${a.category} · ${a.alert_key}`),
        el("td", { class: "num" }, `${RP.fmtNum(a.score)} / ${RP.fmtNum(a.threshold)}`),
        el("td", {}, RP.attribution(a.channels)),
        el("td", {}, a.message || "")));
    RP.replaceRows(document.querySelector("#anomalies tbody"), rows, "none in the last hour", 6);
  }

  function renderAlarms(alarms) {
    const rows = alarms.map((a) =>
      el("tr", { dataset: { alarm: a.alarm_id } },
        el("td", { title: RP.fmtDate(a.raised_ms) }, RP.fmtTime(a.raised_ms)),
        el("td", {}, a.alert_key),
        el("td", {}, RP.severityBadge(a.severity, a.severity_name)),
        el("td", {}, a.state),
        el("td", { class: "num" }, RP.fmtDur(a.time_to_ack_ms)),
        el("td", { class: "num" }, RP.fmtDur(a.time_to_clear_ms))));
    RP.replaceRows(document.querySelector("#alarms tbody"), rows, "no alarms", 6);
  }

  function renderSummary(s) {
    const badge = document.getElementById("train-state");
    badge.textContent = s.online ? "online" : "offline";
    badge.className = `badge ${s.online ? "on" : "off"}`;
    const open = Object.entries(s.open_alarms).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ") || "none";
    document.getElementById("train-meta").textContent =
      `last frame ${s.last_frame_age_s == null ? "never" : RP.fmtDur(s.last_frame_age_s * 1000) + " ago"} · seq ${s.last_seq ?? "–"} · open alarms: ${open}`;
  }

  function addAnomaly(item) {
    if (item.train !== train || anomalies.has(item.id)) return;
    anomalies.set(item.id, item);
    RP.markSeen(item.id);
    renderAnomalies();
    for (const entry of plots.values()) entry.u.redraw(false);
  }

  // Alarms and anomalies again (not the series): after an alarm step, and on each (re)connect.
  function refresh() {
    RP.getJSON(`/api/trains/${encodeURIComponent(train)}?series=0`).then((d) => {
      renderAlarms(d.alarms);
      for (const a of d.anomalies) addAnomaly(a);
    });
  }

  async function load() {
    const detail = await RP.getJSON(`/api/trains/${encodeURIComponent(train)}`);
    windowS = detail.window_s;
    renderSummary(detail.summary);
    for (const a of detail.anomalies) anomalies.set(a.id, a);
    for (const ch of detail.channels) {
      makePlot(ch, ch.ts, ch.values);
      if (ch.ts.length) lastTs = Math.max(lastTs, ch.ts[ch.ts.length - 1]);
    }
    renderAnomalies();
    renderAlarms(detail.alarms);
    for (const entry of plots.values()) entry.u.redraw(false);
    document.body.dataset.history = detail.history;
    document.getElementById("history").textContent =
      detail.history === "stream" ? "the streams only (no warehouse history yet)" : "the streams and the warehouse";
    RP.connect({ view: "train", train, after: lastTs || Date.now() }, {
      frames: appendFrames,
      summary: renderSummary,
      anomaly: addAnomaly,
      alarm: (item) => { if (item.train === train) refresh(); },
    }, refresh);
    for (const a of anomalies.values()) RP.markSeen(a.id);
  }

  load().catch((err) => { plotsEl.replaceChildren(el("p", { class: "bad" }, String(err))); });
})();
