//! People: local passwords, and (in `sso`) sign-in with an OpenID Connect provider.

pub mod oidc;
pub mod password;
pub mod sso;
