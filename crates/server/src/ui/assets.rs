//! The UI's files, embedded at build time, and the few server-rendered bits of its pages.

/// A page of the UI: its shell is common, its content and scripts its own.
pub struct PageDef {
    pub id: &'static str,
    pub title: &'static str,
    content: &'static str,
    scripts: &'static [&'static str],
    /// Whether the page can open the Create connection pane.
    pane: bool,
    /// Whether the navigation links to it (a connection's own page is reached from the list).
    nav: bool,
}

const PAGES: &[PageDef] = &[
    PageDef {
        id: "connections",
        title: "Connections",
        content: include_str!("../../assets/connections.html"),
        scripts: &["pane.js", "connections.js"],
        pane: true,
        nav: true,
    },
    PageDef {
        id: "credentials",
        title: "Credentials",
        content: include_str!("../../assets/credentials.html"),
        scripts: &["pane.js", "credentials.js"],
        pane: true,
        nav: true,
    },
    PageDef {
        id: "flows",
        title: "Flows",
        content: include_str!("../../assets/flows.html"),
        scripts: &["pane.js", "flows.js"],
        pane: true,
        nav: true,
    },
    PageDef {
        id: "audit",
        title: "Audit",
        content: include_str!("../../assets/audit.html"),
        scripts: &["audit.js"],
        pane: false,
        nav: true,
    },
    PageDef {
        id: "webhooks",
        title: "Webhooks",
        content: include_str!("../../assets/webhooks.html"),
        scripts: &["webhooks.js"],
        pane: false,
        nav: true,
    },
    PageDef {
        id: "members",
        title: "Members",
        content: include_str!("../../assets/members.html"),
        scripts: &["members.js"],
        pane: false,
        nav: true,
    },
    PageDef {
        id: "connection",
        title: "Connection",
        content: include_str!("../../assets/connection.html"),
        scripts: &["connection.js"],
        pane: false,
        nav: false,
    },
];

const SHELL: &str = include_str!("../../assets/shell.html");
const LOGIN: &str = include_str!("../../assets/login.html");
pub const PANE: &str = include_str!("../../assets/pane.html");

/// Static files by name: content type and bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
    (
        "core.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/core.js"),
    ),
    (
        "pane.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/pane.js"),
    ),
    (
        "connections.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/connections.js"),
    ),
    (
        "credentials.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/credentials.js"),
    ),
    (
        "flows.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/flows.js"),
    ),
    (
        "audit.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/audit.js"),
    ),
    (
        "webhooks.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/webhooks.js"),
    ),
    (
        "members.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/members.js"),
    ),
    (
        "connection.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/connection.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../assets/icon.svg"),
    ),
];

pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, b)| (*t, *b))
}

pub fn page(id: &str) -> Option<&'static PageDef> {
    PAGES.iter().find(|p| p.id == id)
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn nav(current: &str) -> String {
    PAGES
        .iter()
        .filter(|p| p.nav)
        .map(|p| {
            let cur = if p.id == current {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!(
                "<a href=\"/ui/{id}\" data-nav=\"{id}\"{cur}>{title}</a>",
                id = p.id,
                title = p.title
            )
        })
        .collect()
}

/// Who is signed in, as the page shows it: a name for the header, and the role in each
/// workspace (`*` for every workspace) that decides which actions the page offers.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub name: String,
    /// `(workspace id or "*", role)`.
    pub roles: Vec<(String, String)>,
}

/// A page for a signed-in user: the shell with the page's content and the CSRF token.
pub fn render_page(def: &PageDef, csrf: &str, admin: bool, who: &Who) -> String {
    let roles: serde_json::Map<String, serde_json::Value> = who
        .roles
        .iter()
        .map(|(w, r)| (w.clone(), serde_json::Value::String(r.clone())))
        .collect();
    let scripts: String = std::iter::once("core.js")
        .chain(def.scripts.iter().copied())
        .map(|s| format!("<script src=\"/ui/assets/{s}\" defer></script>\n"))
        .collect();
    SHELL
        .replace("{{title}}", def.title)
        .replace("{{page}}", def.id)
        .replace("{{admin}}", if admin { "true" } else { "false" })
        .replace("{{who}}", &escape(&who.name))
        .replace(
            "{{roles}}",
            &escape(&serde_json::Value::Object(roles).to_string()),
        )
        .replace("{{nav}}", &nav(def.id))
        .replace("{{scripts}}", &scripts)
        .replace("{{pane}}", if def.pane { PANE } else { "" })
        .replace("{{content}}", def.content)
        .replace("{{csrf}}", &escape(csrf))
}

/// The sign-in page's way to the organisation's single sign-on, when it is configured.
const SSO_BUTTON: &str = "<p class=\"stack\" id=\"sso-form\">\
<a href=\"/ui/sso/start\" class=\"btn btn-primary btn-block\" id=\"sso-submit\">Sign in with single sign-on</a>\
</p><h2 class=\"login-or\">Or with an API key</h2>";

/// The sign-in page, with an error or a notice.
pub fn render_login(error: Option<&str>, notice: Option<&str>, sso: bool) -> String {
    let message = match (error, notice) {
        (Some(e), _) => format!(
            "<p class=\"alert alert-error\" role=\"alert\" id=\"login-error\">{}</p>",
            escape(e)
        ),
        (None, Some(n)) => format!(
            "<p class=\"alert alert-info\" role=\"status\">{}</p>",
            escape(n)
        ),
        (None, None) => String::new(),
    };
    LOGIN
        .replace("{{message}}", &message)
        .replace("{{sso}}", if sso { SSO_BUTTON } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_render_without_placeholders_left() {
        for p in PAGES {
            let who = Who {
                name: "Ada <admin>".into(),
                roles: vec![("*".into(), "owner".into())],
            };
            let html = render_page(p, "tok<en>", true, &who);
            assert!(html.contains("Ada &lt;admin&gt;"));
            assert!(!html.contains("{{"), "{}", p.id);
            assert!(html.contains("content=\"tok&lt;en&gt;\""));
            for s in p.scripts {
                assert!(get(s).is_some(), "{s}");
            }
        }
        assert!(!render_login(Some("<b>"), None, false).contains("<b>"));
    }

    #[test]
    fn no_inline_script_or_style() {
        let mut texts: Vec<&str> = PAGES.iter().map(|p| p.content).collect();
        texts.extend([SHELL, LOGIN, PANE]);
        for t in texts {
            assert!(!t.contains("<script>"), "inline script");
            assert!(!t.contains("style="), "inline style");
            assert!(!t.contains("<style"), "inline style");
            assert!(
                !t.contains("http://") && !t.contains("https://"),
                "external URL"
            );
        }
    }
}
