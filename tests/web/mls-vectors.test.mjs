// The official RFC 9420 test vectors (mlswg/mls-implementations, ciphersuite 1 only; data and
// provenance in tests/web/mls-vectors/) against OUR vendored ts-mls (web/vendor/ts-mls), with
// the ciphersuite implementation exactly as the client builds it (web/e2ee/group.js suite():
// getCiphersuiteImpl(...).then(withFastHashing)) and again with ts-mls's plain implementation.
// Run it before and after any change to web/vendor: a speed patch must not change a byte.
//
// What each vector file covers:
// - passive-client-{welcome,handling-commit,random}: join by Welcome, process every proposal
//   and commit through the public API (joinGroup, processMessage), epoch_authenticator after
//   each epoch: key schedule, tree hash, transcript hashes, TreeKEM, end to end. NOTE: every
//   message in these files is a PublicMessage, so they never touch the secret tree.
// - secret-tree: per-leaf handshake/application key+nonce at generations 0 and 15, checked by
//   observable behaviour: our ts-mls encrypts PrivateMessages from every leaf (protect path),
//   the vector's key and nonce (XOR the message's reuse guard) must open them with WebCrypto
//   AES-GCM, and a second, fresh secret tree must decrypt them (unprotect path).
// - message-protection: the vector's PrivateMessages (proposal, commit, application) decrypt
//   with a secret tree from encryption_secret; its PublicMessages verify.
// - tree-validation: tree hash of every node, resolution of every node, parent hashes, leaf
//   signatures. tree-operations: add/update/remove on a tree, tree hash before and after.
// - treekem: path-secret keys, apply each UpdatePath (tree hash after), decrypt the path
//   secret and derive the commit secret as every other leaf.
//
// ts-mls internals this calls (everything else is index.js's public API). The planned speed
// patches (lazy secret tree, cached tree hashes) may change the first two; they are used only
// in the adapter functions below, so that is the one place to adapt:
//   secretTree.js          createSecretTree                       (adapter newSecretTree)
//   treeHash.js            treeHash, treeHashRoot                 (adapters treeHashOf, rootHashOf)
//   messageProtection.js   protectApplicationData, protectProposal, unprotectPrivateMessage
//   messageProtectionPublic.js unprotectPublicMessage
//   privateMessage.js      decryptSenderData, encodePrivateContentAAD
//   sender.js              expandSenderDataKey, expandSenderDataNonce
//   ratchetTree.js         decodeRatchetTree, encodeRatchetTree, resolution, addLeafNode,
//                          updateLeafNode, removeLeafNode, getHpkePublicKey
//   parentHash.js          verifyParentHashes        leafNode.js  verifyLeafNodeSignature
//   proposal.js            decodeProposal, encodeProposal         commit.js  encodeCommit
//   updatePath.js          decodeUpdatePath, applyUpdatePath      createCommit.js applyUpdatePathSecret
//   pathSecrets.js         getCommitSecret           privateKeyPath.js toPrivateKeyPath
//   crypto/kdf.js          deriveSecret              keyRetentionConfig.js defaultKeyRetentionConfig

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as mls from '../../web/vendor/ts-mls/index.js';
import { createSecretTree } from '../../web/vendor/ts-mls/secretTree.js';
import { treeHash, treeHashRoot } from '../../web/vendor/ts-mls/treeHash.js';
import {
  protectApplicationData,
  protectProposal,
  unprotectPrivateMessage,
} from '../../web/vendor/ts-mls/messageProtection.js';
import { unprotectPublicMessage } from '../../web/vendor/ts-mls/messageProtectionPublic.js';
import { decryptSenderData, encodePrivateContentAAD } from '../../web/vendor/ts-mls/privateMessage.js';
import { expandSenderDataKey, expandSenderDataNonce } from '../../web/vendor/ts-mls/sender.js';
import {
  addLeafNode,
  decodeRatchetTree,
  encodeRatchetTree,
  getHpkePublicKey,
  removeLeafNode,
  resolution,
  updateLeafNode,
} from '../../web/vendor/ts-mls/ratchetTree.js';
import { verifyParentHashes } from '../../web/vendor/ts-mls/parentHash.js';
import { verifyLeafNodeSignature } from '../../web/vendor/ts-mls/leafNode.js';
import { decodeProposal, encodeProposal } from '../../web/vendor/ts-mls/proposal.js';
import { encodeCommit } from '../../web/vendor/ts-mls/commit.js';
import { applyUpdatePath, decodeUpdatePath } from '../../web/vendor/ts-mls/updatePath.js';
import { applyUpdatePathSecret } from '../../web/vendor/ts-mls/createCommit.js';
import { getCommitSecret } from '../../web/vendor/ts-mls/pathSecrets.js';
import { toPrivateKeyPath } from '../../web/vendor/ts-mls/privateKeyPath.js';
import { deriveSecret } from '../../web/vendor/ts-mls/crypto/kdf.js';
import { defaultKeyRetentionConfig } from '../../web/vendor/ts-mls/keyRetentionConfig.js';

