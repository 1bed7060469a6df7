/* The Flows page: create or edit a flow with existing connections or a new one made on the
   spot (deleted again if the form is cancelled), activate or deactivate, delete. */
"use strict";

(() => {
  const { api, el, $, showError, toast, statusBadge, wsPath } = LK;
  let conns = [];
  const chosen = new Set(); // connection ids checked in the form
  const madeHere = new Set(); // connections created from this form: Cancel deletes them
  let editing = null; // the flow being edited, or null when creating

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
      el("strong", { class: "name", title: c.name }, c.name), el("span", { class: "muted" }, LK.appName(LK.catalog || [], c.app)), statusBadge(c.status))));
  }

  async function loadConns() {
    LK.loading($("#flow-conns"), "Loading connections…");
    try {
      LK.catalog = await LK.apps();
      conns = await LK.listAll(wsPath("/connections"));
      renderChoices();
    } finally { LK.loaded($("#flow-conns")); }
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
    const edit = el("button", { type: "button", class: "btn btn-small", dataset: { action: "edit" }, "aria-label": `Edit ${f.name}` }, "Edit");
    edit.addEventListener("click", () => openForm(f));
    acts.append(edit, toggle, del);
    tr.append(
      el("td", { "data-label": "Name" }, el("strong", { class: "name", title: f.name }, f.name)),
      el("td", { "data-label": "Environment" }, el("span", { class: "tag" }, f.environment)),
      el("td", { "data-label": "Status" }, el("span", { class: `badge ${f.active ? "status-active" : "status-unverified"}` }, f.active ? "Active" : "Inactive")),
      el("td", { "data-label": "Connections" }, f.connections.length
        ? el("ul", { class: "inline-list" }, f.connections.map((c) => el("li", {}, c.name)))
        : el("span", { class: "muted" }, "None")),
      el("td", { "data-label": "Actions", class: "actions-cell" }, acts));
    return tr;
  }

  async function loadFlows() {
    showError($("#page-error"), null);
    const list = $("#flow-list");
    LK.loading(list, "Loading flows…");
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
    } catch (err) { list.replaceChildren(); showError($("#page-error"), err); } finally { LK.loaded(list); }
  }

  function hideForm() {
    $("#flow-create").hidden = true;
    $("#flow-form").reset();
    chosen.clear();
    madeHere.clear();
    editing = null;
    showError($("#flow-error"), null);
    $("#new-flow").hidden = false;
  }

  /* Opens the form, empty to create a flow or filled in to edit `flow`. */
  async function openForm(flow) {
    hideForm();
    editing = flow || null;
    $("#flow-create-title").textContent = editing ? `Edit flow “${editing.name}”` : "Create flow";
    $("#flow-submit").textContent = editing ? "Save flow" : "Create flow";
    if (editing) {
      $("#flow-name").value = editing.name;
      $("#flow-env").value = editing.environment;
      $("#flow-active").checked = editing.active;
      editing.connections.forEach((c) => chosen.add(c.id));
    }
    $("#flow-create").hidden = false;
    $("#new-flow").hidden = true;
    $("#flow-create").scrollIntoView({ block: "nearest" });
    $("#flow-name").focus();
    try { await loadConns(); } catch (err) { showError($("#flow-error"), err); }
  }

  /* Cancel: connections made from this form for a flow that was never saved are deleted. */
  async function cancelForm() {
    const made = [...madeHere];
    for (const id of made) {
      try {
        await api("DELETE", wsPath(`/connections/${encodeURIComponent(id)}`));
      } catch (err) {
        if (err.status !== 404) { showError($("#flow-error"), err, { focus: true }); return; }
      }
      madeHere.delete(id);
    }
    if (made.length) toast(made.length === 1 ? "The connection made for this flow was deleted" : `The ${made.length} connections made for this flow were deleted`);
    hideForm();
  }

  LK.page("flows", {
    setup() {
      $("#new-flow").addEventListener("click", () => openForm(null));
      $("#flow-cancel").addEventListener("click", cancelForm);
      $("#flow-env").addEventListener("input", renderChoices);
      $("#flow-new-conn").addEventListener("click", () => LK.pane.open({
        environment: $("#flow-env").value.trim() || "production",
        onDone: async (c) => {
          if (c) { chosen.add(c.id); madeHere.add(c.id); }
          await loadConns();
        },
      }));
      $("#flow-form").addEventListener("submit", async (e) => {
        e.preventDefault();
        showError($("#flow-error"), null);
        const name = $("#flow-name").value.trim();
        if (!name) {
          showError($("#flow-error"), { message: "Give the flow a name." });
          $("#flow-name").setAttribute("aria-invalid", "true");
          $("#flow-name").focus();
          return;
        }
        $("#flow-name").removeAttribute("aria-invalid");
        const environment = $("#flow-env").value.trim() || "production";
        const ids = [...chosen].filter((id) => conns.some((c) => c.id === id && c.environment === environment));
        try {
          const body = { name, environment, active: $("#flow-active").checked, connections: ids };
          const f = editing
            ? await api("PATCH", wsPath(`/flows/${encodeURIComponent(editing.id)}`), body)
            : await api("POST", wsPath("/flows"), body);
          toast(`Flow “${f.name}” ${editing ? "saved" : "created"}`);
          madeHere.clear(); // they belong to a saved flow now
          hideForm();
          await loadFlows();
        } catch (err) {
          showError($("#flow-error"), err, { focus: true });
        }
      });
    },
    async render() {
      hideForm();
      await loadFlows();
    },
  });
})();
