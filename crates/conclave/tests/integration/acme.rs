//! ACME against a real CA: Debian's `pebble` (with `pebble-challtestsrv` as its DNS server,
//! so `conclave.test` resolves to 127.0.0.1). The server obtains a certificate through
//! TLS-ALPN-01 on its HTTPS port, serves it, and renews it before it expires — pebble issues
//! certificates valid for 40 s — without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOMAIN: &str = "conclave.test";
/// Validity pebble gives certificates, in seconds.
const VALIDITY_SECS: u64 = 40;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, what: &'static str, log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let child = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} must be installed (Debian pebble): {e}"));
    Proc(child)
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on `port` within 10 s, or the process logging to `log` gave up
/// on a bind first.
async fn wait_for_port(port: u16, log: &Path) -> bool {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        if port_taken(log) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Whether the log says a bind found its port in use.
fn port_taken(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|l| l.contains("address already in use"))
}

/// A test CA and a certificate for pebble's own HTTPS (directory and management API).
fn pebble_tls(dir: &Path) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "conclave test CA for pebble");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();
    let ca_file = dir.join("test-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    ca_file
}

fn client(roots: &[CertificateDer<'static>]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// pebble's issuing root, from its management API.
async fn pebble_root(mgmt: u16, test_ca: &Path) -> CertificateDer<'static> {
    let ca = CertificateDer::from_pem_file(test_ca).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", mgmt))
        .await
        .unwrap();
    let mut s = client(&[ca])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(b"GET /roots/0 HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let pem = &text[text.find("-----BEGIN").expect("a PEM root")..];
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// The leaf `addr` presents for `conclave.test`, if it verifies against `root` now.
async fn verified_leaf(addr: SocketAddr, root: &CertificateDer<'static>) -> Option<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let s = client(std::slice::from_ref(root))
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .ok()?;
    Some(s.get_ref().1.peer_certificates()?.first()?.to_vec())
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// pebble and its DNS server, running for one test; killed on drop.
struct Pebble {
    dir: PathBuf,
    acme_port: u16,
    root: CertificateDer<'static>,
    test_ca: PathBuf,
    log: PathBuf,
    _procs: Vec<Proc>,
}

impl Pebble {
    /// Start pebble validating TLS-ALPN-01 on `tls_port` and HTTP-01 on `http_port` of
    /// `conclave.test` (= 127.0.0.1), issuing certificates valid for `validity_secs`.
    async fn start(name: &str, tls_port: u16, http_port: u16, validity_secs: u64) -> Pebble {
        // The ports are picked free and then handed to pebble, so a parallel test can take
        // one in between: start again on fresh ports when a bind failed.
        for attempt in 1..=5 {
            if let Some(p) = Self::try_start(name, tls_port, http_port, validity_secs).await {
                return p;
            }
            eprintln!("pebble attempt {attempt}: a port was taken meanwhile; retrying");
        }
        panic!("pebble could not bind free ports in 5 attempts");
    }

    async fn try_start(
        name: &str,
        tls_port: u16,
        http_port: u16,
        validity_secs: u64,
    ) -> Option<Pebble> {
        let dir = std::env::temp_dir().join(format!("conclave-acme-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let test_ca = pebble_tls(&dir);
        let (acme_port, mgmt_port, dns_port, dns_mgmt) = (
            free_tcp_port(),
            free_tcp_port(),
            free_udp_port(),
            free_tcp_port(),
        );
        let pebble_config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        std::fs::write(dir.join("pebble.json"), pebble_config.to_string()).unwrap();
        let dns = spawn(
            Command::new("pebble-challtestsrv")
                .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]),
            "pebble-challtestsrv",
            &dir.join("challtestsrv.log"),
        );
        // pebble's validator queries this DNS server at once: wait until challtestsrv is up
        // (its management port answers), or under load the first lookup is refused.
        let up = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", dns_mgmt)).is_ok()
        });
        if !up && port_taken(&dir.join("challtestsrv.log")) {
            return None;
        }
        assert!(up, "pebble-challtestsrv did not start within 10 s");
        let log = dir.join("pebble.log");
        let pebble = spawn(
            Command::new("pebble")
                .arg("-config")
                .arg(dir.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns_port}"), "-strict"])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                // Every order needs a fresh challenge, so renewal proves the running server
                // still answers them.
                .env("PEBBLE_AUTHZREUSE", "0"),
            "pebble",
            &log,
        );
        for (port, what) in [(acme_port, "pebble"), (mgmt_port, "pebble management")] {
            if !wait_for_port(port, &log).await {
                if port_taken(&log) {
                    return None;
                }
                panic!(
                    "{what} did not listen on {port}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        let root = pebble_root(mgmt_port, &test_ca).await;
        Some(Pebble {
            dir,
            acme_port,
            root,
            test_ca,
            log,
            _procs: vec![dns, pebble],
        })
    }

    /// A server config that takes its certificate from this pebble.
    fn config(&self, listen: SocketAddr) -> conclave::config::Config {
        let mut config = conclave::config::Config {
            listen,
            media_port: 0,
            data_dir: self.dir.join("data"),
            ..Default::default()
        };
        config.turn.enabled = false;
        let acme = &mut config.tls.acme;
        acme.domains = vec![DOMAIN.to_owned()];
        acme.contact = vec!["mailto:it@conclave.test".to_owned()];
        acme.directory = format!("https://127.0.0.1:{}/dir", self.acme_port);
        acme.directory_ca_file = Some(self.test_ca.clone());
        config
    }

    fn log(&self) -> String {
        format!(
            "pebble log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// Wait (at most `limit`) until `addr` presents a certificate of this pebble's for
    /// conclave.test other than `not`.
    async fn wait_for_leaf(
        &self,
        addr: SocketAddr,
        not: Option<&[u8]>,
        limit: Duration,
    ) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match verified_leaf(addr, &self.root).await {
                Some(leaf) if Some(leaf.as_slice()) != not => return leaf,
                _ => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no (new) certificate from pebble within {limit:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Bind `addr` again once the stopped server's tasks have let it go.
async fn rebind(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} stays in use after the server stopped");
}

fn init_log() {
    // The server's ACME log lines show in the test output when it fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("conclave=info")
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_pebble_is_served_and_renewed_without_restart() {
    init_log();
    // Conclave's HTTPS port is where pebble validates TLS-ALPN-01.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = listener.local_addr().unwrap();
    let pebble = Pebble::start("alpn", https.port(), free_tcp_port(), VALIDITY_SECS).await;
    let mut config = pebble.config(https);
    config.tls.acme.renew_remaining_fraction = 0.5;
    let data = config.data_dir.clone();
    let server = conclave::Server::start(config, listener).await.unwrap();

    // The self-signed certificate serves until pebble's arrives.
    let first = pebble
        .wait_for_leaf(https, None, Duration::from_secs(30))
        .await;
    assert_eq!(server.certificate(), first);
    let acme_dir = data.join("acme");
    for f in ["account.json", "cert.pem", "key.pem"] {
        assert_eq!(mode(&acme_dir.join(f)), 0o600, "{f}");
    }
    // Renewal is due when half the validity is left: a new certificate, same process.
    let second = pebble
        .wait_for_leaf(https, Some(&first), Duration::from_secs(VALIDITY_SECS + 20))
        .await;
    let stored = std::fs::read(acme_dir.join("cert.pem")).unwrap();
    let stored = CertificateDer::from_pem_slice(&stored).unwrap();
    assert_eq!(
        stored.as_ref(),
        second.as_slice(),
        "the renewed certificate is stored"
    );
    let log = std::fs::read_to_string(&pebble.log).unwrap_or_default();
    let issued = log.matches("Issued certificate serial").count();
    let accounts = log.matches("POST /sign-me-up").count();
    println!("pebble issued {issued} certificates to {accounts} account(s)");
    assert!(issued >= 2, "{issued} certificates issued");
    assert_eq!(accounts, 1, "renewal reuses the account");
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_01_on_the_port_80_listener_gets_a_certificate_and_a_restart_reuses_it() {
    init_log();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_addr = http.local_addr().unwrap();
    drop(http);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = listener.local_addr().unwrap();
    let pebble = Pebble::start("http", free_tcp_port(), http_addr.port(), 3600).await;
    let mut config = pebble.config(https);
    config.http_listen = Some(http_addr);
    config.tls.acme.challenge = conclave::config::AcmeChallenge::Http01;
    let server = conclave::Server::start(config.clone(), listener)
        .await
        .unwrap();
    let first = pebble
        .wait_for_leaf(https, None, Duration::from_secs(30))
        .await;
    drop(server);
    // A restart serves the stored certificate at once and orders nothing.
    let listener = rebind(https).await;
    let server = conclave::Server::start(config, listener).await.unwrap();
    assert_eq!(
        server.certificate(),
        first,
        "the stored certificate serves after a restart"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = std::fs::read_to_string(&pebble.log).unwrap_or_default();
    assert_eq!(
        log.matches("Issued certificate serial").count(),
        1,
        "{}",
        pebble.log()
    );
    assert!(log.contains("validate w/ HTTP"), "{}", pebble.log());
    drop(server);
}
