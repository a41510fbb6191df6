// End-to-end encryption of one meeting session: joins the room's MLS group (group.js) over
// the session's socket, gives each epoch's media key to the frame transforms (frames.js),
// together with who holds which leaf in that epoch's MLS tree (for the receivers' check that
// a track's frames come from the participant the server says publishes it),
// encrypts and decrypts chat, and says what the page shows: one room-wide state, the
// members of the MLS group (not the server's list), who is verified, and the SAS.
//
//   const e2ee = MeetingE2ee.forSettings(settings);   // null when E2EE is off; throws when unsupported
//   e2ee?.attach(session, onChange);                   // before session.join()
//   e2ee.status(), await e2ee.sas(), e2ee.confirmSas(epoch), await e2ee.encrypt(text) ...
//
// Room-wide state (docs/security.md, "End-to-end encryption"):
// - `pending`: no keys yet (the group is being created or joined) — shown as not encrypted;
// - `encrypted`: every leaf of the MLS group is a participant the server lists under the same
//   name (a leaf of someone who just left is being removed and does not count);
// - `unverified`: the group has a member that is no participant of the room (or has another
//   name): someone the server (or anybody) added that the others cannot see in the meeting.
// "Verified" is per person: the user compared the SAS with the others and confirmed it; a
// newcomer is unverified until the SAS of the new epoch is compared again.
//
// A moderator can reset the room's group (`resetGroup()`, e.g. when a garbage commit made it
// unusable): everyone starts a new group (group.js), nobody is verified any more (a new group
// has a new SAS), and `status().reset` says who did it. The new group's epochs start at 0
// again; the frame transforms get them offset by a multiple of 256 (`#epochBase`), so that
// their epoch only grows and the KID's epoch bits (epoch mod 256) stay the MLS epoch's.

import { E2eeGroup } from './group.js';
import { FrameCrypto } from './frames.js';
import { checkLeaf, judge, toB64url } from './binding.js';
import { rememberVerified, verifiedAccounts } from './identity.js';

/** @typedef {import('../protocol.js').ConclaveSession} ConclaveSession */
/** @typedef {import('../protocol.js').MeetingSettings} MeetingSettings */
/** @typedef {import('../protocol.js').MlsServerMessage} MlsServerMessage */
/** @typedef {import('../protocol.js').E2eeJoined} E2eeJoined */

/** @typedef {'pending' | 'encrypted' | 'unverified'} E2eeState */

/**
 * One member of the MLS group, as the page lists it.
 * @typedef {object} E2eeMember
 * @property {number} leaf
 * @property {string} participant The participant ID in the member's credential.
 * @property {string} name The name in the member's credential.
 * @property {boolean} self
 * @property {'present' | 'leaving' | 'unknown'} match Whether the server lists them (same
 *   name), lists them no more (their removal is under way), or never did.
 * @property {boolean} verified The user confirmed the SAS while this member was in the group,
 *   or the member's leaf is signed by an account key this browser verified before.
 * @property {'verified' | 'new_key' | 'bound' | 'forged' | 'none' | 'checking'} identity What
 *   the member's account binding says (./binding.js `judge`; `checking` until it is checked).
 * @property {{username: string, name: string} | null} account The account the binding names.
 */

/**
 * What the page shows.
 * @typedef {object} E2eeStatus
 * @property {E2eeState} state
 * @property {number | null} epoch
 * @property {E2eeMember[]} members
 * @property {string[]} outside IDs of participants who are not in the group (they cannot
 *   decrypt anything: joining, or a client without E2EE).
 * @property {number} generation The room's group generation (one more after each reset).
 * @property {{by: string, name: string, self: boolean} | null} reset The latest reset of the
 *   group in this session: who did it (participant ID and name), and whether it was us.
 */

