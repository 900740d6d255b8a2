"use strict";
(() => {
  const { el } = RP;

  function render(h) {
    document.getElementById("fps").textContent = RP.fmtNum(h.frames_per_s, 1);
    document.getElementById("apm").textContent = RP.fmtNum(h.anomalies_per_min, 1);
    document.getElementById("warehouse").textContent = h.warehouse;
    document.querySelector("#streams tbody").replaceChildren(...h.streams.map((s) =>
      el("tr", { dataset: { stream: s.stream } },
        el("td", {}, s.stream),
        el("td", { class: "num" }, s.shards),
        el("td", { class: "num lag" }, s.millis_behind_latest == null ? "–" : RP.fmtDur(s.millis_behind_latest)),
        el("td", { class: "num" }, s.newest_arrival_age_ms == null ? "–" : RP.fmtDur(s.newest_arrival_age_ms)),
        el("td", { class: "num" }, s.records),
        el("td", { class: "num" }, s.decode_errors),
        el("td", { class: s.error ? "bad" : "good" }, s.error || "ok"),
      )));
    document.querySelector("#consumers tbody").replaceChildren(...h.consumers.map((c) =>
      el("tr", { dataset: { application: c.application } },
        el("td", {}, c.application),
        el("td", {}, c.stream),
        el("td", { class: "num" }, c.leases),
        el("td", { class: "num" }, c.owners),
        el("td", { class: "num lag" }, c.lag_ms == null ? "–" : RP.fmtDur(c.lag_ms)),
        el("td", { class: c.error ? "bad" : "" }, c.error || c.note || "ok"),
      )));
    document.querySelector("#queues tbody").replaceChildren(...h.queues.map((q) =>
      el("tr", { dataset: { queue: q.queue } },
        el("td", {}, q.queue),
        el("td", { class: "num waiting" }, q.visible ?? "–"),
        el("td", { class: "num" }, q.in_flight ?? "–"),
        el("td", { class: "reasons" }, Object.entries(q.by_reason).map(([r, n]) => `${r}: ${n}`).join(", ") || "–"),
        el("td", { class: q.error ? "bad" : "" }, q.error || q.note),
      )));
  }

  RP.getJSON("/api/health").then(render);
  RP.connect({ view: "health" }, { health: render });
})();
