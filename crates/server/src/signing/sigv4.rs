//! AWS Signature Version 4, computed by the `aws-sigv4` crate: the canonical request covers the
//! method, the path, the query (canonicalised by the crate), the host, the content type, the
//! caller's `x-amz-*` headers and the SHA-256 of the body; with a session token the request
//! carries `x-amz-security-token`.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use http::{HeaderMap, HeaderName, HeaderValue};
use latchkey_core::CoreError;
use std::time::SystemTime;
use url::Url;

/// An access key, its secret and the scope it signs for. No `Debug`: it holds secrets.
#[derive(Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
}

/// Request headers that are part of what is signed: the content type and the caller's own
/// `x-amz-*` and `content-md5` headers (reqwest adds `host` and `content-length` itself, and
/// a proxy in between may change the rest).
fn signed_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            (n.starts_with("x-amz-")
                && n != "x-amz-date"
                && n != "x-amz-security-token"
                && n != "x-amz-content-sha256")
                || n == "content-type"
                || n == "content-md5"
        })
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// The headers that sign one request (`authorization`, `x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token`). `body` is `None` for a streamed body, signed as an unsigned payload
/// (which S3 accepts and other services refuse).
pub fn sign_request(
    keys: &Keys,
    method: &str,
    url: &Url,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<Vec<(HeaderName, HeaderValue)>, CoreError> {
    let identity = Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.clone(),
        keys.session_token.clone(),
        None,
        "latchkey",
    )
    .into();
    let mut settings = SigningSettings::default();
    // S3 requires the payload hash as a header; every other service accepts it.
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    if keys.service == "s3" {
        // S3 signs the path as it is sent: encoded once, dot segments kept.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&keys.region)
        .name(&keys.service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|_| CoreError::invalid("settings", "the AWS signing parameters are incomplete"))?
        .into();
    let pairs = signed_headers(headers);
    let body = match body {
        Some(b) => SignableBody::Bytes(b),
        None => SignableBody::UnsignedPayload,
    };
    let request = SignableRequest::new(
        method,
        url.as_str(),
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .map_err(|_| CoreError::invalid("request", "the request cannot be signed for AWS"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|_| CoreError::invalid("request", "the request cannot be signed for AWS"))?
        .into_parts();
    let mut out = Vec::new();
    for (name, value) in instructions.headers() {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| CoreError::invalid("request", "the AWS signer made a bad header"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            CoreError::invalid(
                "credentials",
                "the AWS credential contains characters that cannot go in an HTTP header",
            )
        })?;
        value.set_sensitive(name == http::header::AUTHORIZATION || name == "x-amz-security-token");
        out.push((name, value));
    }
    Ok(out)
}
