//! Fetching a JSON Web Key Set over HTTPS, bounded: one total timeout covers DNS, connect,
//! TLS, request and body; the body has a size limit; redirects are not followed; only
//! `https` URLs are accepted.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::config::{ConfigError, TokenConfig};

/// Why fetching `jwks_url` failed. The last good key set stays in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksFetchError {
    /// The whole fetch took longer than `jwks_timeout_secs`.
    #[error("fetching tokens.jwks_url took longer than {0} s (tokens.jwks_timeout_secs)")]
    Timeout(u64),
    /// DNS or TCP connect failed.
    #[error("cannot connect to tokens.jwks_url: {0}")]
    Connect(String),
    /// The TLS handshake failed (e.g. untrusted certificate: see tokens.jwks_ca_file).
    #[error("TLS with tokens.jwks_url failed: {0}")]
    Tls(String),
    /// The HTTP exchange failed.
    #[error("HTTP request to tokens.jwks_url failed: {0}")]
    Http(String),
    /// The server answered with a status other than 200 (redirects are not followed).
    #[error("tokens.jwks_url answered with HTTP status {0}, expected 200")]
    Status(u16),
    /// The body is larger than `jwks_max_bytes`.
    #[error("tokens.jwks_url sent more than {0} bytes (tokens.jwks_max_bytes)")]
    TooLarge(usize),
    /// The body is not a key set with a usable key.
    #[error("tokens.jwks_url: the key set {0}")]
    Invalid(String),
}

/// A parsed `https` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl HttpsUrl {
    /// Parse and check an `https://host[:port]/path` URL.
    pub fn parse(url: &str) -> Result<HttpsUrl, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("{url:?} must be an https:// URL"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{url:?} must not contain user info"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(HttpsUrl {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".to_string()),
        })
    }

    /// `scheme://authority`, the origin of the URL.
    pub fn origin(&self) -> String {
        format!("https://{}", self.authority)
    }
}

/// Why a bounded HTTPS request failed. The messages name no setting; callers say which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpsError {
    /// The whole request took longer than its timeout (seconds).
    #[error("took longer than {0} s")]
    Timeout(u64),
    /// DNS or TCP connect failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake failed (e.g. an untrusted certificate).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The HTTP exchange failed.
    #[error("HTTP failed: {0}")]
    Http(String),
    /// The body is larger than the limit (bytes).
    #[error("sent more than {0} bytes")]
    TooLarge(usize),
}

/// One HTTPS request: GET without a body, or POST with a form body. Redirects are not
/// followed; the caller sees the status.
#[derive(Debug, Clone)]
pub struct HttpsRequest<'a> {
    /// The URL.
    pub url: &'a HttpsUrl,
    /// The `Accept` header.
    pub accept: &'static str,
    /// `Authorization`, if any.
    pub authorization: Option<String>,
    /// An `application/x-www-form-urlencoded` body: the request is a POST.
    pub form: Option<String>,
}

/// Send `request` over `tls` within `timeout` (DNS, connect, TLS, request and body), taking
/// at most `max_bytes` of body. The status and the body.
pub async fn https_request(
    tls: &TlsConnector,
    request: HttpsRequest<'_>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<(u16, Vec<u8>), HttpsError> {
    match tokio::time::timeout(timeout, unbounded(tls, request, max_bytes)).await {
        Ok(r) => r,
        Err(_) => Err(HttpsError::Timeout(timeout.as_secs())),
    }
}

