#!/usr/bin/env node
// Vendors ts-mls (MLS, RFC 9420) and its runtime dependencies into web/vendor/ as plain
// relative ES modules, so the browser loads them under `script-src 'self'` without an import map.
//
//   node scripts/vendor-mls.mjs        (needs npm, tar and the devDependency typescript)
//
// What it does, reproducibly (running it twice gives byte-identical output):
// 1. `npm pack` the pinned versions below into a temp dir and checks each tarball against the
//    pinned sha512 integrity (the same value as in a lockfile).
// 2. Follows the STATIC import graph from ts-mls's entry (dist/src/index.js) across the five
//    packages and copies only the reachable .js files. Imports are found with TypeScript's
//    scanner (ts.preProcessFile), so imports inside comments and strings are not touched.
// 3. Rewrites every bare specifier (`@hpke/core`, `@noble/hashes/sha2.js`, ...) to a relative
//    path. Dynamic imports of files that are not vendored (optional algorithms of other
//    ciphersuites: X448, ML-KEM, ChaCha20, P-256/Ed448 signatures, and node's "crypto" fallback
//    for node <= 18) become `Promise.reject(new Error("... not vendored ..."))`: only
//    ciphersuite 1 (X25519, AES-128-GCM, SHA-256, Ed25519, all WebCrypto) is supported.
//    Trailing `//# sourceMappingURL=` comments are dropped (the maps are not vendored).
// 4. Applies our patches, scripts/mls-patches/*.patch in name order (unified diffs against the
//    output of step 3, paths relative to web/vendor/; each says why at its top). A hunk must
//    match exactly at its line number: a patch that does not fit stops the script.
// 5. Copies ts-mls's .d.ts files reachable from index.d.ts (types for `tsc --checkJs` of our
//    code; not served: http.rs excludes *.d.ts), each package's LICENSE, and writes
//    web/vendor/MANIFEST.txt: package versions + integrity, then `sha256  path` of every file,
//    sorted, and the patches applied with their sha256 (checked by tests/web/vendor.test.mjs; `cd web/vendor && sha256sum -c` also works
//    on the hash lines).
//
// Pins: ts-mls 1.6.4 depends on @hpke/core 1.9.0 (exact), which depends on @hpke/common
// ^1.10.0 (1.10.1 is the newest 1.10.x). @noble/ciphers 2.1.1 is an exact peer dependency of
// ts-mls; @noble/hashes 2.0.1 is imported by ts-mls but not declared (it is what
// @noble/curves 2.0.1, another exact peer of ts-mls, depends on).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(REPO, 'web', 'vendor');

/** name, version, sha512 integrity, directory inside the package that is vendored, target dir */
const PACKAGES = [
  { name: 'ts-mls', version: '1.6.4', root: 'dist/src', dir: 'ts-mls',
    integrity: 'sha512-BFb9qJ3V1+HIuifC+MtnlROEj3oc6NEzA7Ig1/LAmANDRhNay7UCnwkzijzHH9cav5wf1BoJw8KQ2mXiEhPy1Q==' },
  { name: '@hpke/core', version: '1.9.0', root: 'esm', dir: 'hpke-core',
    integrity: 'sha512-pFxWl1nNJeQCSUFs7+GAblHvXBCjn9EPN65vdKlYQil2aURaRxfGMO6vBKGqm1YHTKwiAxJQNEI70PbSowMP9Q==' },
  { name: '@hpke/common', version: '1.10.1', root: 'esm', dir: 'hpke-common',
    integrity: 'sha512-moJwhmtLtuxiUzzNp1jpfBfx8yefKoO9D/RCR9dmwrnc7qjJqId1rEtQz+lSlU5cabX8daToMSx/7HayXOiaFw==' },
  { name: '@noble/ciphers', version: '2.1.1', root: '', dir: 'noble-ciphers',
    integrity: 'sha512-bysYuiVfhxNJuldNXlFEitTVdNnYUc+XNJZd7Qm2a5j1vZHgY+fazadNFWFaMK/2vye0JVlxV3gHmC0WDfAOQw==' },
  { name: '@noble/hashes', version: '2.0.1', root: '', dir: 'noble-hashes',
    integrity: 'sha512-XlOlEbQcE9fmuXxrVTXCTlG2nlRXa9Rj3rr5Ue/+tX+nmkgbX720YHh0VR3hBF9xDvwnb8D2shVGOwNx+ulArw==' },
];

