"use strict";
(() => {
  const { el } = RP;
  const tbody = document.querySelector("#feed tbody");
  const form = document.getElementById("filters");
  const params = new URLSearchParams(location.search);
  for (const name of ["train", "severity", "category", "kind"]) {
    if (params.has(name)) form.elements[name].value = params.get(name);
  }
  let items = [];

  function filters() {
    return {
      train: form.elements.train.value.trim(),
      severity: Number(form.elements.severity.value || 0),
      category: form.elements.category.value,
      kind: form.elements.kind.value,
    };
  }
  function matches(item, f) {
    return (!f.train || item.train === f.train) && item.severity >= f.severity &&
      (!f.category || item.category === f.category) && (!f.kind || item.kind === f.kind);
  }

  function row(item) {
    const what = item.kind === "alarm" ? `${item.alert_key} → ${item.state}` : `${item.category} · ${item.alert_key}`;
    return el("tr", { dataset: { id: item.id, kind: item.kind, train: item.train }, class: `k-${item.kind}` },
      el("td", { title: RP.fmtDate(item.at_ms) }, RP.fmtTime(item.at_ms)),
      el("td", {}, el("a", { href: `/trains/${encodeURIComponent(item.train)}` }, item.train)),
      el("td", {}, item.kind),
      el("td", {}, RP.severityBadge(item.severity, item.severity_name)),
      el("td", {}, what),
      el("td", { class: "num" }, item.score == null ? "–" : `${RP.fmtNum(item.score)} / ${RP.fmtNum(item.threshold)}`),
      el("td", {}, RP.attribution(item.channels)),
      el("td", {}, item.message || ""),
    );
  }

  function render() {
    const f = filters();
    const shown = items.filter((i) => matches(i, f)).slice(0, 500);
    RP.replaceRows(tbody, shown.map(row), "no alerts match", 8);
    for (const item of shown) RP.markSeen(item.id);
  }

  function add(item) {
    if (items.some((i) => i.id === item.id)) return;
    items.unshift(item);
    items.sort((a, b) => b.at_ms - a.at_ms); // newest first by event time, whatever the arrival order
    if (items.length > 2000) items.length = 2000;
    render();
  }

  // Filters only narrow what is shown and live in the URL: nothing is submitted anywhere.
  form.addEventListener("submit", (e) => e.preventDefault());
  form.addEventListener("input", () => {
    const f = filters();
    const query = new URLSearchParams(Object.entries(f).filter(([, v]) => v));
    history.replaceState(null, "", `/alerts${query.toString() ? "?" + query : ""}`);
    render();
  });

  const load = () => RP.getJSON("/api/alerts?limit=1000").then((loaded) => {
    const known = new Set(items.map((i) => i.id));
    items = items.concat(loaded.filter((i) => !known.has(i.id)));
    items.sort((a, b) => b.at_ms - a.at_ms);
    render();
  });
  load();
  RP.connect({ view: "alerts" }, { anomaly: add, alarm: add }, load);
})();
