/* The Members page: who has which role in the workspace; owners add people (by the email they
   were added to Latchkey with), change roles and remove members. */
"use strict";

(() => {
  const { api, el, $, showError, toast, wsPath } = LK;
  const ROLES = ["owner", "admin", "editor", "viewer"];

  async function reload() {
    showError($("#page-error"), null);
    try {
      const members = await LK.listAll(wsPath("/members"));
      const list = $("#member-list");
      if (!members.length) { list.replaceChildren(el("div", { class: "empty" }, el("h2", {}, "No members yet"))); return; }
      list.replaceChildren(el("table", { class: "table member-table" },
        el("thead", {}, el("tr", {}, ["Name", "Email", "Role", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, members.map((m) => el("tr", { dataset: { email: m.email } },
          el("td", { "data-label": "Name" }, m.display_name),
          el("td", { "data-label": "Email" }, m.email),
          el("td", { "data-label": "Role" },
            el("span", { class: "badge member-role-text" }, m.role),
            el("select", { class: "member-role-select", dataset: { action: "member-role" }, "aria-label": `Role of ${m.email}`, onchange: (e) => setRole(m, e.currentTarget.value) },
              ROLES.map((r) => el("option", { value: r, selected: r === m.role }, r)))),
          el("td", {}, el("button", { type: "button", class: "btn btn-small btn-danger-ghost", dataset: { action: "member-remove" }, "aria-label": `Remove ${m.email}`, onclick: () => remove(m) }, "Remove")))))));
    } catch (err) { showError($("#page-error"), err); }
  }

  async function setRole(m, role) {
    showError($("#page-error"), null);
    try {
      await api("PUT", wsPath(`/members/${encodeURIComponent(m.email)}`), { role });
      toast(`${m.email} is now ${role}`);
    } catch (err) { showError($("#page-error"), err); }
    reload();
  }

  async function remove(m) {
    showError($("#page-error"), null);
    try {
      await api("DELETE", wsPath(`/members/${encodeURIComponent(m.email)}`));
      toast(`${m.email} removed`);
    } catch (err) { showError($("#page-error"), err); }
    reload();
  }

  LK.page("members", {
    setup() {
      $("#member-form").addEventListener("submit", async (e) => {
        e.preventDefault();
        showError($("#page-error"), null);
        const email = $("#member-email").value.trim();
        try {
          await api("PUT", wsPath(`/members/${encodeURIComponent(email)}`), { role: $("#member-role").value });
          toast(`${email} added`);
          $("#member-email").value = "";
          reload();
        } catch (err) { showError($("#page-error"), err); }
      });
    },
    render() { reload(); },
  });
})();
