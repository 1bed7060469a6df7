/* The Credentials page: every application with the number of its connections in the workspace
   (the seeds' green number, revoked ones not counted); a click lists that application's
   connections, which can be verified, edited and deleted from here. */
"use strict";

(() => {
  const { api, el, $, showError, toast, statusBadge, modeLabel, wsPath } = LK;
  let selected = null;
  let apps = [];
  let monograms = new Map();

  function initials(name) {
    return name.split(/[^A-Za-z0-9]+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
  }

  /* Two letters per application, different for every application on the page: the initials,
     else the first letter with a later letter of the name that tells it apart. */
  function assignMonograms(list) {
    const taken = new Set();
    const out = new Map();
    const counts = new Map();
    list.forEach((a) => counts.set(initials(a.name), (counts.get(initials(a.name)) || 0) + 1));
    for (const a of list) {
      const first = initials(a.name);
      let pick = counts.get(first) === 1 && !taken.has(first) ? first : null;
      if (!pick) {
        const words = a.name.split(/[^A-Za-z0-9]+/).filter(Boolean);
        const letters = words.join("").toUpperCase();
        const head = letters[0] || "?";
        // Prefer the first letter of a later word, then any later letter.
        const candidates = [...words.slice(1).map((w) => w[0].toUpperCase()), ...letters.slice(1)];
        for (const c of candidates) {
          if (!taken.has(head + c)) { pick = head + c; break; }
        }
        if (!pick) pick = head + String(out.size);
      }
      taken.add(pick);
      out.set(a.id, pick);
    }
    return out;
  }

  function card(a) {
    const count = a.connection_count || 0;
    const b = el("button", {
      type: "button",
      class: "app-card",
      "aria-pressed": selected === a.id ? "true" : "false",
      "aria-label": `${a.name}: ${count} connection${count === 1 ? "" : "s"} in use`,
      dataset: { app: a.id },
      onclick: () => select(a.id),
    },
    el("span", { class: "app-icon", "aria-hidden": "true", dataset: { monogram: monograms.get(a.id) } }, monograms.get(a.id),
      el("span", { class: count ? "count" : "count count-zero", dataset: { count } }, String(count))),
    el("span", { class: "app-text" },
      el("span", { class: "app-name" }, a.name),
      el("span", { class: "app-desc" }, LK.prose(a.description || "")),
      el("span", { class: "app-modes" }, a.auth_modes.map(modeLabel).join(" · "))));
    return b;
  }

  async function loadGrid() {
    showError($("#page-error"), null);
    const grid = $("#app-grid");
    LK.loading(grid, "Loading applications…");
    try {
      apps = await LK.listAll(wsPath("/apps"));
      monograms = assignMonograms(apps);
      grid.replaceChildren(...apps.map(card));
    } catch (err) { grid.replaceChildren(); showError($("#page-error"), err); } finally { LK.loaded(grid); }
  }

  const connPath = (c, suffix) => wsPath(`/connections/${encodeURIComponent(c.id)}${suffix || ""}`);

  /* A message under a connection of the list (replaces the previous one). */
  function note(li, kind, message, hint) {
    const old = li.querySelector(".row-message");
    if (old) old.remove();
    if (!message) return;
    li.append(el("div", { class: `alert alert-${kind} row-message`, role: kind === "error" ? "alert" : "status" },
      el("p", { class: "alert-message" }, LK.prose(message)),
      hint ? el("p", { class: "alert-hint" }, el("strong", {}, "Hint: "), LK.prose(hint)) : null));
  }

  function actions(c, li) {
    const wrap = el("div", { class: "row-actions" });
    const btn = (label, action, fn, extra) => el("button", { type: "button", class: `btn btn-small ${extra || ""}`, dataset: { action }, "aria-label": `${label} ${c.name}`, onclick: fn }, label);
    wrap.append(
      btn("Verify", "verify", async (e) => {
        e.currentTarget.disabled = true;
        try {
          const r = await api("POST", connPath(c, "/verify"));
          await select(selected, false);
          const now = [...document.querySelectorAll("#app-conns li[data-name]")].find((x) => x.dataset.name === c.name);
          if (now) note(now, r.ok ? "ok" : "error", r.ok ? "Verified: the application accepted the credential." : r.connection.status_reason || "The check failed.", r.ok ? null : r.connection.hint);
        } catch (err) { note(li, "error", err.message, err.hint); }
      }),
      btn("Edit", "edit", () => LK.pane.open({ connection: c, onDone: refresh })),
      btn("Delete", "delete", () => {
        const yes = el("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "confirm-delete" } }, "Delete");
        const keep = el("button", { type: "button", class: "btn btn-small", dataset: { action: "keep" } }, "Keep");
        const box = el("div", { class: "confirm", role: "group", "aria-label": `Delete ${c.name}?` }, el("span", {}, `Delete “${c.name}”?`), yes, keep);
        wrap.replaceWith(box);
        yes.focus();
        keep.addEventListener("click", () => box.replaceWith(actions(c, li)));
        yes.addEventListener("click", async () => {
          yes.disabled = true;
          try {
            await api("DELETE", connPath(c));
            toast(`Connection “${c.name}” deleted`);
            await refresh();
          } catch (err) {
            box.replaceWith(actions(c, li));
            note(li, "error", err.message, err.hint);
          }
        });
      }, "btn-danger-ghost"));
    return wrap;
  }

  async function refresh() {
    await loadGrid();
    if (selected) await select(selected, false);
  }

  async function select(id, scroll) {
    selected = id;
    document.querySelectorAll(".app-card").forEach((c) => c.setAttribute("aria-pressed", c.dataset.app === id ? "true" : "false"));
    const a = apps.find((x) => x.id === id);
    const detail = $("#app-detail");
    detail.hidden = false;
    $("#app-detail-title").textContent = `${a ? a.name : id} connections`;
    const box = $("#app-conns");
    LK.loading(box, "Loading connections…");
    if (scroll !== false) detail.scrollIntoView({ block: "nearest" });
    try {
      const conns = await LK.listAll(wsPath(`/connections?app=${encodeURIComponent(id)}`));
      if (!conns.length) {
        box.replaceChildren(el("p", { class: "muted" }, "No connection for this application in this workspace yet."));
        return;
      }
      box.replaceChildren(el("ul", { class: "conn-list" }, conns.map((c) => {
        const li = el("li", { dataset: { name: c.name, status: c.status } },
          el("div", { class: "conn-main" }, el("strong", { class: "name", title: c.name }, c.name), " ", el("span", { class: "tag" }, c.environment), " ",
            el("span", { class: "muted small" }, modeLabel(c.auth_mode)),
            c.status === "revoked" ? el("span", { class: "muted small" }, " · not counted") : null),
          el("div", { class: "status-cell" }, statusBadge(c.status),
            c.status !== "active" && c.hint ? el("p", { class: "hint" }, LK.prose(c.hint)) : null));
        li.append(actions(c, li));
        return li;
      })));
    } catch (err) { box.replaceChildren(); showError($("#page-error"), err); } finally { LK.loaded(box); }
  }

  LK.page("credentials", {
    setup() {
      $("#app-add").addEventListener("click", () => LK.pane.open({
        app: selected || "",
        onDone: refresh,
      }));
    },
    async render() {
      selected = null;
      $("#app-detail").hidden = true;
      await loadGrid();
    },
  });
})();
