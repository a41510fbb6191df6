// The MLS group (RFC 9420, ts-mls 1.6.4, ciphersuite 1) of one participant: pure logic, no
// DOM, no WebSocket. Runs in the page and in node (tests/web/e2ee-group.test.mjs). The wire
// contract is docs/protocol.md (E2EE); the server only orders commits and stores the GroupInfo.
//
//   const g = await E2eeGroup.create({ participant, name, send, onChange });
//   await g.start(joined.e2ee);         // creates the group (mls_group) or joins it by external commit
//   g.handle(msg);                      // mls_accepted / mls_rejected / mls_commit / mls_reset from the server
//   g.setPresent(roster);               // [{id, name}] or Map id -> name: the server's participants
//   const b64 = await g.encryptChat(text); const m = await g.decryptChat(from, b64);
//   g.member, g.epoch, g.generation, g.ownLeaf, g.removed, g.roster(), await g.mediaSecret(), await g.sas()
//   g.close();
//
// Every input (start, handle, chat, removal timers) runs strictly one at a time on an internal
// promise queue, because ts-mls is async and each step replaces the state. A bad message is
// logged with console.warn and ignored; it never stops the queue. handle() resolves when the
// message has been processed (it never rejects); encryptChat/decryptChat reject with an Error.
//
// Membership (the contract's rules):
// - Newcomers join by external commit from the server's GroupInfo (mls_commit; on
//   mls_rejected they retry from the GroupInfo in the rejection, or create the group when the
//   room has none). Every commit carries the GroupInfo of the new epoch with the external_pub
//   and ratchet_tree extensions, so the next newcomer can join from it.
// - Leaves whose participant id is not present, and duplicate leaves of a present
//   participant, are removed: the member of rank r (0-based, by leaf index among the kept
//   leaves of present participants) commits the removes r x 1.5 s after the leaf became stale.
//   Of duplicates, a member keeps its own leaf; others keep the leaf they saw appear last
//   (ties: the higher leaf index). Nothing is removed before the first setPresent() call.
// - A relayed commit that fails to process (or skips an epoch) means this client is out of
//   sync: it drops its state and rejoins by an external commit with resync (which removes its
//   own old leaf). It has no current GroupInfo, so it first sends an external commit made from
//   its own (stale) state: the server refuses the stale epoch with mls_rejected, which carries
//   the current GroupInfo, and the client then rejoins from that.
// - A member removed by a commit stops (removed = true, member = false); the page decides
//   whether to start again.
// - mls_reset (a moderator dropped the room's group, e.g. after a garbage commit won an epoch
//   and nobody could process it): the state, the pending commit and the removal timers go;
//   the client takes the new generation and starts again as at join in a room without a
//   group. The moderator who reset creates the new group at once; the others wait
//   RESET_FOLLOW_MS and then send mls_group too, which the server answers with mls_rejected
//   and the new group's GroupInfo (unless nobody created one), and join it by external
//   commit. Every mls_group/mls_commit names the generation; answers for an older one (sent
//   before the reset) are ignored.
//
// Keys: mediaSecret() is RFC 9605 §5.2: base_key = MLS-Exporter("SFrame 1.0 Base Key", "",
// AEAD.Nk = 16) per epoch. The RFC derives per-sender keys from base_key and the KID (§4.4.2,
// KID = (leaf << E) | (epoch mod 2^E)); there is no separate per-leaf HKDF step in §5.2.
// sas() = HKDF-SHA256(ikm = epoch_authenticator, salt = "", info = "conclave sas v1", 32 bytes)
// -> 6 digits from bytes 0..3 (uint32 mod 10^6) and 6 emoji from bytes 4..9 (each mod 64).
//
// Chat is an MLS application message. ts-mls keeps the receiver secrets of the last 4 epochs
// (defaultKeyRetentionConfig.retainKeysForEpochs), so a message sent just before a commit
// still decrypts after it. Its plaintext starts with one byte: CHAT_TO_GROUP, then the UTF-8
// text; or CHAT_PRIVATE, then UTF-8 JSON {"to": participant id, "sealed": [{"leaf", "kem",
// "ct"}]}: the text sealed with HPKE (RFC 9420 EncryptWithLabel, PRIVATE_CHAT_LABEL) to the
// leaf encryption key of each of the addressee's leaves, the context binding group, epoch,
// sender leaf and recipient leaf. The group layer still authenticates the sender; only the
// addressee can open the text. Own leaf private keys of the last LEAF_KEY_EPOCHS epochs are
// kept for messages sealed before our own commit changed our leaf key.

import * as mls from '../vendor/ts-mls/index.js';
import { decryptSenderData } from '../vendor/ts-mls/privateMessage.js';
import { ratchetTreeFromExtension } from '../vendor/ts-mls/groupInfo.js';
import { encryptWithLabel, decryptWithLabel } from '../vendor/ts-mls/crypto/hpke.js';
import { withFastHashing } from './hashing.js';