import { CIPHERSUITE } from '../../web/e2ee/group.js';
import { withFastHashing } from '../../web/e2ee/hashing.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'mls-vectors');
/** the ciphersuite id of CIPHERSUITE; the vector files hold only this one */
const SUITE_ID = 1;

// ---- adapters: the only code here that knows how secretTree.js and treeHash.js are called ----

/** A fresh secret tree of an epoch, in the form messageProtection.js takes (RFC 9420 §9). */
function newSecretTree(leafCount, encryptionSecret, impl) {
  return createSecretTree(leafCount, encryptionSecret, impl.kdf);
}
/** Tree hash of the subtree rooted at node `nodeIndex` (RFC 9420 §7.8). */
function treeHashOf(tree, nodeIndex, impl) {
  return treeHash(tree, nodeIndex, impl.hash);
}
/** Tree hash of the root. */
function rootHashOf(tree, impl) {
  return treeHashRoot(tree, impl.hash);
}

// ---- helpers ----

const hex = (/** @type {string} */ s) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex');

/** asserts two byte strings are equal, printing hex on failure */
function sameBytes(actual, expectedHex, what) {
  assert.ok(actual instanceof Uint8Array, `${what}: not bytes`);
  assert.equal(toHex(actual), expectedHex, what);
}

/** the cases of one vector file, every one of ciphersuite 1 */
function load(name) {
  const cases = JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8'));
  assert.ok(Array.isArray(cases) && cases.length > 0, `${name}.json: no cases`);
  for (const c of cases) assert.equal(c.cipher_suite, SUITE_ID, `${name}.json: a case of another ciphersuite`);
  return cases;
}

/** decodes a whole buffer with a ts-mls decoder (returns [value, offset] or undefined) */
function decodeWhole(decoder, bytes, what) {
  const r = decoder(bytes, 0);
  assert.ok(r !== undefined, `${what}: does not decode`);
  assert.equal(r[1], bytes.length, `${what}: trailing bytes`);
  return r[0];
}

function decodeTree(hexTree, what) {
  return decodeWhole(decodeRatchetTree, hex(hexTree), what);
}

function groupContext(groupId, epoch, treeHashBytes, confirmedTranscriptHash) {
  return {
    version: 'mls10',
    cipherSuite: CIPHERSUITE,
    groupId,
    epoch: BigInt(epoch),
    treeHash: treeHashBytes,
    confirmedTranscriptHash,
    extensions: [],
  };
}

/** A ratchet tree of `leafCount` non-blank leaves (placeholders: with an explicit signature
 * key, unprotectPrivateMessage only checks that the sender's leaf is not blank). */
function placeholderTree(leafCount) {
  const tree = new Array(2 * leafCount - 1).fill(undefined);
  for (let i = 0; i < leafCount; i++) {
    tree[2 * i] = {
      nodeType: 'leaf',
      leaf: {
        leafNodeSource: 'commit',
        hpkePublicKey: new Uint8Array(),
        signaturePublicKey: new Uint8Array(),
        capabilities: mls.defaultCapabilities(),
        parentHash: new Uint8Array(),
        extensions: [],
        signature: new Uint8Array(),
        credential: { credentialType: 'basic', identity: new Uint8Array() },
      },
    };
  }
  return tree;
}

/** AES-128-GCM open with WebCrypto (independent of ts-mls); null if the tag does not verify */
async function aesGcmOpen(key, nonce, aad, ciphertext) {
  const k = await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['decrypt']);
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad }, k, ciphertext));
  } catch {
    return null;
  }
}

