//! The plain-HTTP listener (`http_listen`, usually port 80). It serves no content: ACME
//! HTTP-01 challenge answers, and a permanent redirect to HTTPS for everything else.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::Service;

use crate::acme::Http01Tokens;

/// How long one plain-HTTP connection may stay open (a redirect or a challenge is one
/// request).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Open plain-HTTP connections at most (each holds a task until the timeout).
const MAX_CONNECTIONS: usize = 1024;

#[derive(Clone)]
struct Plain {
    https_port: u16,
    public_url: Option<String>,
    tokens: Http01Tokens,
}

/// Serve `listener` until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    https_port: u16,
    public_url: Option<String>,
    tokens: Http01Tokens,
) {
    let app = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(redirect)
        .with_state(Plain {
            https_port,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            tokens,
        });
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("http accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| app.clone().call(req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            if tokio::time::timeout(CONNECTION_TIMEOUT, conn)
                .await
                .is_err()
            {
                tracing::debug!("plain http connection timed out");
            }
        });
    }
}

async fn challenge(State(p): State<Plain>, Path(token): Path<String>) -> Response {
    match p.tokens.get(&token) {
        Some(key_auth) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_auth,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such challenge\n").into_response(),
    }
}

async fn redirect(State(p): State<Plain>, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let base = match &p.public_url {
        Some(u) => u.clone(),
        None => {
            let Some(host) = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(host_of)
            else {
                return (StatusCode::BAD_REQUEST, "missing or invalid Host header\n")
                    .into_response();
            };
            match p.https_port {
                443 => format!("https://{host}"),
                port => format!("https://{host}:{port}"),
            }
        }
    };
    match HeaderValue::from_str(&format!("{base}{path}")) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid request target\n").into_response(),
    }
}

/// The host of a Host header without its port, if it is a plain host name or IP literal.
fn host_of(value: &str) -> Option<&str> {
    let host = if let Some(rest) = value.strip_prefix('[') {
        let end = rest.find(']')?;
        &value[..end + 2]
    } else {
        value.split(':').next()?
    };
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_header_is_reduced_to_a_host() {
        assert_eq!(host_of("meet.example.org"), Some("meet.example.org"));
        assert_eq!(host_of("meet.example.org:80"), Some("meet.example.org"));
        assert_eq!(host_of("[::1]:80"), Some("[::1]"));
        assert_eq!(host_of("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_of("evil.org/x"), None);
        assert_eq!(host_of("a b"), None);
        assert_eq!(host_of(""), None);
    }
}
