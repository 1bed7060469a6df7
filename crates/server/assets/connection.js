/* A connection's page: its status, what the background checks found, and its timeline. */
"use strict";

(() => {
  const { api, el, $, showError, statusBadge, wsPath } = LK;

  function when(iso) {
    return iso ? el("time", { datetime: iso }, LK.fmtTime(iso)) : el("span", { class: "muted" }, "—");
  }

  async function load() {
    showError($("#page-error"), null);
    const id = new URL(window.location.href).searchParams.get("id");
    if (!id) { showError($("#page-error"), { message: "No connection was named.", hint: "open one from the Connections page" }); return; }
    try {
      const c = await api("GET", wsPath(`/connections/${encodeURIComponent(id)}`));
      $("#conn-title").textContent = c.name;
      $("#back-link").setAttribute("href", `/ui/connections?ws=${encodeURIComponent(LK.workspace().slug)}`);
      $("#conn-caption").replaceChildren(`${LK.modeLabel(c.auth_mode)} · ${c.app} · ${c.environment} · `, statusBadge(c.status));
      const h = c.health || {};
      const rows = [
        ["Status", c.status + (c.status_reason ? ` — ${c.status_reason}` : "")],
        ["Last checked", when(h.last_checked_at)],
        ["Last OK", when(h.last_ok_at)],
        ["Next check", when(h.next_check_at)],
        ["Failed checks in a row", String(h.consecutive_failures || 0)],
        ["Last error", h.last_error || "—"],
      ];
      if (h.next_refresh_at) rows.push(["Next token refresh", when(h.next_refresh_at)]);
      if (c.hint && c.status !== "active") rows.push(["Hint", c.hint]);
      $("#conn-health").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k.toLowerCase().replace(/\W+/g, "-") } }, v)]));
      const events = await api("GET", wsPath(`/connections/${encodeURIComponent(c.id)}/events?limit=100`));
      const list = $("#timeline");
      if (!events.items.length) { list.replaceChildren(el("li", { class: "muted" }, "Nothing recorded yet.")); return; }
      list.replaceChildren(...events.items.map((e) => el("li", { dataset: { action: e.action } },
        when(e.at), " ", el("code", {}, e.action), " ",
        el("span", { class: "muted small" }, e.actor),
        e.details && (e.details.reason || e.details.error) ? el("p", { class: "reason small" }, String(e.details.reason || e.details.error)) : null)));
    } catch (err) { showError($("#page-error"), err); }
  }

  LK.page("connection", { render() { load(); } });
})();
