// Joining again after the connection was lost: when to try, and when to stop trying.
//
// Knows nothing of the page or the wire: room.js hands it a function that makes one attempt
// and draws the states it reports. Attempts run one at a time; the waits between them grow
// from RECONNECT_FIRST_DELAY_MS, doubling, to RECONNECT_MAX_DELAY_MS, with some jitter so
// that everyone who lost a restarted server does not knock at the same instant. Once
// RECONNECT_GIVE_UP_MS have passed since the loss, it stops and waits for `restart`.

/** The wait before the first attempt. */
export const RECONNECT_FIRST_DELAY_MS = 1000;
/** The longest wait between two attempts. */
export const RECONNECT_MAX_DELAY_MS = 15_000;
/** No new attempt starts this long after the connection was lost. */
export const RECONNECT_GIVE_UP_MS = 120_000;
/** Each wait is stretched or shrunk by up to this fraction at random. */
const JITTER = 0.2;

/**
 * The outcome of one attempt: `joined` (done), `retry` (try again later), or `stop` (it can
 * never work, e.g. the server refuses the name; do not try again).
 * @typedef {'joined' | 'retry' | 'stop'} AttemptResult
 */

/**
 * What the reconnection is doing, for the page to show.
 * - `waiting`: attempt `attempt` starts in `delayMs`.
 * - `trying`: attempt `attempt` is under way.
 * - `joined`: an attempt succeeded; the reconnection is over.
 * - `gaveup`: no attempt succeeded in time; `restart` tries again.
 * - `stopped`: an attempt said it can never work; the reconnection is over.
 * @typedef {{phase: 'waiting', attempt: number, delayMs: number}
 *   | {phase: 'trying', attempt: number}
 *   | {phase: 'joined' | 'gaveup' | 'stopped'}} ReconnectState
 */

/**
 * The wait before attempt `attempt` (1, 2, …): 1 s, 2 s, 4 s, 8 s, then 15 s, each ± 20 %.
 * @param {number} attempt
 * @param {() => number} [random] A number in [0, 1), e.g. `Math.random`.
 * @returns {number} Milliseconds.
 */
export function backoffDelay(attempt, random = Math.random) {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const base = Math.min(RECONNECT_FIRST_DELAY_MS * 2 ** exponent, RECONNECT_MAX_DELAY_MS);
  return Math.round(base * (1 + JITTER * (2 * random() - 1)));
}

export class Reconnector {
  /** @type {() => Promise<AttemptResult>} */
  #attempt;
  /** @type {(state: ReconnectState) => void} */
  #report;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  /** Attempts made since the loss (or the last `restart`). */
  #count = 0;
  /** When the connection was lost (or `restart` was called), in `performance.now()` time. */
  #since = 0;
  /** Bumped by `cancel` and `restart`: results of attempts from an older round are ignored. */
  #round = 0;
  #trying = false;
  /** Finished: joined, stopped, cancelled, or gave up. */
  #over = false;
  /** Finished by giving up (only then does `restart` apply: no attempt is under way). */
  #gaveUp = false;

  /**
   * @param {() => Promise<AttemptResult>} attempt Makes one attempt; never runs twice at once.
   * @param {(state: ReconnectState) => void} report
   */
  constructor(attempt, report) {
    this.#attempt = attempt;
    this.#report = report;
  }

  /** Whether it is still trying, or waiting for `restart` after giving up. */
  get active() {
    return !this.#over;
  }

  /** Begin: the first attempt starts after RECONNECT_FIRST_DELAY_MS. */
  start() {
    this.#since = performance.now();
    this.#count = 0;
    this.#schedule();
  }

  /** After giving up: start over, with an attempt right now. (Otherwise it does nothing.) */
  restart() {
    if (!this.#gaveUp) return;
    this.#round++;
    clearTimeout(this.#timer);
    this.#over = false;
    this.#gaveUp = false;
    this.#since = performance.now();
    this.#count = 0;
    this.#trying = false;
    this.#run();
  }

  /** While waiting, make the next attempt now (e.g. the browser says it is online again). */
  tryNow() {
    if (this.#over || this.#trying) return;
    clearTimeout(this.#timer);
    this.#run();
  }

  /** Stop for good; a result still on its way is ignored. */
  cancel() {
    this.#round++;
    clearTimeout(this.#timer);
    this.#over = true;
  }

  #schedule() {
    if (performance.now() - this.#since >= RECONNECT_GIVE_UP_MS) {
      this.#over = true;
      this.#gaveUp = true;
      this.#report({ phase: 'gaveup' });
      return;
    }
    const attempt = this.#count + 1;
    const delayMs = backoffDelay(attempt);
    this.#report({ phase: 'waiting', attempt, delayMs });
    this.#timer = setTimeout(() => this.#run(), delayMs);
  }

  async #run() {
    const round = this.#round;
    this.#count++;
    this.#trying = true;
    this.#report({ phase: 'trying', attempt: this.#count });
    /** @type {AttemptResult} */
    let result;
    try {
      result = await this.#attempt();
    } catch (e) {
      console.warn('conclave: reconnect attempt failed', e);
      result = 'retry';
    }
    if (round !== this.#round) return; // Cancelled or restarted meanwhile.
    this.#trying = false;
    if (result === 'joined' || result === 'stop') {
      this.#over = true;
      this.#report({ phase: result === 'joined' ? 'joined' : 'stopped' });
      return;
    }
    this.#schedule();
  }
}

/** After this many sessions in a row whose media path never connected, stop joining again. */
export const MEDIA_FAILURES_TO_GIVE_UP = 3;

/**
 * Counts sessions in a row whose media path (ICE and DTLS) never connected. The signalling
 * socket may join each time while the browser and the server find no route for media: then
 * joining again is a loop, and the page must say what is wrong instead.
 */
export class MediaFailures {
  #count = 0;

  /** Sessions in a row that ended without media. */
  get count() {
    return this.#count;
  }

  /** Media flows: the count starts over. */
  connected() {
    this.#count = 0;
  }

  /**
   * A session was lost. Returns whether to give up (MEDIA_FAILURES_TO_GIVE_UP sessions in a
   * row never had media) instead of joining again.
   * @param {boolean} hadMedia Whether its media path ever connected.
   * @returns {boolean}
   */
  lost(hadMedia) {
    if (hadMedia) this.#count = 0;
    else this.#count++;
    return this.#count >= MEDIA_FAILURES_TO_GIVE_UP;
  }

  /** The user asks to try again. */
  reset() {
    this.#count = 0;
  }
}

/**
 * Which explanation fits a media path that never connected: `mediaFailedLoopbackFirefox`
 * when the page is served from a loopback address to Firefox (which pairs a loopback media
 * candidate only with its own loopback candidates, and gathers those only with
 * `media.peerconnection.ice.loopback`), else `mediaFailed` (a network between the browser and
 * the server that blocks UDP and our TURN ports).
 * @param {string} hostname The page's `location.hostname`.
 * @param {string} userAgent `navigator.userAgent`.
 * @returns {'mediaFailed' | 'mediaFailedLoopbackFirefox'}
 */
export function mediaFailureKey(hostname, userAgent) {
  const loopback = /^(127\.\d+\.\d+\.\d+|\[::1\]|::1|localhost)$/i.test(hostname);
  return loopback && /\bFirefox\//.test(userAgent) ? 'mediaFailedLoopbackFirefox' : 'mediaFailed';
}
