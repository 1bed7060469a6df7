//! The simulator's side of the direct-exchange modes: service-account key files whose signed
//! assertions it checks (with the public half of a key pair made for these tests only), and
//! token-exchange logins whose bodies must carry exactly what the entry's `params` say.

use crate::provider::SimRow;
use latchkey_core::catalog::TokenBody;
use latchkey_core::model::AuthMode;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use url::Url;

/// A private key made for the simulator (never used anywhere else).
pub const SIM_PRIVATE_KEY: &str = include_str!("sim_service_account.pem");
const SIM_PUBLIC_KEY: &str = include_str!("sim_service_account.pub.pem");

/// The service account of a row.
pub fn client_email(entry: &str) -> String {
    format!("sa-{entry}@latchkey-sim.iam.gserviceaccount.com")
}

/// A key file in Google's format for a row of a `service_account` entry.
pub fn key_file(row_entry: &latchkey_core::catalog::AppEntry) -> String {
    let sa = row_entry.service_account.as_ref().expect("service_account");
    json!({
        "type": "service_account",
        "project_id": "latchkey-sim",
        "private_key_id": format!("kid-{}", row_entry.id),
        "private_key": SIM_PRIVATE_KEY,
        "client_email": client_email(&row_entry.id),
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": sa.token_url,
    })
    .to_string()
}

impl SimRow {
    /// The token endpoint of a `service_account` row.
    pub fn sa_token_url(&self) -> Option<Url> {
        if self.mode != AuthMode::ServiceAccount {
            return None;
        }
        Url::parse(&self.entry.service_account.as_ref()?.token_url).ok()
    }

    /// The login endpoint of a `token_exchange` row.
    pub fn login_url(&self) -> Option<Url> {
        if self.mode != AuthMode::TokenExchange {
            return None;
        }
        let t = &self.entry.token_exchange.as_ref()?.login_url;
        self.entry.fill(t, &self.settings, &Default::default()).ok()
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    scope: String,
    #[serde(default)]
    sub: Option<String>,
}

/// Checks a JWT-bearer grant: the signature, the account, the audience and the scopes. The row
/// index of the account on success, else why not.
pub fn check_assertion(
    rows: &[SimRow],
    token_url: &str,
    form: &HashMap<String, String>,
) -> Result<usize, String> {
    let assertion = form.get("assertion").ok_or("no assertion")?;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(SIM_PUBLIC_KEY.as_bytes()).expect("key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[token_url]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let data = jsonwebtoken::decode::<Claims>(assertion, &key, &v)
        .map_err(|e| format!("the assertion does not verify: {e}"))?;
    let c = data.claims;
    let (i, row) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.mode == AuthMode::ServiceAccount && client_email(&r.entry.id) == c.iss)
        .ok_or_else(|| format!("unknown service account {}", c.iss))?;
    if data.header.kid.as_deref() != Some(format!("kid-{}", row.entry.id).as_str()) {
        return Err(format!("[{}] the kid is not the key's id", row.entry.id));
    }
    let want = row.sa_scopes().join(" ");
    if c.scope != want {
        return Err(format!(
            "[{}] scope must be `{want}`, got `{}`",
            row.entry.id, c.scope
        ));
    }
    if c.aud != token_url || c.sub.is_some() {
        return Err(format!("[{}] wrong aud or an unasked sub", row.entry.id));
    }
    Ok(i)
}

/// The fields of a login body, flattened to dotted names.
fn flatten(prefix: &str, v: &Value, out: &mut HashMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, inner) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, inner, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The row a login body belongs to: its encoding and every field as the entry says.
pub fn check_login(
    rows: &[SimRow],
    candidates: &[usize],
    json_body: bool,
    body: &[u8],
) -> Result<usize, String> {
    let got: HashMap<String, String> = if json_body {
        let mut out = HashMap::new();
        let doc: Value = serde_json::from_slice(body).map_err(|_| "the login body is not JSON")?;
        flatten("", &doc, &mut out);
        out
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    };
    let mut why = String::from("no row matches the login");
    for &i in candidates {
        let row = &rows[i];
        let te = row.entry.token_exchange.as_ref().expect("token_exchange");
        if (te.body == TokenBody::Json) != json_body {
            why = format!("[{}] the login body must be {:?}", row.entry.id, te.body);
            continue;
        }
        let want: HashMap<String, String> = te
            .params
            .iter()
            .map(|(k, t)| {
                let mut v = t.clone();
                for (name, val) in &row.creds {
                    v = v.replace(&format!("{{{name}}}"), val);
                }
                for (name, val) in &row.settings {
                    if let Some(val) = val.as_str() {
                        v = v.replace(&format!("{{{name}}}"), val);
                    }
                }
                (k.clone(), v)
            })
            .collect();
        if want == got {
            return Ok(i);
        }
        why = format!(
            "[{}] the login body's fields are not the entry's params",
            row.entry.id
        );
    }
    Err(why)
}

/// The login answer: the session token where the entry reads it, with its lifetime.
pub fn login_answer(row: &SimRow, token: &str) -> Value {
    let te = row.entry.token_exchange.as_ref().expect("token_exchange");
    let mut doc = Value::Object(Map::new());
    crate::provider::set_path(&mut doc, &te.token_path, json!(token));
    if let Some(p) = &te.expires_in_path {
        crate::provider::set_path(&mut doc, p, json!(3600));
    }
    doc
}