function fail(msg) {
  throw new Error('vendor-mls: ' + msg);
}

/** A unified diff (`git diff` form; text before the first `--- ` is its description).
 * @returns {Map<string, {start: number, old: string[], new: string[]}[]>} file -> hunks */
function parsePatch(name, text) {
  const files = new Map();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let i = lines.findIndex((l) => l.startsWith('--- '));
  if (i < 0) fail(`${name}: no diff in it`);
  while (i < lines.length) {
    if (lines[i].startsWith('diff --git ') || lines[i].startsWith('index ')) { i++; continue; }
    if (!lines[i].startsWith('--- a/') || !lines[i + 1]?.startsWith('+++ b/')) fail(`${name}:${i + 1}: expected a --- a/ +++ b/ file header`);
    const file = lines[i + 1].slice(6);
    if (lines[i].slice(6) !== file) fail(`${name}:${i + 1}: renames are not supported`);
    i += 2;
    const hunks = [];
    while (i < lines.length && lines[i].startsWith('@@ ')) {
      const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(lines[i]);
      if (!m) fail(`${name}:${i + 1}: bad hunk header`);
      const hunk = { start: Number(m[1]), old: [], new: [] };
      let oldLeft = m[2] === undefined ? 1 : Number(m[2]), newLeft = m[4] === undefined ? 1 : Number(m[4]);
      i++;
      while (oldLeft > 0 || newLeft > 0) {
        const l = lines[i++];
        if (l === undefined) fail(`${name}: hunk at line ${hunk.start} of ${file} is cut short`);
        if (l.startsWith('\\')) continue; // "\ No newline at end of file"
        const body = l.slice(1);
        if (l[0] === ' ') { hunk.old.push(body); hunk.new.push(body); oldLeft--; newLeft--; }
        else if (l[0] === '-') { hunk.old.push(body); oldLeft--; }
        else if (l[0] === '+') { hunk.new.push(body); newLeft--; }
        else fail(`${name}:${i}: unexpected line in a hunk`);
      }
      hunks.push(hunk);
    }
    if (hunks.length === 0) fail(`${name}: ${file} has no hunks`);
    if (files.has(file)) fail(`${name}: ${file} appears twice`);
    files.set(file, hunks);
  }
  return files;
}

/** Applies hunks exactly (no offset, no fuzz). */
function applyHunks(name, file, text, hunks) {
  const lines = text.split('\n');
  let shift = 0;
  for (const h of hunks) {
    const at = h.start - 1 + shift + (h.old.length === 0 ? 1 : 0);
    const found = lines.slice(at, at + h.old.length);
    if (found.length !== h.old.length || found.some((l, k) => l !== h.old[k])) fail(`${name}: the hunk at line ${h.start} of ${file} does not match the vendored file`);
    lines.splice(at, h.old.length, ...h.new);
    shift += h.new.length - h.old.length;
  }
  return lines.join('\n');
}

