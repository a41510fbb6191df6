//! `conclave audit --url`: the checks only the outside can make, against a running server.
//! A small HTTP/1.1 client over rustls (the same stack as the server): the certificate and
//! TLS version a browser gets, whether the system's roots trust it, the security headers,
//! whether `/metrics` and the admin API answer the public, and whether port 80 serves
//! anything but a redirect.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_store::OffsetDateTime;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::deployment_audit::{Finding, Severity, cert_der_findings};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read (headers are what matters).
const MAX_RESPONSE: usize = 256 * 1024;

/// Accepts any certificate and remembers the chain, so that an untrusted certificate is a
/// finding, not a failure to check anything else.
#[derive(Debug)]
struct Recording {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let mut c = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        c.clear();
        c.push(end_entity.clone().into_owned());
        c.extend(intermediates.iter().map(|i| i.clone().into_owned()));
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse the status line and headers of an HTTP/1.x answer.
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Answer { status, headers })
}

async fn request<S>(mut s: S, host: &str, path: &str) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: conclave-audit\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while buf.len() < MAX_RESPONSE {
        let n = match s.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            // A server closing without close_notify after a complete answer.
            Err(e) if !buf.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") && path != "/" {
            break;
        }
    }
    Ok(buf)
}

/// Where to connect: host (for SNI and Host), the address to dial.
struct Target {
    host: String,
    authority: String,
}

fn target(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("--url {url:?}: must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or("").to_owned();
    if authority.is_empty() {
        return Err(format!("--url {url:?}: no host"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("").to_owned()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h)
            .to_owned()
    };
    let authority = if authority.starts_with('[') || authority.matches(':').count() == 1 {
        authority
    } else {
        format!("{authority}:443")
    };
    Ok(Target { host, authority })
}

/// Run the remote checks against `url` (e.g. `https://meet.example.org`).
pub async fn live(url: &str, now: OffsetDateTime) -> Vec<Finding> {
    let f = |id, severity, message: String, fix: &str, reference| Finding {
        id,
        severity,
        message,
        fix: fix.to_owned(),
        reference,
    };
    let t = match target(url) {
        Ok(t) => t,
        Err(e) => {
            return vec![f(
                "live.url",
                Severity::High,
                e,
                "give the server's https:// URL",
                "",
            )];
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let recorder = Arc::new(Recording {
        chain: Mutex::new(Vec::new()),
        provider: provider.clone(),
    });
    let tls = match rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth(),
        Err(e) => {
            return vec![f(
                "live.tls",
                Severity::High,
                format!("TLS setup: {e}"),
                "",
                "",
            )];
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let Ok(name) = ServerName::try_from(t.host.clone()) else {
        return vec![f(
            "live.url",
            Severity::High,
            format!("{:?} is not a host name", t.host),
            "",
            "",
        )];
    };
    let mut out = Vec::new();
    let fetch = |path: &'static str| {
        let (connector, name, authority, host) = (
            connector.clone(),
            name.clone(),
            t.authority.clone(),
            t.host.clone(),
        );
        async move {
            let tcp = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(&authority))
                .await
                .map_err(|_| format!("connecting to {authority} timed out"))?
                .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
            let tls = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| "the TLS handshake timed out".to_owned())?
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            let version = tls.get_ref().1.protocol_version();
            let raw = tokio::time::timeout(TIMEOUT, request(tls, &host, path))
                .await
                .map_err(|_| format!("GET {path} timed out"))?
                .map_err(|e| format!("GET {path}: {e}"))?;
            let answer =
                parse_answer(&raw).ok_or_else(|| format!("GET {path}: not an HTTP answer"))?;
            Ok::<_, String>((answer, version))
        }
    };
    let (root, version) = match fetch("/").await {
        Ok(x) => x,
        Err(e) => {
            return vec![f(
                "live.reach",
                Severity::High,
                e,
                "check the URL, DNS and the firewall (TCP 443)",
                "",
            )];
        }
    };
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => {}
        v => out.push(f(
            "live.tls_version",
            Severity::Info,
            format!("negotiated {v:?} (TLS 1.3 expected from a current client)"),
            "",
            "BSI TR-02102-2",
        )),
    }
    let chain = recorder
        .chain
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(leaf) = chain.first() {
        out.extend(cert_der_findings(
            leaf,
            &format!("the certificate of {}", t.host),
            false,
            true,
            now,
        ));
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = r.add(c);
            }
            r
        };
        let trusted =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    let unix = UnixTime::since_unix_epoch(Duration::from_secs(
                        now.unix_timestamp().max(0) as u64,
                    ));
                    v.verify_server_cert(leaf, &chain[1..], &name, &[], unix)
                        .map_err(|e| e.to_string())
                });
        if let Err(e) = trusted {
            out.push(f(
                "live.untrusted",
                Severity::High,
                format!("this host's trusted roots do not accept the certificate: {e}"),
                "use a certificate from a public or your organisation's CA ([tls.acme])",
                "BSI Jitsi 2.2 (TLS)",
            ));
        }
    }
    for h in [
        "strict-transport-security",
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "permissions-policy",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
    ] {
        if root.header(h).is_none() {
            out.push(f(
                "live.header",
                Severity::Medium,
                format!("GET / has no {h} header (a proxy in front may drop it)"),
                "serve Conclave directly, or make the proxy pass the header",
                "BSI Jitsi 2.3 (HTTP headers)",
            ));
        }
    }
    for (path, id) in [
        ("/metrics", "live.metrics_public"),
        ("/api/rooms", "live.admin_public"),
    ] {
        match fetch(path).await {
            Ok((a, _)) if a.status == 200 => out.push(f(
                id,
                Severity::High,
                format!("GET {path} without a key answers 200"),
                "remove the proxy rule or key bypass that exposes it",
                "Conclave default",
            )),
            Ok((a, _)) => out.push(f(
                id,
                Severity::Info,
                format!("GET {path} without a key: {}", a.status),
                "",
                "Conclave default",
            )),
            Err(e) => out.push(f(id, Severity::Low, e, "", "")),
        }
    }
    // Port 80: if it answers, only with a redirect.
    let plain = format!(
        "{}:80",
        if t.host.contains(':') {
            format!("[{}]", t.host)
        } else {
            t.host.clone()
        }
    );
    if let Ok(Ok(tcp)) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(&plain),
    )
    .await
        && let Ok(Ok(raw)) = tokio::time::timeout(TIMEOUT, request(tcp, &t.host, "/")).await
        && let Some(a) = parse_answer(&raw)
        && !(300..400).contains(&a.status)
    {
        out.push(f(
            "live.plain_http",
            Severity::Medium,
            format!(
                "http://{}/ answers {} instead of redirecting to HTTPS",
                t.host, a.status
            ),
            "let port 80 only redirect (http_listen)",
            "BSI Jitsi 2.2 (TLS)",
        ));
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}
