//! What the handlers do, apart from HTTP: building, checking and changing records.

pub mod connections;
pub mod exchange;
mod input;
pub mod pending;
pub mod views;
