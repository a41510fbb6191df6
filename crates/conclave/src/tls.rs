//! TLS: one policy (BSI TR-02102-2) for every TLS listener, and a certificate that can be
//! swapped while the server runs: the operator's files (re-read when they change), a
//! self-signed trial certificate generated into the data directory, or ACME.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{ServerConfig, SignatureAlgorithm, SignatureScheme};

use crate::config::Config;

/// ALPN protocol of the ACME TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Handshake signature schemes TR-02102-2 recommends: ECDSA on the NIST curves and RSA-PSS.
/// RSA PKCS#1 v1.5 was allowed only until 2025; EdDSA is not listed.
pub const SIGNATURE_SCHEMES: [SignatureScheme; 6] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
];

/// Shortest RSA key TR-02102-2 accepts (3000 bits since 2024); shorter ones are warned about.
pub const MIN_RSA_BITS: usize = 3000;

/// The crypto provider every TLS server of ours uses: aws-lc-rs cut down to TR-02102-2.
///
/// - Suites: TLS 1.3 AES-128/256-GCM; TLS 1.2 ECDHE-ECDSA/ECDHE-RSA with AES-128/256-GCM.
///   No ChaCha20-Poly1305 (not in the TR), no CBC, no static RSA key exchange (rustls has
///   neither). CCM is recommended but aws-lc-rs does not offer it.
/// - Groups: secp256r1 and secp384r1. X25519 and the X25519 hybrids are not in the TR; the
///   browsers that offer them first get a HelloRetryRequest for P-256.
pub fn provider() -> CryptoProvider {
    use rustls::CipherSuite::*;
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites.retain(|s| {
        matches!(
            s.suite(),
            TLS13_AES_128_GCM_SHA256
                | TLS13_AES_256_GCM_SHA384
                | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        )
    });
    p.kx_groups = vec![
        aws_lc_rs::kx_group::SECP256R1,
        aws_lc_rs::kx_group::SECP384R1,
    ];
    p
}

/// The server config for HTTPS (TURN-TLS clones it and changes the ALPN list): TLS 1.3 and
/// 1.2, the [`provider`]'s suites and groups, extended master secret required for 1.2, no
/// 0-RTT, certificates from `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>> {
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.require_ems = true;
    cfg.max_early_data_size = 0;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The certificate every TLS listener presents, swappable at run time, plus the ACME
/// TLS-ALPN-01 challenge certificates (handed out only to a ClientHello that offers just the
/// `acme-tls/1` protocol).
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// Start with `key`.
    pub fn new(key: Arc<CertifiedKey>) -> CertResolver {
        CertResolver {
            current: RwLock::new(key),
            challenges: RwLock::default(),
        }
    }

    /// Present `key` from the next handshake on.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    /// The certificate presented now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Answer TLS-ALPN-01 for `domain` with `key` until [`CertResolver::clear_challenge`].
    pub fn set_challenge(&self, domain: &str, key: Arc<CertifiedKey>) {
        self.challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_ascii_lowercase(), key);
    }

    /// Stop answering TLS-ALPN-01 for `domain`.
    pub fn clear_challenge(&self, domain: &str) {
        self.challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&domain.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .map(|mut protos| protos.all(|p| p == ACME_TLS_ALPN))
            .unwrap_or(false);
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned();
        }
        Some(self.current())
    }
}

/// A signing key that signs only with [`SIGNATURE_SCHEMES`], whatever the client offers.
#[derive(Debug)]
struct PolicyKey(Arc<dyn SigningKey>);

impl SigningKey for PolicyKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let allowed: Vec<SignatureScheme> = offered
            .iter()
            .copied()
            .filter(|s| SIGNATURE_SCHEMES.contains(s))
            .collect();
        self.0.choose_scheme(&allowed)
    }

    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.0.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
}

/// A certificate chain and its key from PEM, checked against the policy: the key must match
/// the certificate and be ECDSA or RSA (EdDSA is not in TR-02102-2). Returns warnings too
/// (an RSA key shorter than [`MIN_RSA_BITS`]).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<(CertifiedKey, Vec<String>)> {
    let (ck, warnings) = policy_key(cert_pem, key_pem)?;
    ck.keys_match()
        .map_err(|e| anyhow::anyhow!("certificate and key do not match: {e}"))?;
    Ok((ck, warnings))
}

/// A TLS-ALPN-01 challenge certificate and its key. Unlike [`certified_key`] the pair is not
/// cross-checked: the check parses the certificate, and its critical acmeIdentifier
/// extension (RFC 8737) is unknown to the parser. We made both ourselves a moment ago.
pub fn challenge_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey> {
    Ok(policy_key(cert_pem, key_pem)?.0)
}

fn policy_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<(CertifiedKey, Vec<String>)> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .context("not a PEM certificate chain")?;
    if certs.is_empty() {
        bail!("no certificate in the PEM file");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("not a PEM private key")?;
    let signing = aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| anyhow::anyhow!("unsupported private key: {e}"))?;
    let mut warnings = Vec::new();
    match signing.algorithm() {
        SignatureAlgorithm::ECDSA => {}
        SignatureAlgorithm::RSA => {
            let bits = signing
                .public_key()
                .and_then(|spki| aws_lc_rs_rsa_bits(spki.as_ref()))
                .unwrap_or(0);
            if bits < MIN_RSA_BITS {
                warnings.push(format!(
                    "the RSA key has {bits} bits; BSI TR-02102-2 asks for at least \
                     {MIN_RSA_BITS} (or use ECDSA P-256/P-384)"
                ));
            }
        }
        other => bail!(
            "{other:?} keys are not in BSI TR-02102-2; use an ECDSA (P-256, P-384) or RSA key"
        ),
    }
    let policy: Arc<dyn SigningKey> = Arc::new(PolicyKey(signing));
    if policy.choose_scheme(&SIGNATURE_SCHEMES).is_none() {
        bail!("the private key cannot sign with any scheme BSI TR-02102-2 recommends");
    }
    Ok((CertifiedKey::new(certs, policy), warnings))
}

