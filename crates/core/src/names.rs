//! Names people choose: workspace slugs, connection and flow names, environments. Each is a
//! newtype built only through `parse`, so a value that exists is valid everywhere it travels.

use crate::CoreError;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts `s` unchanged when it keeps the rules of this kind of name; otherwise an
            /// `Invalid` error says which rule it breaks.
            pub fn parse(s: &str) -> Result<Self, CoreError> {
                $check(s).map(|()| Self(s.to_string()))
            }
            /// The name exactly as it was given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(s: String) -> Result<Self, CoreError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
    };
}

fn check_slug(s: &str) -> Result<(), CoreError> {
    let ok = (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid_with_hint(
            "slug",
            format!("`{}` is not a valid workspace slug", truncate(s)),
            "use 1 to 63 lowercase letters, digits and dashes, not starting or ending with a dash (e.g. `acme`)",
        ))
    }
}

fn check_display_name(field: &str, s: &str, max: usize) -> Result<(), CoreError> {
    let trimmed = s.trim();
    if trimmed.is_empty() || trimmed.len() != s.len() || s.chars().count() > max {
        return Err(CoreError::invalid_with_hint(
            field,
            format!("`{}` is not a valid {field}", truncate(s)),
            format!("use 1 to {max} characters without leading or trailing spaces"),
        ));
    }
    if s.chars().all(|c| c == '.') {
        // `.` and `..` (and longer runs of dots) would read as path segments in URLs.
        return Err(CoreError::invalid_with_hint(
            field,
            format!("`{}` is not a valid {field}", truncate(s)),
            "a name needs at least one character other than `.`",
        ));
    }
    if s.chars()
        .any(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '(' | ')')))
    {
        return Err(CoreError::invalid_with_hint(
            field,
            format!(
                "`{}` contains a character a {field} cannot have",
                truncate(s)
            ),
            "use letters, digits, spaces and - _ . ( ); a name cannot contain `/`",
        ));
    }
    Ok(())
}

fn check_connection_name(s: &str) -> Result<(), CoreError> {
    check_display_name("name", s, 100)?;
    if crate::ids::ConnectionId::looks_like(s) {
        return Err(CoreError::invalid(
            "name",
            "a connection name cannot start with `conn_`: that is how ids start",
        ));
    }
    Ok(())
}

fn check_flow_name(s: &str) -> Result<(), CoreError> {
    check_display_name("name", s, 100)?;
    if crate::ids::FlowId::looks_like(s) {
        return Err(CoreError::invalid(
            "name",
            "a flow name cannot start with `flow_`: that is how ids start",
        ));
    }
    Ok(())
}

fn check_environment(s: &str) -> Result<(), CoreError> {
    let ok = (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid_with_hint(
            "environment",
            format!("`{}` is not a valid environment", truncate(s)),
            "use 1 to 40 letters, digits, dashes or underscores (e.g. `production`, `staging`)",
        ))
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 64 {
        format!("{}…", s.chars().take(64).collect::<String>())
    } else {
        s.to_string()
    }
}

name_type!(
    /// A workspace slug (`acme`): lowercase, URL-safe, unique.
    Slug, check_slug);
name_type!(
    /// A connection's name, unique in its workspace and shown everywhere (seed 1). It may have
    /// spaces but never a slash, so `acme/sf-prod` always splits one way.
    ConnectionName, check_connection_name);
name_type!(
    /// A flow's name, unique in its workspace.
    FlowName, check_flow_name);
name_type!(
    /// An environment label (`production`, `staging`, …).
    Environment, check_environment);

impl Environment {
    /// `production`: what connections and flows get when no environment is named.
    pub fn production() -> Self {
        Environment("production".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(Slug::parse("acme").is_ok());
        assert!(Slug::parse("acme-2").is_ok());
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "ac me",
            "ac/me",
            &"a".repeat(64),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn connection_names() {
        assert!(ConnectionName::parse("sf-prod").is_ok());
        assert!(ConnectionName::parse("Salesforce (EU) prod").is_ok());
        for bad in [
            "",
            " x",
            "x ",
            "a/b",
            "conn_x",
            "a\nb",
            ".",
            "..",
            "...",
            &"n".repeat(101),
        ] {
            assert!(ConnectionName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn environments() {
        assert!(Environment::parse("staging").is_ok());
        assert!(Environment::parse("stage 2").is_err());
    }
}
