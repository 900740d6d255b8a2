// railpulse console: helpers shared by every page. No framework; the DOM is built with
// createElement/textContent only, so nothing a train sends can become markup.
"use strict";
const RP = (() => {
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const SEVERITY = { 1: "info", 2: "warning", 3: "critical" };

  function fmtTime(ms) {
    if (ms == null) return "–";
    const d = new Date(ms);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  function fmtDate(ms) {
    if (ms == null) return "–";
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${fmtTime(ms)}`;
  }
  function fmtDur(ms) {
    if (ms == null) return "–";
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${pad(Math.round(s % 60))} s`;
    return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  }
  function fmtNum(v, digits = 2) {
    return v == null || Number.isNaN(v) ? "–" : Number(v).toFixed(digits);
  }

  // el("td", {class: "x", dataset: {id: "1"}}, "text", childNode, ...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "class") node.className = value;
      else if (key === "title") node.title = value;
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child == null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function severityBadge(severity, name) {
    const label = name || SEVERITY[severity] || String(severity);
    return el("span", { class: `sev sev-${label}` }, label);
  }

  function attribution(channels) {
    if (!channels || !channels.length) return "–";
    return channels
      .slice(0, 3)
      .map((c) => `${c.channel} ${(c.contribution * 100).toFixed(0)}%${c.direction === "low" ? " ↓" : " ↑"}`)
      .join(", ");
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  }

  // Measurements for tests and operators: when each alert reached this page.
  const seen = {};
  function markSeen(id) {
    if (!(id in seen)) seen[id] = Date.now();
  }

  // `opened` runs on every (re)connection: what happened between the page's snapshot and the
  // stream's start is fetched again, so no alert falls in the gap.
  function connect(params, handlers, opened) {
    const live = document.getElementById("live");
    const source = new EventSource(`/api/stream?${new URLSearchParams(params)}`);
    source.onopen = () => {
      live.textContent = "live";
      live.className = "live on";
      if (opened) opened();
    };
    source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
    }
    return source;
  }

  function replaceRows(tbody, rows, emptyText, columns) {
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText))]));
  }

  const tickClock = () => {
    const clock = document.getElementById("clock");
    if (clock) clock.textContent = fmtDate(Date.now());
  };
  tickClock();
  setInterval(tickClock, 1000);

  return { el, fmtTime, fmtDate, fmtDur, fmtNum, severityBadge, attribution, getJSON, connect, markSeen, seen, replaceRows, SEVERITY };
})();
window.RP = RP;
