//! Latchkey's domain: what a workspace, a connection, a flow and an API key are, how secrets are
//! typed and encrypted, what the catalog of applications says, and the storage traits the
//! server talks to. Nothing here knows about HTTP frameworks or SQL drivers.

#![warn(clippy::too_many_lines, clippy::unwrap_used)]
#![warn(missing_docs)]

pub mod catalog;
pub mod crypto;
pub mod error;
pub mod exchange;
pub mod health;
pub mod ids;
pub mod model;
pub mod names;
pub mod outbound;
pub mod rate_limit;
pub mod scrub;
pub mod secret;
pub mod signed;
pub mod store;
pub mod template;

pub use error::{CoreError, StoreError};