/// Bits of an RSA public key in SubjectPublicKeyInfo DER (`None` when aws-lc rejects it,
/// which it does below 2048 bits).
fn aws_lc_rs_rsa_bits(spki: &[u8]) -> Option<usize> {
    ::aws_lc_rs::rsa::PublicEncryptingKey::from_der(spki)
        .ok()
        .map(|k| k.key_size_bits())
}

/// Read a certificate chain and key from files (see [`certified_key`]).
pub fn load_files(cert: &Path, key: &Path) -> Result<(CertifiedKey, Vec<String>)> {
    let c = std::fs::read(cert)
        .with_context(|| format!("cannot read certificate {}", cert.display()))?;
    let k =
        std::fs::read(key).with_context(|| format!("cannot read private key {}", key.display()))?;
    certified_key(&c, &k)
        .with_context(|| format!("certificate {} with key {}", cert.display(), key.display()))
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// The operator's files, re-read when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// The self-signed trial certificate in the data directory.
    SelfSigned,
    /// ACME; the self-signed certificate serves until the first one is issued.
    Acme,
}

/// The TLS state a server starts with.
pub struct Tls {
    /// The certificate holder shared by every listener.
    pub resolver: Arc<CertResolver>,
    /// The HTTPS server config (presenting `resolver`'s certificate).
    pub config: Arc<ServerConfig>,
    /// Where the certificate comes from.
    pub source: CertSource,
}

/// Load the initial certificate per `[tls]` and build the server config.
pub fn setup(config: &Config) -> Result<Tls> {
    let source = match (&config.tls.cert, &config.tls.key) {
        (Some(_), Some(_)) if config.tls.acme.enabled() => {
            bail!("tls.cert/tls.key and [tls.acme] exclude each other: choose one")
        }
        (Some(c), Some(k)) => CertSource::Files {
            cert: c.clone(),
            key: k.clone(),
        },
        (None, None) if config.tls.acme.enabled() => CertSource::Acme,
        (None, None) => CertSource::SelfSigned,
        _ => bail!("tls.cert and tls.key must be set together"),
    };
    let initial = match &source {
        CertSource::Files { cert, key } => {
            let (ck, warnings) = load_files(cert, key)?;
            for w in warnings {
                tracing::warn!(cert = %cert.display(), "{w}");
            }
            ck
        }
        CertSource::Acme => match crate::acme::stored_certificate(config) {
            Some(ck) => ck,
            None => self_signed(config)?,
        },
        CertSource::SelfSigned => self_signed(config)?,
    };
    let resolver = Arc::new(CertResolver::new(Arc::new(initial)));
    let config = server_config(resolver.clone())?;
    Ok(Tls {
        resolver,
        config,
        source,
    })
}

/// The self-signed trial certificate, generated on first use into `data_dir/tls/`.
fn self_signed(config: &Config) -> Result<CertifiedKey> {
    let dir = config.data_dir.join("tls");
    let cert = dir.join("self-signed-cert.pem");
    let key = dir.join("self-signed-key.pem");
    if !cert.exists() || !key.exists() {
        generate_self_signed(&dir, &cert, &key)?;
    }
    Ok(load_files(&cert, &key)?.0)
}

fn generate_self_signed(dir: &Path, cert: &Path, key: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    // ECDSA P-256 (rcgen's default), which TR-02102-2 recommends.
    let ck = rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    write_private(key, ck.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, ck.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    tracing::warn!(
        cert = %cert.display(),
        "generated a self-signed trial certificate for localhost; it serves until [tls.acme] or tls.cert/tls.key provide one"
    );
    Ok(())
}

/// Write a file readable only by its owner (mode 0600), replacing it atomically.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What identifies a version of a file: modification time and size.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Re-read the operator's certificate files every `every` and present them once they changed
/// and load. A file that does not load (half written, wrong key) is logged and the current
/// certificate stays.
pub async fn watch_files(
    resolver: Arc<CertResolver>,
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
) {
    let mut seen = (stamp(&cert), stamp(&key));
    let mut failed = None;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = (stamp(&cert), stamp(&key));
        if now == seen || Some(now) == failed {
            continue;
        }
        let (c, k) = (cert.clone(), key.clone());
        match tokio::task::spawn_blocking(move || load_files(&c, &k)).await {
            Ok(Ok((ck, warnings))) => {
                for w in warnings {
                    tracing::warn!(cert = %cert.display(), "{w}");
                }
                resolver.set(Arc::new(ck));
                seen = now;
                failed = None;
                tracing::info!(cert = %cert.display(), "certificate reloaded");
            }
            Ok(Err(e)) => {
                // Tried again when either file changes (the second of a pair may still be
                // coming).
                failed = Some(now);
                tracing::warn!(
                    "certificate files changed but do not load; keeping the current one: {e:#}"
                );
            }
            Err(e) => tracing::warn!("certificate reload: {e}"),
        }
    }
}
