/* The Connections page: the workspace's connections with status, application, environment and
   concurrency; filters; verify, re-authorize, edit and delete. */
"use strict";

(() => {
  const { api, el, $, showError, toast, statusBadge, modeLabel, wsPath } = LK;
  let catalog = [];
  let all = []; // every connection of the workspace (for names and environments)

  const connPath = (c, suffix) => wsPath(`/connections/${encodeURIComponent(c.id)}${suffix || ""}`);

  function concurrency(c) {
    if (c.auth_mode === "database") return el("span", { class: "muted small", dataset: { notProxied: "" } }, "None: databases are not proxied");
    if (c.auth_mode === "sftp") return el("span", { class: "muted small", dataset: { notProxied: "" } }, "None: SFTP servers are not proxied");
    const lender = c.settings.borrow_concurrency_from;
    if (lender) {
      const l = all.find((x) => x.id === lender || x.name === lender);
      return el("span", { class: "borrow" }, "borrows from ", el("strong", {}, l ? l.name : lender));
    }
    return el("span", { class: "level", title: "Concurrency level" }, String(c.settings.concurrency_level || ""));
  }

  function statusCell(c) {
    const cell = el("div", { class: "status-cell" }, statusBadge(c.status));
    if (c.status !== "active" && c.status_reason) cell.append(el("p", { class: "reason" }, LK.prose(c.status_reason)));
    if (c.status !== "active" && c.hint) cell.append(el("p", { class: "hint" }, el("strong", {}, "Hint: "), LK.prose(c.hint)));
    return cell;
  }

  /* A message under a row (replaces the previous one). */
  function note(tr, kind, message, hint) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("row-note")) next.remove();
    if (!message) return;
    const box = el("div", { class: `alert alert-${kind}`, role: kind === "error" ? "alert" : "status" },
      el("p", { class: "alert-message" }, LK.prose(message)),
      hint ? el("p", { class: "alert-hint" }, el("strong", {}, "Hint: "), LK.prose(hint)) : null);
    tr.after(el("tr", { class: "row-note", dataset: { for: tr.dataset.name } }, el("td", { colspan: 7 }, box)));
  }

  function actions(c, tr) {
    const wrap = el("div", { class: "row-actions" });
    const btn = (label, fn, extra) => el("button", { type: "button", class: `btn btn-small ${extra || ""}`, dataset: { action: label.toLowerCase().replace(/\W+/g, "-") }, onclick: fn, "aria-label": `${label} ${c.name}` }, label);
    wrap.append(btn("Verify", async (e) => {
      const b = e.currentTarget;
      b.disabled = true;
      try {
        const r = await api("POST", connPath(c, "/verify"));
        replaceRow(tr, r.connection);
        const row = rowFor(r.connection.name);
        if (r.ok) note(row, "ok", "Verified: the application accepted the credential.");
        else note(row, "error", r.connection.status_reason || "The check failed.", r.connection.hint);
      } catch (err) { note(tr, "error", err.message, err.hint); b.disabled = false; }
    }));
    if (c.auth_mode === "oauth2_code" || c.auth_mode === "oauth1") {
      wrap.append(btn(c.status === "pending_authorization" ? "Authorize" : "Re-authorize", async () => {
        const popup = LK.pane.openPopup();
        try {
          const r = await api("POST", connPath(c, "/authorize"));
          if (!popup) { note(tr, "error", "The browser blocked the sign-in window.", "allow pop-up windows for Latchkey and retry"); return; }
          if (r.warnings && r.warnings.length) note(tr, "warn", r.warnings.join(" "));
          const result = await LK.pane.authorizeInPopup(popup, r.authorize_url, c.id).promise;
          await reload();
          const row = rowFor(c.name);
          if (row && result.ok) note(row, "ok", `“${c.name}” is authorized and active.`);
          else if (row) note(row, "error", result.message || "The authorization did not finish.", result.connection && result.connection.hint);
        } catch (err) {
          if (popup) popup.close();
          note(tr, "error", err.message, err.hint);
        }
      }));
    }
    wrap.append(btn("Edit", () => LK.pane.open({ connection: c, onDone: () => reload() })));
    wrap.append(btn("Delete", () => confirmDelete(c, tr, wrap), "btn-danger-ghost"));
    return wrap;
  }

  function confirmDelete(c, tr, wrap) {
    const keep = el("button", { type: "button", class: "btn btn-small", dataset: { action: "keep" } }, "Keep");
    const yes = el("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "confirm-delete" } }, "Delete");
    const box = el("div", { class: "confirm", role: "group", "aria-label": `Delete ${c.name}?` }, el("span", {}, `Delete “${c.name}”?`), yes, keep);
    wrap.replaceWith(box);
    yes.focus();
    keep.addEventListener("click", () => { box.replaceWith(actions(c, tr)); });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await api("DELETE", connPath(c));
        note(tr, "", null);
        tr.remove();
        all = all.filter((x) => x.id !== c.id);
        toast(`Connection “${c.name}” deleted`);
        if (!document.querySelector("#conn-list tbody tr")) reload();
      } catch (err) {
        box.replaceWith(actions(c, tr));
        note(tr, "error", err.message, err.hint);
      }
    });
  }

  /* What the background checks found: last checked, last OK, next check. */
  function healthCell(c) {
    const h = c.health || {};
    const line = (label, iso, cls) => el("div", { class: `small ${cls || ""}` },
      el("span", { class: "muted" }, `${label} `), iso ? el("time", { datetime: iso }, LK.fmtTime(iso)) : el("span", { class: "muted" }, "—"));
    const cell = el("div", { class: "health-cell" },
      line("Checked", h.last_checked_at, "h-checked"),
      line("Last OK", h.last_ok_at, "h-ok"),
      line("Next", h.next_check_at, "h-next"));
    if (h.consecutive_failures) cell.append(el("div", { class: "small reason h-failures" }, `${h.consecutive_failures} failed check(s): ${h.last_error || ""}`));
    return cell;
  }

  /* Who the connection is for, when an end user made it through a connect session. */
  function endUser(c) {
    if (!c.end_user) return null;
    const who = c.end_user.display_name || c.end_user.email || c.end_user.id;
    const org = c.organization ? ` · ${c.organization.display_name || c.organization.id}` : "";
    return el("div", { class: "end-user small", title: `end user ${c.end_user.id}` }, `for ${who}${org}`);
  }

  function row(c) {
    const tr = el("tr", { dataset: { name: c.name, id: c.id, status: c.status } });
    tr.append(
      el("td", { "data-label": "Name" }, el("div", { class: "name-cell" },
        el("a", { class: "conn-link", href: `/ui/connection?ws=${encodeURIComponent(LK.workspace().slug)}&id=${encodeURIComponent(c.id)}` }, el("strong", { class: "conn-name name", title: c.name }, c.name)),
        el("div", { class: "muted small" }, modeLabel(c.auth_mode)),
        c.auth_mode === "database" && c.settings.host ? el("div", { class: "muted small db-target" }, `${c.settings.username || ""}@${c.settings.host}:${c.settings.port || ""}/${c.settings.database || ""}`) : null,
        c.auth_mode === "sftp" && c.settings.host ? el("div", { class: "muted small db-target" }, `${c.settings.username || ""}@${c.settings.host}:${c.settings.port || ""}:${c.settings.path || "."}`) : null,
        endUser(c))),
      el("td", { "data-label": "Application" }, LK.appName(catalog, c.app)),
      el("td", { "data-label": "Environment" }, el("span", { class: "tag" }, c.environment)),
      el("td", { "data-label": "Status" }, statusCell(c)),
      el("td", { "data-label": "Health" }, healthCell(c)),
      el("td", { "data-label": "Concurrency" }, concurrency(c)),
    );
    tr.append(el("td", { "data-label": "Actions", class: "actions-cell" }, actions(c, tr)));
    return tr;
  }

  function rowFor(name) {
    return [...document.querySelectorAll("#conn-list tbody tr[data-name]")].find((r) => r.dataset.name === name) || null;
  }

  function replaceRow(tr, c) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("row-note")) next.remove();
    const i = all.findIndex((x) => x.id === c.id);
    if (i >= 0) all[i] = c;
    tr.replaceWith(row(c));
  }

  function filterQuery() {
    const q = new URLSearchParams();
    for (const id of ["flt-app", "flt-env", "flt-status"]) {
      const s = $(`#${id}`);
      if (s.value) q.set(s.name, s.value);
    }
    return q.toString();
  }

  function fillFilters() {
    const keep = (sel) => sel.value;
    const app = $("#flt-app");
    const a = keep(app);
    app.replaceChildren(el("option", { value: "" }, "All"), ...catalog.map((x) => el("option", { value: x.id, selected: x.id === a }, x.name)));
    const env = $("#flt-env");
    const e = keep(env);
    const envs = [...new Set(["production", ...all.map((c) => c.environment)])].sort();
    env.replaceChildren(el("option", { value: "" }, "All"), ...envs.map((x) => el("option", { value: x, selected: x === e }, x)));
  }

  async function reload() {
    const list = $("#conn-list");
    showError($("#page-error"), null);
    LK.loading(list, "Loading connections…");
    try {
      catalog = await LK.apps();
      all = await LK.listAll(wsPath("/connections"));
      fillFilters();
      const q = filterQuery();
      const conns = q ? await LK.listAll(wsPath(`/connections?${q}`)) : all;
      if (!conns.length) {
        list.replaceChildren(el("div", { class: "empty" },
          el("h2", {}, q ? "No connection matches these filters" : "No connections yet"),
          q ? null : el("p", {}, "A connection is a named credential for one application: create one to get started."),
          q ? null : el("button", { type: "button", class: "btn btn-primary", onclick: () => LK.pane.open({ onDone: reload }) }, "+ Create connection")));
        return;
      }
      const table = el("table", { class: "table conn-table" },
        el("thead", {}, el("tr", {}, ["Name", "Application", "Environment", "Status", "Health", "Concurrency", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, conns.map(row)));
      list.replaceChildren(table);
    } catch (err) {
      list.replaceChildren();
      showError($("#page-error"), err);
    } finally {
      LK.loaded(list);
    }
  }

  LK.page("connections", {
    setup() {
      $("#new-conn").addEventListener("click", () => LK.pane.open({ onDone: () => reload() }));
      $("#filters").addEventListener("change", () => reload());
      $("#filters").addEventListener("submit", (e) => { e.preventDefault(); reload(); });
    },
    render(ws) {
      $("#ws-caption").textContent = `In workspace ${ws.name}`;
      reload();
    },
  });
})();
