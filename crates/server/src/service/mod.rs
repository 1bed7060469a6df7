//! What the handlers do, apart from HTTP: building, checking and changing records.

pub mod connections;
pub mod pending;
