// Account bindings of MLS leaves (web/e2ee/binding.js): a good leaf is bound, and every bent
// part of it (the server's signature, the payload, the origin, the expiry, the account key's
// signature, another room or MLS key) is reported as forged. Real Ed25519 (WebCrypto).
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  bindingMessage,
  checkLeaf,
  fingerprint,
  fromB64url,
  judge,
  leafMessage,
  toB64url,
} from '../../web/e2ee/binding.js';

const te = new TextEncoder();
const ORIGIN = 'https://meet.example.org';
const NOW = 1_800_000_000;

async function keyPair() {
  const k = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']));
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', k.publicKey));
  return { ...k, raw };
}

/** @param {CryptoKey} key @param {Uint8Array} msg */
async function sign(key, msg) {
  return new Uint8Array(await crypto.subtle.sign('Ed25519', key, msg));
}

async function fixture() {
  const server = await keyPair();
  const account = await keyPair();
  const mlsKey = crypto.getRandomValues(new Uint8Array(32));
  const binding = {
    v: 1,
    origin: ORIGIN,
    account: 7,
    username: 'alice',
    name: 'Alice Adler',
    source: 'local',
    key: toB64url(account.raw),
    iat: NOW - 60,
    exp: NOW + 3600,
  };
  /** @param {object} b @param {CryptoKey} by */
  const signBinding = async (b, by = server.privateKey) => {
    const payload = te.encode(JSON.stringify(b));
    return { payload: toB64url(payload), sig: toB64url(await sign(by, bindingMessage(payload))) };
  };
  /** @param {string} room @param {CryptoKey} by */
  const signLeaf = async (room, by = account.privateKey) => toB64url(await sign(by, leafMessage(room, mlsKey)));
  const leaf = {
    signed: await signBinding(binding),
    leafSig: await signLeaf('standup'),
    mlsSignatureKey: mlsKey,
    room: 'standup',
    serverKey: server.raw,
    origin: ORIGIN,
    now: NOW,
  };
  return { server, account, binding, leaf, signBinding, signLeaf };
}

test('a leaf signed by the account key under a binding of this server is bound', async () => {
  const { leaf, account } = await fixture();
  const r = await checkLeaf(leaf);
  assert.equal(r.status, 'bound');
  assert.ok(r.status === 'bound');
  assert.equal(r.binding.username, 'alice');
  assert.equal(r.fingerprint, await fingerprint(account.raw));
  assert.deepEqual(await checkLeaf({ ...leaf, signed: undefined, leafSig: undefined }), { status: 'none' });
});

test('every bent part is forged, each with its reason', async () => {
  const f = await fixture();
  const other = await keyPair();
  const reasons = [];
  const cases = [
    ['server', { serverKey: other.raw }, 'not signed by this server'],
    ['signed by another server', { signed: await f.signBinding(f.binding, other.privateKey) }, 'not signed by this server'],
    [
      'payload edited after signing',
      { signed: { ...f.leaf.signed, payload: toB64url(te.encode(JSON.stringify({ ...f.binding, username: 'mallory' }))) } },
      'not signed by this server',
    ],
    ['another origin', { signed: await f.signBinding({ ...f.binding, origin: 'https://evil.example' }) }, 'binding is for https://evil.example'],
    ['expired', { signed: await f.signBinding({ ...f.binding, exp: NOW }) }, 'binding expired'],
    ['not a binding', { signed: await f.signBinding({ ...f.binding, account: 'seven' }) }, 'binding is not a binding'],
    // The server vouches for its own key under alice's name, but the leaf was signed by alice's.
    ['a key the server swapped in', { signed: await f.signBinding({ ...f.binding, key: toB64url(other.raw) }) }, 'leaf not signed'],
    ['leaf signed by another key', { leafSig: await f.signLeaf('standup', other.privateKey) }, 'leaf not signed'],
    ['leaf of another room', { leafSig: await f.signLeaf('board') }, 'leaf not signed'],
    ['leaf of another room (a prefix)', { room: 'stand' }, 'leaf not signed'],
    ['leaf for another MLS key', { mlsSignatureKey: new Uint8Array(32) }, 'leaf not signed'],
    ['no leaf signature', { leafSig: undefined }, 'incomplete binding'],
    ['not base64url', { leafSig: '*/*' }, 'binding is not base64url'],
  ];
  for (const [what, change, reason] of cases) {
    const r = await checkLeaf({ ...f.leaf, ...change });
    assert.equal(r.status, 'forged', `${what}: ${JSON.stringify(r)}`);
    assert.ok(r.status === 'forged' && r.reason.startsWith(reason), `${what}: ${JSON.stringify(r)}`);
    reasons.push(r.status === 'forged' ? r.reason : '');
  }
  assert.equal(reasons.length, cases.length);
});

test('verified carries over only for the remembered key of that account', async () => {
  const f = await fixture();
  const bound = await checkLeaf(f.leaf);
  assert.ok(bound.status === 'bound');
  const fp = bound.fingerprint;
  assert.equal(judge(bound, new Map(), null), 'bound');
  assert.equal(judge(bound, new Map([[7, new Set([fp])]]), null), 'verified');
  assert.equal(judge(bound, new Map([[7, new Set(['ff'.repeat(32), fp])]]), null), 'verified', 'one of two devices');
  assert.equal(judge(bound, new Map([[7, new Set(['ff'.repeat(32)])]]), null), 'new_key');
  assert.equal(judge(bound, new Map([[8, new Set([fp])]]), null), 'bound', 'remembered for another account');
  assert.equal(judge(bound, new Map(), fp), 'verified', 'our own key (another tab of this profile)');
  assert.equal(judge({ status: 'forged', reason: 'x' }, new Map([[7, new Set([fp])]]), fp), 'forged');
  assert.equal(judge({ status: 'none' }, new Map(), null), 'none');
});

test('base64url round-trips and refuses other alphabets', () => {
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(fromB64url(toB64url(bytes)), bytes);
  assert.throws(() => fromB64url('a+b/'), /not base64url/);
  assert.throws(() => fromB64url('ab=='), /not base64url/);
});
