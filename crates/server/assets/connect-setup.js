/* The hosted connect page reuses the main UI's helpers (core.js) and Create connection pane
   (pane.js). This file runs between them: it points their API calls at the connect session's
   own endpoints, with the session token from the page's URL instead of a sign-in cookie. */
"use strict";

(() => {
  const parts = window.location.pathname.split("/").filter(Boolean);
  const token = decodeURIComponent(parts[parts.length - 1] || "");
  const base = "/v1/connect";
  const listeners = [];

  /* Fields an end user never sets: the connection's name, environment and concurrency pool. */
  function strip(body) {
    if (!body || typeof body !== "object") return body;
    const out = { ...body };
    delete out.name;
    delete out.environment;
    if (out.settings) {
      out.settings = { ...out.settings };
      delete out.settings.concurrency_level;
      delete out.settings.borrow_concurrency_from;
    }
    return out;
  }

  async function api(method, path, body) {
    if (path.startsWith("/v1/apps")) path = `${base}/apps`;
    if (method === "POST" || method === "PATCH") body = strip(body);
    const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new LK.ApiError(0, { error: "network", message: "Latchkey could not be reached", hint: "check your connection, then retry" });
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { message: text }; }
    }
    if (!resp.ok) {
      const err = new LK.ApiError(resp.status, data);
      if (resp.status === 401) listeners.forEach((fn) => fn(err));
      throw err;
    }
    return data;
  }

  let appsCache = null;
  LK.api = api;
  LK.wsPath = (suffix) => `${base}${suffix || ""}`;
  /* The pane lists the workspace's connections to borrow concurrency from: an end user sees none. */
  LK.listAll = async (path) => (path.startsWith(`${base}/connections`) ? [] : (await api("GET", path)).items);
  LK.apps = async () => {
    if (!appsCache) appsCache = (await api("GET", `${base}/apps`)).items;
    return appsCache;
  };
  LK.appsNow = () => appsCache;
  LK.workspace = () => ({ slug: "connect" });
  LK.connect = { token, onSessionEnded: (fn) => listeners.push(fn), hiddenCredentials: new Set() };
  /* pane.js asks before drawing a credential field: the OAuth client of the workspace is not
     the end user's business. */
  LK.hideField = (entry, mode, field) => (field.name === "client_id" || field.name === "client_secret")
    && mode.startsWith("oauth2_") && LK.connect.hiddenCredentials.has(entry.id);
})();
