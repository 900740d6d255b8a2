"use strict";
(() => {
  const { el } = RP;
  const tbody = document.querySelector("#fleet tbody");

  function alarms(open) {
    const parts = ["critical", "warning", "info"]
      .filter((s) => open[s])
      .map((s) => el("span", { class: `sev sev-${s}`, title: `${open[s]} open ${s}` }, `${open[s]} ${s}`));
    return parts.length ? parts : ["none"];
  }

  function render(fleet) {
    document.getElementById("fleet-count").textContent = `${fleet.online} online · ${fleet.offline} offline`;
    const rows = fleet.trains.map((t) =>
      el("tr", { dataset: { train: t.train }, class: t.online ? "online" : "offline" },
        el("td", {}, el("a", { href: `/trains/${encodeURIComponent(t.train)}` }, t.train)),
        el("td", {}, el("span", { class: `dot ${t.online ? "on" : "off"}` }), t.online ? "online" : "offline"),
        el("td", { title: RP.fmtDate(t.last_frame_ms) }, t.last_frame_age_s == null ? "never" : `${RP.fmtDur(t.last_frame_age_s * 1000)} ago`),
        el("td", { class: "num" }, t.last_seq ?? "–"),
        el("td", {}, alarms(t.open_alarms)),
        el("td", { class: "num" }, t.anomalies_1h),
        el("td", { class: "num" }, t.frames),
      ));
    RP.replaceRows(tbody, rows, "waiting for the first frames…", 7);
  }

  RP.getJSON("/api/fleet").then(render);
  RP.connect({ view: "fleet" }, { fleet: render });
})();
