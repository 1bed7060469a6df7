/* The hosted connect page: the session's applications as a searchable picker, then the main
   UI's Create connection pane (fields, verification, Save & check, Save & authorize popup).
   On success it tells the page that opened or embeds it, with postMessage to each of the
   session's allowed origins exactly (never "*"), and closes. */
"use strict";

(() => {
  const { api, el, $, showError } = LK;
  let info = null;
  let finished = false;

  function target() {
    if (window.opener && !window.opener.closed) return window.opener;
    if (window.parent && window.parent !== window) return window.parent;
    return null;
  }

  /* Sends msg to the opener or parent frame, once per allowed origin: the browser delivers it
     only when that window's origin is exactly the one named. */
  function tell(msg) {
    const t = target();
    if (!t || !info) return;
    for (const origin of info.allowed_origins) {
      try { t.postMessage(msg, origin); } catch (e) { /* not deliverable to that origin */ }
    }
  }

  function closeSoon() {
    setTimeout(() => { try { window.close(); } catch (e) { /* a frame cannot close itself */ } }, 400);
  }

  function showOnly(id) {
    ["#cx-picker", "#cx-reconnect", "#cx-done"].forEach((s) => { $(s).hidden = s !== id; });
  }

  function done(conn) {
    if (finished) return;
    finished = true;
    const app = (conn && conn.app) || "";
    const name = LK.appName(window.cxApps || [], app);
    showOnly("#cx-done");
    $("#cx-done-text").textContent = `Your ${name} account is connected to ${info.display_name}. You can close this window.`;
    $("#cx-cancel").hidden = true;
    showError($("#cx-error"), null);
    tell({ type: "latchkey:connected", connection_id: conn.id, app });
    closeSoon();
  }

  function ended(reason, err) {
    if (finished) return;
    finished = true;
    const d = $("#conn-pane");
    if (d && d.open) d.close();
    ["#cx-picker", "#cx-reconnect", "#cx-done"].forEach((s) => { $(s).hidden = true; });
    $("#cx-cancel").hidden = true;
    showError($("#cx-error"), err);
    tell({ type: "latchkey:closed", reason, message: err.message });
  }

  function brand() {
    document.title = `Connect an account · ${info.display_name}`;
    $("#cx-for").textContent = info.display_name;
    if (info.primary_color) {
      document.documentElement.style.setProperty("--primary", info.primary_color);
      document.documentElement.style.setProperty("--primary-hover", info.primary_color);
    }
    if (info.logo_data_url) {
      const img = $("#cx-logo");
      img.src = info.logo_data_url;
      img.alt = info.display_name;
      img.hidden = false;
    }
    const exp = new Date(info.expires_at);
    $("#cx-expiry").textContent = ` · this link works until ${exp.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
    const ms = exp.getTime() - Date.now();
    setTimeout(() => ended("expired", { message: "This connect link has expired.", hint: "go back to the application that sent you here and start connecting again" }), Math.max(0, Math.min(ms, 2147483000)));
  }

  function openPane(app) {
    showError($("#cx-error"), null);
    LK.pane.open({ app: app.id, environment: info.environment, onDone: (conn) => { if (conn) done(conn); } })
      .then(() => {
        const n = $("#f-name");
        if (n && !n.value) n.value = "connect"; // Latchkey names the end user's connection
        $("#pane-title").textContent = `Connect your ${app.name} account`;
      });
  }

  function picker(apps) {
    showOnly("#cx-picker");
    const list = $("#cx-apps");
    const render = () => {
      const q = $("#cx-search").value.trim().toLowerCase();
      const shown = apps.filter((a) => !q || `${a.name} ${a.id} ${a.description} ${a.category || ""}`.toLowerCase().includes(q));
      list.replaceChildren(...shown.map((a) => el("li", {},
        el("button", { type: "button", class: "connect-app", dataset: { app: a.id }, onclick: () => openPane(a) },
          el("span", { class: "app-name" }, a.name),
          el("span", { class: "app-desc" }, a.description || "")))));
      $("#cx-none").hidden = shown.length > 0;
    };
    $("#cx-search").addEventListener("input", render);
    render();
  }

  function reconnect(conn, apps) {
    showOnly("#cx-reconnect");
    const name = LK.appName(apps, conn.app);
    $("#cx-reconnect-title").textContent = `Reconnect ${name}`;
    $("#cx-reconnect-text").textContent = (conn.auth_mode === "oauth2_code" || conn.auth_mode === "oauth1")
      ? `Sign in to ${name} again in a pop-up window to get “${conn.name}” working again.`
      : `Enter the current credential of “${conn.name}”; it is checked with ${name} before it is saved.`;
    const go = $("#cx-reconnect-go");
    const status = $("#cx-reconnect-status");
    go.addEventListener("click", async () => {
      showError($("#cx-error"), null);
      if (conn.auth_mode !== "oauth2_code" && conn.auth_mode !== "oauth1") {
        LK.pane.open({ connection: conn, onDone: (c) => { if (c) done(c); } });
        return;
      }
      const popup = LK.pane.openPopup();
      if (!popup) {
        showError($("#cx-error"), { message: "The browser blocked the sign-in window.", hint: "allow pop-up windows for this page, then press Reconnect again" });
        return;
      }
      go.disabled = true;
      try {
        const r = await api("POST", LK.wsPath(`/connections/${encodeURIComponent(conn.id)}/authorize`));
        status.textContent = `Sign in to ${name} in the pop-up window. It closes by itself when you are done.`;
        status.hidden = false;
        const result = await LK.pane.authorizeInPopup(popup, r.authorize_url, conn.id).promise;
        status.hidden = true;
        if (result.ok) { done(conn); return; }
        const c = result.connection;
        showError($("#cx-error"), { message: result.message || "The sign-in did not finish.", hint: (c && c.hint) || "press Reconnect to try again" });
      } catch (err) {
        if (popup && !popup.closed) popup.close();
        status.hidden = true;
        if (err.status !== 401) showError($("#cx-error"), err);
      } finally {
        go.disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    LK.connect.onSessionEnded((err) => {
      // Spent means the connection just succeeded: the pane reports that itself (done()).
      if (err.code === "connect_session_spent") return;
      const reason = (err.code || "").replace("connect_session_", "") || "closed";
      ended(reason, err);
    });
    $("#cx-cancel").addEventListener("click", () => {
      const d = $("#conn-pane");
      if (d && d.open) return;
      finished = true;
      tell({ type: "latchkey:closed", reason: "cancelled", message: "The end user cancelled." });
      try { window.close(); } catch (e) { /* a frame cannot close itself */ }
    });
    try {
      info = await api("GET", "/v1/connect/session");
      info.apps_with_oauth_client.forEach((a) => LK.connect.hiddenCredentials.add(a));
      brand();
      const apps = await LK.apps();
      window.cxApps = apps;
      if (info.reconnect) reconnect(info.reconnect, apps);
      else picker(apps);
    } catch (err) {
      if (err.status !== 401) showError($("#cx-error"), err);
    }
  });
})();
