/* The Credentials page: every application with the number of its connections in the workspace
   (the seeds' green number); a click lists that application's connections. */
"use strict";

(() => {
  const { el, $, showError, statusBadge, modeLabel, wsPath } = LK;
  let selected = null;
  let apps = [];

  function initials(name) {
    return name.split(/[^A-Za-z0-9]+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
  }

  function card(a) {
    const count = a.connection_count || 0;
    const b = el("button", {
      type: "button",
      class: "app-card",
      "aria-pressed": selected === a.id ? "true" : "false",
      "aria-label": `${a.name}: ${count} connection${count === 1 ? "" : "s"}`,
      dataset: { app: a.id },
      onclick: () => select(a.id),
    },
    el("span", { class: "app-icon", "aria-hidden": "true" }, initials(a.name),
      el("span", { class: count ? "count" : "count count-zero", dataset: { count } }, String(count))),
    el("span", { class: "app-text" },
      el("span", { class: "app-name" }, a.name),
      el("span", { class: "app-desc" }, a.description || ""),
      el("span", { class: "app-modes" }, a.auth_modes.map(modeLabel).join(" · "))));
    return b;
  }

  async function loadGrid() {
    showError($("#page-error"), null);
    try {
      apps = await LK.listAll(wsPath("/apps"));
      $("#app-grid").replaceChildren(...apps.map(card));
    } catch (err) { showError($("#page-error"), err); }
  }

  async function select(id) {
    selected = id;
    document.querySelectorAll(".app-card").forEach((c) => c.setAttribute("aria-pressed", c.dataset.app === id ? "true" : "false"));
    const a = apps.find((x) => x.id === id);
    const detail = $("#app-detail");
    detail.hidden = false;
    $("#app-detail-title").textContent = `${a ? a.name : id} connections`;
    const box = $("#app-conns");
    box.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    detail.scrollIntoView({ block: "nearest" });
    try {
      const conns = await LK.listAll(wsPath(`/connections?app=${encodeURIComponent(id)}`));
      if (!conns.length) {
        box.replaceChildren(el("p", { class: "muted" }, "No connection for this application in this workspace yet."));
        return;
      }
      box.replaceChildren(el("ul", { class: "conn-list" }, conns.map((c) =>
        el("li", { dataset: { name: c.name } },
          el("div", {}, el("strong", {}, c.name), " ", el("span", { class: "tag" }, c.environment), " ",
            el("span", { class: "muted small" }, modeLabel(c.auth_mode))),
          el("div", { class: "status-cell" }, statusBadge(c.status),
            c.status !== "active" && c.hint ? el("p", { class: "hint" }, c.hint) : null)))));
    } catch (err) { box.replaceChildren(); showError($("#page-error"), err); }
  }

  LK.page("credentials", {
    setup() {
      $("#app-add").addEventListener("click", () => LK.pane.open({
        app: selected || "",
        onDone: async () => { await loadGrid(); if (selected) select(selected); },
      }));
    },
    async render() {
      selected = null;
      $("#app-detail").hidden = true;
      await loadGrid();
    },
  });
})();