const xor4 = (/** @type {Uint8Array} */ nonce, /** @type {Uint8Array} */ guard) => {
  const out = nonce.slice();
  for (let i = 0; i < 4; i++) out[i] ^= guard[i];
  return out;
};

// ---- the two ciphersuite implementations ----

async function plainImpl() {
  return mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(CIPHERSUITE));
}
/** as web/e2ee/group.js suite() builds it */
async function clientImpl() {
  return mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(CIPHERSUITE)).then(withFastHashing);
}
const IMPLS = [
  ['client (withFastHashing)', clientImpl],
  ['plain ts-mls', plainImpl],
];

test('mls-vectors: CIPHERSUITE is ciphersuite 1, and the data files are what SOURCE.json says', () => {
  assert.equal(mls.ciphersuites[CIPHERSUITE], SUITE_ID);
  const source = JSON.parse(readFileSync(join(DIR, 'SOURCE.json'), 'utf8'));
  assert.equal(source.repository, 'mlswg/mls-implementations');
  assert.match(source.commit, /^[0-9a-f]{40}$/);
  for (const [name, f] of Object.entries(source.files)) {
    assert.equal(load(name).length, f.kept_cases, `${name}.json: case count differs from SOURCE.json`);
  }
  assert.equal(Object.keys(source.files).length, 8);
});

// ---- passive client ----

/**
 * Joins by the Welcome and processes every epoch; returns [epochs checked, message counts].
 * Follows the client: mls.joinGroup, mls.processMessage (web/e2ee/group.js).
 */
async function passiveClient(v, impl, what) {
  const keyPackage = decodeWhole(mls.decodeMlsMessage, hex(v.key_package), `${what} key_package`);
  assert.equal(keyPackage.wireformat, 'mls_key_package');
  const welcome = decodeWhole(mls.decodeMlsMessage, hex(v.welcome), `${what} welcome`);
  assert.equal(welcome.wireformat, 'mls_welcome');
  const psks = Object.fromEntries(v.external_psks.map((p) => [mls.bytesToBase64(hex(p.psk_id)), hex(p.psk)]));
  const tree = v.ratchet_tree === null ? undefined : decodeTree(v.ratchet_tree, `${what} ratchet_tree`);
  const privateKeys = {
    initPrivateKey: hex(v.init_priv),
    hpkePrivateKey: hex(v.encryption_priv),
    signaturePrivateKey: hex(v.signature_priv),
  };
  let state = await mls.joinGroup(welcome.welcome, keyPackage.keyPackage, privateKeys, mls.makePskIndex(undefined, psks), impl, tree);
  sameBytes(state.keySchedule.epochAuthenticator, v.initial_epoch_authenticator, `${what}: epoch_authenticator after the Welcome`);
  let epochs = 1;
  const wireformats = {};
  for (const [i, epoch] of v.epochs.entries()) {
    for (const [j, m] of [...epoch.proposals, epoch.commit].entries()) {
      const msg = decodeWhole(mls.decodeMlsMessage, hex(m), `${what} epoch ${i} message ${j}`);
      wireformats[msg.wireformat] = (wireformats[msg.wireformat] ?? 0) + 1;
      const result = await mls.processMessage(msg, state, mls.makePskIndex(state, psks), mls.acceptAll, impl);
      state = result.newState;
    }
    sameBytes(state.keySchedule.epochAuthenticator, epoch.epoch_authenticator, `${what}: epoch_authenticator after epoch ${i}`);
    epochs++;
  }
  return [epochs, wireformats];
}

/** [file, minimum cases, minimum epoch_authenticators checked] */
const PASSIVE = [
  ['passive-client-welcome', 8, 8],
  ['passive-client-handling-commit', 13, 39],
  ['passive-client-random', 1, 101],
];

