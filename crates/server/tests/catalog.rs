//! The catalog end to end: every entry runs its full cycle against the testkit's generic
//! provider simulator, configured from the entry's own declared behaviour, with every origin
//! the entry names rewritten to loopback. OAuth entries: authorize → callback → token →
//! refresh → proxied call → verification, then the import of an existing grant and of a dead
//! one; client-credentials entries: grant → refresh → proxied call → verification; API key and
//! basic entries: verification → proxied call. One server and one simulator serve every row;
//! rows run concurrently with a bound. Plus: schema, docs_url and template checks, the picker.

mod catalog {
    pub mod rows;
}

use catalog::rows::ROWS;
use futures::StreamExt;
use latchkey_core::catalog::Catalog;
use latchkey_core::model::AuthMode;
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::provider::{ProviderSim, SimRow};
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Entries with test files of their own (Salesforce and Certinia simulators, generic and
/// database entries in connections.rs, proxy.rs, databases.rs, SFTP and Redis in sftp.rs and
/// redis_conn.rs).
const OWN_TESTS: &[&str] = &[
    "salesforce",
    "certinia",
    "generic-oauth2",
    "generic-api-key",
    "generic-basic",
    "postgres",
    "mysql",
    "sftp",
    "redis",
];

#[test]
fn every_entry_has_a_row() {
    let cat = Catalog::embedded();
    let ids: BTreeSet<&str> = cat
        .iter()
        .map(|e| e.id.as_str())
        .filter(|i| !OWN_TESTS.contains(i))
        .collect();
    let rows: BTreeSet<&str> = ROWS.iter().map(|(i, _)| *i).collect();
    let missing: Vec<_> = ids.difference(&rows).collect();
    let extra: Vec<_> = rows.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "catalog entries without a row in tests/catalog/rows.rs: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "rows for entries that are not in the catalog: {extra:?}"
    );
    assert!(cat.len() >= 150, "the catalog has {} entries", cat.len());
}

fn sim_rows() -> Vec<SimRow> {
    let cat = Catalog::embedded();
    let mut out = vec![];
    for (id, settings) in ROWS {
        let entry = cat
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not in the catalog"))
            .clone();
        let settings: Map<String, Value> = serde_json::from_str(settings).expect("row settings");
        for mode in entry.auth_modes.clone() {
            let mut creds = BTreeMap::new();
            for f in entry.credential_fields(mode) {
                if f.name == "key_json" {
                    // A key file in Google's format, signed with the simulator's test key.
                    creds.insert(
                        f.name.clone(),
                        latchkey_testkit::exchange_sim::key_file(&entry),
                    );
                } else if !matches!(f.name.as_str(), "client_id" | "client_secret") {
                    creds.insert(
                        f.name.clone(),
                        // Opaque: a credential that spells the entry id would be scrubbed out of
                        // the simulator's echo of that id.
                        format!("{}-{:016x}", f.name.replace('_', ""), rand::random::<u64>()),
                    );
                }
            }
            out.push(SimRow {
                entry: entry.clone(),
                mode,
                settings: settings.clone(),
                creds,
            });
        }
    }
    out
}

async fn started() -> (TestApp, ProviderSim, Vec<SimRow>) {
    let rows = sim_rows();
    // Origins that appear only at run time: kept fields that open a base URL.
    let extra: Vec<String> = rows
        .iter()
        .filter_map(|r| r.base_url().map(|u| u.origin().ascii_serialization()))
        .collect();
    let sim = ProviderSim::start(rows.clone(), &extra).await;
    let rewrites = Rewrites::parse(&sim.rewrites()).expect("rewrites");
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    app.workspace("cat").await;
    (app, sim, rows)
}

fn creds_of(r: &SimRow) -> Value {
    let mut c = Map::new();
    if r.mode.is_oauth() {
        c.insert("client_id".into(), json!(r.client_id()));
        c.insert("client_secret".into(), json!(r.client_secret()));
    }
    for (k, v) in &r.creds {
        c.insert(k.clone(), json!(v));
    }
    Value::Object(c)
}

async fn conn(app: &TestApp, name: &str) -> Value {
    app.get(&format!("/v1/workspaces/cat/connections/{name}"))
        .await
        .body
}

