//! URL templates of catalog entries (`https://{subdomain}.zendesk.com/api/v2`), filled from a
//! connection's settings or from fields kept from the token answer.
//!
//! A template value may never move a request to another host: a value in the host is one DNS
//! label (`acme`, not `evil.com/x`), a value in the path is one path segment (no `/`, `?`, `#`,
//! `%`, `\`, `@`, no `..`), and a value that opens the template (a kept field such as
//! Zoho's `api_domain`) must be an `https` origin. The filled URL is parsed again and its host
//! checked against the template's fixed part.

use crate::CoreError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use url::Url;

/// Where a placeholder sits in its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The whole origin (`{api_domain}/crm/v6`): only kept token fields may stand there.
    Origin,
    /// Inside the host name: the value must be one DNS label.
    Host,
    /// After the host (path or query): the value must be one path segment.
    Path,
}

/// The placeholders of a template with their positions.
pub fn placeholders(template: &str) -> Vec<(String, Position)> {
    let scheme_end = template.find("://").map(|i| i + 3);
    let host_end = scheme_end.map(|s| {
        template[s..]
            .find(['/', '?'])
            .map(|i| s + i)
            .unwrap_or(template.len())
    });
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(open) = template[rest..].find('{').map(|i| rest + i) {
        let Some(close) = template[open..].find('}').map(|i| open + i) else {
            break;
        };
        let name = template[open + 1..close].to_string();
        let pos = match (scheme_end, host_end) {
            _ if open == 0 => Position::Origin,
            (Some(s), Some(h)) if open >= s && open < h => Position::Host,
            _ => Position::Path,
        };
        out.push((name, pos));
        rest = close + 1;
    }
    out
}

fn label_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

fn segment_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 200
        && v != "."
        && v != ".."
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

fn origin_ok(v: &str) -> bool {
    Url::parse(v).is_ok_and(|u| {
        u.scheme() == "https"
            && u.host_str().is_some()
            && u.username().is_empty()
            && u.password().is_none()
            && matches!(u.path(), "" | "/")
            && u.query().is_none()
            && u.fragment().is_none()
    })
}

/// Checks one value for its position; the error names the setting (`settings.subdomain`).
pub fn check_value(field: &str, name: &str, value: &str, pos: Position) -> Result<(), CoreError> {
    let (ok, what) = match pos {
        Position::Host => (
            label_ok(value),
            "one DNS label (letters, digits and dashes): it is part of the host name",
        ),
        Position::Path => (
            segment_ok(value),
            "one path segment (letters, digits, `-`, `_`, `.`, `~`)",
        ),
        Position::Origin => (origin_ok(value), "an https origin"),
    };
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid_with_hint(
            field,
            format!("`{name}` = `{value}` would change where requests go: it must be {what}"),
            format!("give `{name}` alone, e.g. the `acme` of acme.example.com, without dots, slashes or a scheme"),
        ))
    }
}

/// Fills a template. `settings` values win over `kept` ones; a missing value is an error that
/// names the setting.
pub fn fill(
    template: &str,
    settings: &Map<String, Value>,
    kept: &BTreeMap<String, String>,
) -> Result<Url, CoreError> {
    fill_trusting(template, settings, kept, &[])
}

/// [`fill`], where the settings named in `trusted` (values the catalog itself listed) may hold
/// dots in the host.
pub fn fill_trusting(
    template: &str,
    settings: &Map<String, Value>,
    kept: &BTreeMap<String, String>,
    trusted: &[&str],
) -> Result<Url, CoreError> {
    let mut out = template.to_string();
    for (name, pos) in placeholders(template) {
        let field = format!("settings.{name}");
        let value = match settings.get(&name) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => match kept.get(&name) {
                Some(v) => v.trim_end_matches('/').to_string(),
                None => {
                    return Err(CoreError::invalid_with_hint(
                        field,
                        format!("the setting `{name}` is missing: the application's URLs need it"),
                        format!("give settings.{name}"),
                    ))
                }
            },
        };
        if !(trusted.contains(&name.as_str())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            check_value(&field, &name, &value, pos)?;
        }
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    let url = Url::parse(&out).map_err(|_| {
        CoreError::invalid(
            "settings",
            format!("the filled URL `{out}` is not a valid URL"),
        )
    })?;
    // Defence in depth: the fixed tail of the template's host must still end the host.
    if let Some(suffix) = fixed_host_suffix(template) {
        let host = url.host_str().unwrap_or_default();
        if !host.ends_with(&suffix) {
            return Err(CoreError::invalid(
                "settings",
                format!("the filled URL's host `{host}` left the application's domain"),
            ));
        }
    }
    Ok(url)
}

/// The part of a template's host after its last placeholder (`.zendesk.com`).
fn fixed_host_suffix(template: &str) -> Option<String> {
    let s = template.find("://")? + 3;
    let rest = &template[s..];
    let host = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let tail = match host.rfind('}') {
        Some(i) => &host[i + 1..],
        None => host,
    };
    let tail = tail.split(':').next().unwrap_or_default();
    (!tail.is_empty()).then(|| tail.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn positions() {
        assert_eq!(
            placeholders("https://{subdomain}.zendesk.com/api/v2"),
            vec![("subdomain".to_string(), Position::Host)]
        );
        assert_eq!(
            placeholders("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
            vec![("tenant".to_string(), Position::Path)]
        );
        assert_eq!(
            placeholders("{api_domain}/crm/v6"),
            vec![("api_domain".to_string(), Position::Origin)]
        );
    }

    #[test]
    fn values_cannot_move_the_host() {
        let t = "https://{subdomain}.zendesk.com/api/v2";
        let k = BTreeMap::new();
        assert_eq!(
            fill(t, &settings(json!({"subdomain": "acme"})), &k)
                .unwrap()
                .as_str(),
            "https://acme.zendesk.com/api/v2"
        );
        for bad in ["evil.com/x", "evil.com", "a@b", "x/y", "", "a b", "-a"] {
            let e = fill(t, &settings(json!({"subdomain": bad})), &k).unwrap_err();
            assert!(e.to_string().contains("subdomain") || bad.is_empty(), "{e}");
            if let CoreError::Invalid { field, .. } = e {
                assert_eq!(field, "settings.subdomain");
            }
        }
        let t = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
        assert!(fill(
            t,
            &settings(json!({"tenant": "contoso.onmicrosoft.com"})),
            &k
        )
        .is_ok());
        for bad in ["..", "a/b", "a?b", "a%2fb", "a#b"] {
            assert!(
                fill(t, &settings(json!({"tenant": bad})), &k).is_err(),
                "{bad}"
            );
        }
        let t = "{api_domain}/crm/v6";
        let kept = BTreeMap::from([(
            "api_domain".to_string(),
            "https://www.zohoapis.eu".to_string(),
        )]);
        assert_eq!(
            fill(t, &Map::new(), &kept).unwrap().as_str(),
            "https://www.zohoapis.eu/crm/v6"
        );
        let kept = BTreeMap::from([("api_domain".to_string(), "http://x/y".to_string())]);
        assert!(fill(t, &Map::new(), &kept).is_err());
        assert!(fill(t, &Map::new(), &BTreeMap::new()).is_err());
    }
}