for (const [label, makeImpl] of IMPLS) {
  for (const [file, minCases, minEpochs] of PASSIVE) {
    test(`mls-vectors: ${file} [${label}]`, async (t) => {
      const impl = await makeImpl();
      const cases = load(file);
      let epochs = 0;
      const wireformats = {};
      for (const [n, v] of cases.entries()) {
        const [e, w] = await passiveClient(v, impl, `${file} #${n}`);
        epochs += e;
        for (const [k, c] of Object.entries(w)) wireformats[k] = (wireformats[k] ?? 0) + c;
      }
      t.diagnostic(`${cases.length} cases, ${epochs} epoch_authenticators, messages: ${JSON.stringify(wireformats)}`);
      assert.ok(cases.length >= minCases, `ran only ${cases.length} cases`);
      assert.ok(epochs >= minEpochs, `checked only ${epochs} epochs`);
    });
  }
}

// ---- secret tree, observed through message protection ----

/**
 * For every leaf: sends PrivateMessages with ts-mls from a secret tree of encryption_secret
 * (application messages: application ratchet; proposals: handshake ratchet) up to the highest
 * generation in the vector. The vector's key and nonce for (leaf, generation) must open the
 * message sent at that generation, and a fresh receiver tree must decrypt it. Returns the
 * number of (leaf, generation, ratchet) triples checked.
 */
async function secretTreeCase(v, impl, what) {
  const sd = v.sender_data;
  sameBytes(await expandSenderDataKey(impl, hex(sd.sender_data_secret), hex(sd.ciphertext)), sd.key, `${what}: sender data key`);
  sameBytes(await expandSenderDataNonce(impl, hex(sd.sender_data_secret), hex(sd.ciphertext)), sd.nonce, `${what}: sender data nonce`);

  const leafCount = v.leaves.length;
  const encryptionSecret = hex(v.encryption_secret);
  const senderDataSecret = hex(sd.sender_data_secret);
  const gc = groupContext(new TextEncoder().encode('vector group'), 7, new Uint8Array(32), new Uint8Array(32));
  const ratchetTree = placeholderTree(leafCount);
  const { signKey, publicKey } = await impl.signature.keygen();
  const enc = new TextEncoder();
  const config = { ...defaultKeyRetentionConfig, maximumForwardRatchetSteps: 1000 };

  const kinds = /** @type {const} */ ([
    {
      ratchet: 'application',
      keyField: 'application_key',
      nonceField: 'application_nonce',
      // PrivateMessageContent (RFC 9420 §6.3.1) of an application message starts with
      // opaque application_data<V>: a 1-byte length (< 64) and the bytes
      send: async (tree, leaf, gen) => {
        const data = enc.encode(`leaf ${leaf} generation ${gen}`);
        const r = await protectApplicationData(signKey, senderDataSecret, data, new Uint8Array(), gc, tree, leaf, mls.defaultPaddingConfig, impl);
        return { ...r, prefix: Uint8Array.of(data.length, ...data) };
      },
      check: (content, leaf, gen) => {
        assert.equal(content.content.contentType, 'application');
        assert.equal(new TextDecoder().decode(content.content.applicationData), `leaf ${leaf} generation ${gen}`);
      },
    },
    {
      ratchet: 'handshake',
      keyField: 'handshake_key',
      nonceField: 'handshake_nonce',
      // a Remove proposal: uint16 proposal_type = 3 (remove), uint32 removed
      send: async (tree, leaf, gen) => {
        const proposal = { proposalType: 'remove', remove: { removed: gen } };
        const r = await protectProposal(signKey, senderDataSecret, proposal, new Uint8Array(), gc, tree, leaf, mls.defaultPaddingConfig, impl);
        return { ...r, prefix: Uint8Array.of(0, 3, (gen >>> 24) & 255, (gen >>> 16) & 255, (gen >>> 8) & 255, gen & 255) };
      },
      check: (content, _leaf, gen) => {
        assert.equal(content.content.contentType, 'proposal');
        assert.equal(content.content.proposal.proposalType, 'remove');
        assert.equal(content.content.proposal.remove.removed, gen);
      },
    },
  ]);

  let checks = 0;
  for (const kind of kinds) {
    let sendTree = await newSecretTree(leafCount, encryptionSecret, impl);
    let receiveTree = await newSecretTree(leafCount, encryptionSecret, impl);
    for (const [leaf, generations] of v.leaves.entries()) {
      const wanted = new Map(generations.map((g) => [g.generation, g]));
      const last = Math.max(...wanted.keys());
      for (let gen = 0; gen <= last; gen++) {
        const sent = await kind.send(sendTree, leaf, gen);
        sendTree = sent.newSecretTree;
        const expected = wanted.get(gen);
        if (expected === undefined) continue;
        const where = `${what}: leaf ${leaf} ${kind.ratchet} generation ${gen}`;
        const pm = sent.privateMessage;

        const senderData = await decryptSenderData(pm, senderDataSecret, impl);
        assert.ok(senderData !== undefined, `${where}: sender data`);
        assert.equal(senderData.leafIndex, leaf, `${where}: sender data leaf`);
        assert.equal(senderData.generation, gen, `${where}: sender data generation`);

        const aad = encodePrivateContentAAD({ groupId: pm.groupId, epoch: pm.epoch, contentType: pm.contentType, authenticatedData: pm.authenticatedData });
        const plain = await aesGcmOpen(hex(expected[kind.keyField]), xor4(hex(expected[kind.nonceField]), senderData.reuseGuard), aad, pm.ciphertext);
        assert.ok(plain !== null, `${where}: the vector's ${kind.keyField}/${kind.nonceField} do not open the message ts-mls sent`);
        assert.equal(toHex(plain.subarray(0, sent.prefix.length)), toHex(sent.prefix), `${where}: plaintext`);

        let received;
        try {
          received = await unprotectPrivateMessage(senderDataSecret, pm, receiveTree, ratchetTree, gc, config, impl, publicKey);
        } catch (e) {
          throw new Error(`${where}: a fresh receiver tree cannot decrypt it: ${e}`, { cause: e });
        }
        receiveTree = received.tree;
        kind.check(received.content, leaf, gen);
        checks++;
      }
    }
  }
  return checks;
}