/// Proxied call and verification; the simulator answers only a request with the entry's
/// injection rule and fixed headers.
async fn proxy_and_verify(app: &TestApp, name: &str, id: &str) -> Result<(), String> {
    let p = app
        .get(&format!(
            "/v1/workspaces/cat/connections/{name}/proxy/latchkey-cycle/echo"
        ))
        .await;
    if p.status != 200 || p.body["entry"] != id {
        return Err(format!("proxied call: {} {}", p.status, p.text));
    }
    let v = app
        .post(
            &format!("/v1/workspaces/cat/connections/{name}/verify"),
            json!({}),
        )
        .await;
    if v.status != 200 || v.body["connection"]["status"] != "active" {
        return Err(format!("verify: {} {}", v.status, v.text));
    }
    Ok(())
}

async fn run_row(app: &TestApp, sim: &ProviderSim, r: &SimRow) -> Result<(), String> {
    let id = r.entry.id.as_str();
    let name = format!("{id}-{}", r.mode);
    let body = json!({"name": name, "app": id, "auth_mode": r.mode, "settings": r.settings, "credentials": creds_of(r)});
    let created = app.post("/v1/workspaces/cat/connections", body).await;
    if created.status != 201 {
        return Err(format!("create: {} {}", created.status, created.text));
    }
    let oauth = r.entry.oauth.as_ref();
    let refresh = oauth.map(|o| o.refresh);
    match r.mode {
        AuthMode::OAuth2Code => {
            let url = created.body["authorize_url"]
                .as_str()
                .ok_or("no authorize_url")?
                .to_string();
            let resp = app
                .client
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if resp.status() != 302 {
                return Err(format!(
                    "authorize: {} {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                ));
            }
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            let page = app
                .client
                .get(&loc)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let html = page.text().await.unwrap_or_default();
            if !html.contains("is authorized") {
                return Err(format!(
                    "callback: {}",
                    html.chars().take(600).collect::<String>()
                ));
            }
            if conn(app, &name).await["status"] != "active" {
                return Err("not active after the callback".into());
            }
            if refresh != Some(latchkey_core::catalog::RefreshStyle::None) {
                let before = app
                    .get(&format!("/v1/workspaces/cat/connections/{name}/token"))
                    .await;
                // Twice: a rotating provider kills the first refresh token, so the second
                // refresh works only when the rotated one was stored.
                for _ in 0..2 {
                    let t = app
                        .post(
                            &format!("/v1/workspaces/cat/connections/{name}/token/refresh"),
                            json!({}),
                        )
                        .await;
                    if t.status != 200 || t.body["access_token"] == before.body["access_token"] {
                        return Err(format!("refresh: {} {}", t.status, t.text));
                    }
                }
            }
        }
        AuthMode::OAuth2ClientCredentials => {
            if created.body["status"] != "active" {
                return Err(format!("client credentials: {}", created.text));
            }
            let t = app
                .post(
                    &format!("/v1/workspaces/cat/connections/{name}/token/refresh"),
                    json!({}),
                )
                .await;
            if t.status != 200 {
                return Err(format!("refresh: {} {}", t.status, t.text));
            }
        }
        _ => {
            if created.body["status"] != "active" {
                return Err(format!("create: {}", created.text));
            }
        }
    }
    proxy_and_verify(app, &name, id).await?;
    if r.mode == AuthMode::OAuth2Code {
        // An existing grant, imported: an expired access token and a live refresh token.
        let (at, rt) = sim.mint_grant(id, r.mode);
        let mut creds = creds_of(r);
        creds["access_token"] = json!(at);
        creds["refresh_token"] = json!(rt);
        creds["expires_at"] = json!(
            if refresh == Some(latchkey_core::catalog::RefreshStyle::None) {
                "2100-01-01T00:00:00Z"
            } else {
                "2001-01-01T00:00:00Z"
            }
        );
        let imported = format!("{name}-imported");
        let c = app.post("/v1/workspaces/cat/connections", json!({"name": imported, "app": id, "auth_mode": r.mode, "settings": r.settings, "credentials": creds})).await;
        if c.status != 201 || c.body["status"] != "active" {
            return Err(format!("import: {} {}", c.status, c.text));
        }
        proxy_and_verify(app, &imported, id).await?;
        if refresh != Some(latchkey_core::catalog::RefreshStyle::None) {
            let mut creds = creds_of(r);
            creds["refresh_token"] = json!("rt-dead");
            let dead = format!("{name}-dead");
            let c = app.post("/v1/workspaces/cat/connections", json!({"name": dead, "app": id, "auth_mode": r.mode, "settings": r.settings, "credentials": creds})).await;
            if c.status != 201
                || c.body["status"] != "revoked"
                || !c.body["hint"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("authorize")
            {
                return Err(format!("dead import: {} {}", c.status, c.text));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_runs_its_cycle_against_the_simulator() {
    let (app, sim, rows) = started().await;
    let results: Vec<(String, Result<(), String>)> = futures::stream::iter(rows.iter())
        .map(|r| {
            let (app, sim) = (&app, &sim);
            async move {
                (
                    format!("{} ({})", r.entry.id, r.mode),
                    run_row(app, sim, r).await,
                )
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} rows failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
    // Service accounts signed assertions the simulator verified; token exchanges logged in, and
    // their sessions passed the verification request.
    for r in rows.iter().filter(|r| r.mode.is_direct_exchange()) {
        let seen = sim.seen(&r.entry.id);
        let steps: &[&str] = if r.mode == AuthMode::ServiceAccount {
            &["token:jwt-bearer", "api"]
        } else {
            &["login", "verify", "api"]
        };
        for step in steps {
            assert!(
                seen.iter().any(|s| s == step),
                "{} ({}): no {step} in {seen:?}",
                r.entry.id,
                r.mode
            );
        }
    }
    // The simulator saw each OAuth row's full conversation.
    for r in rows.iter().filter(|r| r.mode == AuthMode::OAuth2Code) {
        let seen = sim.seen(&r.entry.id);
        for step in ["authorize", "token:authorization_code", "verify", "api"] {
            assert!(
                seen.iter().any(|s| s == step),
                "{}: no {step} in {seen:?}",
                r.entry.id
            );
        }
    }
}

fn catalog_files() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog");
    let mut out = vec![];
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: toml::Value =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::to_value(v).unwrap(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_entry_validates_against_the_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let mut bad = vec![];
    for (file, doc) in catalog_files() {
        for e in validator.iter_errors(&doc) {
            bad.push(format!("{file}: {} at {}", e, e.instance_path()));
        }
        if doc["id"].as_str().map(|i| format!("{i}.toml")) != Some(file.clone()) {
            bad.push(format!("{file}: the id is not the file name"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The schema is not a formality: it refuses an entry without docs_url or with an unknown field.
    let mut doc = catalog_files().remove(0).1;
    doc.as_object_mut().unwrap().remove("docs_url");
    assert!(!validator.is_valid(&doc));
    doc["docs_url"] = json!("https://x.example");
    doc["colour"] = json!("#000000");
    assert!(!validator.is_valid(&doc));
}

#[test]
fn every_entry_has_https_docs() {
    for e in Catalog::embedded().iter() {
        let d = e
            .docs_url
            .as_deref()
            .unwrap_or_else(|| panic!("{} has no docs_url", e.id));
        let u =
            url::Url::parse(d).unwrap_or_else(|_| panic!("{}: docs_url {d} is not a URL", e.id));
        assert_eq!(u.scheme(), "https", "{}: docs_url {d}", e.id);
        assert!(
            u.host_str().is_some_and(|h| h.contains('.')),
            "{}: docs_url {d}",
            e.id
        );
    }
}

#[test]
fn every_setting_a_template_names_exists() {
    for e in Catalog::embedded().iter() {
        let kept = e.kept_names();
        for (what, t) in e.templates() {
            for (name, _) in latchkey_core::template::placeholders(t) {
                assert!(
                    e.setting(&name).is_some() || kept.contains(&name),
                    "{}: {what} `{t}` names `{{{name}}}`, which is neither a setting nor a kept token field",
                    e.id
                );
            }
        }
        let texts = e.oauth.iter().flat_map(|o| {
            o.default_scopes
                .iter()
                .chain(o.token_params.values())
                .chain(o.authorize_params.values())
        });
        for t in texts.chain(e.headers.values()) {
            for (name, _) in latchkey_core::template::placeholders(&format!("/{t}")) {
                assert!(
                    e.setting(&name).is_some() || e.credentials.iter().any(|c| c.name == name),
                    "{}: `{t}` names `{{{name}}}`, which is no setting or credential field",
                    e.id
                );
            }
        }
    }
}

#[tokio::test]
async fn a_template_setting_can_never_change_the_host() {
    let app = latchkey_testkit::spawn_app().await;
    app.workspace("t").await;
    let create = |settings: Value, app_id: &str| {
        json!({"name": "conn", "app": app_id, "auth_mode": "oauth2_code", "settings": settings,
               "credentials": {"client_id": "id", "client_secret": "s"}})
    };
    for bad in ["evil.com/x", "evil.com", "a@b", "x?y", "a b"] {
        let r = app
            .post(
                "/v1/workspaces/t/connections",
                create(json!({"subdomain": bad}), "zendesk"),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(
            r.body["details"]["field"], "settings.subdomain",
            "{}",
            r.text
        );
        assert!(
            r.body["message"].as_str().unwrap().contains("subdomain"),
            "{}",
            r.text
        );
        assert!(r.body["hint"].is_string());
    }
    let r = app
        .post("/v1/workspaces/t/connections", create(json!({}), "zendesk"))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["details"]["field"], "settings.subdomain");
    // A path-position value: one segment, nothing that climbs or leaves.
    for bad in ["..", "a/b", "a%2fb"] {
        let r = app
            .post(
                "/v1/workspaces/t/connections",
                create(
                    json!({"tenant": bad, "org": "contoso"}),
                    "microsoft-dynamics-365",
                ),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(r.body["details"]["field"], "settings.tenant");
    }
    let ok = app
        .post(
            "/v1/workspaces/t/connections",
            create(json!({"subdomain": "acme"}), "zendesk"),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let url = ok.body["authorize_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://acme.zendesk.com/oauth/authorizations/new?"),
        "{url}"
    );
    assert_eq!(
        nothing_stored_but(&app, "t").await,
        1,
        "a refused connection leaves nothing behind"
    );
    // Edits are checked the same way.
    let e = app
        .patch(
            &format!(
                "/v1/workspaces/t/connections/{}",
                ok.body["id"].as_str().unwrap()
            ),
            json!({"settings": {"subdomain": "evil.com/x"}}),
        )
        .await;
    assert_eq!(e.status, 422, "{}", e.text);
}

async fn nothing_stored_but(app: &TestApp, ws: &str) -> usize {
    app.get(&format!("/v1/workspaces/{ws}/connections"))
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn the_picker_filters_by_category_and_searches() {
    let app = latchkey_testkit::spawn_app().await;
    app.workspace("p").await;
    let crm = app.get("/v1/apps?category=crm&limit=500").await;
    assert_eq!(crm.status, 200, "{}", crm.text);
    let items = crm.body["items"].as_array().unwrap();
    assert!(items.len() >= 5);
    assert!(items.iter().all(|a| a["categories"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "crm")));
    assert!(items.iter().any(|a| a["id"] == "hubspot"));
    let found = app.get("/v1/apps?q=google%20sheets").await;
    let ids: Vec<&str> = found.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["google-sheets"]);
    let ws = app
        .get("/v1/workspaces/p/apps?category=storage&q=box")
        .await;
    assert_eq!(ws.body["items"][0]["id"], "box", "{}", ws.text);
    assert_eq!(ws.body["items"][0]["connection_count"], 0);
    let bad = app.get("/v1/apps?category=nonsense").await;
    assert_eq!(bad.status, 422);
    assert!(bad.body["hint"].as_str().unwrap().contains("crm"));
    // Every entry has a brand colour and a monogram no other entry has.
    let all = app.get("/v1/apps?limit=500").await;
    let all = all.body["items"].as_array().unwrap();
    assert!(all.len() >= 150);
    let marks: BTreeSet<&str> = all
        .iter()
        .map(|a| a["monogram"].as_str().unwrap())
        .collect();
    assert_eq!(marks.len(), all.len(), "monograms must be distinct");
    let by_id = |id: &str| all.iter().find(|a| a["id"] == id).unwrap().clone();
    assert_ne!(by_id("github")["monogram"], by_id("gitlab")["monogram"]);
    assert!(all.iter().all(|a| a["brand_color"]
        .as_str()
        .is_some_and(|c| c.len() == 7 && c.starts_with('#'))));
}