/** @typedef {import('../vendor/ts-mls/index.js').ClientState} ClientState */
/** @typedef {import('../vendor/ts-mls/index.js').CiphersuiteImpl} CiphersuiteImpl */
/** @typedef {import('../vendor/ts-mls/index.js').GroupInfo} GroupInfo */
/** @typedef {import('../vendor/ts-mls/index.js').KeyPackage} KeyPackage */
/** @typedef {import('../vendor/ts-mls/index.js').PrivateKeyPackage} PrivateKeyPackage */
/** @typedef {import('../vendor/ts-mls/index.js').RatchetTree} RatchetTree */
/**
 * @typedef {{signed: import('./binding.js').SignedBinding, signLeaf: (mlsSignatureKey: Uint8Array) => Promise<string>}} LeafBinder
 *   The account binding of a signed-in page (./binding.js): the server's signed binding, and
 *   the account key signing our leaf's MLS signature key for this room.
 * @typedef {{participant: string, name: string, send: (msg: object) => void, onChange?: () => void, binder?: LeafBinder | null}} GroupOptions
 * @typedef {{mode: string, epoch: number | null, group_info: string | null, generation?: number}} E2eeJoined
 * @typedef {{leaf: number, participant: string, name: string, present: boolean, self: boolean,
 *   signatureKey: Uint8Array, binding: import('./binding.js').SignedBinding | undefined, leafSig: string | undefined}} RosterEntry
 * @typedef {{kind: 'create' | 'external' | 'commit', newState: ClientState, epoch: number, lost: boolean}} Pending
 */

export const CIPHERSUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519';
/** RFC 9605 §5.2 */
export const SFRAME_EXPORTER_LABEL = 'SFrame 1.0 Base Key';
/** AEAD.Nk of the SFrame suite AES_128_GCM_SHA256_128 */
export const SFRAME_BASE_KEY_BYTES = 16;
export const SAS_INFO = 'conclave sas v1';
/** RFC 9420 §5.1.3 EncryptWithLabel label of a private chat message (to one participant's leaves) */
export const PRIVATE_CHAT_LABEL = 'conclave private chat';
/** First byte of a chat application message's plaintext: UTF-8 text to the group follows, or
 * a private envelope (UTF-8 JSON, see encryptChat) */
export const CHAT_TO_GROUP = 0;
export const CHAT_PRIVATE = 1;
/** What an application message is for; its first byte is `2 * index + (private ? 1 : 0)`, so
 * chat keeps 0 and 1. The receiver names the purpose it expects for the wire message that
 * carried it: a file offer replayed by the server as chat (or the reverse) is refused.
 * docs/architecture.md, "Collaboration inside the encrypted meeting". */
export const PURPOSES = /** @type {const} */ (['chat', 'file', 'poll', 'notes', 'board', 'breakout']);
/** @typedef {typeof PURPOSES[number]} Purpose */
/** Own leaf HPKE private keys kept for private chat sealed in earlier epochs (as ts-mls keeps
 * the last 4 epochs' receiver secrets) */
const LEAF_KEY_EPOCHS = 4;
/** the member of rank r removes stale leaves after r x this */
export const REMOVE_STAGGER_MS = 1500;
/** A commit or group the server has not answered after this long was dropped (by the rate
 * limit: the socket itself loses nothing) and is sent again, at most PENDING_RETRIES times. */
export const PENDING_RETRY_MS = 5000;
export const PENDING_RETRIES = 5;
/** After an mls_reset by someone else, wait this long before sending mls_group, so that the
 * resetting moderator's new group is usually there and the others just join it. */
export const RESET_FOLLOW_MS = 500;

/** 64 emoji for the SAS, each with an English name for screen readers */
export const SAS_EMOJI = /** @type {const} */ ([
  ['🐶', 'dog'], ['🐱', 'cat'], ['🦁', 'lion'], ['🐎', 'horse'], ['🦄', 'unicorn'], ['🐷', 'pig'], ['🐘', 'elephant'], ['🐰', 'rabbit'],
  ['🐼', 'panda'], ['🐓', 'rooster'], ['🐧', 'penguin'], ['🐢', 'turtle'], ['🐟', 'fish'], ['🐙', 'octopus'], ['🦋', 'butterfly'], ['🌷', 'flower'],
  ['🌳', 'tree'], ['🌵', 'cactus'], ['🍄', 'mushroom'], ['🌏', 'globe'], ['🌙', 'moon'], ['☁️', 'cloud'], ['🔥', 'fire'], ['🍌', 'banana'],
  ['🍎', 'apple'], ['🍓', 'strawberry'], ['🌽', 'corn'], ['🍕', 'pizza'], ['🎂', 'cake'], ['❤️', 'heart'], ['😀', 'smiley'], ['🤖', 'robot'],
  ['🎩', 'hat'], ['👓', 'glasses'], ['🔧', 'spanner'], ['🎅', 'santa'], ['👍', 'thumbs up'], ['☂️', 'umbrella'], ['⌛', 'hourglass'], ['⏰', 'clock'],
  ['🎁', 'gift'], ['💡', 'light bulb'], ['📕', 'book'], ['✏️', 'pencil'], ['📎', 'paperclip'], ['✂️', 'scissors'], ['🔒', 'lock'], ['🔑', 'key'],
  ['🔨', 'hammer'], ['☎️', 'telephone'], ['🏁', 'flag'], ['🚂', 'train'], ['🚲', 'bicycle'], ['✈️', 'aeroplane'], ['🚀', 'rocket'], ['🏆', 'trophy'],
  ['⚽', 'ball'], ['🎸', 'guitar'], ['🎺', 'trumpet'], ['🔔', 'bell'], ['⚓', 'anchor'], ['🎧', 'headphones'], ['📁', 'folder'], ['📌', 'pin'],
]);

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