for (const [label, makeImpl] of IMPLS) {
  test(`mls-vectors: secret-tree, through message protection [${label}]`, async (t) => {
    const impl = await makeImpl();
    const cases = load('secret-tree');
    let checks = 0;
    for (const [n, v] of cases.entries()) checks += await secretTreeCase(v, impl, `secret-tree #${n}`);
    t.diagnostic(`${cases.length} cases, ${checks} (leaf, ratchet, generation) key+nonce checks`);
    assert.ok(cases.length >= 3, `ran only ${cases.length} cases`);
    // 1 + 8 + 32 leaves, generations 0 and 15, handshake and application
    assert.ok(checks >= 164, `checked only ${checks} keys`);
  });

  test(`mls-vectors: message-protection [${label}]`, async (t) => {
    const impl = await makeImpl();
    const cases = load('message-protection');
    let checks = 0;
    for (const [n, v] of cases.entries()) {
      const what = `message-protection #${n}`;
      const gc = groupContext(hex(v.group_id), v.epoch, hex(v.tree_hash), hex(v.confirmed_transcript_hash));
      const signaturePub = hex(v.signature_pub);
      // the sender is leaf 1 of a 2-leaf group
      const ratchetTree = placeholderTree(2);
      const expected = { proposal: v.proposal, commit: v.commit, application: v.application };
      const encodeContent = (content) =>
        content.contentType === 'proposal' ? encodeProposal(content.proposal)
          : content.contentType === 'commit' ? encodeCommit(content.commit)
            : content.applicationData;

      for (const kind of /** @type {const} */ (['proposal', 'commit', 'application'])) {
        const msg = decodeWhole(mls.decodeMlsMessage, hex(v[`${kind}_priv`]), `${what} ${kind}_priv`);
        assert.equal(msg.wireformat, 'mls_private_message');
        const secretTree = await newSecretTree(2, hex(v.encryption_secret), impl);
        const r = await unprotectPrivateMessage(hex(v.sender_data_secret), msg.privateMessage, secretTree, ratchetTree, gc, defaultKeyRetentionConfig, impl, signaturePub);
        assert.equal(r.content.content.contentType, kind, `${what} ${kind}_priv: content type`);
        sameBytes(encodeContent(r.content.content), expected[kind], `${what} ${kind}_priv: content`);
        checks++;
      }
      for (const kind of /** @type {const} */ (['proposal', 'commit'])) {
        const msg = decodeWhole(mls.decodeMlsMessage, hex(v[`${kind}_pub`]), `${what} ${kind}_pub`);
        assert.equal(msg.wireformat, 'mls_public_message');
        const content = await unprotectPublicMessage(hex(v.membership_key), gc, [], msg.publicMessage, impl, signaturePub);
        assert.equal(content.content.contentType, kind, `${what} ${kind}_pub: content type`);
        sameBytes(encodeContent(content.content), expected[kind], `${what} ${kind}_pub: content`);
        checks++;
      }
    }
    t.diagnostic(`${cases.length} cases, ${checks} messages`);
    assert.ok(checks >= 5, `checked only ${checks} messages`);
  });
}

