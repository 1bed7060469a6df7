/* Latchkey web UI: shared helpers (API calls, DOM building, workspace switcher, messages).
   Pages register with LK.page(id, {render(ws)}); every page script loads after this one. */
"use strict";

const LK = (() => {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const pages = {};
  const wsListeners = [];
  let current = null; // the selected workspace {slug, name, id}
  let workspaces = [];
  let appsCache = null;

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `request failed (${status})`);
      this.status = status;
      this.code = (body && body.error) || "error";
      this.hint = (body && body.hint) || null;
      this.details = (body && body.details) || {};
    }
  }

  /* One JSON API call with the session cookie; unsafe methods carry the CSRF token.
     opts: {headers, signal} (extra headers; an AbortSignal that calls the request off). */
  async function api(method, path, body, opts) {
    const headers = { Accept: "application/json", ...((opts && opts.headers) || {}) };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
    const init = { method, headers, credentials: "same-origin" };
    if (opts && opts.signal) init.signal = opts.signal;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      if (e && e.name === "AbortError") throw new ApiError(0, { error: "aborted", message: "The request was called off." });
      throw new ApiError(0, { error: "network", message: "Latchkey could not be reached", hint: "check that the server is running, then retry" });
    }
    if (resp.status === 401) {
      window.location.assign("/ui/login?expired=1");
      throw new ApiError(401, { error: "unauthorized", message: "signed out" });
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { message: text }; }
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  /* Every item of a paginated list (bounded, to keep a page responsive). */
  async function listAll(path, maxPages) {
    const items = [];
    let cursor = null;
    for (let i = 0; i < (maxPages || 20); i++) {
      const sep = path.includes("?") ? "&" : "?";
      const url = `${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await api("GET", url);
      items.push(...page.items);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    return items;
  }

  /* el("button", {class: "btn", onclick: f}, "text", child…): builds DOM without HTML strings. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (v === true) node.setAttribute(k, "");
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function $(sel, root) { return (root || document).querySelector(sel); }

  /* A server text as nodes: `quoted` parts become code, the backticks themselves never show;
     first letter upper-case, as a sentence. */
  function prose(text) {
    let s = String(text || "");
    if (s) s = s.charAt(0) === "`" ? s : s.charAt(0).toUpperCase() + s.slice(1);
    const parts = s.split("`");
    if (parts.length < 3) return [s.replace(/`/g, "")];
    return parts.map((p, i) => (i % 2 ? el("code", {}, p) : p)).filter((p) => p !== "");
  }

  /* Fills an alert box with an error's message and hint (or hides it when err is null).
     {focus: true} moves the focus there, so that a person (and a screen reader) notices. */
  function showError(box, err, opts) {
    if (!box) return;
    box.replaceChildren();
    if (!err) { box.hidden = true; return; }
    box.append(el("p", { class: "alert-message" }, prose(err.message || String(err))));
    if (err.hint) box.append(el("p", { class: "alert-hint" }, el("strong", {}, "Hint: "), prose(err.hint)));
    box.hidden = false;
    if (opts && opts.focus) {
      if (!box.hasAttribute("tabindex")) box.setAttribute("tabindex", "-1");
      box.scrollIntoView({ block: "nearest" });
      box.focus();
    }
  }

  /* A list area while its items load: a visible "Loading…" line, marked busy. */
  function loading(box, text) {
    if (!box) return;
    box.setAttribute("aria-busy", "true");
    box.replaceChildren(el("div", { class: "loading", role: "status" }, el("span", { class: "spinner", "aria-hidden": "true" }), text || "Loading…"));
  }
  function loaded(box) { if (box) box.removeAttribute("aria-busy"); }

  let toastTimer = null;
  function toast(message, kind) {
    const t = $("#toast");
    if (!t) return;
    t.textContent = message;
    t.className = `toast toast-${kind || "ok"}`;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
  }

  const STATUS = {
    active: "Active",
    pending_authorization: "Pending authorization",
    failing: "Failing",
    revoked: "Revoked",
    unverified: "Unverified",
  };
  function statusLabel(status) { return STATUS[status] || status; }
  function statusBadge(status) {
    return el("span", { class: `badge status-${status}`, dataset: { status } }, STATUS[status] || status);
  }

  const MODES = {
    oauth2_code: "Refresh token",
    oauth2_jwt_bearer: "JWT bearer token",
    oauth2_client_credentials: "Client credentials",
    api_key: "API key",
    basic: "Username and password",
    database: "Database login",
    service_account: "Service account key file",
    token_exchange: "Login for a session token",
    oauth1: "OAuth 1.0a (authorize in the browser)",
    oauth1_token: "OAuth 1.0a token (token-based authentication)",
    aws_sigv4: "AWS access key (Signature Version 4)",
    sftp: "SSH login (password or private key)",
  };
  function modeLabel(mode) { return MODES[mode] || mode; }

  async function apps() {
    if (!appsCache) appsCache = await listAll("/v1/apps");
    return appsCache;
  }
  function appsNow() { return appsCache; }
  function appName(list, id) {
    const a = list.find((x) => x.id === id);
    return a ? a.name : id;
  }

  function wsPath(suffix) {
    if (!current) throw new ApiError(0, { message: "no workspace is selected", hint: "create a workspace first" });
    return `/v1/workspaces/${encodeURIComponent(current.slug)}${suffix || ""}`;
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  /* ---- workspaces ---- */

  function syncLinks() {
    const q = current ? `?ws=${encodeURIComponent(current.slug)}` : "";
    document.querySelectorAll("a[data-nav]").forEach((a) => {
      a.setAttribute("href", `/ui/${a.dataset.nav}${q}`);
    });
    const url = new URL(window.location.href);
    if (current) url.searchParams.set("ws", current.slug);
    window.history.replaceState(null, "", url);
  }

  function fillSelect() {
    const sel = $("#ws-select");
    sel.removeAttribute("aria-busy");
    sel.replaceChildren();
    if (!workspaces.length) sel.append(el("option", { value: "" }, "No workspace yet"));
    for (const w of workspaces) {
      sel.append(el("option", { value: w.slug, selected: current && w.slug === current.slug, title: w.slug }, w.name));
    }
    if (current) sel.title = current.name === current.slug ? current.slug : `${current.name} (${current.slug})`;
    for (const o of sel.options) {
      const w = workspaces.find((x) => x.slug === o.value);
      if (w && workspaces.filter((x) => x.name === w.name).length > 1) o.textContent = `${w.name} (${w.slug})`;
    }
  }

  /* The signed-in role in a workspace (owner, admin, editor, viewer), or null. */
  function roleIn(ws) {
    let roles = {};
    try { roles = JSON.parse(document.body.dataset.roles || "{}"); } catch (e) { roles = {}; }
    return roles["*"] || (ws && roles[ws.id]) || null;
  }

  const RANK = { viewer: 1, editor: 2, admin: 3, owner: 4 };
  const NEED = { read: 1, edit: 2, manage: 3, members: 4 };
  /* Whether the signed-in role in the current workspace allows `need` (read, edit, manage, members). */
  function can(need) { return (RANK[roleIn(current)] || 0) >= NEED[need]; }

  function showRole() {
    const role = roleIn(current);
    document.body.dataset.role = role || "none";
    const badge = $("#who-role");
    if (badge) {
      const admin = JSON.parse(document.body.dataset.roles || "{}")["*"] && document.body.dataset.admin === "true";
      badge.textContent = admin ? "instance admin" : (role || "no role");
    }
  }

  function select(slug) {
    current = workspaces.find((w) => w.slug === slug) || workspaces[0] || null;
    if (current) localStorage.setItem("latchkey.ws", current.slug);
    showRole();
    fillSelect();
    syncLinks();
    const main = $("#main");
    const empty = $("#ws-empty");
    if (!current) {
      if (!empty) {
        main.prepend(el("div", { id: "ws-empty", class: "empty" },
          el("h2", {}, "Create your first workspace"),
          el("p", {}, "Connections, flows and keys live in a workspace."),
          isAdmin() ? el("button", { type: "button", class: "btn btn-primary", onclick: openWsDialog }, "New workspace") : null));
      }
      return;
    }
    if (empty) empty.remove();
    for (const fn of wsListeners) fn(current);
  }

  async function loadWorkspaces(prefer) {
    const sel = $("#ws-select");
    if (sel && !workspaces.length) sel.setAttribute("aria-busy", "true");
    workspaces = await listAll("/v1/workspaces");
    const fromUrl = new URL(window.location.href).searchParams.get("ws");
    select(prefer || fromUrl || localStorage.getItem("latchkey.ws") || "");
  }

  function isAdmin() { return document.body.dataset.admin === "true"; }

  function openWsDialog() {
    const d = $("#ws-dialog");
    showError($("#ws-error"), null);
    $("#ws-form").reset();
    d.showModal();
    $("#ws-slug").focus();
  }

  function setupWorkspaceUi() {
    $("#ws-select").addEventListener("change", (e) => select(e.target.value));
    const newBtn = $("#ws-new");
    if (!isAdmin()) newBtn.hidden = true;
    newBtn.addEventListener("click", openWsDialog);
    const d = $("#ws-dialog");
    d.querySelector("[data-close]").addEventListener("click", () => d.close());
    $("#ws-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const slug = $("#ws-slug").value.trim();
      const name = $("#ws-name").value.trim();
      if (!slug) {
        showError($("#ws-error"), { message: "Enter a slug.", hint: "for example acme" });
        return;
      }
      try {
        const ws = await api("POST", "/v1/workspaces", name ? { slug, name } : { slug });
        d.close();
        toast(`Workspace “${ws.name}” created`);
        await loadWorkspaces(ws.slug);
      } catch (err) {
        showError($("#ws-error"), err);
      }
    });
  }

  function onWorkspace(fn) { wsListeners.push(fn); }

  function page(id, def) { pages[id] = def; }

  document.addEventListener("DOMContentLoaded", async () => {
    if (document.body.dataset.connect) return; // the hosted connect page drives itself
    setupWorkspaceUi();
    const def = pages[document.body.dataset.page];
    if (def && def.setup) def.setup();
    if (def && def.render) onWorkspace(def.render);
    try {
      await loadWorkspaces();
    } catch (err) {
      const box = $("#page-error");
      showError(box, err);
    }
  });

  return {
    api, listAll, el, $, showError, toast, statusBadge, modeLabel, apps, appsNow, appName, wsPath, prose, loading, loaded, statusLabel,
    fmtTime, page, onWorkspace, workspace: () => current, ApiError, csrf, can, role: () => roleIn(current),
  };
})();
