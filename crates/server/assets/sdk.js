/* Latchkey connect SDK: Latchkey.connect({connectUrl, container?}) opens a connect session's
   page in a pop-up window (or in an iframe inside `container`) and resolves with
   {connectionId, app} when the end user has connected an account. It rejects when the window or
   frame is closed, the link has expired, or the user cancels. Messages are accepted only from the
   connect page's own origin and window. */
(function () {
  "use strict";

  function connect(opts) {
    return new Promise(function (resolve, reject) {
      var url;
      try {
        url = new URL(opts && opts.connectUrl, window.location.href);
      } catch (e) {
        reject(new Error("Latchkey.connect needs {connectUrl}"));
        return;
      }
      var origin = url.origin;
      var popup = null;
      var frame = null;
      var timer = null;
      var settled = false;

      function cleanup() {
        settled = true;
        window.removeEventListener("message", onMessage);
        if (timer) clearInterval(timer);
        if (frame && frame.parentNode) frame.parentNode.removeChild(frame);
      }
      function fail(code, message) {
        if (settled) return;
        cleanup();
        if (popup && !popup.closed) { try { popup.close(); } catch (e) { /* gone */ } }
        var err = new Error(message);
        err.code = code;
        reject(err);
      }
      function onMessage(ev) {
        if (settled || ev.origin !== origin) return;
        var source = frame ? frame.contentWindow : popup;
        if (!source || ev.source !== source) return;
        var m = ev.data;
        if (!m || typeof m.type !== "string") return;
        if (m.type === "latchkey:connected" && typeof m.connection_id === "string") {
          cleanup();
          resolve({ connectionId: m.connection_id, app: m.app });
        } else if (m.type === "latchkey:closed") {
          fail(m.reason || "closed", m.message || "the connect page closed");
        }
      }
      window.addEventListener("message", onMessage);

      var container = opts.container;
      if (typeof container === "string") container = document.querySelector(container);
      if (opts.container && !container) {
        fail("no_container", "Latchkey.connect: the container was not found");
        return;
      }
      if (container) {
        frame = document.createElement("iframe");
        frame.src = url.href;
        frame.title = "Connect an account";
        frame.setAttribute("allow", "");
        frame.style.width = "100%";
        frame.style.minHeight = "640px";
        frame.style.border = "0";
        container.appendChild(frame);
        timer = setInterval(function () {
          if (!frame.isConnected) fail("closed", "the connect frame was removed");
        }, 500);
      } else {
        popup = window.open(url.href, "latchkey-connect", "popup=yes,width=600,height=760");
        if (!popup) {
          fail("popup_blocked", "the browser blocked the connect window; call Latchkey.connect from a click");
          return;
        }
        var closedSince = 0;
        timer = setInterval(function () {
          if (!popup.closed) { closedSince = 0; return; }
          closedSince = closedSince || Date.now();
          // A message posted just before the window closed is still delivered: wait a moment.
          if (Date.now() - closedSince > 800) fail("closed", "the connect window was closed");
        }, 250);
      }
    });
  }

  var root = window.Latchkey || {};
  root.connect = connect;
  window.Latchkey = root;
})();
