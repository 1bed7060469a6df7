/* A connect link that no longer works: tell the page that opened or embeds this one (only at
   the session's allowed origins, each exactly) so that Latchkey.connect rejects. */
"use strict";

(() => {
  let origins = [];
  try { origins = JSON.parse(document.body.dataset.origins || "[]"); } catch (e) { origins = []; }
  const reason = document.body.dataset.reason || "closed";
  const target = window.opener || (window.parent !== window ? window.parent : null);
  if (!target) return;
  const message = document.querySelector("#cx-closed .alert-message");
  for (const origin of origins) {
    try {
      target.postMessage({ type: "latchkey:closed", reason, message: message ? message.textContent : "" }, origin);
    } catch (e) { /* another origin: not ours to tell */ }
  }
})();
