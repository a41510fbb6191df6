#!/usr/bin/env bash
# Runs every test of Conclave on a fresh Debian machine: installs what it needs (Debian's
# chromium, npm packages), checks formatting, lints, type-checks the web client, runs the
# Rust unit and integration tests and the browser tests. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS=0
# One SOURCE_DATE_EPOCH for every cargo step: cc-rs reruns C builds (aws-lc-sys, SQLite) when
# it changes, and scripts/build-deb.sh sets it, which made the package step rebuild half the
# dependency tree (about 3 minutes).
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
# Each step prints the time since the start, so CI logs show where the budget goes.
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "system packages"
# chromium and firefox-esr for the browser tests; coturn for its turnutils_uclient, a real
# third-party TURN client the TURN tests drive; nftables, iptables (its NFQUEUE target),
# python3 and iproute2 for the network tests; testssl.sh and openssl to scan our TLS against
# BSI TR-02102-2; pebble, a real ACME CA, for certificate issuance and renewal;
# python3-prometheus-client, the reference OpenMetrics parser the metrics test reads /metrics with;
# oathtool, an independent TOTP implementation the second-factor test takes its codes from.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
command -v turnutils_uclient >/dev/null 2>&1 || need+=(coturn)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables-legacy >/dev/null 2>&1 || need+=(iptables)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v testssl >/dev/null 2>&1 || need+=(testssl.sh)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v pebble >/dev/null 2>&1 || need+=(pebble)
command -v oathtool >/dev/null 2>&1 || need+=(oathtool)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need+=(python3-prometheus-client)
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
chromium --version
firefox-esr --version

step "npm packages"
npm ci --no-audit --no-fund --loglevel=error

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --release -- -D warnings

step "web client type check and logic tests"
npm run --silent typecheck
node --test tests/web/

step "build"
# Through cargo-auditable (dependency list embedded in the binary), so the binary the tests
# run is the one the package ships.
cargo auditable --version >/dev/null 2>&1 || cargo install --locked --quiet cargo-auditable
cargo auditable build --release --workspace --locked

step "Rust tests (unit + integration over real UDP)"
cargo test --release --workspace

step "browser tests (Debian chromium and firefox-esr, fake devices)"
E2E_SERVER_BIN="$PWD/target/release/conclave" node --test tests/e2e/

step "network tests (namespaces: only TCP 443 open, relay_only, packet loss)"
tests/netns/run.sh

step "package (.deb contents, unit sandbox score, SBOM, cargo deny)"
tests/package/run.sh

step "all tests passed"
