//! `latchkey proxy <ws>/<conn> METHOD PATH`: one request through Latchkey's proxy. The
//! server injects the credential; the answer's body streams to stdout as it arrives.

use super::{parse_ref, Ref};
use crate::client::{api_failure, Client, Failure};
use crate::Ctx;
use clap::Args;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Method, RequestBuilder, Response};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use url::Url;

/// The exit status of `--fail` on an answer of 400 or more (curl's).
const FAIL_EXIT: u8 = 22;
/// The answer's status and headers may take the queue wait plus the application's own time.
const HEADERS_WITHIN: Duration = Duration::from_secs(15 * 60);
/// A body that stops moving for this long has broken off.
const IDLE_WITHIN: Duration = Duration::from_secs(5 * 60);
/// A bound on the whole exchange, for a body that keeps trickling.
const WHOLE_WITHIN: Duration = Duration::from_secs(24 * 60 * 60);
/// Request bodies up to this size are sent from memory, so that the proxy can replay them
/// after refreshing an expired session; larger files stream.
const IN_MEMORY: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The connection to send the request through, as workspace/name.
    #[arg(value_name = "WORKSPACE/CONNECTION", value_parser = parse_ref)]
    target: Ref,
    /// The HTTP method: GET, POST, PUT, PATCH, DELETE, …
    #[arg(value_parser = parse_method)]
    method: Method,
    /// The path at the application's API base, with its query string if any, like
    /// /services/data/v62.0/limits or '/items?page=2'.
    path: String,
    /// The request body (JSON gets Content-Type: application/json unless a header says otherwise).
    #[arg(long, short = 'd', value_name = "BODY", conflicts_with_all = ["data_file", "data_stdin"])]
    data: Option<String>,
    /// Send this file as the request body.
    #[arg(long, value_name = "FILE", conflicts_with = "data_stdin")]
    data_file: Option<PathBuf>,
    /// Send stdin as the request body.
    #[arg(long)]
    data_stdin: bool,
    /// A request header, like 'Accept: application/json' (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Print the answer's status line and headers to stderr.
    #[arg(long, short = 'i')]
    include: bool,
    /// Fail on an HTTP error, as curl --fail does: an answer of 400 or more prints no body
    /// and exits with status 22.
    #[arg(long, short = 'f')]
    fail: bool,
}

