/* The Audit page: the workspace's events, newest first, fifty at a time, in plain words, with
   filters (what, which connection or flow, only refused attempts). */
"use strict";

(() => {
  const { api, el, $, showError, wsPath, modeLabel } = LK;
  let cursor = null;
  let keyNames = null; // key id -> name, when this caller may list keys

  const ACTIONS = {
    "workspace.created": "Workspace created",
    "workspace.updated": "Workspace changed",
    "connection.created": "Connection created",
    "connection.updated": "Connection changed",
    "connection.deleted": "Connection deleted",
    "connection.delete_refused": "Connection delete refused",
    "connection.verified": "Connection checked",
    "connection.credentials_read": "Credentials read",
    "connection.authorization_started": "Authorization started",
    "connection.authorized": "Connection authorized",
    "connection.authorization_failed": "Authorization failed",
    "connection.token_refreshed": "Token refreshed",
    "connection.refresh_failed": "Token refresh failed",
    "connection.revoked": "Connection revoked",
    "connection.grant_revoked": "Grant given back to the provider",
    "flow.created": "Flow created",
    "flow.updated": "Flow changed",
    "flow.deleted": "Flow deleted",
    "api_key.created": "API key created",
    "api_key.revoked": "API key revoked",
    "oauth_client.set": "OAuth client set",
    "oauth_client.deleted": "OAuth client removed",
    "access.refused": "Access refused",
  };
  /* An action code in words: known ones by name, others from their parts. */
  function actionLabel(code) {
    if (ACTIONS[code]) return ACTIONS[code];
    const [what, verb] = code.split(".", 2);
    const w = (what || "").replace(/_/g, " ");
    const v = (verb || "").replace(/_/g, " ");
    return `${w.charAt(0).toUpperCase()}${w.slice(1)}${v ? ` ${v}` : ""}`;
  }

  const DETAIL_LABELS = {
    app: "Application", auth_mode: "Authentication", environment: "Environment", status: "Status",
    reason: "Reason", required_scope: "Needed permission", username: "User", org_id: "Organization",
    evicted: "Older approvals removed", ok: "Done", error: "Error", cancelled: "Cancelled by the user",
    changed: "Changed", scopes: "Permissions", name: "Name", connections: "Connections", active: "Active",
  };
  function detailValue(k, v) {
    if (k === "auth_mode") return modeLabel(v);
    if (k === "status") return LK.statusLabel ? LK.statusLabel(v) : String(v);
    if (k === "app") return LK.appName(LK.catalog || [], v);
    if (typeof v === "boolean") return v ? "Yes" : "No";
    if (Array.isArray(v)) return v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ");
    if (v && typeof v === "object") return JSON.stringify(v);
    return LK.prose(v === null || v === undefined ? "—" : String(v));
  }

  function details(d) {
    const entries = Object.entries(d || {}).filter(([, v]) => v !== null && v !== undefined);
    if (!entries.length) return "";
    return el("dl", { class: "details" }, entries.flatMap(([k, v]) =>
      [el("dt", {}, DETAIL_LABELS[k] || (k.charAt(0).toUpperCase() + k.slice(1)).replace(/_/g, " ")), el("dd", {}, detailValue(k, v))]));
  }

  function actor(a) {
    if (a === "system") return "Latchkey";
    const name = keyNames && keyNames.get(a);
    return name ? `API key “${name}”` : "An API key";
  }

  function row(e) {
    const refused = e.action.endsWith("refused");
    return el("tr", { dataset: { action: e.action, refused: refused ? "true" : "false" } },
      el("td", { "data-label": "When" }, el("time", { datetime: e.at }, LK.fmtTime(e.at))),
      el("td", { "data-label": "What" }, el("span", { class: refused ? "badge status-failing" : "action" }, actionLabel(e.action))),
      el("td", { "data-label": "Target" }, e.target_name || (e.target_id ? "(deleted)" : "")),
      el("td", { "data-label": "Who" }, el("span", { class: "small", title: e.actor }, actor(e.actor))),
      el("td", { "data-label": "Details" }, details(e.details)));
  }

  function filterQuery() {
    const q = new URLSearchParams();
    const what = $("#flt-what").value;
    if (what === "refused") q.set("outcome", "refused");
    else if (what) q.set("action", what);
    const target = $("#flt-target").value.trim();
    if (target) q.set("target", target);
    return q.toString();
  }

  async function loadKeys() {
    if (keyNames) return;
    keyNames = new Map();
    try {
      const keys = await LK.listAll("/v1/api-keys");
      keys.forEach((k) => keyNames.set(k.id, k.name));
    } catch (e) { /* a workspace key may not list keys: actors stay "An API key" */ }
  }

  async function load(more) {
    showError($("#page-error"), null);
    const list = $("#event-list");
    if (!more) LK.loading(list, "Loading events…");
    try {
      LK.catalog = LK.catalog || await LK.apps();
      await loadKeys();
      const f = filterQuery();
      const q = `?limit=50${f ? `&${f}` : ""}${more && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await api("GET", wsPath(`/events${q}`));
      cursor = page.next_cursor;
      $("#more-events").hidden = !cursor;
      if (!more) {
        if (!page.items.length) {
          list.replaceChildren(el("div", { class: "empty" }, el("h2", {}, f ? "No event matches these filters" : "Nothing recorded yet")));
          return;
        }
        list.replaceChildren(el("table", { class: "table event-table" },
          el("thead", {}, el("tr", {}, ["When", "What", "Target", "Who", "Details"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {})));
      }
      const body = list.querySelector("tbody");
      if (body) body.append(...page.items.map(row));
    } catch (err) { if (!more) list.replaceChildren(); showError($("#page-error"), err); } finally { LK.loaded(list); }
  }

  LK.page("audit", {
    setup() {
      $("#more-events").addEventListener("click", () => load(true));
      $("#audit-filters").addEventListener("change", () => { cursor = null; load(false); });
      $("#audit-filters").addEventListener("submit", (e) => { e.preventDefault(); cursor = null; load(false); });
    },
    render() { cursor = null; load(false); },
  });
})();
