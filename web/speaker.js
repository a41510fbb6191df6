// Who is speaking: from audio levels over time to one active speaker, steady enough to show.
//
// Pure logic, no page and no clock: the caller passes the time with every update (as str0m's
// state machines take `now`). A participant counts as speaking from the moment their level
// reaches SPEAKING_LEVEL; they stay the active speaker through pauses up to SPEAKER_HOLD_MS,
// unless someone else is loud while they have been quiet for SPEAKER_SWITCH_MS. So the
// highlight neither flickers between words nor lags long behind a change of speaker.

/** Level (0…1, see stats.js `levelFromRms`) from which someone counts as speaking: −33 dBFS. */
export const SPEAKING_LEVEL = 0.45;
/** How long the active speaker stays so through a pause. */
export const SPEAKER_HOLD_MS = 1500;
/** How long the active speaker must have been quiet before a louder one takes over. */
export const SPEAKER_SWITCH_MS = 500;

/**
 * @typedef {object} SpeakerState
 * @property {string | null} speaking The active speaker now (highlighted), if anyone.
 * @property {string | null} recent The last one to speak other than `exclude` (for the speaker
 *   view, which keeps showing them through silence), if anyone.
 */

export class SpeakerDetector {
  /** @type {Map<string, number>} When each participant was last loud. */
  #loudAt = new Map();
  /** @type {string | null} */
  #speaking = null;
  /** @type {string | null} */
  #recent = null;
  /** @type {string | null} */
  #exclude;

  /**
   * @param {string | null} [exclude] Never `recent` (our own key: the speaker view shows others).
   */
  constructor(exclude = null) {
    this.#exclude = exclude;
  }

  /**
   * Feed the levels of this moment (participants missing from `levels` are silent).
   * @param {number} now Milliseconds, any monotonic origin.
   * @param {Map<string, number>} levels
   * @returns {SpeakerState}
   */
  update(now, levels) {
    /** @type {string | null} */
    let loudest = null;
    let loudestLevel = -1;
    for (const [id, level] of levels) {
      if (level < SPEAKING_LEVEL) continue;
      this.#loudAt.set(id, now);
      if (level > loudestLevel) {
        loudest = id;
        loudestLevel = level;
      }
    }
    const current = this.#speaking;
    const quietFor = current === null ? Infinity : now - (this.#loudAt.get(current) ?? -Infinity);
    if (current !== null && quietFor > SPEAKER_HOLD_MS) this.#speaking = null;
    if (loudest !== null && loudest !== current) {
      if (this.#speaking === null || quietFor >= SPEAKER_SWITCH_MS) this.#speaking = loudest;
    }
    if (this.#speaking !== null && this.#speaking !== this.#exclude) this.#recent = this.#speaking;
    return { speaking: this.#speaking, recent: this.#recent };
  }

  /**
   * Forget participant `id` (they left).
   * @param {string} id
   */
  forget(id) {
    this.#loudAt.delete(id);
    if (this.#speaking === id) this.#speaking = null;
    if (this.#recent === id) this.#recent = null;
  }

  /** Forget everyone (a new session). */
  reset() {
    this.#loudAt.clear();
    this.#speaking = null;
    this.#recent = null;
  }
}