/** Why a browser cannot take part, as a client-side protocol error. */
export class E2eeUnsupportedError extends Error {
  constructor() {
    super(
      'This meeting is end-to-end encrypted, and this browser cannot encrypt audio and video ' +
        '(it lacks encoded transforms). Use a current Chromium, Chrome, Edge, Firefox or Safari.',
    );
    this.code = 'client_e2ee_unsupported';
  }
}

export class MeetingE2ee {
  /** @type {FrameCrypto} */ #fc;
  /** @type {ConclaveSession | null} */ #session = null;
  /** @type {E2eeGroup | null} */ #group = null;
  /** Messages that arrived before the group existed, in order. @type {MlsServerMessage[]} */
  #early = [];
  /** The epoch (of the transforms: `#epochBase` + MLS epoch) whose media key they have. */
  #keyedEpoch = -1;
  /** Added to the MLS epoch for the transforms; grows by a multiple of 256 at each reset. */
  #epochBase = 0;
  /** The group generation `#epochBase` and `#verified` belong to. */
  #generation = 0;
  /** @type {{by: string, name: string, self: boolean} | null} */
  #reset = null;
  /** Participants ever listed by the server in this session: their stale leaves are "leaving". */
  #seen = new Set();
  /** `participant/leaf` of members the user verified. */
  #verified = new Set();
  #selfId = '';
  #selfName = '';
  /** Our leaf's account binding (signed-in pages), the server's binding key, the room.
   * @type {import('./identity.js').AccountBinder | null} */
  #binder = null;
  /** @type {Uint8Array<ArrayBuffer> | null} */
  #serverKey = null;
  #room = '';
  /** Checked bindings by leaf signature key (base64url). @type {Map<string, import('./binding.js').LeafBinding>} */
  #bindings = new Map();
  /** @type {() => void} */
  #onChange = () => {};
  #closed = false;

  /**
   * The E2EE of a session under `settings`: null when the server has it off.
   * @param {MeetingSettings | null} settings
   * @returns {MeetingE2ee | null}
   * @throws {E2eeUnsupportedError} when E2EE is required and this browser cannot do it.
   */
  static forSettings(settings) {
    if (settings?.e2ee === 'off') return null;
    const mode = FrameCrypto.mode();
    if (!mode) throw new E2eeUnsupportedError();
    return new MeetingE2ee(new FrameCrypto(mode));
  }

  /** @param {FrameCrypto} fc */
  constructor(fc) {
    this.#fc = fc;
  }

  /**
   * Identities bound to accounts (before `attach`): our leaf's binder (null when not signed
   * in), the server's binding key from `/api/settings`, and the room, for checking others.
   * @param {{binder: import('./identity.js').AccountBinder | null, serverKey: Uint8Array<ArrayBuffer> | null, room: string}} id
   */
  setIdentity(id) {
    this.#binder = id.binder;
    this.#serverKey = id.serverKey;
    this.#room = id.room;
  }

  /** The frame encryption (for statistics and tests). */
  get frames() {
    return this.#fc;
  }

