//! One attempt of a proxied request: where it goes, what it carries, and the scrubbing of what
//! comes back.

use super::{invalid_path, is_hop, oauth_base_is_instance, Cred};
use crate::error::{ApiError, ApiResult};
use crate::outbound::{Answer, Call};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use latchkey_core::catalog::AppEntry;
use latchkey_core::model::ConnectionRecord;
use latchkey_core::scrub::{ChunkScrubber, Emit, Scrubber};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// A single proxied call may run this long (Salesforce's long-running requests take 20 s+).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);

/// What the caller asked for, as every attempt sends it.
pub(super) struct Outgoing<'a> {
    pub parts: &'a http::request::Parts,
    /// The header names the caller's `Connection` header lists (hop-by-hop too).
    pub listed: &'a [String],
    pub path: &'a str,
}

/// Sends one attempt with `cred` injected (and the request signed, for a signed mode); `body`
/// is the request body of this attempt and, when it was buffered, its bytes for the signature.
pub(super) async fn send(
    state: &AppState,
    app: &AppEntry,
    c: &ConnectionRecord,
    (cred, instance_url): (&Cred, Option<String>),
    out: &Outgoing<'_>,
    (body, signed_body): (Body, Option<&[u8]>),
) -> ApiResult<http::Response<Answer>> {
    let inj = cred.injection();
    let (url, target, signed) = match cred {
        // The usual case: the caller's path and query under the connection's base, nothing
        // added to the URL and nothing signed. The request target is written out directly
        // rather than through a URL made for each request (a copy of the base and two
        // re-parses of what was just written).
        Cred::Static(call) if inj.query.is_none() && inj.signer.is_none() => {
            let target = request_target(&call.base, &call.target, out)?;
            (call.target.clone(), Some(target), vec![])
        }
        _ => {
            let mut url = match cred {
                // Checked and rewritten once per version of the connection.
                Cred::Static(call) => within(&call.base, &call.target, out)?,
                Cred::Token { kept, .. } => {
                    let base = match instance_url.filter(|_| oauth_base_is_instance(app)) {
                        Some(u) => Url::parse(&u).map_err(|_| {
                            ApiError::invalid(
                                "instance_url",
                                "the stored instance_url is not a URL",
                            )
                        })?,
                        None => crate::verify::api_base_with(app, &c.settings, kept)?,
                    };
                    let url = within(&base, &base, out)?;
                    prepare(state, &url)?
                }
            };
            inj.apply_to_url(&mut url);
            let signed = signature(cred, out.parts, &url, signed_body)?;
            (Arc::new(url), None, signed)
        }
    };
    let mut headers = HeaderMap::with_capacity(out.parts.headers.len() + inj.headers.len() + 4);
    for (name, value) in out.parts.headers.iter() {
        // What the entry injects (the credential, its fixed headers, the signature) replaces
        // the caller's.
        if !is_hop(name.as_str(), out.listed)
            && !inj.headers.iter().any(|(n, _)| n == name)
            && !signed.iter().any(|(n, _)| n == name)
            && name != http::header::ACCEPT_ENCODING
        {
            headers.append(name.clone(), value.clone());
        }
    }
    // Plain bodies only, so that what comes back can be scrubbed of the credential.
    static IDENTITY: HeaderValue = HeaderValue::from_static("identity");
    headers.insert(http::header::ACCEPT_ENCODING, IDENTITY.clone());
    for (n, v) in inj.headers.iter().chain(&signed) {
        headers.append(n.clone(), v.clone());
    }
    let call = Call {
        method: out.parts.method.clone(),
        url,
        target,
        headers,
        body,
        deadline: tokio::time::Instant::now() + UPSTREAM_TIMEOUT,
    };
    // The error names no URL: the URL may carry a credential the entry puts there.
    state.outbound.direct().send(call).await.map_err(|e| {
        metrics::counter!("latchkey_proxy_upstream_responses_total", "app" => c.app.clone(), "status" => "error").increment(1);
        ApiError::new(StatusCode::BAD_GATEWAY, "upstream_unreachable", format!("{} could not be reached: {e}", app.name))
            .hint("check the connection's base URL and that the application is up")
    })
}

/// How the caller's decoded path is escaped on its way into the application's URL: what a URL
/// escapes in a path (controls, spaces, quotes, `<>`, `` ` ``, `{}`, `#`, `?`, anything not
/// ASCII), and `%` too. The path was decoded to be checked; sent on without escaping these, an
/// escaped `?` or `#` the caller wrote (`what%3F.txt`) would end the path there, and an escaped
/// `%` (`100%25`) would reach the application as an escape of its own, decoded a second time.
const PATH_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'#')
    .add(b'?')
    .add(b'%');