// ---- trees ----

for (const [label, makeImpl] of IMPLS) {
  test(`mls-vectors: tree-validation [${label}]`, async (t) => {
    const impl = await makeImpl();
    const cases = load('tree-validation');
    let hashes = 0;
    let resolutions = 0;
    let signatures = 0;
    for (const [n, v] of cases.entries()) {
      const what = `tree-validation #${n}`;
      // node by node on a fresh tree, then root first and every node again on another one (a
      // tree-hash cache must give the same answer whatever was asked before)
      const tree = decodeTree(v.tree, `${what} tree`);
      assert.equal(v.tree_hashes.length, tree.length, `${what}: one hash per node`);
      for (const [i, h] of v.tree_hashes.entries()) {
        sameBytes(await treeHashOf(tree, i, impl), h, `${what}: tree hash of node ${i}`);
        hashes++;
      }
      const again = decodeTree(v.tree, `${what} tree`);
      const rootIndex = (1 << Math.floor(Math.log2(again.length))) - 1;
      sameBytes(await rootHashOf(again, impl), v.tree_hashes[rootIndex], `${what}: root tree hash`);
      for (let i = again.length - 1; i >= 0; i--) {
        sameBytes(await treeHashOf(again, i, impl), v.tree_hashes[i], `${what}: tree hash of node ${i} (after the root)`);
        hashes++;
      }
      for (const [i, r] of v.resolutions.entries()) {
        assert.deepEqual(resolution(tree, i), r, `${what}: resolution of node ${i}`);
        resolutions++;
      }
      assert.equal(await verifyParentHashes(tree, impl.hash), true, `${what}: parent hashes`);
      for (const [i, node] of tree.entries()) {
        if (node?.nodeType !== 'leaf') continue;
        assert.equal(await verifyLeafNodeSignature(node.leaf, hex(v.group_id), i / 2, impl.signature), true, `${what}: signature of leaf ${i / 2}`);
        signatures++;
      }
    }
    t.diagnostic(`${cases.length} cases, ${hashes} tree hashes, ${resolutions} resolutions, ${signatures} leaf signatures`);
    assert.ok(cases.length >= 14, `ran only ${cases.length} cases`);
    assert.ok(hashes >= 2 * 454 && resolutions >= 454, `checked only ${hashes} hashes, ${resolutions} resolutions`);
  });

  test(`mls-vectors: tree-operations [${label}]`, async (t) => {
    const impl = await makeImpl();
    const cases = load('tree-operations');
    const ops = {};
    for (const [n, v] of cases.entries()) {
      const what = `tree-operations #${n}`;
      const before = decodeTree(v.tree_before, `${what} tree_before`);
      sameBytes(await rootHashOf(before, impl), v.tree_hash_before, `${what}: tree_hash_before`);
      const proposal = decodeWhole(decodeProposal, hex(v.proposal), `${what} proposal`);
      let after;
      switch (proposal.proposalType) {
        case 'add':
          after = addLeafNode(before, proposal.add.keyPackage.leafNode)[0];
          break;
        case 'update':
          after = updateLeafNode(before, proposal.update.leafNode, v.proposal_sender);
          break;
        case 'remove':
          after = removeLeafNode(before, proposal.remove.removed);
          break;
        default:
          assert.fail(`${what}: unexpected proposal ${proposal.proposalType}`);
      }
      sameBytes(encodeRatchetTree(after), v.tree_after, `${what}: tree_after`);
      sameBytes(await rootHashOf(after, impl), v.tree_hash_after, `${what}: tree_hash_after`);
      // the tree before is unchanged (a cache must not leak the new hash into the old tree)
      sameBytes(await rootHashOf(before, impl), v.tree_hash_before, `${what}: tree_hash_before, after the operation`);
      ops[proposal.proposalType] = (ops[proposal.proposalType] ?? 0) + 1;
    }
    t.diagnostic(`${cases.length} cases: ${JSON.stringify(ops)}`);
    assert.ok(cases.length >= 5, `ran only ${cases.length} cases`);
    assert.deepEqual(Object.keys(ops).sort(), ['add', 'remove', 'update']);
  });

  test(`mls-vectors: treekem [${label}]`, async (t) => {
    const impl = await makeImpl();
    const cases = load('treekem');
    let paths = 0;
    let secrets = 0;
    let keys = 0;
    for (const [n, v] of cases.entries()) {
      const what = `treekem #${n}`;
      const tree = decodeTree(v.ratchet_tree, `${what} ratchet_tree`);
      const gc = groupContext(hex(v.group_id), v.epoch, await rootHashOf(tree, impl), hex(v.confirmed_transcript_hash));

      // each leaf's private keys: its leaf key, and the node keys derived from its path secrets
      const privatePaths = [];
      for (const leaf of v.leaves_private) {
        const leafNode = tree[2 * leaf.index];
        assert.equal(leafNode?.nodeType, 'leaf', `${what}: leaf ${leaf.index}`);
        // encryption_priv belongs to the leaf's public key: what is sealed to one opens with the other
        const info = new TextEncoder().encode('mls-vectors');
        const sealed = await impl.hpke.seal(await impl.hpke.importPublicKey(leafNode.leaf.hpkePublicKey), info, info);
        const opened = await impl.hpke.open(await impl.hpke.importPrivateKey(hex(leaf.encryption_priv)), sealed.enc, sealed.ct, info);
        assert.equal(toHex(opened), toHex(info), `${what}: leaf ${leaf.index} encryption_priv`);
        const pathSecrets = Object.fromEntries(leaf.path_secrets.map((p) => [p.node, hex(p.path_secret)]));
        for (const p of leaf.path_secrets) {
          const { publicKey } = await impl.hpke.deriveKeyPair(await deriveSecret(hex(p.path_secret), 'node', impl.kdf));
          sameBytes(getHpkePublicKey(tree[p.node]), toHex(await impl.hpke.exportPublicKey(publicKey)), `${what}: leaf ${leaf.index} key of node ${p.node}`);
          keys++;
        }
        const pkp = await toPrivateKeyPath(pathSecrets, leaf.index, impl);
        privatePaths.push({ ...pkp, privateKeys: { ...pkp.privateKeys, [2 * leaf.index]: hex(leaf.encryption_priv) } });
      }

      for (const [p, path] of v.update_paths.entries()) {
        const where = `${what} update_path ${p} (sender ${path.sender})`;
        const updatePath = decodeWhole(decodeUpdatePath, hex(path.update_path), `${where}`);
        const updated = await applyUpdatePath(tree, path.sender, updatePath, impl.hash);
        const treeHashAfter = await rootHashOf(updated, impl);
        sameBytes(treeHashAfter, path.tree_hash_after, `${where}: tree_hash_after`);
        const provisional = { ...gc, treeHash: treeHashAfter };
        for (const pp of privatePaths) {
          if (pp.leafIndex === path.sender) {
            assert.equal(path.path_secrets[pp.leafIndex], null, `${where}: the sender has no path secret`);
            continue;
          }
          const got = await applyUpdatePathSecret(tree, pp, path.sender, provisional, updatePath, [], impl);
          sameBytes(got.pathSecret, path.path_secrets[pp.leafIndex], `${where}: path secret of leaf ${pp.leafIndex}`);
          sameBytes(await getCommitSecret(tree, got.nodeIndex, got.pathSecret, impl.kdf), path.commit_secret, `${where}: commit secret at leaf ${pp.leafIndex}`);
          secrets++;
        }
        paths++;
      }
    }
    t.diagnostic(`${cases.length} cases, ${paths} update paths, ${secrets} path+commit secrets, ${keys} path-secret node keys`);
    assert.ok(cases.length >= 11, `ran only ${cases.length} cases`);
    assert.ok(paths >= 62 && secrets >= 200, `checked only ${paths} paths, ${secrets} secrets`);
  });
}