  /**
   * Use `session` (before its `join`): frames are encrypted from the first one, MLS
   * messages go to the group, and `onChange` runs after every change of what `status()` says.
   * @param {ConclaveSession} session
   * @param {() => void} onChange
   */
  attach(session, onChange) {
    this.#session = session;
    this.#onChange = onChange;
    session.setFrameCrypto(this.#fc);
    session.on('joined', ({ id, name, participants, e2ee }) => {
      this.#selfId = id;
      this.#selfName = name ?? '';
      for (const p of participants) this.#seen.add(p.id);
      void this.#start(e2ee);
    });
    session.on('mls', (msg) => {
      if (msg.type === 'mls_reset') {
        const by = msg.by;
        const name = by === this.#selfId ? this.#selfName : (session.participants.find((p) => p.id === by)?.name ?? '');
        this.#reset = { by, name, self: by === this.#selfId };
      }
      if (this.#group) void this.#group.handle(msg);
      else this.#early.push(msg);
    });
    session.on('participantjoined', ({ participant }) => {
      this.#seen.add(participant.id);
      this.#present();
    });
    session.on('participantleft', () => this.#present());
    session.on('closed', () => this.close());
  }

  /** @param {E2eeJoined} e2ee */
  async #start(e2ee) {
    const session = this.#session;
    if (!session) return;
    if (e2ee.mode !== 'required') {
      // The page asked before joining and was told otherwise: the server changed its mind.
      console.warn('conclave: the server no longer requires E2EE; this session keeps encrypting');
    }
    const group = await E2eeGroup.create({
      participant: this.#selfId,
      name: this.#selfName,
      send: (msg) => session.sendMls(/** @type {import('../protocol.js').MlsClientMessage} */ (msg)),
      onChange: () => void this.#changed(),
      binder: this.#binder,
    });
    if (this.#closed) return group.close();
    this.#group = group;
    this.#present(); // before start: a group with no roster removes nobody
    await group.start(e2ee);
    for (const msg of this.#early.splice(0)) await group.handle(msg);
  }

  /** Tell the group who is in the room now (the server's list and us). */
  #present() {
    const session = this.#session;
    if (!this.#group || !session) return;
    const present = new Map([[this.#selfId, this.#selfName]]);
    for (const p of session.participants) present.set(p.id, p.name);
    this.#group.setPresent(present);
  }

  /** After any change of the group: a new epoch's key (with its leaf -> participant map,
   * from the same MLS state) to the transforms, then the page. */
  async #changed() {
    const group = this.#group;
    if (group && group.generation !== this.#generation) {
      // A new group: a new SAS to compare, and epochs from 0 again.
      this.#generation = group.generation;
      this.#verified.clear();
      this.#epochBase = (Math.floor(this.#keyedEpoch / 256) + 1) * 256;
    }
    const base = this.#epochBase;
    if (group?.member && group.epoch !== null && base + group.epoch !== this.#keyedEpoch) {
      const epoch = base + group.epoch;
      this.#keyedEpoch = epoch;
      try {
        const key = await group.mediaSecret();
        if (base + key.epoch === epoch && base === this.#epochBase) await this.#fc.setKey({ ...key, epoch });
      } catch (err) {
        console.warn('conclave: E2EE media key not set', err);
      }
    }
    if (!this.#closed) this.#onChange();
    if (group) await this.#checkBindings(group);
  }

  /** Check the account binding of every leaf not checked yet, then redraw.
   * @param {E2eeGroup} group */
  async #checkBindings(group) {
    const fresh = group.roster().filter((r) => !this.#bindings.has(toB64url(r.signatureKey)));
    if (fresh.length === 0) return;
    for (const r of fresh) {
      const id = toB64url(r.signatureKey);
      if (this.#bindings.has(id)) continue;
      /** @type {import('./binding.js').LeafBinding} */
      let b = { status: 'forged', reason: 'no binding key from the server' };
      if (this.#serverKey || (r.binding === undefined && r.leafSig === undefined)) {
        b = await checkLeaf({
          signed: r.binding,
          leafSig: r.leafSig,
          mlsSignatureKey: r.signatureKey,
          room: this.#room,
          serverKey: this.#serverKey ?? new Uint8Array(32),
          origin: location.origin,
          now: Math.floor(Date.now() / 1000),
        });
      }
      if (b.status === 'forged') console.warn(`conclave: leaf ${r.leaf} (${r.name}): ${b.reason}`);
      this.#bindings.set(id, b);
    }
    if (!this.#closed) this.#onChange();
  }

  /** @returns {E2eeStatus} */
  status() {
    const group = this.#group;
    const session = this.#session;
    const generation = this.#generation;
    const reset = this.#reset;
    if (!group || !group.member || !session) {
      return { state: 'pending', epoch: null, members: [], outside: session?.participants.map((p) => p.id) ?? [], generation, reset };
    }
    const epoch = group.epoch;
    const remembered = verifiedAccounts();
    const own = this.#binder?.fingerprint ?? null;
    /** @type {E2eeMember[]} */
    const members = group.roster().map((r) => {
      const b = this.#bindings.get(toB64url(r.signatureKey));
      const identity = b ? judge(b, remembered, own) : 'checking';
      return {
        leaf: r.leaf,
        participant: r.participant,
        name: r.name,
        self: r.self,
        match: r.self || r.present ? 'present' : this.#seen.has(r.participant) && !isListed(session, r.participant) ? 'leaving' : 'unknown',
        verified: identity !== 'forged' && (r.self || this.#verified.has(`${r.participant}/${r.leaf}`) || identity === 'verified'),
        identity,
        account: b?.status === 'bound' ? { username: b.binding.username, name: b.binding.name } : null,
      };
    });
    const inGroup = new Set(members.filter((m) => m.match === 'present').map((m) => m.participant));
    const outside = session.participants.map((p) => p.id).filter((id) => !inGroup.has(id));
    const state = members.some((m) => m.match === 'unknown' || m.identity === 'forged') ? 'unverified' : 'encrypted';
    return { state, epoch, members, outside, generation, reset };
  }

  /** The SAS of the current epoch, or null without keys. */
  async sas() {
    if (!this.#group?.member) return null;
    return this.#group.sas();
  }

  /**
   * The user compared the SAS of `epoch` with the others and it matched: everyone in the
   * group now is verified. Refused (false) when the epoch (or, given `generation`, the group)
   * has changed meanwhile.
   * @param {number} epoch
   * @param {number} [generation]
   */
  confirmSas(epoch, generation) {
    const status = this.status();
    if (status.epoch !== epoch) return false;
    if (generation !== undefined && status.generation !== generation) return false;
    const group = this.#group;
    const keys = new Map((group?.roster() ?? []).map((r) => [r.leaf, toB64url(r.signatureKey)]));
    for (const m of status.members) {
      if (m.match !== 'present') continue;
      this.#verified.add(`${m.participant}/${m.leaf}`);
      // A bound member's account key is remembered: verified in later meetings too.
      const b = this.#bindings.get(keys.get(m.leaf) ?? '');
      if (!m.self && b?.status === 'bound') rememberVerified(b.binding.account, b.fingerprint);
    }
    this.#onChange();
    return true;
  }

  /**
   * Moderators: reset the room's group (`mls_reset`); everyone starts a new one.
   * @returns {boolean} Whether it was sent.
   */
  resetGroup() {
    return this.#session?.moderate({ type: 'mls_reset' }) ?? false;
  }

  /** Whether chat can be encrypted now. */
  get ready() {
    return this.#group?.member === true;
  }

  /**
   * @param {string} text
   * @param {string | null} [to] a participant id: sealed so that only they can read it
   * @param {import('./group.js').Purpose} [purpose] chat, a file offer, …
   * @returns {Promise<string>}
   */
  encrypt(text, to = null, purpose = 'chat') {
    if (!this.#group) return Promise.reject(new Error('no E2EE group yet'));
    return this.#group.encryptChat(text, to, purpose);
  }

  /**
   * @param {string} from
   * @param {string} ciphertext
   * @param {import('./group.js').Purpose} [purpose] what the wire message is for
   * @returns {Promise<{text: string, private: boolean, senderMatches: boolean}>}
   */
  async decrypt(from, ciphertext, purpose = 'chat') {
    if (!this.#group) throw new Error('no E2EE group yet');
    const m = await this.#group.decryptChat(from, ciphertext, purpose);
    return { text: m.text, private: m.private, senderMatches: m.senderMatches };
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#group?.close();
    this.#fc.close();
  }
}

/**
 * @param {ConclaveSession} session
 * @param {string} id
 */
function isListed(session, id) {
  return session.participants.some((p) => p.id === id);
}