/// What a URL of `http` or `https` escapes in its query (the caller's query is passed on as it
/// came, with these escaped).
const QUERY_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\'');

/// `under` (a path as a URL writes it) with the caller's path after it, escaped.
fn joined_path(under: &str, rest: &str) -> String {
    let under = under.trim_end_matches('/');
    let rest = rest.trim_start_matches('/');
    let mut path = String::with_capacity(under.len() + 1 + rest.len() + 16);
    path.push_str(under);
    path.push('/');
    path.extend(percent_encoding::utf8_percent_encode(rest, PATH_ESCAPED));
    path
}

/// The caller's path and query under `target` (the base where requests go), refused when the
/// path would climb above `base`'s path (the two share their path: a rewrite changes the origin).
fn within(base: &Url, target: &Url, out: &Outgoing<'_>) -> ApiResult<Url> {
    let mut url = target.clone();
    url.set_path(&joined_path(target.path(), out.path));
    if !url.path().starts_with(base.path().trim_end_matches('/')) {
        return Err(invalid_path());
    }
    url.set_query(out.parts.uri.query());
    Ok(url)
}

/// The request target (path and query) that [`within`]'s URL would send, written directly:
/// the same bytes, with the same refusal. The path needs no resolving of `.` or `..` segments,
/// which the proxy refuses before this, nor of backslashes, refused as well.
fn request_target(base: &Url, target: &Url, out: &Outgoing<'_>) -> ApiResult<String> {
    let mut sent = joined_path(target.path(), out.path);
    if !sent.starts_with(base.path().trim_end_matches('/')) {
        return Err(invalid_path());
    }
    if let Some(q) = out.parts.uri.query() {
        sent.push('?');
        sent.extend(percent_encoding::utf8_percent_encode(q, QUERY_ESCAPED));
    }
    Ok(sent)
}

/// `url` rewritten by the operator's rules, refused when its address is not allowed.
pub(super) fn prepare(state: &AppState, url: &Url) -> ApiResult<Url> {
    state.outbound.prepare(url).map_err(|e| {
        ApiError::new(StatusCode::BAD_GATEWAY, "upstream_blocked", e.to_string()).hint(
            "set LATCHKEY_OUTBOUND_ALLOW on the server if this address is meant to be reached",
        )
    })
}

/// A signed mode signs the request as it will be sent: its final URL, method and body (`None`
/// when it streams).
fn signature(
    cred: &Cred,
    parts: &http::request::Parts,
    url: &Url,
    body: Option<&[u8]>,
) -> ApiResult<Vec<(http::HeaderName, HeaderValue)>> {
    match cred {
        Cred::Static(call) => match &call.inj.signer {
            Some(s) => s
                .sign(parts.method.as_str(), url, &parts.headers, body)
                .map_err(|u| ApiError::new(u.0, u.1, u.2)),
            None => Ok(vec![]),
        },
        Cred::Token { .. } => Ok(vec![]),
    }
}

/// The headers of an answer passed back to the caller, made in one pass: any form of the
/// credential removed (and `Content-Length` when the body is scrubbed, as its length may
/// change), and without the hop-by-hop ones (and those its `Connection` names) or
/// `Set-Cookie` (upstream cookies would land on Latchkey's own origin in a browser).
pub(super) fn answer_headers(
    upstream: &HeaderMap,
    scrubber: &Scrubber,
    body_scrubbed: bool,
) -> HeaderMap {
    let listed = super::connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len() + 2);
    for (name, value) in upstream {
        if (body_scrubbed && name == http::header::CONTENT_LENGTH)
            || name == http::header::SET_COOKIE
            || is_hop(name.as_str(), &listed)
        {
            continue;
        }
        match value.to_str() {
            Ok(v) if scrubber.finds(v) => {
                if let Ok(clean) = HeaderValue::from_str(&scrubber.scrub(v)) {
                    out.append(name.clone(), clean);
                }
            }
            Ok(_) => {
                out.append(name.clone(), value.clone());
            }
            Err(_) => {
                let raw = value.as_bytes();
                if scrubber.scrub_bytes(raw) == raw {
                    out.append(name.clone(), value.clone());
                }
            }
        }
    }
    out
}

