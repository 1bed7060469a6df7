//! A scripted browser for the simulator's login page: open, fill in, submit, read `Location`.

use super::SalesforceSim;
use anyhow::{anyhow, bail, Context};
use reqwest::header::LOCATION;

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `attr="…"` inside one tag.
fn attribute(tag: &str, attr: &str) -> Option<String> {
    let start = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    let len = tag[start..].find('"')?;
    Some(html_unescape(&tag[start..start + len]))
}

/// The login form's action and hidden fields.
fn parse_form(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let form = &page[page.find("<form")?..];
    let action = attribute(&form[..form.find('>')?], "action")?;
    let hidden = form
        .split("<input ")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            if attribute(tag, "type").as_deref() != Some("hidden") {
                return None;
            }
            Some((attribute(tag, "name")?, attribute(tag, "value")?))
        })
        .collect();
    Some((action, hidden))
}

fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(LOCATION)?
        .to_str()
        .ok()
        .map(String::from)
}

pub(super) async fn submit(
    sim: &SalesforceSim,
    authorize_url: &str,
    username: &str,
    password: &str,
    deny: bool,
) -> anyhow::Result<String> {
    let url = sim.to_loopback(authorize_url);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("opening {url}"))?;
    // An authorize request that fails after the callback is trusted redirects at once.
    if page.status().is_redirection() {
        return location(&page).ok_or_else(|| anyhow!("redirect without Location"));
    }
    let status = page.status();
    let text = page.text().await?;
    if !status.is_success() {
        bail!("authorize page answered {status}: {text}");
    }
    let (action, mut fields) =
        parse_form(&text).ok_or_else(|| anyhow!("no login form on the page: {text}"))?;
    fields.push(("username".into(), username.into()));
    fields.push(("password".into(), password.into()));
    fields.push(if deny {
        ("deny".into(), "1".into())
    } else {
        ("approve".into(), "1".into())
    });
    let target = url::Url::parse(&url)?.join(&action)?;
    let resp = client.post(target).form(&fields).send().await?;
    if resp.status().is_redirection() {
        return location(&resp).ok_or_else(|| anyhow!("redirect without Location"));
    }
    let status = resp.status();
    let text = resp.text().await?;
    let reason = text
        .find("id=\"error\">")
        .map(|i| &text[i + 11..])
        .and_then(|t| t.split('<').next())
        .unwrap_or(&text);
    bail!("login refused ({status}): {reason}")
}
