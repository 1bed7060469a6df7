//! Prefixed identifiers (`conn_01J…`). The prefix says what an id names, so an id pasted in the
//! wrong place is rejected instead of silently matching nothing; the ULID body sorts by creation
//! time, which is what cursors paginate on.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A ULID greater than every earlier one of this process, even within one millisecond, so ids
/// (and the cursors that page on them) follow creation order.
fn next_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut g = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    g.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, next_ulid().to_string().to_ascii_lowercase()))
            }

            /// Accepts only `<prefix><26-character ULID>`.
            pub fn parse(s: &str) -> Result<Self, crate::CoreError> {
                let body = s.strip_prefix($prefix).ok_or_else(|| {
                    crate::CoreError::invalid(stringify!($name), format!("an id must start with `{}`", $prefix))
                })?;
                if body.len() != 26 || ulid::Ulid::from_string(&body.to_ascii_uppercase()).is_err() {
                    return Err(crate::CoreError::invalid(stringify!($name), "malformed id"));
                }
                Ok(Self(s.to_ascii_lowercase()))
            }

            /// The whole id, prefix included, in lower case.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// True when `s` looks like an id of this kind (used to tell ids from names).
            pub fn looks_like(s: &str) -> bool {
                s.starts_with($prefix)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::CoreError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

prefixed_id!(
    /// A workspace: the isolation boundary of connections, flows and keys.
    WorkspaceId, "ws_");
prefixed_id!(
    /// A connection: one named credential for one application.
    ConnectionId, "conn_");
prefixed_id!(
    /// A flow: a named consumer of connections.
    FlowId, "flow_");
prefixed_id!(
    /// An API key (the id is public; the key itself is shown once).
    ApiKeyId, "key_");
prefixed_id!(
    /// An audit event.
    EventId, "evt_");
prefixed_id!(
    /// A webhook endpoint of a workspace.
    WebhookId, "wh_");
prefixed_id!(
    /// One message to one webhook: its `webhook-id` header, the same on every retry, so the
    /// receiver can drop duplicates.
    DeliveryId, "msg_");
prefixed_id!(
    /// A connect session: a short-lived page through which an end user connects one account.
    ConnectSessionId, "cs_");
prefixed_id!(
    /// A person who signs in to the web UI (by single sign-on or a local password).
    UserId, "user_");
prefixed_id!(
    /// A data key that encrypts a workspace's secrets, itself wrapped by the master key.
    DataKeyId, "dk_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_wrong_prefix() {
        let id = ConnectionId::generate();
        assert!(id.as_str().starts_with("conn_"));
        assert_eq!(ConnectionId::parse(id.as_str()).unwrap(), id);
        assert!(ConnectionId::parse(&id.as_str().replace("conn_", "flow_")).is_err());
        assert!(ConnectionId::parse("conn_short").is_err());
    }

    #[test]
    fn ids_sort_by_creation() {
        let ids: Vec<FlowId> = (0..1000).map(|_| FlowId::generate()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids made in the same millisecond keep their order"
        );
    }
}
