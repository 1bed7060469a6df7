//! The OpenAPI document the clients are built from (`clients/openapi.json`) is exactly what the
//! server serves at `/openapi.json`. After an API change, regenerate it with
//! `LATCHKEY_UPDATE_OPENAPI=1 cargo test -p latchkey-server --test openapi`
//! and regenerate the TypeScript types (`npm run generate` in clients/typescript).

use latchkey_testkit::spawn_app;
use serde_json::Value;

#[tokio::test]
async fn the_committed_openapi_document_is_what_the_server_serves() {
    let app = spawn_app().await;
    let served = app
        .client
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .expect("GET /openapi.json")
        .text()
        .await
        .expect("body");
    let served: Value = serde_json::from_str(&served).expect("the served document is JSON");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/openapi.json");
    if std::env::var_os("LATCHKEY_UPDATE_OPENAPI").is_some() {
        let mut text = serde_json::to_string_pretty(&served).expect("serializes");
        text.push('\n');
        std::fs::write(&path, text).expect("write clients/openapi.json");
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let committed: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
    if committed != served {
        let paths = |v: &Value| -> std::collections::BTreeSet<String> {
            v["paths"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        let (c, s) = (paths(&committed), paths(&served));
        panic!(
            "clients/openapi.json differs from the served /openapi.json \
             (paths only served: {:?}; paths only committed: {:?}).\n\
             Regenerate it: LATCHKEY_UPDATE_OPENAPI=1 cargo test -p latchkey-server --test openapi \
             && (cd clients/typescript && npm run generate)",
            s.difference(&c).collect::<Vec<_>>(),
            c.difference(&s).collect::<Vec<_>>()
        );
    }
}

/// Every operation has an id of its own: generated clients name their methods and types after
/// them, and two operations with one id do not compile (the connect page's API once reused the
/// main API's names).
#[test]
fn every_operation_id_is_unique() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read"))
        .expect("the committed document is JSON");
    let mut seen = std::collections::BTreeMap::new();
    let mut twice = Vec::new();
    for (p, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                if let Some(first) = seen.insert(id.to_string(), format!("{method} {p}")) {
                    twice.push(format!("{id}: {first} and {method} {p}"));
                }
            }
        }
    }
    assert!(twice.is_empty(), "operation ids used twice: {twice:#?}");
}
