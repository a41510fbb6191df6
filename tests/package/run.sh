#!/usr/bin/env bash
# The Debian package and the supply-chain checks, from a clone:
# - builds the .deb (scripts/build-deb.sh) and checks its metadata and contents (owners,
#   modes, conffile);
# - extracts it into a throwaway root and runs the packaged binary there: --version, and
#   `config check` of the packaged /etc/conclave/conclave.toml (no errors; the only warning
#   is the missing certificate, which the operator sets);
# - checks the maintainer scripts' syntax;
# - rates the shipped unit with `systemd-analyze security --offline=yes` and fails above
#   2.0 (prints the score);
# - validates the SBOM against the CycloneDX 1.6 schema and compares its crates with the
#   list cargo-auditable embedded in the binary;
# - runs `cargo deny check licenses bans sources` (deny.toml).
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

scripts/build-deb.sh
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb="target/debian/conclave_${version}_$(dpkg --print-architecture).deb"
sbom="${deb%.deb}.cdx.json"

info=$(dpkg-deb --info "$deb")
grep -q "^ Package: conclave$" <<<"$info" || fail "package name: $info"
grep -q "^ Version: $version$" <<<"$info" || fail "version: $info"
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" = "/etc/conclave/conclave.toml" ] \
  || fail "conffiles"
ok "metadata: conclave $version, /etc/conclave/conclave.toml is a conffile"

contents=$(dpkg-deb --contents "$deb")
expect() { # mode owner path
  grep -qE "^$1 $2 .* \./$3$" <<<"$contents" || fail "$3 should be $1 $2:
$contents"
}
expect '-rwxr-xr-x' 'root/root' 'usr/bin/conclave'
expect '-rw-r--r--' 'root/root' 'lib/systemd/system/conclave.service'
expect '-rw-r-----' 'root/root' 'etc/conclave/conclave.toml'
for f in copyright operations.md security.md conclave.example.toml README.md; do
  expect '-rw-r--r--' 'root/root' "usr/share/doc/conclave/$f"
done
if grep -qE '\.pem$|\.key$|admin-key|token-secret' <<<"$contents"; then
  fail "the package ships a key or secret"
fi
ok "contents: binary, unit, conffile (0640), docs; no keys or secrets"

for s in postinst prerm postrm; do
  sh -n "packaging/debian/$s" || fail "$s syntax"
done
ok "maintainer scripts parse"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb --extract "$deb" "$root"
"$root/usr/bin/conclave" --version | grep -q "$version" || fail "--version"
set +e
check=$("$root/usr/bin/conclave" config check --config "$root/etc/conclave/conclave.toml")
code=$?
set -e
echo "$check" | sed 's/^/    /'
[ "$code" -eq 1 ] || fail "config check of the packaged config exited $code"
[ "$(grep -c '^warning' <<<"$check")" -eq 1 ] && grep -q '^warning: tls:' <<<"$check" \
  || fail "the packaged config should warn only about the certificate"
ok "the packaged binary runs; the packaged config has no errors, only the certificate to set"

analysis=$(systemd-analyze security --offline=yes --root="$root" --threshold=20 conclave.service 2>&1) \
  || fail "systemd-analyze rates the unit above 2.0:
$analysis"
score=$(grep -o 'Overall exposure level for conclave.service: .*' <<<"$analysis")
echo "    $score"
ok "unit sandbox: exposure at most 2.0"

python3 -c 'import cyclonedx' 2>/dev/null \
  || pip install --quiet --disable-pip-version-check "cyclonedx-python-lib[json-validation]==11.*"
objcopy --dump-section .dep-v0="$root/dep-v0" "$root/usr/bin/conclave" "$root/objcopy-out"
python3 - "$sbom" "$root/dep-v0" "$root/usr/bin/conclave" <<'PY'
import hashlib, json, sys, zlib
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
sbom_path, dep_path, binary = sys.argv[1:]
text = open(sbom_path).read()
err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
if err is not None:
    sys.exit(f"FAIL: SBOM is not valid CycloneDX 1.6: {err}")
bom = json.loads(text)
main = bom["metadata"]["component"]
listed = {(c["name"], c["version"]) for c in bom["components"]} | {(main["name"], main["version"])}
sha = hashlib.sha512(open(binary, "rb").read()).hexdigest()
if main["hashes"][0]["content"] != sha:
    sys.exit("FAIL: the SBOM's SHA-512 is not the packaged binary's")
raw = open(dep_path, "rb").read()
if not raw:
    sys.exit("FAIL: the binary has no cargo-auditable .dep-v0 section")
audit = json.loads(zlib.decompress(raw))
embedded = {(p["name"], p["version"]) for p in audit["packages"]}
if embedded != listed:
    sys.exit(f"FAIL: SBOM and embedded list differ: only in SBOM {sorted(listed - embedded)}, "
             f"only in the binary {sorted(embedded - listed)}")
linked = sum(1 for c in bom["components"] if c["scope"] == "required")
print(f"    SBOM: CycloneDX 1.6 valid; {len(listed)} crates ({linked} linked), the same as "
      f"cargo-auditable embedded in the binary")
PY
ok "SBOM valid and equal to the binary's embedded dependency list"

# 0.20 or later (older ones lack newer SPDX ids such as Unicode-3.0).
if ! cargo deny --version 2>/dev/null | grep -qE 'cargo-deny 0\.(2[0-9]|[3-9][0-9])'; then
  cargo install --locked --quiet cargo-deny@^0.20
fi
cargo deny --log-level error check licenses bans sources
ok "cargo deny: licences, bans, sources"
