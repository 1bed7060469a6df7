/* The Audit page: the workspace's events, newest first, fifty at a time. */
"use strict";

(() => {
  const { api, el, $, showError, wsPath } = LK;
  let cursor = null;

  function details(d) {
    const entries = Object.entries(d || {});
    if (!entries.length) return "";
    return el("dl", { class: "details" }, entries.flatMap(([k, v]) =>
      [el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]));
  }

  function row(e) {
    return el("tr", {},
      el("td", { "data-label": "When" }, el("time", { datetime: e.at }, LK.fmtTime(e.at))),
      el("td", { "data-label": "Action" }, el("code", {}, e.action)),
      el("td", { "data-label": "Target" }, e.target_name || e.target_id || ""),
      el("td", { "data-label": "Actor" }, el("span", { class: "muted small" }, e.actor)),
      el("td", { "data-label": "Details" }, details(e.details)));
  }

  async function load(more) {
    showError($("#page-error"), null);
    try {
      const q = `?limit=50${more && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await api("GET", wsPath(`/events${q}`));
      cursor = page.next_cursor;
      $("#more-events").hidden = !cursor;
      const list = $("#event-list");
      if (!more) {
        if (!page.items.length) {
          list.replaceChildren(el("div", { class: "empty" }, el("h2", {}, "Nothing recorded yet")));
          return;
        }
        list.replaceChildren(el("table", { class: "table event-table" },
          el("thead", {}, el("tr", {}, ["When", "Action", "Target", "Actor", "Details"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {})));
      }
      const body = list.querySelector("tbody");
      if (body) body.append(...page.items.map(row));
    } catch (err) { showError($("#page-error"), err); }
  }

  LK.page("audit", {
    setup() { $("#more-events").addEventListener("click", () => load(true)); },
    render() { cursor = null; load(false); },
  });
})();
