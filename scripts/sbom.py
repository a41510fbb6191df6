#!/usr/bin/env python3
"""CycloneDX 1.6 SBOM of the `conclave` binary's dependencies.

Reads `cargo metadata --locked` (the resolved graph for this platform) and Cargo.lock (the
SHA-256 of every crate archive), keeps the crates linked into the binary (normal
dependencies, transitively; build scripts' dependencies and proc-macros are listed
separately as `scope: excluded`), and writes one JSON document with, per BSI TR-03183-2: name, version,
licence, package URL, archive hash, the dependency graph, and the SHA-512, file name and
kind of the deployable binary (and of the .deb when given).

Usage: scripts/sbom.py --binary target/release/conclave [--deb file.deb] --out sbom.cdx.json
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import uuid
from datetime import datetime, timezone


def sha512(path):
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def host_triple():
    out = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line[len("host: "):]
    sys.exit("sbom: rustc -vV printed no host triple")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--deb")
    ap.add_argument("--out", required=True)
    ap.add_argument("--package", default="conclave")
    args = ap.parse_args()

    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked",
             "--filter-platform", host_triple()],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    with open(os.path.join(meta["workspace_root"], "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(i for i in meta["workspace_members"] if packages[i]["name"] == args.package)

    def deps_of(node_id, kinds):
        return [d["pkg"] for d in nodes[node_id]["deps"]
                if any(k["kind"] in kinds for k in d["dep_kinds"])]

    def proc_macro(pid):
        return any("proc-macro" in t["kind"] for t in packages[pid]["targets"])

    # Linked into the binary: normal dependencies, transitively, except proc-macros (they
    # run in the compiler).
    linked, todo = set(), [root]
    while todo:
        cur = todo.pop()
        for d in deps_of(cur, (None,)):
            if d not in linked and not proc_macro(d):
                linked.add(d)
                todo.append(d)
    # Only used while building: build scripts, proc-macros, and what they need.
    build_only = set()
    todo = [i for n in [root, *linked] for i in deps_of(n, ("build",))]
    todo += [d for n in [root, *linked] for d in deps_of(n, (None,)) if proc_macro(d)]
    while todo:
        cur = todo.pop()
        if cur in linked or cur in build_only:
            continue
        build_only.add(cur)
        todo.extend(deps_of(cur, (None, "build")))

    def ref(pid):
        p = packages[pid]
        return f"{p['name']}@{p['version']}"

    def component(pid, scope):
        p = packages[pid]
        c = {
            "type": "library",
            "bom-ref": ref(pid),
            "name": p["name"],
            "version": p["version"],
            "scope": scope,
            "purl": f"pkg:cargo/{p['name']}@{p['version']}",
        }
        if p.get("license"):
            c["licenses"] = [{"expression": p["license"]}]
        if p.get("description"):
            c["description"] = " ".join(p["description"].split())
        digest = checksums.get((p["name"], p["version"]))
        if digest:
            c["hashes"] = [{"alg": "SHA-256", "content": digest}]
        refs = []
        if p.get("repository"):
            refs.append({"type": "vcs", "url": p["repository"]})
        if refs:
            c["externalReferences"] = refs
        if p["id"] in meta["workspace_members"]:
            c["properties"] = [{"name": "cdx:cargo:workspace-member", "value": "true"}]
        return c

    rootp = packages[root]
    binary_name = os.path.basename(args.binary)
    main_component = {
        "type": "application",
        "bom-ref": ref(root),
        "name": rootp["name"],
        "version": rootp["version"],
        "licenses": [{"expression": rootp.get("license") or "NOASSERTION"}],
        "purl": f"pkg:cargo/{rootp['name']}@{rootp['version']}",
        "hashes": [{"alg": "SHA-512", "content": sha512(args.binary)}],
        "properties": [
            {"name": "bsi:component:filename", "value": binary_name},
            {"name": "bsi:component:executable", "value": "executable"},
            {"name": "bsi:component:archive", "value": "no archive"},
            {"name": "bsi:component:structured", "value": "unstructured"},
        ],
    }
    if args.deb:
        main_component["components"] = [{
            "type": "file",
            "bom-ref": "deb:" + os.path.basename(args.deb),
            "name": os.path.basename(args.deb),
            "version": rootp["version"],
            "hashes": [{"alg": "SHA-512", "content": sha512(args.deb)}],
            "properties": [
                {"name": "bsi:component:filename", "value": os.path.basename(args.deb)},
                {"name": "bsi:component:archive", "value": "archive"},
            ],
        }]

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    included = sorted(linked) + sorted(build_only)
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ref(root) + sha512(args.binary))}",
        "version": 1,
        "metadata": {
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "scripts/sbom.py"}]},
            "component": main_component,
        },
        "components": [component(i, "required") for i in sorted(linked)]
        + [component(i, "excluded") for i in sorted(build_only)],
        "dependencies": [
            {"ref": ref(i), "dependsOn": sorted({ref(d) for d in deps_of(i, (None,))})}
            for i in [root, *included]
        ],
    }
    with open(args.out, "w") as f:
        json.dump(bom, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"sbom: {args.out}: {len(linked)} linked crates, {len(build_only)} build-only")


if __name__ == "__main__":
    main()