/// The answer to the caller, with headers already fit to pass back (see [`answer_headers`]),
/// how long the call waited for its pool place and a hint; the pool place (`permit`) is given
/// back here.
pub(super) fn respond_clean<P: Send + 'static>(
    status: StatusCode,
    mut headers: HeaderMap,
    body: Body,
    waited: Duration,
    hint: Option<&str>,
    permit: P,
) -> Response {
    // Made once: a name or value made from a string checks each of its bytes every time.
    static QUEUE_MS: HeaderName = HeaderName::from_static("latchkey-queue-ms");
    static HINT: HeaderName = HeaderName::from_static("latchkey-hint");
    static NO_WAIT: HeaderValue = HeaderValue::from_static("0");
    let ms = waited.as_millis() as u64;
    // Most calls do not wait a millisecond: their value needs no writing out.
    let ms = if ms == 0 {
        NO_WAIT.clone()
    } else {
        HeaderValue::from(ms)
    };
    headers.insert(QUEUE_MS.clone(), ms);
    if let Some(h) = hint {
        if let Ok(v) = HeaderValue::from_str(h) {
            headers.insert(HINT.clone(), v);
        }
    }
    drop(permit);
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// The application's body with every form of the credential removed, chunk by chunk (a secret
/// cut across two chunks is still found). A clean chunk goes on without a copy: what waited from
/// the chunk before, then a slice of this one.
pub(super) fn scrubbed_stream(
    inner: ByteStream,
    scrubber: Arc<Scrubber>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let state = Some((inner, ChunkScrubber::new(scrubber), None::<Bytes>));
    futures::stream::unfold(state, |state| async move {
        let (mut inner, mut scrub, pending) = state?;
        if let Some(next) = pending {
            return Some((Ok(next), Some((inner, scrub, None))));
        }
        loop {
            match inner.next().await {
                Some(Ok(chunk)) => {
                    let Emit { head, tail } = scrub.push_parts(&chunk);
                    let tail = (!tail.is_empty()).then(|| chunk.slice(tail));
                    match (head.is_empty(), tail) {
                        (false, tail) => {
                            return Some((Ok(Bytes::from(head)), Some((inner, scrub, tail))))
                        }
                        (true, Some(t)) => return Some((Ok(t), Some((inner, scrub, None)))),
                        (true, None) => {}
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    let rest = scrub.finish();
                    return if rest.is_empty() {
                        None
                    } else {
                        Some((Ok(Bytes::from(rest)), None))
                    };
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts of a request with `query`, when a request can carry it at all.
    fn parts(query: Option<&str>) -> Option<http::request::Parts> {
        let uri = match query {
            Some(q) => format!("/v1/p?{q}"),
            None => "/v1/p".to_string(),
        };
        let req = http::Request::builder().uri(uri).body(()).ok()?;
        Some(req.into_parts().0)
    }

    /// The request target written directly is, byte for byte, the one the URL made for the
    /// same request sends, and both refuse the same paths.
    #[test]
    fn the_request_target_written_directly_is_what_the_url_would_send() {
        let bases = [
            ("http://127.0.0.1:9/", "http://127.0.0.1:9/"),
            ("https://api.example.test/v2", "https://api.example.test/v2"),
            ("https://api.example.test/v2/", "http://10.0.0.7:8080/v2/"),
            ("http://h/a%20b/c%3F", "http://h/a%20b/c%3F"),
            (
                "https://api.example.test/v2",
                "https://api.example.test/other",
            ),
        ];
        let paths = [
            "x",
            "",
            "/lead/",
            "a b/c",
            "what?.txt",
            "100%",
            "%41",
            "#frag",
            "ünï/cödé",
            "{x}`<>\"'|^[]",
            "a/\t\n/b",
            "~!$&()*+,;=:@",
        ];
        let queries = [
            None,
            Some(""),
            Some("a=1&b=2"),
            Some("q=%20x%ZZ"),
            Some("x='y'"),
            Some("z=\"w\""),
            Some("k=a|b^c{d}`e`"),
            Some("path=/a/../b?c"),
        ];
        let mut compared = 0;
        let mut refused = std::collections::BTreeSet::new();
        for (base, target) in bases {
            let (base, target) = (Url::parse(base).unwrap(), Url::parse(target).unwrap());
            for path in paths {
                for query in queries {
                    let Some(parts) = parts(query) else {
                        refused.insert(query);
                        continue;
                    };
                    let out = Outgoing {
                        parts: &parts,
                        listed: &[],
                        path,
                    };
                    let by_url = within(&base, &target, &out)
                        .map(|u| {
                            u[url::Position::BeforePath..url::Position::AfterQuery].to_string()
                        })
                        .map_err(|e| e.code);
                    let direct = request_target(&base, &target, &out).map_err(|e| e.code);
                    assert_eq!(direct, by_url, "{base} {target} {path:?} {query:?}");
                    compared += 1;
                }
            }
        }
        // The queries no request can carry, as the HTTP layer refuses them on arrival.
        assert_eq!(refused, [Some("z=\"w\"")].into());
        assert_eq!(compared, 5 * 12 * 7);
    }
}
