//! The MCP endpoint's edges, over HTTP: without a key, with the wrong `Accept`, with a wrong
//! method, it answers Latchkey's error shape; the MCP protocol itself (tools, scopes, bounded
//! answers, refused paths) is tested with the official MCP SDK in clients/python/tests/test_mcp.py.

use latchkey_testkit::spawn_app;
use serde_json::{json, Value};

fn assert_error_shape(body: &Value) {
    for field in ["error", "message", "hint", "details"] {
        assert!(body.get(field).is_some(), "`{field}` missing from {body}");
    }
}

#[tokio::test]
async fn the_mcp_endpoint_answers_its_refusals_in_the_error_shape() {
    let app = spawn_app().await;
    let url = format!("{}/mcp", app.url);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});

    let r = app.client.post(&url).json(&init).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await.unwrap();
    assert_error_shape(&body);
    assert_eq!(body["error"], "unauthorized");

    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.admin_key)
        .header("accept", "text/html")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    let body: Value = r.json().await.unwrap();
    assert_error_shape(&body);
    assert_eq!(body["error"], "mcp_transport_error");

    // A real initialize, as an MCP client sends it.
    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.admin_key)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "latchkey");
    assert!(body["result"]["capabilities"]["tools"].is_object());

    // The UI's cookie is not a way in.
    let r = app
        .client
        .post(&url)
        .header("cookie", "latchkey_session=anything")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