/** @type {Promise<CiphersuiteImpl> | null} */
let suitePromise = null;
function suite() {
  // Hashes and HKDF without a WebCrypto round trip per call (hashing.js): 2-4x less CPU per commit.
  suitePromise ??= mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(CIPHERSUITE)).then(withFastHashing);
  return suitePromise;
}

/** @param {Uint8Array} bytes */
export function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** @param {unknown} b64 */
export function fromBase64(b64) {
  if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new Error('not standard base64 with padding');
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** credential identity: UTF-8 JSON {"p": participant id, "n": display name} and, for a
 * signed-in participant, "b" (the server's signed account binding {payload, sig}) and "s"
 * (the account key's signature over the leaf; ./binding.js). A "b" or "s" of the wrong shape
 * is kept as it is, so the binding check reports it as forged.
 * @param {Uint8Array} identity
 * @returns {{participant: string, name: string, binding: any, leafSig: any} | null} */
export function parseIdentity(identity) {
  try {
    const v = JSON.parse(td.decode(identity));
    if (v && typeof v.p === 'string' && typeof v.n === 'string') return { participant: v.p, name: v.n, binding: v.b, leafSig: v.s };
  } catch {
    // not UTF-8 JSON
  }
  return null;
}

/** @param {string} participant @param {string} name @param {import('./binding.js').SignedBinding} [binding] @param {string} [leafSig] */
function identityOf(participant, name, binding, leafSig) {
  const v = binding && leafSig ? { p: participant, n: name, b: binding, s: leafSig } : { p: participant, n: name };
  return te.encode(JSON.stringify(v));
}

/** @param {Uint8Array} a @param {Uint8Array} b */
function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** @param {Uint8Array} bytes @param {string} what */
function decodeUtf8(bytes, what) {
  try {
    return td.decode(bytes);
  } catch {
    throw new Error(`${what} is not UTF-8`);
  }
}

/** The HPKE context of a private chat message: it is bound to the group, the epoch and both leaves.
 * @param {Uint8Array} groupId @param {number} epoch @param {number} senderLeaf @param {number} recipientLeaf */
function privateChatContext(groupId, epoch, senderLeaf, recipientLeaf) {
  return te.encode(JSON.stringify(['conclave private chat v1', toBase64(groupId), epoch, senderLeaf, recipientLeaf]));
}

/** leaves of a ratchet tree: [{leaf, identity, signatureKey}]
 * @param {RatchetTree} tree */
function leavesOf(tree) {
  const out = [];
  for (let i = 0; i < tree.length; i += 2) {
    const node = tree[i];
    if (node && node.nodeType === 'leaf') {
      const cred = node.leaf.credential;
      const who = cred.credentialType === 'basic' ? parseIdentity(cred.identity) : null;
      out.push({ leaf: i / 2, who, signatureKey: node.leaf.signaturePublicKey });
    }
  }
  return out;
}

/** @param {Uint8Array} bytes */
function decodeMessage(bytes) {
  const decoded = mls.decodeMlsMessage(bytes, 0);
  if (!decoded || decoded[1] !== bytes.length) throw new Error('not a single encoded MLSMessage');
  return decoded[0];
}

export class E2eeGroup {
  /** @type {ClientState | null} */ #state = null;
  /** @type {Pending | null} */ #pending = null;
  /** @type {Map<string, string> | null} participant id -> display name; null until setPresent() */ #present = null;
  /** @type {Map<string, number>} signature key (base64) -> epoch in which this client first saw the leaf */ #seen = new Map();
  /** @type {Map<number, {leaf: number, key: Uint8Array}>} epoch -> our leaf and its HPKE private key in that epoch (private chat) */ #leafKeys = new Map();
  /** @type {Map<string, number>} stale leaf key -> time it became stale */ #staleSince = new Map();
  /** @type {ReturnType<typeof setTimeout> | null} */ #timer = null;
  /** @type {ReturnType<typeof setTimeout> | null} start after someone else's reset */ #resetTimer = null;
  /** the room's group generation (joined.e2ee.generation, then each mls_reset) */ #generation = 0;
  #queue = Promise.resolve();
  #closed = false;
  #removed = false;

  /** @param {GroupOptions} opts @param {CiphersuiteImpl} impl @param {{publicPackage: KeyPackage, privatePackage: PrivateKeyPackage}} keys */
  constructor(opts, impl, keys) {
    this.participant = opts.participant;
    this.name = opts.name;
    this.#send = opts.send;
    this.#onChange = opts.onChange ?? (() => {});
    this.#impl = impl;
    this.#keys = keys;
  }
  /** @type {(msg: object) => void} */ #send;
  /** @type {() => void} */ #onChange;
  /** @type {CiphersuiteImpl} */ #impl;
  /** @type {{publicPackage: KeyPackage, privatePackage: PrivateKeyPackage}} */ #keys;

  /** Generates this client's key package (signature key + credential). Sends nothing.
   * @param {GroupOptions} opts */
  static async create(opts) {
    const impl = await suite();
    // The signature key first: a signed-in page's account key signs it into the credential.
    const sigKeys = await impl.signature.keygen();
    const binder = opts.binder ?? null;
    const leafSig = binder ? await binder.signLeaf(sigKeys.publicKey) : undefined;
    const keys = await mls.generateKeyPackageWithKey(
      { credentialType: 'basic', identity: identityOf(opts.participant, opts.name, binder?.signed, leafSig) },
      mls.defaultCapabilities(), mls.defaultLifetime, [], sigKeys, impl,
    );
    return new E2eeGroup(opts, impl, keys);
  }

  /** true once this client's leaf is in the group (its create/commit was accepted) */
  get member() { return this.#state !== null; }
  /** true after a commit removed this client */
  get removed() { return this.#removed; }
  /** current epoch, or null when not a member */
  get epoch() { return this.#state ? Number(this.#state.groupContext.epoch) : null; }
  /** the room's group generation: 0, and one more after each moderator's reset */
  get generation() { return this.#generation; }
  /** own leaf index, or null when not a member */
  get ownLeaf() { return this.#state ? this.#state.privatePath.leafIndex : null; }

  /** @param {() => Promise<unknown>} job */
  #enqueue(job) {
    const run = this.#queue.then(() => (this.#closed ? Promise.reject(new Error('the E2EE group is closed')) : job()));
    this.#queue = run.then(() => {}, () => {});
    return run;
  }

  /** @param {string} what @param {unknown} [err] */
  #warn(what, err) {
    console.warn(`e2ee group (${this.participant}): ${what}${err ? ': ' + (err instanceof Error ? err.message : String(err)) : ''}`);
  }

  /** Starts with the `e2ee` object of `joined`: creates the group or joins it.
   * @param {E2eeJoined} e2ee */
  start(e2ee) {
    return this.#enqueue(async () => {
      if (!e2ee || e2ee.mode !== 'required') return;
      if (this.#state || this.#pending) return this.#warn('start() called twice; ignored');
      if (Number.isSafeInteger(e2ee.generation) && /** @type {number} */ (e2ee.generation) >= 0) this.#generation = /** @type {number} */ (e2ee.generation);
      if (e2ee.group_info == null) await this.#createGroup();
      else await this.#joinExternal(e2ee.group_info, false);
    });
  }

  async #createGroup() {
    const groupId = crypto.getRandomValues(new Uint8Array(16));
    const newState = await mls.createGroup(groupId, this.#keys.publicPackage, this.#keys.privatePackage, [], this.#impl);
    this.#pending = { kind: 'create', newState, epoch: 0, lost: false };
    this.#sendPending({ type: 'mls_group', group_info: await this.#groupInfoOf(newState), generation: this.#generation });
  }

  /** Send `msg`, which the pending commit (or group) waits on; again if no answer comes.
   * @param {object} msg */
  #sendPending(msg) {
    const pending = this.#pending;
    this.#send(msg);
    let tries = 0;
    const retry = () => {
      if (this.#closed || pending === null || this.#pending !== pending) return;
      if (++tries > PENDING_RETRIES) return this.#warn('the server never answered our commit; giving up');
      this.#warn('no answer to our commit (dropped by the rate limit?); sending it again');
      this.#send(msg);
      setTimeout(retry, PENDING_RETRY_MS);
    };
    setTimeout(retry, PENDING_RETRY_MS);
  }

  /** @param {ClientState} state */
  async #groupInfoOf(state) {
    const groupInfo = await mls.createGroupInfoWithExternalPubAndRatchetTree(state, [], this.#impl);
    return toBase64(mls.encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo }));
  }

  /** external commit from a GroupInfo (base64 MLSMessage or decoded)
   * @param {string | GroupInfo} gi @param {boolean} resync */
  async #joinExternal(gi, resync) {
    let groupInfo;
    if (typeof gi === 'string') {
      const msg = decodeMessage(fromBase64(gi));
      if (msg.wireformat !== 'mls_group_info') throw new Error(`group_info is a ${msg.wireformat}`);
      groupInfo = msg.groupInfo;
    } else groupInfo = gi;
    const tree = ratchetTreeFromExtension(groupInfo);
    const mine = this.#keys.publicPackage.leafNode.signaturePublicKey;
    // resync = the commit also removes our own old leaf (found by signature key)
    const hasOldLeaf = resync && tree !== undefined && leavesOf(tree).some((l) => bytesEqual(l.signatureKey, mine));
    const { publicMessage, newState } = await mls.joinGroupExternal(groupInfo, this.#keys.publicPackage, this.#keys.privatePackage, hasOldLeaf, this.#impl);
    const from = Number(groupInfo.groupContext.epoch);
    this.#pending = { kind: 'external', newState, epoch: from + 1, lost: false };
    this.#sendPending({
      type: 'mls_commit',
      epoch: from,
      commit: toBase64(mls.encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage })),
      group_info: await this.#groupInfoOf(newState),
      generation: this.#generation,
    });
  }

  /** Leaves the group state and rejoins: see the header. @param {string | null} groupInfo */
  async #resync(groupInfo) {
    const state = this.#state;
    this.#state = null;
    this.#pending = null;
    this.#onChange();
    if (groupInfo) return this.#joinExternal(groupInfo, true);
    if (!state) return;
    // ask the server for the current GroupInfo: an external commit from our stale epoch is
    // refused with mls_rejected {group_info}
    const gi = await mls.createGroupInfoWithExternalPubAndRatchetTree(state, [], this.#impl);
    await this.#joinExternal(gi, true);
  }

  /** A message from the server (mls_accepted, mls_rejected, mls_commit, mls_reset); others are ignored.
   * Resolves when it is processed; never rejects.
   * @param {any} msg */
  handle(msg) {
    return this.#enqueue(async () => {
      try {
        await this.#handle(msg);
      } catch (err) {
        this.#warn(`${msg?.type ?? 'message'} failed`, err);
      }
    }).catch((err) => this.#warn('message dropped', err));
  }

  /** @param {any} msg */
  async #handle(msg) {
    const type = msg?.type;
    if ((type === 'mls_accepted' || type === 'mls_rejected') && (msg.generation ?? 0) !== this.#generation) {
      // the answer to something sent for a group that was reset since
      return this.#warn(`${type} for generation ${msg.generation}, now at ${this.#generation}; ignored`);
    }
    switch (type) {
      case 'mls_accepted': {
        const p = this.#pending;
        if (!p || p.lost) return this.#warn(`mls_accepted for epoch ${msg.epoch} without a pending commit; ignored`);
        if (msg.epoch !== p.epoch) return this.#warn(`mls_accepted for epoch ${msg.epoch}, but the pending commit makes epoch ${p.epoch}; ignored`);
        this.#pending = null;
        this.#state = p.newState;
        this.#removed = false;
        this.#changed();
        return;
      }
      case 'mls_rejected': {
        const p = this.#pending;
        if (!p) return this.#warn('mls_rejected without a pending commit; ignored');
        this.#pending = null;
        if (p.kind === 'commit') {
          // a member: the winning commit came first on this socket
          if (this.#state && msg.epoch === this.epoch) return this.#changed();
          return this.#resync(typeof msg.group_info === 'string' ? msg.group_info : null);
        }
        // not a member: retry from the current GroupInfo, or create the group
        if (msg.group_info == null) return this.#createGroup();
        return this.#joinExternal(msg.group_info, true);
      }
      case 'mls_commit':
        return this.#processCommit(msg);
      case 'mls_reset':
        return this.#reset(msg);
      default:
        return this.#warn(`unexpected message ${JSON.stringify(msg?.type)}; ignored`);
    }
  }

  /** A moderator reset the room's group: drop everything of the old one and start again.
   * @param {any} msg */
  async #reset(msg) {
    const generation = msg.generation;
    if (!Number.isSafeInteger(generation) || generation <= this.#generation) {
      return this.#warn(`mls_reset to generation ${generation}, already at ${this.#generation}; ignored`);
    }
    this.#generation = generation;
    this.#state = null;
    this.#pending = null; // its retries stop, its answers carry the old generation
    this.#removed = false;
    this.#seen.clear();
    this.#staleSince.clear();
    this.#leafKeys.clear(); // the new group's epochs start at 0 again
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#resetTimer) clearTimeout(this.#resetTimer);
    this.#resetTimer = null;
    this.#onChange();
    if (msg.by === this.participant) return this.#createGroup();
    // Everyone else gives the moderator's group a head start, then asks with a group of its
    // own: the server answers all but the first with the GroupInfo to join from.
    this.#resetTimer = setTimeout(() => {
      this.#resetTimer = null;
      this.#enqueue(async () => {
        if (this.#generation === generation && !this.#state && !this.#pending) await this.#createGroup();
      }).catch((err) => this.#warn('starting after the reset failed', err));
    }, RESET_FOLLOW_MS);
  }

  /** @param {any} msg */
  async #processCommit(msg) {
    const state = this.#state;
    if (!state) return; // not a member (yet): our own join is decided by accepted/rejected
    if (typeof msg.epoch !== 'number' || typeof msg.commit !== 'string') return this.#warn('malformed mls_commit; ignored');
    const epoch = Number(state.groupContext.epoch);
    if (msg.epoch < epoch) return this.#warn(`mls_commit from epoch ${msg.epoch}, already at ${epoch}; ignored`);
    if (msg.epoch > epoch) {
      this.#warn(`mls_commit from epoch ${msg.epoch}, but this client is at ${epoch}: out of sync, rejoining`);
      return this.#resync(null);
    }
    if (this.#pending && this.#pending.kind === 'commit') this.#pending.lost = true; // another commit won this epoch
    let result;
    try {
      const m = decodeMessage(fromBase64(msg.commit));
      if (m.wireformat !== 'mls_private_message' && m.wireformat !== 'mls_public_message') throw new Error(`commit is a ${m.wireformat}`);
      result = await mls.processMessage(m, state, mls.emptyPskIndex, mls.acceptAll, this.#impl);
      if (result.kind !== 'newState') throw new Error('not a commit');
      const removed = result.newState.groupActiveState.kind === 'removedFromGroup'; // ts-mls keeps the epoch then
      if (!removed && result.newState.groupContext.epoch !== state.groupContext.epoch + 1n) throw new Error('did not advance the epoch');
    } catch (err) {
      this.#warn(`cannot process the commit from ${msg.from} for epoch ${epoch}: out of sync, rejoining`, err);
      return this.#resync(null);
    }
    if (result.newState.groupActiveState.kind === 'removedFromGroup') {
      this.#state = null;
      this.#pending = null;
      this.#removed = true;
      this.#onChange();
      return;
    }
    this.#state = result.newState;
    this.#changed();
  }

  /** after every new state: remember new leaves and our leaf key, tell the page, check for stale leaves */
  #changed() {
    const state = this.#state;
    if (state) {
      for (const l of leavesOf(state.ratchetTree)) {
        const key = toBase64(l.signatureKey);
        if (!this.#seen.has(key)) this.#seen.set(key, Number(state.groupContext.epoch));
      }
      const epoch = Number(state.groupContext.epoch);
      const leafKey = state.privatePath.privateKeys[state.privatePath.leafIndex * 2];
      if (leafKey) this.#leafKeys.set(epoch, { leaf: state.privatePath.leafIndex, key: leafKey });
      for (const e of this.#leafKeys.keys()) if (e <= epoch - LEAF_KEY_EPOCHS || e > epoch) this.#leafKeys.delete(e);
    }
    this.#onChange();
    this.#scheduleRemoval();
  }

  /** The participants currently in the room (server roster).
   * @param {Iterable<{id: string, name: string}> | Map<string, string>} participants */
  setPresent(participants) {
    const present = new Map();
    if (participants instanceof Map) for (const [id, name] of participants) present.set(id, name);
    else for (const p of participants) present.set(p.id, p.name);
    this.#present = present;
    this.#onChange();
    this.#scheduleRemoval();
  }

  /** stale leaves (to remove) and the kept leaves of present participants, by leaf index */
  #classify() {
    const state = /** @type {ClientState} */ (this.#state);
    const own = state.privatePath.leafIndex;
    const present = this.#present ?? new Map();
    const leaves = leavesOf(state.ratchetTree);
    /** @type {Map<string, typeof leaves>} */
    const byParticipant = new Map();
    const stale = [];
    for (const l of leaves) {
      if (l.leaf !== own && (!l.who || !present.has(l.who.participant))) stale.push(l);
      else {
        const p = l.leaf === own ? this.participant : /** @type {{participant: string}} */ (l.who).participant;
        byParticipant.set(p, [...(byParticipant.get(p) ?? []), l]);
      }
    }
    /** @type {typeof leaves} */
    const kept = [];
    for (const group of byParticipant.values()) {
      const seen = (/** @type {typeof leaves[0]} */ l) => (l.leaf === own ? Infinity : this.#seen.get(toBase64(l.signatureKey)) ?? 0);
      const keep = group.reduce((a, b) => (seen(b) > seen(a) || (seen(b) === seen(a) && b.leaf > a.leaf) ? b : a));
      for (const l of group) (l === keep ? kept : stale).push(l);
    }
    kept.sort((a, b) => a.leaf - b.leaf);
    return { stale, rank: kept.findIndex((l) => l.leaf === own) };
  }

  #scheduleRemoval() {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#state || this.#closed || !this.#present) return; // no roster yet: remove nothing
    const { stale, rank } = this.#classify();
    const now = Date.now();
    const keys = new Set(stale.map((l) => `${l.leaf}:${toBase64(l.signatureKey)}`));
    for (const k of [...this.#staleSince.keys()]) if (!keys.has(k)) this.#staleSince.delete(k);
    for (const k of keys) if (!this.#staleSince.has(k)) this.#staleSince.set(k, now);
    if (stale.length === 0 || rank < 0) return;
    const since = Math.min(...this.#staleSince.values());
    const delay = Math.max(0, since + rank * REMOVE_STAGGER_MS - now);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#enqueue(() => this.#commitRemovals()).catch((err) => this.#warn('remove commit failed', err));
    }, delay);
  }

  async #commitRemovals() {
    const state = this.#state;
    if (!state || this.#pending || !this.#present) return; // decided when the pending commit is settled
    const { stale } = this.#classify();
    if (stale.length === 0) return;
    const res = await mls.createCommit({ state, cipherSuite: this.#impl }, {
      extraProposals: stale.map((l) => ({ proposalType: 'remove', remove: { removed: l.leaf } })),
    });
    const epoch = Number(state.groupContext.epoch);
    this.#pending = { kind: 'commit', newState: res.newState, epoch: epoch + 1, lost: false };
    this.#sendPending({ type: 'mls_commit', epoch, commit: toBase64(mls.encodeMlsMessage(res.commit)), group_info: await this.#groupInfoOf(res.newState), generation: this.#generation });
  }

  /**
   * @param {string} text
   * @param {string | null} [to] a participant id: only that participant can read it
   * @param {Purpose} [purpose] what it is for (the receiver checks it)
   * @returns {Promise<string>} base64 MLSMessage (PrivateMessage)
   */
  encryptChat(text, to = null, purpose = 'chat') {
    return /** @type {Promise<string>} */ (this.#enqueue(async () => {
      const state = this.#state;
      if (!state) throw new Error('not a member of the E2EE group (yet): chat cannot be encrypted');
      const body = te.encode(text);
      let plaintext;
      const kind = 2 * PURPOSES.indexOf(purpose);
      if (kind < 0) throw new Error(`unknown application message purpose ${purpose}`);
      if (to === null) {
        plaintext = new Uint8Array(body.length + 1);
        plaintext[0] = kind + CHAT_TO_GROUP;
        plaintext.set(body, 1);
      } else {
        const own = state.privatePath.leafIndex;
        const epoch = Number(state.groupContext.epoch);
        const leaves = leavesOf(state.ratchetTree).filter((l) => l.leaf !== own && l.who?.participant === to);
        if (leaves.length === 0) throw new Error(`${to} has no leaf in the E2EE group (yet): a private message cannot be encrypted to them`);
        const sealed = [];
        for (const l of leaves) {
          const node = /** @type {any} */ (state.ratchetTree[l.leaf * 2]);
          const publicKey = await this.#impl.hpke.importPublicKey(node.leaf.hpkePublicKey);
          const context = privateChatContext(state.groupContext.groupId, epoch, own, l.leaf);
          const { ct, enc } = await encryptWithLabel(publicKey, PRIVATE_CHAT_LABEL, context, body, this.#impl.hpke);
          sealed.push({ leaf: l.leaf, kem: toBase64(enc), ct: toBase64(ct) });
        }
        const envelope = te.encode(JSON.stringify({ to, sealed }));
        plaintext = new Uint8Array(envelope.length + 1);
        plaintext[0] = kind + CHAT_PRIVATE;
        plaintext.set(envelope, 1);
      }
      const { newState, privateMessage } = await mls.createApplicationMessage(state, plaintext, this.#impl);
      this.#state = newState;
      return toBase64(mls.encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage }));
    }));
  }

  /**
   * @param {string} from the participant id the server says sent it
   * @param {string} b64 base64 MLSMessage
   * @param {Purpose} [purpose] what the wire message that carried it is for
   * @returns {Promise<{text: string, private: boolean, epoch: number, sender: {leaf: number, participant: string, name: string}, senderMatches: boolean}>}
   */
  decryptChat(from, b64, purpose = 'chat') {
    return /** @type {Promise<any>} */ (this.#enqueue(async () => {
      const state = this.#state;
      if (!state) throw new Error('not a member of the E2EE group (yet): chat cannot be decrypted');
      let m;
      try {
        m = decodeMessage(fromBase64(b64));
      } catch (err) {
        throw new Error(`garbled chat ciphertext: ${err instanceof Error ? err.message : err}`);
      }
      if (m.wireformat !== 'mls_private_message') throw new Error(`chat ciphertext is a ${m.wireformat}, not a private message`);
      const pm = m.privateMessage;
      if (!bytesEqual(pm.groupId, state.groupContext.groupId)) throw new Error('chat ciphertext is for another group');
      const epoch = state.groupContext.epoch;
      const keys = pm.epoch === epoch
        ? { senderDataSecret: state.keySchedule.senderDataSecret, ratchetTree: state.ratchetTree }
        : state.historicalReceiverData.get(pm.epoch);
      if (!keys) throw new Error(`chat from epoch ${pm.epoch} cannot be decrypted at epoch ${epoch} (not kept)`);
      let result;
      try {
        result = await mls.processPrivateMessage(state, pm, mls.emptyPskIndex, this.#impl);
      } catch (err) {
        throw new Error(`chat cannot be decrypted: ${err instanceof Error ? err.message : err}`);
      }
      if (result.kind !== 'applicationMessage') throw new Error('chat ciphertext is not an application message');
      this.#state = result.newState;
      const senderData = await decryptSenderData(pm, keys.senderDataSecret, this.#impl);
      if (!senderData) throw new Error('chat sender data cannot be decrypted');
      const node = keys.ratchetTree[senderData.leafIndex * 2];
      const cred = node && node.nodeType === 'leaf' ? node.leaf.credential : null;
      const who = cred && cred.credentialType === 'basic' ? parseIdentity(cred.identity) : null;
      const plaintext = result.message;
      let text;
      let isPrivate = false;
      const kind = plaintext[0] ?? -1;
      const sent = PURPOSES[kind >> 1];
      if (sent === undefined) throw new Error(`application message of an unknown kind ${kind}`);
      if (sent !== purpose) throw new Error(`a ${sent} message delivered as ${purpose}`);
      if ((kind & 1) === CHAT_TO_GROUP) text = decodeUtf8(plaintext.subarray(1), 'chat plaintext');
      else {
        isPrivate = true;
        text = await this.#openPrivate(plaintext.subarray(1), pm.groupId, Number(pm.epoch), senderData.leafIndex);
      }
      return {
        text,
        private: isPrivate,
        epoch: Number(pm.epoch),
        sender: { leaf: senderData.leafIndex, participant: who?.participant ?? '', name: who?.name ?? '' },
        senderMatches: who !== null && who.participant === from,
      };
    }));
  }

  /**
   * The text of a private envelope, if one of its entries is sealed to our leaf of `epoch`.
   * @param {Uint8Array} bytes @param {Uint8Array} groupId @param {number} epoch @param {number} senderLeaf
   */
  async #openPrivate(bytes, groupId, epoch, senderLeaf) {
    /** @type {any} */
    let env;
    try {
      env = JSON.parse(decodeUtf8(bytes, 'private chat envelope'));
    } catch (err) {
      throw new Error(`garbled private chat envelope: ${err instanceof Error ? err.message : err}`);
    }
    if (!env || typeof env.to !== 'string' || !Array.isArray(env.sealed)) throw new Error('garbled private chat envelope');
    if (env.to !== this.participant) throw new Error(`private message for ${env.to}, not for us`);
    const own = this.#leafKeys.get(epoch);
    if (!own) throw new Error(`private message from epoch ${epoch}: our leaf key of that epoch is not kept`);
    const entry = env.sealed.find((/** @type {any} */ e) => e && e.leaf === own.leaf);
    if (!entry || typeof entry.kem !== 'string' || typeof entry.ct !== 'string') throw new Error('private message not sealed to our leaf');
    const privateKey = await this.#impl.hpke.importPrivateKey(own.key);
    let body;
    try {
      body = await decryptWithLabel(privateKey, PRIVATE_CHAT_LABEL, privateChatContext(groupId, epoch, senderLeaf, own.leaf), fromBase64(entry.kem), fromBase64(entry.ct), this.#impl.hpke);
    } catch (err) {
      throw new Error(`private message cannot be opened: ${err instanceof Error ? err.message : err}`);
    }
    return decodeUtf8(body, 'private chat text');
  }

  /** The MLS roster (the leaves), with whether each matches a present participant of the same name.
   * @returns {RosterEntry[]} */
  roster() {
    const state = this.#state;
    if (!state) return [];
    const own = state.privatePath.leafIndex;
    return leavesOf(state.ratchetTree).map((l) => ({
      leaf: l.leaf,
      participant: l.who?.participant ?? '',
      name: l.who?.name ?? '',
      present: l.who !== null && this.#present?.get(l.who.participant) === l.who.name,
      self: l.leaf === own,
      signatureKey: l.signatureKey,
      binding: l.who?.binding,
      leafSig: l.who?.leafSig,
    }));
  }

  /** RFC 9605 §5.2 base_key of the current epoch, our leaf, and every leaf of this epoch's
   * tree with the participant id in its credential (for the receivers' KID check; leaves
   * without a readable basic credential are left out).
   * @returns {Promise<{epoch: number, leaf: number, secret: Uint8Array, senders: {leaf: number, participant: string}[]}>} */
  async mediaSecret() {
    const state = this.#state;
    if (!state) throw new Error('not a member of the E2EE group (yet)');
    const senders = leavesOf(state.ratchetTree).flatMap((l) => (l.who && l.who.participant ? [{ leaf: l.leaf, participant: l.who.participant }] : []));
    const secret = await mls.mlsExporter(state.keySchedule.exporterSecret, SFRAME_EXPORTER_LABEL, new Uint8Array(0), SFRAME_BASE_KEY_BYTES, this.#impl);
    return { epoch: Number(state.groupContext.epoch), leaf: state.privatePath.leafIndex, secret, senders };
  }

  /** Short authentication string of the current epoch (equal for all members of one group).
   * `generation` tells a new group's epoch 0 from the old group's after a reset.
   * @returns {Promise<{epoch: number, generation: number, digits: string, emoji: {char: string, name: string}[]}>} */
  async sas() {
    const state = this.#state;
    if (!state) throw new Error('not a member of the E2EE group (yet)');
    const epoch = Number(state.groupContext.epoch);
    const generation = this.#generation;
    const ikm = await crypto.subtle.importKey('raw', new Uint8Array(state.keySchedule.epochAuthenticator), 'HKDF', false, ['deriveBits']);
    const bits = new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: te.encode(SAS_INFO) }, ikm, 256));
    const n = new DataView(bits.buffer).getUint32(0) % 1_000_000;
    const d = String(n).padStart(6, '0');
    const emoji = Array.from(bits.subarray(4, 10), (b) => {
      const [char, name] = SAS_EMOJI[b % 64];
      return { char, name };
    });
    return { epoch, generation, digits: `${d.slice(0, 3)} ${d.slice(3)}`, emoji };
  }

  /** Stops timers and refuses further input. */
  close() {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#resetTimer) clearTimeout(this.#resetTimer);
    this.#resetTimer = null;
  }
}
