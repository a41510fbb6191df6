// The vendored third-party code (web/vendor/, written by scripts/vendor-mls.mjs) is exactly what
// its manifest says, loads as plain relative ES modules (the CSP allows no import map), and
// the vendored ts-mls works: a two-member group round trip in node.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const VENDOR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'vendor');

/** every file under dir, as posix paths relative to VENDOR */
function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [relative(VENDOR, join(dir, e.name)).split(sep).join('/')],
  );
}

function manifest() {
  const entries = new Map();
  const packages = [];
  const patches = [];
  for (const line of readFileSync(join(VENDOR, 'MANIFEST.txt'), 'utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('package ')) { packages.push(line); continue; }
    if (line.startsWith('patch ')) { patches.push(line); continue; }
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
    assert.ok(m, `malformed MANIFEST line: ${line}`);
    assert.ok(!entries.has(m[2]), `duplicate MANIFEST entry ${m[2]}`);
    entries.set(m[2], m[1]);
  }
  return { entries, packages, patches };
}

test('vendor: every file matches its MANIFEST hash, and nothing unlisted is there', () => {
  const { entries, packages } = manifest();
  assert.deepEqual(packages.map((l) => l.split(' ').slice(1, 3).join('@')), [
    'ts-mls@1.6.4', '@hpke/core@1.9.0', '@hpke/common@1.10.1', '@noble/ciphers@2.1.1', '@noble/hashes@2.0.1',
  ]);
  assert.ok(entries.size > 100, `only ${entries.size} files in the manifest`);
  const names = [...entries.keys()];
  assert.deepEqual(names, [...names].sort(), 'MANIFEST entries are sorted');
  for (const [path, hash] of entries) {
    const actual = createHash('sha256').update(readFileSync(join(VENDOR, path))).digest('hex');
    assert.equal(actual, hash, `${path}: content differs from MANIFEST.txt`);
  }
  const unlisted = walk(VENDOR).filter((f) => f !== 'MANIFEST.txt' && !entries.has(f));
  assert.deepEqual(unlisted, [], 'files in web/vendor that MANIFEST.txt does not list');
  for (const dir of ['ts-mls', 'hpke-core', 'hpke-common', 'noble-ciphers', 'noble-hashes']) {
    assert.ok(entries.has(`${dir}/LICENSE`), `${dir}/LICENSE is vendored`);
  }
});

test('vendor: MANIFEST.txt lists every patch of scripts/mls-patches/ with its current hash', () => {
  const { patches } = manifest();
  const dir = join(VENDOR, '..', '..', 'scripts', 'mls-patches');
  const expected = readdirSync(dir).filter((f) => f.endsWith('.patch')).sort()
    .map((f) => `patch ${f} ${createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')}`);
  assert.ok(expected.length >= 2, 'the two performance patches are there');
  assert.deepEqual(patches, expected, 'a patch changed (or was added) without re-running node scripts/vendor-mls.mjs');
  // each patch marks what it changed in the vendored code
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.patch'))) {
    const added = readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l.startsWith('+') && !l.startsWith('+++'));
    assert.ok(added.some((l) => l.includes('Conclave patch')), `${f} marks its change with "Conclave patch"`);
  }
});

test('vendor: no bare import specifier is left in any vendored .js file', () => {
  const staticImport = /^\s*(?:import|export)\b[^'"`;]*?\bfrom\s*(['"])([^'"]+)\1/gm;
  const sideEffect = /^\s*import\s*(['"])([^'"]+)\1/gm;
  const dynamicImport = /\bimport\s*\(\s*(['"`])([^'"`]+)\1/g;
  const files = walk(VENDOR).filter((f) => f.endsWith('.js'));
  assert.ok(files.length > 100);
  const bare = [];
  let relativeCount = 0;
  for (const f of files) {
    const text = readFileSync(join(VENDOR, f), 'utf8');
    for (const re of [staticImport, sideEffect, dynamicImport]) {
      for (const m of text.matchAll(re)) {
        if (m[2].startsWith('./') || m[2].startsWith('../')) relativeCount++;
        else bare.push(`${f}: ${m[2]}`);
      }
    }
    // dynamic import with a computed specifier would escape the check above
    assert.doesNotMatch(text, /\bimport\s*\(\s*[^'"`\s)]/, `${f} has a computed dynamic import`);
  }
  assert.deepEqual(bare, []);
  assert.ok(relativeCount > 300, `the regexes found only ${relativeCount} relative imports (are they still matching?)`);
});

test('vendor: the vendored ts-mls runs a two-member group (create, add, join) in node', async () => {
  const mls = await import('../../web/vendor/ts-mls/index.js');
  const te = new TextEncoder();
  const impl = await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'));
  const kp = (/** @type {string} */ name) =>
    mls.generateKeyPackage({ credentialType: 'basic', identity: te.encode(name) }, mls.defaultCapabilities(), mls.defaultLifetime, [], impl);
  const alice = await kp('alice');
  const bob = await kp('bob');
  const a0 = await mls.createGroup(te.encode('vendor-test'), alice.publicPackage, alice.privatePackage, [], impl);
  const add = await mls.createCommit({ state: a0, cipherSuite: impl }, {
    extraProposals: [{ proposalType: 'add', add: { keyPackage: bob.publicPackage } }],
    ratchetTreeExtension: true,
  });
  assert.ok(add.welcome);
  // through the wire format, as the server would relay it
  const welcome = mls.decodeMlsMessage(mls.encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: add.welcome }), 0);
  assert.ok(welcome && welcome[0].wireformat === 'mls_welcome');
  const b1 = await mls.joinGroup(welcome[0].welcome, bob.publicPackage, bob.privatePackage, mls.emptyPskIndex, impl);
  const a1 = add.newState;
  assert.equal(a1.groupContext.epoch, 1n);
  assert.equal(b1.groupContext.epoch, 1n);
  assert.deepEqual(b1.keySchedule.epochAuthenticator, a1.keySchedule.epochAuthenticator);
  // and an application message from bob to alice
  const msg = await mls.createApplicationMessage(b1, te.encode('hello'), impl);
  const got = await mls.processPrivateMessage(a1, msg.privateMessage, mls.emptyPskIndex, impl);
  assert.equal(got.kind, 'applicationMessage');
  assert.equal(new TextDecoder().decode(got.kind === 'applicationMessage' ? got.message : new Uint8Array()), 'hello');
});
