//! Mailchimp's token answer does not say where the account's API lives: each account sits in
//! one data centre (`us6`), learnt by asking `https://login.mailchimp.com/oauth2/metadata`
//! with `Authorization: OAuth <token>`. Its `api_endpoint` is kept with the grant, and the
//! entry's base URL template opens with it (`{api_endpoint}/3.0`).

use crate::oauth::grant::outcome::{GrantError, Tokens};
use crate::outbound::Outbound;
use secrecy::ExposeSecret;
use serde_json::Value;

pub const METADATA_URL: &str = "https://login.mailchimp.com/oauth2/metadata";

/// Asks for the metadata and keeps `api_endpoint` and `dc`.
pub async fn after_token(out: &Outbound, tokens: &mut Tokens) -> Result<(), GrantError> {
    let url = url::Url::parse(METADATA_URL).expect("a valid URL");
    let url = out
        .prepare(&url)
        .map_err(|e| GrantError::Transport(e.to_string()))?;
    let mut hv =
        http::HeaderValue::from_str(&format!("OAuth {}", tokens.access_token.expose_secret()))
            .map_err(|_| GrantError::Transport("the token cannot go in a header".into()))?;
    hv.set_sensitive(true);
    let resp = out
        .client()
        .get(url)
        .header(http::header::AUTHORIZATION, hv)
        .send()
        .await
        .map_err(|e| {
            GrantError::Transport(format!(
                "Mailchimp's metadata endpoint could not be reached: {}",
                crate::verify::connect_reason(&e)
            ))
        })?;
    let status = resp.status().as_u16();
    let doc: Value = resp.json().await.unwrap_or(Value::Null);
    let endpoint = doc.get("api_endpoint").and_then(Value::as_str);
    match endpoint {
        Some(e) if (200..300).contains(&status) && e.starts_with("https://") && e.len() < 200 => {
            tokens
                .meta
                .extra
                .insert("api_endpoint".into(), e.trim_end_matches('/').to_string());
            if let Some(dc) = doc.get("dc").and_then(Value::as_str) {
                tokens
                    .meta
                    .extra
                    .insert("dc".into(), dc.chars().take(20).collect());
            }
            Ok(())
        }
        _ => Err(GrantError::Transport(format!(
            "Mailchimp's metadata endpoint answered {status} without an https api_endpoint"
        ))),
    }
}
