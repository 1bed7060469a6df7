//! The size limits of an incoming request, shared by the router that enforces them and the
//! MCP tools that build requests for it.

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Request headers larger than this in total (names and values) are refused with 431.
pub const HEADER_LIMIT: usize = 64 * 1024;
