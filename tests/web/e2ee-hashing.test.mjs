// The synchronous SHA-256 / HMAC / HKDF that replace WebCrypto's in the MLS ciphersuite
// (web/e2ee/hashing.js) must give exactly WebCrypto's bytes, for every input shape ts-mls
// uses (empty and hash-sized salts, the only ones MLS and the reference HKDF take; infos;
// lengths across block boundaries), and a group built
// with them must agree with one built on WebCrypto.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as mls from '../../web/vendor/ts-mls/index.js';
import { hkdfExpand, hkdfExtract, withFastHashing } from '../../web/e2ee/hashing.js';

const CS = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519';
const random = (n) => crypto.getRandomValues(new Uint8Array(n));

test('hash, HMAC and HKDF equal WebCrypto byte for byte', async () => {
  const slow = await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(CS));
  const fast = await withFastHashing(slow);
  for (const [saltLen, ikmLen, infoLen, outLen] of [[0, 32, 0, 16], [32, 32, 10, 32], [32, 100, 70, 12], [0, 1, 200, 100], [32, 0, 1, 255]]) {
    const salt = random(saltLen);
    const ikm = random(ikmLen);
    const info = random(infoLen);
    const prk = await slow.kdf.extract(salt, ikm);
    assert.deepEqual(await fast.kdf.extract(salt, ikm), prk);
    assert.deepEqual(hkdfExtract(salt, ikm), prk);
    assert.deepEqual(await fast.kdf.expand(prk, info, outLen), await slow.kdf.expand(prk, info, outLen));
    assert.deepEqual(hkdfExpand(prk, info, outLen), await slow.kdf.expand(prk, info, outLen));
    assert.deepEqual(await fast.hash.digest(ikm), await slow.hash.digest(ikm));
    const key = saltLen > 0 ? salt : random(16); // WebCrypto refuses empty HMAC keys
    const mac = await slow.hash.mac(key, ikm);
    assert.deepEqual(await fast.hash.mac(key, ikm), mac);
    assert.equal(await fast.hash.verifyMac(key, mac, ikm), true);
    mac[0] ^= 1;
    assert.equal(await fast.hash.verifyMac(key, mac, ikm), false);
  }
  assert.throws(() => hkdfExpand(random(32), random(1), 255 * 32 + 1), RangeError);
});

test('a member on fast hashing and one on WebCrypto reach the same epoch secrets', async () => {
  const slow = await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(CS));
  const fast = await withFastHashing(slow);
  const te = new TextEncoder();
  const a = await mls.generateKeyPackage({ credentialType: 'basic', identity: te.encode('a') }, mls.defaultCapabilities(), mls.defaultLifetime, [], slow);
  const b = await mls.generateKeyPackage({ credentialType: 'basic', identity: te.encode('b') }, mls.defaultCapabilities(), mls.defaultLifetime, [], fast);
  const group = await mls.createGroup(te.encode('g'), a.publicPackage, a.privatePackage, [], slow);
  const res = await mls.createCommit({ state: group, cipherSuite: slow }, { extraProposals: [{ proposalType: 'add', add: { keyPackage: b.publicPackage } }], ratchetTreeExtension: true });
  const bState = await mls.joinGroup(res.welcome, b.publicPackage, b.privatePackage, mls.emptyPskIndex, fast);
  assert.deepEqual(bState.keySchedule.epochAuthenticator, res.newState.keySchedule.epochAuthenticator);
  assert.deepEqual(bState.keySchedule.exporterSecret, res.newState.keySchedule.exporterSecret);
});