fn parse_method(s: &str) -> Result<Method, String> {
    Method::from_bytes(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{s}` is not an HTTP method"))
}

fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or("expected 'Name: value', like 'Accept: application/json'")?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("`{}` is not a header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of `{name}` cannot be sent in a header"))?;
    Ok((name, value))
}

pub async fn run(ctx: &Ctx, a: ProxyArgs) -> anyhow::Result<ExitCode> {
    if a.headers.iter().any(|(n, _)| n == AUTHORIZATION) {
        crate::usage_error(
            &["proxy"],
            "Latchkey injects the connection's credential: an Authorization header would replace the API key, and the proxy drops it anyway",
        );
    }
    let url = proxy_url(&ctx.client, &a.target, &a.path);
    let mut req = ctx.client.raw(a.method.clone(), url).timeout(WHOLE_WITHIN);
    let typed = a.headers.iter().any(|(n, _)| n == CONTENT_TYPE);
    for (n, v) in &a.headers {
        req = req.header(n, v);
    }
    let (req, json_like) = with_body(req, &a).await?;
    let req = if json_like && !typed {
        req.header(CONTENT_TYPE, "application/json")
    } else {
        req
    };
    let resp = match tokio::time::timeout(HEADERS_WITHIN, req.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(ctx.client.transport_failure(&e).into()),
        Err(_) => {
            return Err(Failure::new(format!(
                "no answer through `{}` within {} minutes",
                a.target,
                HEADERS_WITHIN.as_secs() / 60
            ))
            .with_hint("the application may be slow or unreachable; try again")
            .into())
        }
    };
    let status = resp.status();
    if a.include {
        eprintln!("{:?} {status}", resp.version());
        for (n, v) in resp.headers() {
            eprintln!("{n}: {}", String::from_utf8_lossy(v.as_bytes()));
        }
        eprintln!();
    }
    // Every answer of the application carries Latchkey-Queue-Ms; one without it is Latchkey's
    // own refusal (no such connection, missing scope, pool busy), told like any other error.
    if !status.is_success() && !resp.headers().contains_key("latchkey-queue-ms") {
        let text = read_error_body(resp).await;
        if a.fail && status.as_u16() >= 400 {
            crate::report(&api_failure(status, &text).into());
            return Ok(ExitCode::from(FAIL_EXIT));
        }
        return Err(api_failure(status, &text).into());
    }
    if a.fail && status.as_u16() >= 400 {
        eprintln!(
            "error: `{}` answered {status}; its body is not printed (--fail)",
            a.target
        );
        return Ok(ExitCode::from(FAIL_EXIT));
    }
    let hint = resp
        .headers()
        .get("latchkey-hint")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    stream_to_stdout(resp, &a.target).await?;
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    Ok(if status.is_success() || status.is_redirection() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `…/connections/{conn}/proxy` + PATH as given (already-encoded parts stay as they are) +
/// its query string.
fn proxy_url(client: &Client, target: &Ref, path: &str) -> Url {
    let path = path.split('#').next().unwrap_or_default();
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if path.split('/').any(|seg| {
        let s = seg.to_ascii_lowercase();
        matches!(s.as_str(), "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e.")
    }) {
        crate::usage_error(&["proxy"], "PATH may not contain `.` or `..` segments");
    }
    let mut url = client.endpoint(&[
        "v1",
        "workspaces",
        &target.workspace,
        "connections",
        &target.name,
        "proxy",
    ]);
    let joined = format!("{}/{}", url.path(), path.trim_start_matches('/'));
    url.set_path(&joined);
    url.set_query(query);
    url
}

/// Adds the body, if one was given; answers whether it looks like JSON.
async fn with_body(req: RequestBuilder, a: &ProxyArgs) -> anyhow::Result<(RequestBuilder, bool)> {
    let bytes = if let Some(d) = &a.data {
        d.clone().into_bytes()
    } else if a.data_stdin {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::new(format!("--data-stdin: stdin cannot be read: {e}")))?;
        buf
    } else if let Some(path) = &a.data_file {
        let unreadable =
            |e: std::io::Error| Failure::new(format!("cannot read {}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let len = file.metadata().await.map_err(unreadable)?.len();
        if len > IN_MEMORY {
            let json = path.extension().is_some_and(|e| e == "json");
            return Ok((req.header(CONTENT_LENGTH, len).body(Body::from(file)), json));
        }
        tokio::fs::read(path).await.map_err(unreadable)?
    } else {
        return Ok((req, false));
    };
    let json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    Ok((req.body(bytes), json))
}

/// Latchkey's error bodies are small; anything past 64 KiB is not one of them.
async fn read_error_body(mut resp: Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(IDLE_WITHIN, resp.chunk()).await {
        buf.extend_from_slice(&chunk);
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Copies the body to stdout chunk by chunk (never whole in memory). A closed stdout
/// (`| head`) ends the copy quietly.
async fn stream_to_stdout(mut resp: Response, target: &Ref) -> anyhow::Result<()> {
    let mut written: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout(IDLE_WITHIN, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                return Err(Failure::new(format!(
                    "the answer through `{target}` broke off after {written} bytes: {e}"
                ))
                .into())
            }
            Err(_) => {
                return Err(Failure::new(format!(
                    "the answer through `{target}` stalled for {} s after {written} bytes",
                    IDLE_WITHIN.as_secs()
                ))
                .into())
            }
        };
        let mut out = std::io::stdout().lock();
        match out.write_all(&chunk) {
            Ok(()) => written += chunk.len() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    match std::io::stdout().lock().flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_and_query_go_under_the_proxy_route() {
        let c = Client::new("http://h:1", "k".into()).unwrap();
        let r = parse_ref("acme/sf prod").unwrap();
        let u = proxy_url(
            &c,
            &r,
            "/services/data/v62.0/query?q=SELECT+Id+FROM+Account&x=%2F",
        );
        assert_eq!(
            u.as_str(),
            "http://h:1/v1/workspaces/acme/connections/sf%20prod/proxy/services/data/v62.0/query?q=SELECT+Id+FROM+Account&x=%2F"
        );
        let u = proxy_url(&c, &r, "items/a%2Fb");
        assert_eq!(
            u.path(),
            "/v1/workspaces/acme/connections/sf%20prod/proxy/items/a%2Fb"
        );
    }

    #[test]
    fn headers_and_methods_are_checked() {
        let (n, v) = parse_header("X-Test:  1 ").unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-test", "1"));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: 1").is_err());
        assert_eq!(parse_method("patch").unwrap(), Method::PATCH);
        assert!(parse_method("GE T").is_err());
    }
}
