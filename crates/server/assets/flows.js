/* The Flows page: create a flow with existing connections or a new one made on the spot,
   activate or deactivate, delete. */
"use strict";

(() => {
  const { api, el, $, showError, toast, statusBadge, wsPath } = LK;
  let conns = [];
  const chosen = new Set(); // connection ids checked in the create form

  const flowPath = (f, suffix) => wsPath(`/flows/${encodeURIComponent(f.id)}${suffix || ""}`);

  function renderChoices() {
    const env = $("#flow-env").value.trim() || "production";
    const box = $("#flow-conns");
    const fit = conns.filter((c) => c.environment === env);
    if (!fit.length) {
      box.replaceChildren(el("p", { class: "muted" }, `No connection of environment “${env}” yet.`));
      return;
    }
    box.replaceChildren(...fit.map((c) => el("label", { class: "check" },
      el("input", { type: "checkbox", value: c.id, checked: chosen.has(c.id), onchange: (e) => { if (e.target.checked) chosen.add(c.id); else chosen.delete(c.id); } }),
      el("strong", {}, c.name), el("span", { class: "muted" }, LK.appName(LK.catalog || [], c.app)), statusBadge(c.status))));
  }

  async function loadConns() {
    LK.catalog = await LK.apps();
    conns = await LK.listAll(wsPath("/connections"));
    renderChoices();
  }

  function flowRow(f) {
    const tr = el("tr", { dataset: { name: f.name, id: f.id } });
    const acts = el("div", { class: "row-actions" });
    const toggle = el("button", { type: "button", class: "btn btn-small", dataset: { action: f.active ? "deactivate" : "activate" } }, f.active ? "Deactivate" : "Activate");
    toggle.addEventListener("click", async () => {
      toggle.disabled = true;
      try {
        const nf = await api("PATCH", flowPath(f), { active: !f.active });
        tr.replaceWith(flowRow(nf));
        toast(`Flow “${nf.name}” ${nf.active ? "activated" : "deactivated"}`);
      } catch (err) { toggle.disabled = false; showError($("#page-error"), err); }
    });
    const del = el("button", { type: "button", class: "btn btn-small btn-danger-ghost", dataset: { action: "delete" } }, "Delete");
    del.addEventListener("click", () => {
      const yes = el("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "confirm-delete" } }, "Delete");
      const keep = el("button", { type: "button", class: "btn btn-small", dataset: { action: "keep" } }, "Keep");
      const box = el("div", { class: "confirm", role: "group" }, el("span", {}, `Delete “${f.name}”?`), yes, keep);
      acts.replaceWith(box);
      yes.focus();
      keep.addEventListener("click", () => box.replaceWith(acts));
      yes.addEventListener("click", async () => {
        try {
          await api("DELETE", flowPath(f));
          tr.remove();
          toast(`Flow “${f.name}” deleted`);
          if (!document.querySelector("#flow-list tbody tr")) loadFlows();
        } catch (err) { box.replaceWith(acts); showError($("#page-error"), err); }
      });
    });
    acts.append(toggle, del);
    tr.append(
      el("td", { "data-label": "Name" }, el("strong", {}, f.name)),
      el("td", { "data-label": "Environment" }, el("span", { class: "tag" }, f.environment)),
      el("td", { "data-label": "Status" }, el("span", { class: `badge ${f.active ? "status-active" : "status-unverified"}` }, f.active ? "Active" : "Inactive")),
      el("td", { "data-label": "Connections" }, f.connections.length
        ? el("ul", { class: "inline-list" }, f.connections.map((c) => el("li", {}, c.name)))
        : el("span", { class: "muted" }, "none")),
      el("td", { "data-label": "Actions", class: "actions-cell" }, acts));
    return tr;
  }

  async function loadFlows() {
    showError($("#page-error"), null);
    const list = $("#flow-list");
    try {
      const flows = await LK.listAll(wsPath("/flows"));
      if (!flows.length) {
        list.replaceChildren(el("div", { class: "empty" }, el("h2", {}, "No flows yet"),
          el("p", {}, "A flow names the connections an integration uses; Latchkey attributes their calls to it.")));
        return;
      }
      list.replaceChildren(el("table", { class: "table flow-table" },
        el("thead", {}, el("tr", {}, ["Name", "Environment", "Status", "Connections", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, flows.map(flowRow))));
    } catch (err) { showError($("#page-error"), err); }
  }

  function hideForm() {
    $("#flow-create").hidden = true;
    $("#flow-form").reset();
    chosen.clear();
    showError($("#flow-error"), null);
    $("#new-flow").hidden = false;
  }

  LK.page("flows", {
    setup() {
      $("#new-flow").addEventListener("click", async () => {
        $("#flow-create").hidden = false;
        $("#new-flow").hidden = true;
        $("#flow-name").focus();
        try { await loadConns(); } catch (err) { showError($("#flow-error"), err); }
      });
      $("#flow-cancel").addEventListener("click", hideForm);
      $("#flow-env").addEventListener("input", renderChoices);
      $("#flow-new-conn").addEventListener("click", () => LK.pane.open({
        environment: $("#flow-env").value.trim() || "production",
        onDone: async (c) => {
          if (c) chosen.add(c.id);
          await loadConns();
        },
      }));
      $("#flow-form").addEventListener("submit", async (e) => {
        e.preventDefault();
        showError($("#flow-error"), null);
        const name = $("#flow-name").value.trim();
        if (!name) {
          showError($("#flow-error"), { message: "Give the flow a name." });
          $("#flow-name").focus();
          return;
        }
        const environment = $("#flow-env").value.trim() || "production";
        const ids = [...chosen].filter((id) => conns.some((c) => c.id === id && c.environment === environment));
        try {
          const f = await api("POST", wsPath("/flows"), { name, environment, active: $("#flow-active").checked, connections: ids });
          toast(`Flow “${f.name}” created`);
          hideForm();
          await loadFlows();
        } catch (err) {
          showError($("#flow-error"), err);
          $("#flow-error").focus();
        }
      });
    },
    async render() {
      hideForm();
      await loadFlows();
    },
  });
})();
