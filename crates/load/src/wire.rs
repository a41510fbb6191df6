//! A raw signalling socket: JSON over a TLS WebSocket, accepting the server's self-signed
//! certificate (tests and load runs only talk to loopback).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use conclave_proto::{ClientMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// A WebSocket to the server, with helpers to send and receive protocol messages or raw frames.
pub struct RawSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Open the signalling WebSocket of the server at `https://host:port`.
pub async fn connect(base: &str) -> Result<RawSocket> {
    connect_with(base, None).await
}

/// Like [`connect`], sending a `Cookie` header (e.g. a sign-in session).
pub async fn connect_with_cookie(base: &str, cookie: &str) -> Result<RawSocket> {
    connect_with(base, Some(cookie)).await
}

async fn connect_with(base: &str, cookie: Option<&str>) -> Result<RawSocket> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = crate::ws_url(base)?;
    let config = insecure_tls_config()?;
    let mut request = url.as_str().into_client_request()?;
    if let Some(c) = cookie {
        request.headers_mut().insert("cookie", c.parse()?);
    }
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        false,
        Some(Connector::Rustls(Arc::new(config))),
    )
    .await
    .with_context(|| format!("connecting to {url}"))?;
    Ok(RawSocket { ws })
}

impl RawSocket {
    /// Send a protocol message.
    pub async fn send(&mut self, m: &ClientMessage) -> Result<()> {
        self.send_text(&serde_json::to_string(m)?).await
    }

    /// Send any text frame.
    pub async fn send_text(&mut self, t: &str) -> Result<()> {
        self.ws.send(Message::text(t)).await?;
        Ok(())
    }

    /// Send any binary frame.
    pub async fn send_binary(&mut self, b: Vec<u8>) -> Result<()> {
        self.ws.send(Message::binary(b)).await?;
        Ok(())
    }

    /// Next server message; `None` when the server closed the socket.
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>> {
        loop {
            match self.ws.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => {
                    return Ok(Some(serde_json::from_str(t.as_str()).with_context(
                        || format!("server sent a message we cannot parse: {t}"),
                    )?));
                }
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Next server message within `t`, failing on close or timeout.
    pub async fn recv_timeout(&mut self, t: Duration) -> Result<ServerMessage> {
        match tokio::time::timeout(t, self.recv()).await {
            Ok(Ok(Some(m))) => Ok(m),
            Ok(Ok(None)) => bail!("the server closed the connection"),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("no message within {t:?}"),
        }
    }

    /// Receive until a message matches `f` (within `t`), returning it.
    pub async fn recv_until(
        &mut self,
        t: Duration,
        mut f: impl FnMut(&ServerMessage) -> bool,
    ) -> Result<ServerMessage> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.recv_timeout(left).await?;
            if f(&m) {
                return Ok(m);
            }
        }
    }

    /// Whether the server closes the socket within `t` (messages before the close are skipped).
    pub async fn closed_within(&mut self, t: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.recv()).await {
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Ok(Ok(Some(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// A TLS client configuration that accepts any server certificate: for tools and tests
/// against a self-signed server on loopback only (the generator refuses other targets).
pub fn insecure_tls_config() -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
    )
}

/// Accepts any server certificate (tests against a self-signed loopback server only).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
