/* The Create connection pane, in the seeds' order: Application, Name, the application's own
   fields (built from the catalog's field descriptions), Advanced settings, then
   "Save & authorize" (OAuth authorization code: popup window) or "Save & check", and Cancel
   (which deletes a connection it created that was never authorized: nothing is left behind). */
"use strict";

(() => {
  const { api, el, $, showError, toast, modeLabel, wsPath } = LK;
  let st = null; // the pane's state while it is open

  const appliesTo = (f, mode) => !f.auth_modes || !f.auth_modes.length || f.auth_modes.includes(mode);
  /* The OAuth client fields (consumer key and secret) are required unless the workspace has an
     OAuth client for the application, which is used when they are left empty. */
  const isClientField = (f) => !!(st && st.entry && st.entry.oauth) && (f.name === "client_id" || f.name === "client_secret");
  const isRequired = (f, mode) => !!f.required || (f.required_for || []).includes(mode) || (isClientField(f) && !st.wsClient);
  /* Databases and SFTP servers are reached directly, never through the proxy. */
  const isDatabase = () => !!st && (st.mode === "database" || st.mode === "sftp");
  const choiceLabel = (c) => c.charAt(0).toUpperCase() + c.slice(1).replace(/_/g, " ");
  const hasValue = (v) => v !== undefined && v !== null && v !== "";

  /* ---- building the fields ---- */

  function inputFor(spec, id, group, mode, value, entry) {
    const required = isRequired(spec, mode) && !(group === "credentials" && st.editing);
    const common = { id, name: spec.name, required, "aria-describedby": `${id}-help ${id}-err` };
    switch (spec.type) {
      case "enum":
        return el("select", common, spec.choices.map((c) => el("option", { value: c, selected: c === value }, choiceLabel(c))));
      case "boolean":
        return el("input", { ...common, type: "checkbox", checked: value === true || value === "true" });
      case "integer":
        return el("input", { ...common, type: "number", step: 1, min: spec.min, max: spec.max, inputmode: "numeric", value: hasValue(value) ? value : "", placeholder: spec.placeholder });
      case "secret":
        return el("input", { ...common, type: "password", autocomplete: "new-password", spellcheck: "false", value: value || "", placeholder: st.editing ? "Unchanged: type to replace" : spec.placeholder });
      case "secret_text":
        return el("textarea", { ...common, rows: 5, spellcheck: "false", placeholder: st.editing ? "Unchanged: paste to replace" : spec.placeholder }, value || "");
      case "map": {
        const text = value && typeof value === "object" ? Object.entries(value).map(([k, v]) => `${k}=${v}`).join("\n") : value || "";
        return el("textarea", { ...common, rows: 3, spellcheck: "false", placeholder: "key=value, one a line" }, text);
      }
      case "list": {
        const list = Array.isArray(value) ? value : String(value || "").split(/\s+/).filter(Boolean);
        const described = entry.oauth && entry.oauth.scope_descriptions;
        if (spec.name === "scopes" && described && Object.keys(described).length) {
          const names = [...new Set([...list, ...Object.keys(described)])];
          return el("div", { class: "check-grid", id, role: "group", "aria-labelledby": `${id}-label`, "aria-describedby": `${id}-help` },
            names.map((s) => el("label", { class: "check" },
              el("input", { type: "checkbox", value: s, checked: list.includes(s) }),
              el("code", {}, s), el("span", { class: "muted" }, described[s] || ""))));
        }
        return el("input", { ...common, value: list.join(" "), placeholder: spec.placeholder || "space-separated words", spellcheck: "false" });
      }
      default:
        return el("input", { ...common, type: spec.type === "url" ? "url" : "text", value: hasValue(value) ? value : "", placeholder: spec.placeholder, autocomplete: "off", spellcheck: "false" });
    }
  }

  function fieldNode(spec, group, mode, value, entry) {
    const id = `fld-${group === "settings" ? "s" : "c"}-${spec.name}`;
    const input = inputFor(spec, id, group, mode, value, entry);
    const req = isRequired(spec, mode) && !(group === "credentials" && st.editing);
    const isCheck = spec.type === "boolean";
    const label = el(spec.type === "list" && input.tagName === "DIV" ? "span" : "label",
      { for: input.tagName === "DIV" ? null : id, class: "label", id: `${id}-label` },
      spec.label, req ? el("span", { class: "req", "aria-hidden": "true" }, " *")
        : isClientField(spec) && group === "credentials" && !st.editing ? el("span", { class: "opt" }, " (optional: the workspace’s OAuth client is used when empty)")
        : hasValue(spec.default) && spec.default !== "" ? null : el("span", { class: "opt" }, " (optional)"));
    return el("div", { class: isCheck ? "field checkbox" : "field", dataset: { field: spec.name, group, type: spec.type } },
      isCheck ? [input, label] : [label, input],
      spec.type === "secret_text" ? filePicker(spec, id, input) : null,
      el("p", { class: "help", id: `${id}-help` }, LK.prose(spec.description || "")),
      el("p", { class: "field-error", id: `${id}-err`, hidden: true }));
  }

  /* A multi-line secret (a key file, a PEM key) may be read from a file instead of pasted: the
     file is read in the browser and put in the text area, never uploaded anywhere else. */
  function filePicker(spec, id, area) {
    const json = spec.name === "key_json";
    const picker = el("input", { type: "file", id: `${id}-file`, class: "file-pick",
      accept: json ? ".json,application/json" : ".pem,.key,.txt",
      "aria-label": `${spec.label}: read from a file` });
    picker.addEventListener("change", async () => {
      const f = picker.files && picker.files[0];
      if (!f) return;
      if (f.size > 64 * 1024) { toast(`${f.name} is too large for a key file`, "error"); return; }
      area.value = await f.text();
      area.dispatchEvent(new Event("input", { bubbles: true }));
    });
    return el("label", { class: "file-label", for: `${id}-file` }, json ? "Or choose the key file: " : "Or read it from a file: ", picker);
  }

  /* The values typed so far, by group and name, so a change of flow type keeps them. */
  function typed() {
    const out = {};
    document.querySelectorAll("#conn-pane [data-field]").forEach((w) => {
      out[`${w.dataset.group}.${w.dataset.field}`] = readField(w, true);
    });
    return out;
  }

  function renderFields() {
    const entry = st.entry;
    const keep = typed();
    const main = $("#app-fields");
    const adv = $("#advanced-fields");
    main.replaceChildren();
    adv.replaceChildren();
    if (!entry) return;
    const mode = st.mode;
    const stored = st.editing ? st.editing.settings : {};
    const valueOf = (group, f) => {
      const k = `${group}.${f.name}`;
      if (k in keep && keep[k] !== undefined) return keep[k];
      if (group === "settings" && f.name in stored) return stored[f.name];
      return group === "settings" ? f.default : undefined;
    };
    const settings = entry.settings.filter((f) => appliesTo(f, mode));
    // Choices that hold for every flow type (Salesforce's account type) come before it.
    let lead = 0;
    while (lead < settings.length && settings[lead].type === "enum" && !(settings[lead].auth_modes || []).length) lead++;
    settings.slice(0, lead).forEach((f) => main.append(fieldNode(f, "settings", mode, valueOf("settings", f), entry)));
    main.append(modeControl(entry));
    // The verification path is the heart of "check before saving": never tucked away.
    const verifyPath = entry.verify && entry.verify.path_setting;
    for (const f of settings.slice(lead)) {
      const advanced = !isRequired(f, mode) && f.default !== undefined && !["enum", "list"].includes(f.type) && f.name !== verifyPath;
      (advanced ? adv : main).append(fieldNode(f, "settings", mode, valueOf("settings", f), entry));
    }
    entry.credentials.filter((f) => appliesTo(f, mode) && !(LK.hideField && LK.hideField(entry, mode, f)))
      .forEach((f) => main.append(fieldNode(f, "credentials", mode, valueOf("credentials", f), entry)));
    const oauthCode = (mode === "oauth2_code" || mode === "oauth1") && !st.editing;
    $("#pane-save").textContent = oauthCode ? "Save & authorize" : "Save & check";
    // Databases are never proxied: no concurrency level, nothing to borrow.
    $("#borrow-field").hidden = isDatabase();
    $("#level-field").hidden = isDatabase() || !!$("#f-borrow").value;
    const kind = $("#fld-s-account_type");
    if (kind) kind.addEventListener("change", () => followAccountType(kind.value));
  }

  /* A Sandbox account belongs to a sandbox environment: the environment follows the account
     type until the person types one of their own. */
  function followAccountType(value) {
    if (!st || st.editing || st.envChosen) return;
    $("#f-env").value = value === "sandbox" ? "sandbox" : "production";
  }

  function modeControl(entry) {
    const oauthOnly = entry.auth_modes.every((m) => m.startsWith("oauth2_"));
    const label = oauthOnly ? "OAuth 2.0 flow type" : "Authentication";
    if (entry.auth_modes.length === 1) {
      return el("div", { class: "field" }, el("span", { class: "label" }, label),
        el("p", { class: "static", id: "f-mode-static" }, modeLabel(entry.auth_modes[0])));
    }
    const sel = el("select", { id: "f-mode", name: "auth_mode", disabled: !!st.editing },
      entry.auth_modes.map((m) => el("option", { value: m, selected: m === st.mode }, modeLabel(m))));
    sel.addEventListener("change", () => { st.mode = sel.value; renderFields(); });
    return el("div", { class: "field" }, el("label", { for: "f-mode", class: "label" }, label, el("span", { class: "req", "aria-hidden": "true" }, " *")), sel,
      el("p", { class: "help" }, oauthOnly ? "Refresh token: sign in once in a browser window, then Latchkey refreshes the token. JWT bearer and client credentials need no browser." : ""));
  }

  /* ---- reading the form ---- */

  function readField(w, raw) {
    const type = w.dataset.type;
    if (type === "list") {
      const boxes = w.querySelectorAll("input[type=checkbox]");
      if (boxes.length) return [...boxes].filter((b) => b.checked).map((b) => b.value);
      const v = w.querySelector("input").value.trim();
      return raw ? v : v.split(/\s+/).filter(Boolean);
    }
    const input = w.querySelector("input, select, textarea");
    if (type === "boolean") return input.checked;
    const v = type === "secret_text" || type === "secret" ? input.value : input.value.trim();
    if (raw) return v;
    if (type === "integer") return v === "" ? "" : Number(v);
    if (type === "map") {
      const m = {};
      v.split("\n").map((l) => l.trim()).filter(Boolean).forEach((l) => {
        const i = l.indexOf("=");
        if (i > 0) m[l.slice(0, i).trim()] = l.slice(i + 1).trim();
      });
      return Object.keys(m).length ? m : "";
    }
    return v;
  }

  function fieldError(w, message) {
    const p = w.querySelector(".field-error");
    const input = w.querySelector("input, select, textarea");
    p.textContent = message || "";
    p.hidden = !message;
    if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
  }

  function clearErrors() {
    document.querySelectorAll("#conn-pane .field-error").forEach((p) => { p.hidden = true; p.textContent = ""; });
    $("#f-name").removeAttribute("aria-invalid");
    document.querySelectorAll("#conn-pane [aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
    showError($("#pane-error"), null);
  }

  /* The request body, or null after marking what is missing. */
  function collect() {
    clearErrors();
    const missing = [];
    const settings = {};
    const credentials = {};
    const name = $("#f-name").value.trim();
    if (!name) {
      const err = $("#f-name-err");
      err.textContent = "Name is required.";
      err.hidden = false;
      $("#f-name").setAttribute("aria-invalid", "true");
      missing.push($("#f-name"));
    }
    document.querySelectorAll("#conn-pane [data-field]").forEach((w) => {
      const group = w.dataset.group;
      const v = readField(w, false);
      const spec = (group === "settings" ? st.entry.settings : st.entry.credentials).find((f) => f.name === w.dataset.field);
      const empty = v === "" || (Array.isArray(v) && !v.length && isRequired(spec, st.mode));
      if (empty) {
        if (isRequired(spec, st.mode) && !(group === "credentials" && st.editing)) {
          fieldError(w, `${spec.label} is required.`);
          missing.push(w.querySelector("input, select, textarea"));
        } else if (group === "settings" && st.editing && hasValue(st.editing.settings[spec.name])) {
          settings[spec.name] = null; // emptied: remove the stored value
        }
        return;
      }
      (group === "settings" ? settings : credentials)[spec.name] = v;
    });
    const borrow = $("#f-borrow").value;
    if (isDatabase()) {
      // no concurrency for a database
    } else if (borrow) settings.borrow_concurrency_from = borrow;
    else {
      const level = Number($("#f-level").value);
      if (!Number.isInteger(level) || level < 1 || level > 25) {
        $("#advanced").open = true;
        showError($("#pane-error"), { message: "The concurrency level must be a whole number from 1 to 25." }, { focus: true });
        return null;
      }
      settings.concurrency_level = level;
      if (st.editing && st.editing.settings.borrow_concurrency_from) settings.borrow_concurrency_from = null;
    }
    if (missing.length) {
      showError($("#pane-error"), { message: "Fill in the required fields.", hint: "they are marked with *" });
      missing[0].focus();
      missing[0].scrollIntoView({ block: "center" });
      return null;
    }
    const body = { name, environment: $("#f-env").value.trim() || "production", settings };
    if (st.entry.oauth && !st.editing) {
      // Leave empty client fields out: the workspace's OAuth client then applies.
      for (const k of ["client_id", "client_secret"]) if (credentials[k] === "") delete credentials[k];
    }
    if (!st.editing) Object.assign(body, { app: st.entry.id, auth_mode: st.mode });
    if (Object.keys(credentials).length || !st.editing) body.credentials = credentials;
    return body;
  }

  /* Puts a server error next to the form, and on the field it names. */
  function showServerError(err) {
    showError($("#pane-error"), err);
    const field = err.details && err.details.field;
    if (field) {
      const [group, name] = field.includes(".") ? field.split(".", 2) : ["", field];
      const w = document.querySelector(`#conn-pane [data-group="${group}"][data-field="${CSS.escape(name)}"]`);
      if (w) fieldError(w, err.message);
      else if (field === "name") $("#f-name").setAttribute("aria-invalid", "true");
    }
    focusMessage($("#pane-error"));
  }

  /* Messages sit just above Save, where the eye is after a click, and take the focus. */
  function focusMessage(box) {
    box.scrollIntoView({ block: "nearest" });
    box.focus();
  }

  function paneError(err) {
    showError($("#pane-error"), err);
    focusMessage($("#pane-error"));
  }

  function busy(text) {
    const s = $("#pane-status");
    if (text) {
      s.textContent = text;
      s.hidden = false;
      showError($("#pane-error"), null);
      focusMessage(s);
    } else s.hidden = true;
    $("#pane-save").disabled = !!text;
  }

  /* ---- authorization in a popup window (also used by the connections list) ---- */

  function openPopup() {
    return window.open("", "latchkey-authorize", "popup=yes,width=560,height=720");
  }

  /* Sends the popup to the provider and resolves when the callback page reports back (or the
     window closes): {ok, message, connection}. `handle.stop()` gives up waiting. */
  function authorizeInPopup(popup, url, connId) {
    let done = false;
    let resolveFn;
    const promise = new Promise((r) => { resolveFn = r; });
    const finish = async (ok, message) => {
      if (done) return;
      done = true;
      window.removeEventListener("message", onMessage);
      clearInterval(timer);
      let connection = null;
      try { connection = await api("GET", wsPath(`/connections/${encodeURIComponent(connId)}`)); } catch (e) { /* shown by caller */ }
      if (connection && connection.status === "active") ok = true;
      resolveFn({ ok, message, hint, connection });
    };
    let hint = null;
    const onMessage = (ev) => {
      const m = ev.data;
      if (ev.origin !== window.location.origin || !m || m.source !== "latchkey" || m.type !== "authorization" || m.connection !== connId) return;
      hint = m.hint || null;
      finish(m.status === "active", m.message);
    };
    window.addEventListener("message", onMessage);
    let closedSince = 0;
    const started = Date.now();
    const timer = setInterval(() => {
      if (Date.now() - started > 15 * 60 * 1000) finish(false, "The authorization took too long.");
      else if (popup.closed) {
        closedSince = closedSince || Date.now();
        if (Date.now() - closedSince > 1200) finish(false, "The sign-in window was closed before the authorization finished.");
      }
    }, 400);
    try { popup.location.replace(url); } catch (e) { popup.location.href = url; }
    popup.focus();
    return { promise, stop: () => { done = true; window.removeEventListener("message", onMessage); clearInterval(timer); } };
  }

  async function runAuthorization(popup, conn, url) {
    if (!popup) {
      busy(null);
      paneError({ message: "The browser blocked the sign-in window.", hint: "allow pop-up windows for Latchkey, then press Save & authorize again" });
      return;
    }
    busy(`Sign in to ${st.entry.name} in the pop-up window. It closes by itself when the connection is authorized.`);
    $("#pane-save").textContent = "Waiting for authorization…";
    st.waiting = authorizeInPopup(popup, url, conn.id);
    const result = await st.waiting.promise;
    st.waiting = null;
    if (!st) return; // cancelled meanwhile
    busy(null);
    if (result.ok) {
      finish(result.connection || conn, `Connection “${conn.name}” is authorized and active`);
      return;
    }
    $("#pane-save").textContent = "Authorize again";
    const c = result.connection;
    // The window's message and its hint are shown once each (the hint is also on the connection).
    paneError({ message: result.message || "The authorization did not finish.", hint: result.hint || (c && c.hint) || "press Authorize again to retry, or Cancel to discard this connection" });
  }

  async function submit() {
    const body = collect();
    if (!body) return;
    if (st.editing) {
      busy("Checking and saving…");
      try {
        const c = await api("PATCH", wsPath(`/connections/${encodeURIComponent(st.editing.id)}`), body);
        finish(c, `Connection “${c.name}” saved`);
      } catch (err) { busy(null); showServerError(err); }
      return;
    }
    // OAuth 1.0a goes through the browser too, unless a token pair was given to import.
    const viaBrowser = st.mode === "oauth2_code"
      || (st.mode === "oauth1" && !(body.credentials && body.credentials.token_id));
    if (viaBrowser) {
      const popup = openPopup(); // now, while the click still counts as the user's gesture
      st.popup = popup;
      busy("Saving…");
      try {
        let url;
        if (st.created) {
          url = (await api("POST", wsPath(`/connections/${encodeURIComponent(st.created.id)}/authorize`))).authorize_url;
        } else {
          st.created = await api("POST", wsPath("/connections"), body);
          url = st.created.authorize_url;
          lockIdentity();
        }
        if (st.created.warnings && st.created.warnings.length) toast(st.created.warnings.join(" "), "warn");
        await runAuthorization(popup, st.created, url);
      } catch (err) {
        if (popup) popup.close();
        busy(null);
        showServerError(err);
      }
      return;
    }
    busy(`Checking the connection with ${st.entry.name}… Cancel stops it and saves nothing.`);
    // Cancel while this runs must leave nothing behind: the request can be called off, and
    // the token lets the server refuse (or undo) the save.
    const token = newToken();
    const ctl = new AbortController();
    st.inflight = { token, ctl };
    try {
      const c = await api("POST", wsPath("/connections"), body, { headers: { "X-Latchkey-Cancel-Token": token }, signal: ctl.signal });
      if (!st || st.inflight === null) return;
      st.inflight = null;
      finish(c, `Connection “${c.name}” checked and saved`);
    } catch (err) {
      if (!st || err.code === "aborted" || err.code === "cancelled") return;
      st.inflight = null;
      busy(null);
      showServerError(err);
    }
  }

  function newToken() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  /* Once a pending connection exists, its application and name are fixed (Cancel deletes it). */
  function lockIdentity() {
    ["#f-app", "#f-name", "#f-env", "#f-mode"].forEach((s) => { const n = $(s); if (n) n.disabled = true; });
  }

  function finish(conn, message) {
    const onDone = st && st.onDone;
    close();
    toast(message);
    if (onDone) onDone(conn);
  }

  function close() {
    const d = $("#conn-pane");
    if (st && st.waiting) st.waiting.stop();
    st = null;
    if (d.open) d.close();
  }

  async function cancel() {
    if (!st) { close(); return; }
    if (st.inflight) {
      const { token, ctl } = st.inflight;
      st.inflight = null;
      ctl.abort();
      try {
        await api("DELETE", wsPath(`/connection-requests/${token}`));
      } catch (err) {
        showServerError(err);
        return;
      }
      close();
      return;
    }
    if (st.waiting) st.waiting.stop();
    if (st.popup && !st.popup.closed) st.popup.close();
    if (st.created && st.created.status !== "active") {
      try {
        const c = await api("GET", wsPath(`/connections/${encodeURIComponent(st.created.id)}`));
        if (c.status !== "active") await api("DELETE", wsPath(`/connections/${encodeURIComponent(st.created.id)}`));
        else toast(`Connection “${c.name}” was authorized meanwhile and is kept`);
      } catch (err) {
        if (err.status !== 404) { showServerError(err); return; }
      }
      const onDone = st.onDone;
      close();
      if (onDone) onDone(null);
      return;
    }
    close();
  }

  async function fillBorrow(current) {
    const sel = $("#f-borrow");
    sel.replaceChildren(el("option", { value: "" }, "None: use its own concurrency level"));
    try {
      const conns = await LK.listAll(wsPath("/connections"));
      for (const c of conns) {
        if (st && st.editing && c.id === st.editing.id) continue;
        if (c.auth_mode === "database" || c.auth_mode === "sftp" || c.settings.borrow_concurrency_from) continue; // direct connections lend nothing
        sel.append(el("option", { value: c.id, selected: c.id === current }, `${c.name} (${c.app}, ${c.environment})`));
      }
    } catch (err) { showError($("#pane-error"), err); }
    $("#level-field").hidden = !!sel.value || isDatabase();
  }

  /* Opens the pane: {app} preselects an application, {connection} edits one, {environment}
     presets it, {onDone(conn)} runs after a save (or with null after a cancelled pending one). */
  async function open(opts) {
    opts = opts || {};
    const catalog = await LK.apps();
    st = { entry: null, mode: null, editing: opts.connection || null, created: null, waiting: null, popup: null, onDone: opts.onDone, inflight: null, wsClient: false, envChosen: !!opts.environment };
    const d = $("#conn-pane");
    $("#conn-form").reset();
    clearErrors();
    busy(null);
    $("#pane-title").textContent = st.editing ? `Edit connection “${st.editing.name}”` : "Create connection";
    const appSel = $("#f-app");
    appSel.disabled = !!st.editing;
    appSel.replaceChildren(el("option", { value: "" }, "Choose an application…"),
      ...catalog.map((a) => el("option", { value: a.id }, a.name)));
    ["#f-name", "#f-env"].forEach((s) => { $(s).disabled = false; });
    const chosen = st.editing ? st.editing.app : opts.app || "";
    appSel.value = chosen;
    $("#f-name").value = st.editing ? st.editing.name : "";
    $("#f-env").value = st.editing ? st.editing.environment : opts.environment || "production";
    const s = st.editing ? st.editing.settings : {};
    $("#f-level").value = s.concurrency_level || 5;
    $("#advanced").open = false;
    $("#picker").hidden = !!st.editing;
    $("#f-app-search").value = "";
    fillCategories(catalog);
    chooseApp(chosen);
    renderPicker();
    d.showModal();
    (chosen ? $("#f-name") : $("#f-app-search")).focus();
    await fillBorrow(s.borrow_concurrency_from || "");
  }

  /* The picker: a searchable, categorised list of the catalog, each with its monogram in the
     application's brand colour. Choosing one sets the select below it. */
  const CATEGORY_NAMES = {
    crm: "CRM", erp: "ERP", finance: "Finance", support: "Support", marketing: "Marketing", hr: "HR",
    ecommerce: "E-commerce", storage: "Storage", collaboration: "Collaboration", "developer-tools": "Developer tools",
    "data-warehouse": "Data warehouses", cloud: "Cloud", communication: "Communication", security: "Security",
    analytics: "Analytics", payments: "Payments", productivity: "Productivity", database: "Databases", generic: "Any API",
  };

  function textOn(bg) {
    const n = parseInt((bg || "#777777").slice(1), 16);
    const lum = (0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
    return lum > 0.6 ? "#111111" : "#ffffff";
  }

  function monogram(a) {
    const m = el("span", { class: "monogram", "aria-hidden": "true" }, a.monogram || a.name.slice(0, 2));
    m.style.backgroundColor = a.brand_color; // CSSOM, which the style-src policy allows
    m.style.color = textOn(a.brand_color);
    return m;
  }

  function renderPicker() {
    const catalog = LK.appsNow() || [];
    const words = $("#f-app-search").value.toLowerCase().split(/\s+/).filter(Boolean);
    const cat = $("#f-app-category").value;
    const shown = catalog.filter((a) => {
      if (cat && !(a.categories || []).includes(cat)) return false;
      const hay = `${a.id} ${a.name} ${a.description} ${(a.categories || []).join(" ")}`.toLowerCase();
      return words.every((w) => hay.includes(w));
    });
    const chosen = $("#f-app").value;
    $("#app-picker").replaceChildren(...shown.map((a) => el("li", {},
      el("button", { type: "button", class: "pick" + (a.id === chosen ? " chosen" : ""), role: "option", "aria-selected": String(a.id === chosen), "data-app": a.id },
        monogram(a),
        el("span", { class: "pick-name" }, a.name),
        el("span", { class: "pick-cat" }, (a.categories || []).map((c) => CATEGORY_NAMES[c] || c).join(" · "))))));
    $("#picker-count").textContent = shown.length ? `${shown.length} of ${catalog.length} applications` : "No application matches: try fewer words, or another category.";
  }

  function fillCategories(catalog) {
    const sel = $("#f-app-category");
    const seen = new Set();
    catalog.forEach((a) => (a.categories || []).forEach((c) => seen.add(c)));
    const cats = Object.keys(CATEGORY_NAMES).filter((c) => seen.has(c));
    sel.replaceChildren(el("option", { value: "" }, "All categories"), ...cats.map((c) => el("option", { value: c }, CATEGORY_NAMES[c])));
  }

  function chooseApp(id) {
    LK.apps().then(async (catalog) => {
      if (!st) return;
      st.appSeq = (st.appSeq || 0) + 1;
      const seq = st.appSeq; // a later choice wins over this one
      const entry = catalog.find((a) => a.id === id) || null;
      let wsClient = false;
      if (entry && entry.oauth) {
        try {
          await api("GET", wsPath(`/apps/${encodeURIComponent(entry.id)}/oauth-client`));
          wsClient = true;
        } catch (e) { wsClient = false; }
      }
      if (!st || st.appSeq !== seq) return;
      st.wsClient = wsClient;
      st.entry = entry;
      st.mode = st.editing ? st.editing.auth_mode : st.entry ? st.entry.auth_modes[0] : null;
      $("#f-app-help").replaceChildren(...LK.prose(st.entry ? st.entry.description : "Pick the application this connection is for."));
      $("#app-fields").replaceChildren();
      renderFields();
      if (st.entry && !st.editing) followAccountType(($("#fld-s-account_type") || {}).value);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const d = $("#conn-pane");
    if (!d) return;
    $("#f-app").addEventListener("change", (e) => { e.target.removeAttribute("aria-invalid"); chooseApp(e.target.value); renderPicker(); });
    $("#f-env").addEventListener("input", () => { if (st) st.envChosen = true; });
    $("#f-name").addEventListener("input", () => {
      if ($("#f-name").value.trim()) { $("#f-name-err").hidden = true; $("#f-name").removeAttribute("aria-invalid"); }
    });
    $("#f-app-search").addEventListener("input", renderPicker);
    $("#f-app-category").addEventListener("change", renderPicker);
    $("#app-picker").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-app]");
      if (!b || $("#f-app").disabled) return;
      $("#f-app").value = b.dataset.app;
      $("#f-app").removeAttribute("aria-invalid");
      chooseApp(b.dataset.app);
      renderPicker();
      $("#f-name").focus();
    });
    $("#f-borrow").addEventListener("change", (e) => { $("#level-field").hidden = !!e.target.value || isDatabase(); });
    $("#conn-form").addEventListener("submit", (e) => {
      e.preventDefault();
      if (!st || !st.entry) {
        showError($("#pane-error"), { message: "Choose an application first." });
        $("#f-app").setAttribute("aria-invalid", "true");
        $("#f-app").focus();
        return;
      }
      submit();
    });
    d.querySelectorAll("[data-pane-cancel]").forEach((b) => b.addEventListener("click", cancel));
    d.addEventListener("cancel", (e) => { e.preventDefault(); cancel(); });
  });

  LK.pane = { open, openPopup, authorizeInPopup };
})();