async fn unbounded(
    tls: &TlsConnector,
    request: HttpsRequest<'_>,
    max_bytes: usize,
) -> Result<(u16, Vec<u8>), HttpsError> {
    let url = request.url;
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| HttpsError::Connect(e.to_string()))?;
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| HttpsError::Tls(format!("invalid server name: {e}")))?;
    let tls = tls
        .connect(name, tcp)
        .await
        .map_err(|e| HttpsError::Tls(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| HttpsError::Http(e.to_string()))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let method = if request.form.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header(HOST, url.authority.as_str())
        .header(ACCEPT, request.accept)
        .header(USER_AGENT, "conclave");
    if let Some(a) = &request.authorization {
        builder = builder.header(AUTHORIZATION, a.as_str());
    }
    if request.form.is_some() {
        builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let body = Full::new(Bytes::from(request.form.unwrap_or_default()));
    let http_request = builder
        .body(body)
        .map_err(|e| HttpsError::Http(e.to_string()))?;
    let response = sender
        .send_request(http_request)
        .await
        .map_err(|e| HttpsError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(HttpsError::TooLarge(max_bytes));
    }
    let body = Limited::new(response.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                HttpsError::TooLarge(max_bytes)
            } else {
                HttpsError::Http(e.to_string())
            }
        })?;
    Ok((status, body.to_bytes().to_vec()))
}

/// Fetches one URL with fixed limits and trust roots.
pub(crate) struct JwksFetcher {
    url: HttpsUrl,
    timeout: Duration,
    max_bytes: usize,
    tls: TlsConnector,
}

/// Aborts the connection task when the fetch ends or is dropped (e.g. on timeout).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl JwksFetcher {
    /// Build from a validated config with `jwks_url` set.
    pub(crate) fn new(config: &TokenConfig, url: &str) -> Result<JwksFetcher, ConfigError> {
        let url = HttpsUrl::parse(url).map_err(|r| crate::config::invalid("jwks_url", r))?;
        let tls = client_tls(config.jwks_ca_file.as_deref()).map_err(|e| match e {
            ClientTlsError::CaFile { path, reason } => ConfigError::BadKey {
                key: "jwks_ca_file",
                location: path.display().to_string(),
                reason,
            },
            ClientTlsError::NoSystemRoots => crate::config::invalid(
                "jwks_url",
                "no trusted CA certificates found on this system; install \
                 ca-certificates or set tokens.jwks_ca_file",
            ),
            ClientTlsError::Setup(e) => {
                crate::config::invalid("jwks_url", format!("TLS setup failed: {e}"))
            }
        })?;
        Ok(JwksFetcher {
            url,
            timeout: Duration::from_secs(config.jwks_timeout_secs),
            max_bytes: config.jwks_max_bytes,
            tls: TlsConnector::from(Arc::new(tls)),
        })
    }

    /// Fetch the body, within the timeout and size limit.
    pub(crate) async fn fetch(&self) -> Result<Vec<u8>, JwksFetchError> {
        let request = HttpsRequest {
            url: &self.url,
            accept: "application/jwk-set+json, application/json",
            authorization: None,
            form: None,
        };
        match https_request(&self.tls, request, self.timeout, self.max_bytes).await {
            Ok((200, body)) => Ok(body),
            Ok((status, _)) => Err(JwksFetchError::Status(status)),
            Err(HttpsError::Timeout(s)) => Err(JwksFetchError::Timeout(s)),
            Err(HttpsError::Connect(e)) => Err(JwksFetchError::Connect(e)),
            Err(HttpsError::Tls(e)) => Err(JwksFetchError::Tls(e)),
            Err(HttpsError::Http(e)) => Err(JwksFetchError::Http(e)),
            Err(HttpsError::TooLarge(n)) => Err(JwksFetchError::TooLarge(n)),
        }
    }
}

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The CA file is unreadable, not PEM, or holds no usable certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No CA file was given and the system has no trusted CA certificates.
    #[error(
        "no trusted CA certificates found on this system; install ca-certificates or name a CA file"
    )]
    NoSystemRoots,
    /// rustls refused the setup.
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// A TLS client configuration (aws-lc-rs, TLS 1.2 and 1.3, certificates verified) trusting
/// the certificates in `ca_file`, or the system's CA certificates without one. Used for every
/// outgoing TLS connection: JWKS, LDAP directories, OpenID providers.
pub fn client_tls(
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, ClientTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        let bad = |reason: String| ClientTlsError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("is not a PEM certificate file ({e})")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("holds an unusable certificate ({e})")))?;
        }
        if roots.is_empty() {
            return Err(bad("holds no certificate".into()));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err(ClientTlsError::NoSystemRoots);
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientTlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
