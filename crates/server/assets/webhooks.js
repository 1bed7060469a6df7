/* The Webhooks page: endpoints, a form to add one (its secret shown once), and the deliveries of
   the chosen endpoint with a retry button. */
"use strict";

(() => {
  const { api, el, $, showError, toast, wsPath } = LK;
  let chosen = null;

  const hookPath = (id, suffix) => wsPath(`/webhooks/${encodeURIComponent(id)}${suffix || ""}`);

  async function deliveries(hook) {
    chosen = hook;
    $("#deliveries").hidden = false;
    $("#deliveries-h").textContent = `Deliveries to ${hook.url}`;
    const list = $("#delivery-list");
    try {
      const page = await api("GET", hookPath(hook.id, "/deliveries?limit=100"));
      if (!page.items.length) { list.replaceChildren(el("p", { class: "muted" }, "No deliveries yet.")); return; }
      list.replaceChildren(el("table", { class: "table delivery-table" },
        el("thead", {}, el("tr", {}, ["Event", "Status", "Attempts", "Last attempt", "Answer", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, page.items.map((d) => el("tr", { dataset: { id: d.id, status: d.status } },
          el("td", { "data-label": "Event" }, el("code", {}, d.event_type)),
          el("td", { "data-label": "Status" }, el("span", { class: `badge delivery-${d.status}` }, d.status)),
          el("td", { "data-label": "Attempts" }, String(d.attempts)),
          el("td", { "data-label": "Last attempt" }, d.last_attempt_at ? el("time", { datetime: d.last_attempt_at }, LK.fmtTime(d.last_attempt_at)) : "—"),
          el("td", { "data-label": "Answer" }, d.last_error || (d.last_status_code ? String(d.last_status_code) : "—")),
          el("td", {}, el("button", { type: "button", class: "btn btn-small", dataset: { action: "retry" }, onclick: async (e) => {
            e.currentTarget.disabled = true;
            try {
              await api("POST", hookPath(hook.id, `/deliveries/${encodeURIComponent(d.id)}/retry`));
              toast("Sent again");
              setTimeout(() => deliveries(hook), 800);
            } catch (err) { showError($("#page-error"), err); }
          } }, "Retry")))))));
    } catch (err) { showError($("#page-error"), err); }
  }

  async function reload() {
    showError($("#page-error"), null);
    try {
      const hooks = await LK.listAll(wsPath("/webhooks"));
      const list = $("#hook-list");
      if (!hooks.length) { list.replaceChildren(el("div", { class: "empty" }, el("h2", {}, "No webhooks yet"))); $("#deliveries").hidden = true; return; }
      list.replaceChildren(el("table", { class: "table hook-table" },
        el("thead", {}, el("tr", {}, ["URL", "Events", "State", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, hooks.map((h) => el("tr", { dataset: { id: h.id } },
          el("td", { "data-label": "URL" }, h.url),
          el("td", { "data-label": "Events" }, h.events.join(", ")),
          el("td", { "data-label": "State" }, h.enabled ? (h.failing_since ? "failing" : "enabled") : `disabled${h.disabled_reason ? `: ${h.disabled_reason}` : ""}`),
          el("td", {}, el("button", { type: "button", class: "btn btn-small", dataset: { action: "deliveries" }, onclick: () => deliveries(h) }, "Deliveries")))))));
      if (chosen) {
        const again = hooks.find((h) => h.id === chosen.id);
        if (again) deliveries(again);
      }
    } catch (err) { showError($("#page-error"), err); }
  }

  LK.page("webhooks", {
    setup() {
      $("#hook-form").addEventListener("submit", async (e) => {
        e.preventDefault();
        showError($("#page-error"), null);
        const events = $("#hook-events").value.split(",").map((s) => s.trim()).filter(Boolean);
        try {
          const h = await api("POST", wsPath("/webhooks"), { url: $("#hook-url").value.trim(), events });
          const box = $("#hook-secret");
          box.replaceChildren(el("p", {}, "Signing secret (shown once, keep it with the receiver): ", el("code", { id: "new-secret" }, h.secret)));
          box.hidden = false;
          $("#hook-url").value = "";
          reload();
        } catch (err) { showError($("#page-error"), err); }
      });
    },
    render() { chosen = null; reload(); },
  });
})();
