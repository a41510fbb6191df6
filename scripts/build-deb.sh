#!/usr/bin/env bash
# Builds the Debian package from a clone, in one command:
#   scripts/build-deb.sh
# Output in target/debian/: conclave_<version>_<arch>.deb and its CycloneDX SBOM
# conclave_<version>_<arch>.cdx.json. The binary is built with --locked (Cargo.lock as
# committed) through cargo-auditable, which embeds the dependency list in the binary
# (section .dep-v0; `cargo audit bin`, syft and trivy read it). Installs cargo-auditable if
# missing. File dates come from SOURCE_DATE_EPOCH (default: the last commit).
set -euo pipefail
cd "$(dirname "$0")/.."

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
if ! cargo auditable --version >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-auditable
fi
cargo auditable build --release --locked -p conclave
# A binary built earlier by plain `cargo build` counts as fresh; relink it through
# cargo-auditable if it lacks the embedded list.
if ! objdump -h target/release/conclave | grep -q '\.dep-v0'; then
  touch crates/conclave/src/main.rs
  cargo auditable build --release --locked -p conclave
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
out=target/debian
root="$out/root"
name="conclave_${version}_${arch}"
rm -rf "$root"
mkdir -p "$root/DEBIAN"

install -D -m 0755 target/release/conclave "$root/usr/bin/conclave"
# Debug line tables are for development; .dep-v0 (not debug info) stays.
strip --strip-debug "$root/usr/bin/conclave"
install -D -m 0644 packaging/conclave.service "$root/lib/systemd/system/conclave.service"
install -D -m 0640 packaging/conclave.toml "$root/etc/conclave/conclave.toml"
doc="$root/usr/share/doc/conclave"
install -D -m 0644 README.md "$doc/README.md"
install -D -m 0644 conclave.example.toml "$doc/conclave.example.toml"
for f in operations.md security.md architecture.md protocol.md; do
  install -D -m 0644 "docs/$f" "$doc/$f"
done
install -D -m 0644 LICENSE "$doc/copyright"

installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" packaging/debian/control >"$root/DEBIAN/control"
echo "Installed-Size: $installed_kb" >>"$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

dpkg-deb --root-owner-group -Zxz --build "$root" "$out/$name.deb" >/dev/null
python3 scripts/sbom.py --binary "$root/usr/bin/conclave" --deb "$out/$name.deb" \
  --out "$out/$name.cdx.json"
echo "built $out/$name.deb"