// ---- 1. fetch and verify -------------------------------------------------------------------
const tmp = mkdtempSync(join(tmpdir(), 'vendor-mls-'));
try {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', tmp, ...PACKAGES.map((p) => `${p.name}@${p.version}`)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
  for (const p of PACKAGES) {
    const entry = packed.find((e) => e.name === p.name);
    if (!entry || entry.version !== p.version) fail(`npm pack did not return ${p.name}@${p.version}`);
    const tgz = readFileSync(join(tmp, entry.filename));
    const integrity = 'sha512-' + createHash('sha512').update(tgz).digest('base64');
    if (integrity !== p.integrity) fail(`${p.name}@${p.version}: integrity ${integrity} differs from the pinned ${p.integrity}`);
    const dest = join(tmp, p.dir);
    mkdirSync(dest);
    execFileSync('tar', ['xzf', join(tmp, entry.filename), '-C', dest]);
    p.pkgDir = join(dest, 'package');
    p.json = JSON.parse(readFileSync(join(p.pkgDir, 'package.json'), 'utf8'));
  }

  // ---- 2. resolution + graph walk ------------------------------------------------------------
  /** @returns {{pkg: object, file: string}} file relative to the package dir (posix) */
  function resolveBare(spec) {
    const p = PACKAGES.find((q) => spec === q.name || spec.startsWith(q.name + '/'));
    if (!p) return null;
    const sub = spec === p.name ? '.' : '.' + spec.slice(p.name.length);
    const exp = p.json.exports;
    let target = null;
    const pick = (v) => (typeof v === 'string' ? v : v && (v.import ?? v.default));
    if (exp && exp[sub] !== undefined) target = pick(exp[sub]);
    else if (exp) {
      for (const [k, v] of Object.entries(exp)) {
        const star = k.indexOf('*');
        if (star < 0) continue;
        const pre = k.slice(0, star), post = k.slice(star + 1);
        if (sub.startsWith(pre) && sub.endsWith(post) && sub.length >= pre.length + post.length) {
          target = pick(v).replace('*', sub.slice(pre.length, sub.length - post.length));
          break;
        }
      }
    }
    if (!target) fail(`cannot resolve ${spec} with the exports of ${p.name}`);
    return { pkg: p, file: posix.normalize(target) };
  }

  /** vendored path (posix, relative to web/vendor) of a package file */
  function vendorPath(pkg, file) {
    const rel = pkg.root ? posix.relative(pkg.root, file) : file;
    if (rel.startsWith('..')) fail(`${pkg.name}/${file} is outside ${pkg.root}`);
    return posix.join(pkg.dir, rel);
  }

  /** imports of a file: [{spec, pos, end, dynamic}] (pos/end = the string literal's content) */
  function importsOf(text) {
    const info = ts.preProcessFile(text, true, true);
    return info.importedFiles.map((f) => {
      // f.pos is at (or just before) the opening quote, depending on the construct
      const q = /['"]/.test(text[f.pos]) ? f.pos : f.pos - 1;
      const pos = q + 1, end = pos + f.fileName.length;
      if (!/['"]/.test(text[q]) || text.slice(pos, end) !== f.fileName || text[end] !== text[q]) fail(`cannot locate the import of ${f.fileName}`);
      let i = q - 1;
      while (i >= 0 && /\s/.test(text[i])) i--;
      let dynamic = false;
      if (text[i] === '(') {
        let j = i - 1;
        while (j >= 0 && /\s/.test(text[j])) j--;
        dynamic = text.slice(j - 5, j + 1) === 'import';
      }
      return { spec: f.fileName, pos, end, dynamic };
    });
  }

  function target(pkg, file, spec) {
    if (spec.startsWith('.')) return { pkg, file: posix.normalize(posix.join(posix.dirname(file), spec)) };
    return resolveBare(spec);
  }

  const files = new Map(); // vendor path -> {pkg, file, text, imports}
  const tsmls = PACKAGES[0];
  const queue = [{ pkg: tsmls, file: posix.join(tsmls.root, 'index.js') }];
  while (queue.length) {
    const { pkg, file } = queue.shift();
    const vp = vendorPath(pkg, file);
    if (files.has(vp)) continue;
    const abs = join(pkg.pkgDir, file);
    if (!existsSync(abs)) fail(`missing ${pkg.name}/${file}`);
    const text = readFileSync(abs, 'utf8');
    const imports = importsOf(text);
    files.set(vp, { pkg, file, text, imports });
    for (const im of imports) {
      if (im.dynamic) continue;
      const t = target(pkg, file, im.spec);
      if (!t) fail(`${pkg.name}/${file} statically imports ${im.spec}, which is not one of the vendored packages`);
      queue.push(t);
    }
  }

  // ---- 3. rewrite and write ------------------------------------------------------------------
  rmSync(OUT, { recursive: true, force: true });
  const out = new Map(); // vendor path -> content
  for (const [vp, { pkg, file, text, imports }] of files) {
    let s = text;
    // replace from the end so that positions stay valid
    for (const im of [...imports].sort((a, b) => b.pos - a.pos)) {
      const t = im.spec.startsWith('.') && !im.dynamic ? null : target(pkg, file, im.spec);
      if (!im.dynamic) {
        if (!t) continue; // relative static import: layout is preserved, keep it
        let rel = posix.relative(posix.dirname(vp), vendorPath(t.pkg, t.file));
        if (!rel.startsWith('.')) rel = './' + rel;
        s = s.slice(0, im.pos) + rel + s.slice(im.end);
        continue;
      }
      const tvp = t && vendorPath(t.pkg, t.file);
      if (t && files.has(tvp)) {
        let rel = posix.relative(posix.dirname(vp), tvp);
        if (!rel.startsWith('.')) rel = './' + rel;
        s = s.slice(0, im.pos) + rel + s.slice(im.end);
        continue;
      }
      // import("x") -> Promise.reject(...): find the `import(` before and the `)` after
      const start = s.lastIndexOf('import', im.pos);
      const close = s.indexOf(')', im.end);
      if (start < 0 || close < 0 || !/^import\s*\(\s*$/.test(s.slice(start, im.pos - 1))) fail(`cannot rewrite dynamic import of ${im.spec} in ${vp}`);
      const msg = JSON.stringify(`${im.spec} is not vendored: only MLS ciphersuite 1 is supported (web/vendor/MANIFEST.txt)`);
      s = s.slice(0, start) + `Promise.reject(new Error(${msg}))` + s.slice(close + 1);
    }
    s = s.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
    out.set(vp, s);
  }

  // ---- 4. our patches ------------------------------------------------------------------------
  const PATCHES = join(REPO, 'scripts', 'mls-patches');
  const patches = readdirSync(PATCHES).filter((f) => f.endsWith('.patch')).sort();
  for (const name of patches) {
    const text = readFileSync(join(PATCHES, name), 'utf8');
    for (const [file, hunks] of parsePatch(name, text)) {
      if (!out.has(file)) fail(`${name}: ${file} is not a vendored file`);
      out.set(file, applyHunks(name, file, out.get(file), hunks));
    }
  }

  // ts-mls declaration files reachable from index.d.ts (relative imports only; their few
  // bare type imports of @hpke/core stay as they are: not resolvable, so `any`, and
  // skipLibCheck keeps tsc quiet about them)
  const dq = [posix.join(tsmls.root, 'index.d.ts')];
  while (dq.length) {
    const file = dq.shift();
    const vp = vendorPath(tsmls, file);
    if (out.has(vp)) continue;
    const abs = join(tsmls.pkgDir, file);
    if (!existsSync(abs)) fail(`missing ts-mls/${file}`);
    const text = readFileSync(abs, 'utf8');
    out.set(vp, text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
    for (const im of importsOf(text)) {
      if (!im.spec.startsWith('.')) continue;
      dq.push(posix.normalize(posix.join(posix.dirname(file), im.spec.replace(/\.js$/, '.d.ts'))));
    }
  }

  for (const p of PACKAGES) {
    const lic = readdirSync(p.pkgDir).find((f) => /^licen[cs]e(\.md|\.txt)?$/i.test(f));
    if (!lic) fail(`${p.name} has no LICENSE file`);
    out.set(posix.join(p.dir, 'LICENSE'), readFileSync(join(p.pkgDir, lic), 'utf8'));
  }

  const lines = [];
  for (const vp of [...out.keys()].sort()) {
    const abs = join(OUT, ...vp.split('/'));
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, out.get(vp));
    lines.push(`${createHash('sha256').update(out.get(vp)).digest('hex')}  ${vp}`);
  }
  const js = [...out.keys()].filter((f) => f.endsWith('.js'));
  const jsBytes = js.reduce((n, f) => n + Buffer.byteLength(out.get(f)), 0);
  const header = [
    '# Third-party code vendored by scripts/vendor-mls.mjs. Do not edit: re-run the script.',
    '# Only the .js files statically reachable from ts-mls/index.js, bare specifiers rewritten to',
    '# relative paths, then our patches (scripts/mls-patches/) applied; ts-mls/**/*.d.ts are types',
    '# for tsc only (not served).',
    ...PACKAGES.map((p) => `package ${p.name} ${p.version} ${p.integrity} -> ${p.dir}/ (license ${p.json.license})`),
    ...patches.map((name) => `patch ${name} ${createHash('sha256').update(readFileSync(join(PATCHES, name))).digest('hex')}`),
    `# ${js.length} .js files, ${jsBytes} bytes`,
    '',
  ];
  writeFileSync(join(OUT, 'MANIFEST.txt'), header.join('\n') + lines.join('\n') + '\n');
  for (const p of PACKAGES) {
    const n = js.filter((f) => f.startsWith(p.dir + '/'));
    console.log(`${p.name}@${p.version}: ${n.length} .js files, ${Math.round(n.reduce((a, f) => a + Buffer.byteLength(out.get(f)), 0) / 1024)} KB`);
  }
  console.log(`wrote ${relative(REPO, OUT)}/: ${out.size} files (${js.length} .js, ${Math.round(jsBytes / 1024)} KB of .js)`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
