//! ACME (RFC 8555): certificates from a CA such as Let's Encrypt, obtained and renewed while
//! the server runs (docs/architecture.md, "Deployment"). The account key and the certificate
//! live in `data_dir/acme/` with mode 0600; the certificate is swapped into the shared
//! [`CertResolver`] without a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;

use crate::config::{AcmeChallenge, AcmeConfig, Config};
use crate::tls::{self, CertResolver};

/// First wait after a failed attempt; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(60);
/// Longest wait between failed attempts.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// Longest sleep before the renewal time is computed again (clock changes, file changes).
const MAX_SLEEP: Duration = Duration::from_secs(6 * 3600);
/// How long the CA may take to validate the challenges and to issue.
const CA_TIMEOUT: Duration = Duration::from_secs(90);

/// HTTP-01 answers being served: token → key authorization.
#[derive(Debug, Clone, Default)]
pub struct Http01Tokens(Arc<RwLock<HashMap<String, String>>>);

impl Http01Tokens {
    /// The key authorization for `token`, while its challenge is pending.
    pub fn get(&self, token: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    fn set(&self, token: &str, key_auth: String) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), key_auth);
    }

    fn clear(&self, token: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

/// Files of the ACME state.
struct Files {
    account: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn files(config: &Config) -> Files {
    let dir = config.data_dir.join("acme");
    Files {
        account: dir.join("account.json"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// Validity and names of a certificate.
struct Leaf {
    not_before: i64,
    not_after: i64,
    names: Vec<String>,
}

fn leaf(ck: &CertifiedKey) -> Result<Leaf> {
    let der = ck.cert.first().context("empty certificate chain")?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| anyhow!("cannot parse the certificate: {e}"))?;
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Leaf {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// When a certificate should be renewed, in Unix seconds: once less than `fraction` of its
/// validity remains; at once when it does not cover every configured domain.
fn renew_at(leaf: &Leaf, acme: &AcmeConfig) -> i64 {
    let covers = acme
        .domains
        .iter()
        .all(|d| leaf.names.contains(&d.to_ascii_lowercase()));
    if !covers {
        return 0;
    }
    let lifetime = (leaf.not_after - leaf.not_before).max(1) as f64;
    leaf.not_after - (lifetime * acme.renew_remaining_fraction) as i64
}

fn load_stored(config: &Config) -> Option<CertifiedKey> {
    let f = files(config);
    if !f.cert.exists() {
        return None;
    }
    match tls::load_files(&f.cert, &f.key) {
        Ok((ck, _)) => Some(ck),
        Err(e) => {
            tracing::warn!("stored ACME certificate does not load, ordering a new one: {e:#}");
            None
        }
    }
}

/// The certificate stored by an earlier run, if it loads and has not expired.
pub fn stored_certificate(config: &Config) -> Option<CertifiedKey> {
    let ck = load_stored(config)?;
    let l = leaf(&ck).ok()?;
    (l.not_after > now_secs()).then_some(ck)
}

/// Obtain and renew the certificate forever. Failures are logged and retried with backoff;
/// they never stop the server (the current certificate keeps serving).
pub async fn run(config: Config, resolver: Arc<CertResolver>, tokens: Http01Tokens) {
    let acme = &config.tls.acme;
    let mut retry = FIRST_RETRY;
    let mut account: Option<Account> = None;
    loop {
        let due = load_stored(&config)
            .and_then(|ck| leaf(&ck).ok())
            .map_or(0, |l| renew_at(&l, acme));
        let wait = due - now_secs();
        if wait > 0 {
            let secs = u64::try_from(wait).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(secs).min(MAX_SLEEP)).await;
            continue;
        }
        match obtain(&config, &mut account, &resolver, &tokens).await {
            Ok(ck) => {
                let until = leaf(&ck)
                    .ok()
                    .and_then(|l| time::OffsetDateTime::from_unix_timestamp(l.not_after).ok())
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                resolver.set(Arc::new(ck));
                retry = FIRST_RETRY;
                tracing::info!(
                    domains = ?acme.domains,
                    not_after = %until,
                    "ACME certificate issued and in use"
                );
            }
            Err(e) => {
                tracing::warn!(
                    domains = ?acme.domains,
                    retry_secs = retry.as_secs(),
                    "ACME: no certificate: {e:#}"
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// The account: stored for this directory, or created (and stored, 0600).
async fn account(config: &Config) -> Result<Account> {
    let acme = &config.tls.acme;
    let path = files(config).account;
    let builder = || match &acme.directory_ca_file {
        Some(ca) => Account::builder_with_root(ca)
            .with_context(|| format!("tls.acme.directory_ca_file {}", ca.display())),
        None => Account::builder().context("ACME HTTP client"),
    };
    if let Ok(text) = std::fs::read(&path) {
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
        if v.get("directory").and_then(|d| d.as_str()) == Some(acme.directory.as_str()) {
            let creds: AccountCredentials = serde_json::from_value(v)
                .with_context(|| format!("{} is not an ACME account", path.display()))?;
            return builder()?
                .from_credentials(creds)
                .await
                .context("cannot load the stored ACME account");
        }
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let (account, creds) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                // Configuring a CA means accepting its terms (docs/operations.md).
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.directory.clone(),
            None,
        )
        .await
        .with_context(|| format!("cannot create an ACME account at {}", acme.directory))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    tls::write_private(&path, &serde_json::to_vec(&creds)?)?;
    tracing::info!(directory = %acme.directory, "ACME account created");
    Ok(account)
}

/// Challenges armed for one order, disarmed on drop whatever happens.
struct Armed<'a> {
    resolver: &'a CertResolver,
    tokens: &'a Http01Tokens,
    names: Vec<String>,
    http_tokens: Vec<String>,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            self.resolver.clear_challenge(n);
        }
        for t in &self.http_tokens {
            self.tokens.clear(t);
        }
    }
}

fn is_problem(e: &instant_acme::Error, kind: &str) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref() == Some(&format!("urn:ietf:params:acme:error:{kind}")))
}

/// One order: challenges, finalisation, the certificate stored and returned.
async fn obtain(
    config: &Config,
    account_slot: &mut Option<Account>,
    resolver: &CertResolver,
    tokens: &Http01Tokens,
) -> Result<CertifiedKey> {
    let acme = &config.tls.acme;
    let ids: Vec<Identifier> = acme
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let account = match account_slot {
        Some(a) => a.clone(),
        None => account(config).await?,
    };
    let mut order = match account.new_order(&NewOrder::new(&ids)).await {
        Ok(o) => o,
        Err(e) if is_problem(&e, "accountDoesNotExist") => {
            // The CA forgot the account (a test CA restarted): make a new one.
            let _ = std::fs::remove_file(files(config).account);
            *account_slot = None;
            let fresh = self::account(config).await?;
            let o = fresh.new_order(&NewOrder::new(&ids)).await?;
            *account_slot = Some(fresh);
            o
        }
        Err(e) => return Err(e).context("new order"),
    };
    if account_slot.is_none() {
        *account_slot = Some(account);
    }
    let mut armed = Armed {
        resolver,
        tokens,
        names: Vec::new(),
        http_tokens: Vec::new(),
    };
    let kind = match acme.challenge {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
    };
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a.context("authorization")?;
        match a.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            s => bail!("authorization is {s:?}"),
        }
        let mut ch = a
            .challenge(kind.clone())
            .with_context(|| format!("the CA offers no {kind:?} challenge"))?;
        let Identifier::Dns(name) = &ch.identifier().identifier else {
            bail!("the CA asks to validate a non-DNS identifier");
        };
        let name = name.clone();
        let ka = ch.key_authorization();
        match acme.challenge {
            AcmeChallenge::TlsAlpn01 => {
                let cert = alpn_challenge_cert(&name, ka.digest().as_ref())?;
                resolver.set_challenge(&name, Arc::new(cert));
                armed.names.push(name);
            }
            AcmeChallenge::Http01 => {
                tokens.set(&ch.token, ka.as_str().to_owned());
                armed.http_tokens.push(ch.token.clone());
            }
        }
        ch.set_ready().await.context("telling the CA to validate")?;
    }
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(CA_TIMEOUT))
        .await
        .context("waiting for validation")?;
    drop(armed);
    if status != OrderStatus::Ready {
        bail!(
            "the order is {status:?}: {}",
            order
                .state()
                .error
                .as_ref()
                .map_or_else(String::new, |p| p.to_string())
        );
    }
    let key_pem = order.finalize().await.context("finalising the order")?;
    let chain_pem = order
        .poll_certificate(&RetryPolicy::new().timeout(CA_TIMEOUT))
        .await
        .context("downloading the certificate")?;
    let (ck, warnings) = tls::certified_key(chain_pem.as_bytes(), key_pem.as_bytes())
        .context("the CA's certificate")?;
    for w in warnings {
        tracing::warn!("ACME certificate: {w}");
    }
    let f = files(config);
    // Key first: a cert without its key is never left behind as the newer file.
    tls::write_private(&f.key, key_pem.as_bytes())?;
    tls::write_private(&f.cert, chain_pem.as_bytes())?;
    Ok(ck)
}

/// The TLS-ALPN-01 certificate (RFC 8737): self-signed, exactly the one name, with the
/// critical acmeIdentifier extension holding the SHA-256 of the key authorisation.
fn alpn_challenge_cert(name: &str, digest: &[u8]) -> Result<CertifiedKey> {
    let key = rcgen::KeyPair::generate().context("challenge key")?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).context("challenge certificate")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).context("challenge certificate")?;
    tls::challenge_key(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
}
