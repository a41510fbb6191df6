// What RTCPeerConnection.getStats() says about a meeting, in the terms the page shows: how
// loud each participant is now, and how good the connection is, ours and each other's.
//
// Knows nothing of the page. It reads the peer connection and the session's mid → publisher
// map (protocol.js) twice a second and reports to a callback. The judgement is in pure
// functions (`judgeQuality`, `levelFromRms`) so the thresholds are stated in one place.

/** @typedef {import('./protocol.js').TrackInfo} TrackInfo */

/** How good a connection is; `unknown` while there is nothing to judge it by. */
/** @typedef {'good' | 'fair' | 'poor' | 'unknown'} Quality */

/**
 * What one connection was like over the window.
 * @typedef {object} Measures
 * @property {number | null} lossFraction Packets lost / expected, 0…1; null without packets.
 * @property {number | null} jitterMs Interarrival jitter (the worst stream).
 * @property {number | null} rttMs Round trip to the server.
 * @property {boolean} limited The browser limits what it sends (bandwidth or CPU).
 * @property {boolean} stalled Streams exist, but no packet arrived in the whole window.
 */

/**
 * One report, twice a second.
 * @typedef {object} MeetingReport
 * @property {Map<string, number>} levels Audio level of each other participant, 0…1 on the
 *   scale of `levelFromRms` (participants without audio are missing).
 * @property {Map<string, Quality>} quality Each other participant's media as we receive it.
 * @property {Quality} self Our own connection.
 */

/** How often the statistics are read. */
export const STATS_INTERVAL_MS = 500;
/** Quality is judged over this much history. */
export const QUALITY_WINDOW_MS = 5000;
/** Quality needs at least this much history; before it is `unknown`. */
const QUALITY_MIN_SPAN_MS = 2000;

/**
 * Thresholds from `fair` and from `poor` on. Loss and jitter follow the usual guidance for
 * interactive audio and video (a few percent of loss is audible, 30 ms of jitter strains the
 * jitter buffer); the round trip is to our server, so half the mouth-to-ear budget.
 */
export const QUALITY_LIMITS = {
  lossFraction: { fair: 0.02, poor: 0.08 },
  jitterMs: { fair: 30, poor: 80 },
  rttMs: { fair: 300, poor: 600 },
};

/** The quietest level, in dBFS, that `levelFromRms` shows above 0. */
const LEVEL_FLOOR_DB = -60;

/**
 * A level from 0 (silence, −60 dBFS and below) to 1 (full scale), linear in decibels: the
 * scale of the microphone meter (media.js) too.
 * @param {number} rms Root mean square of the samples, 0…1.
 * @returns {number}
 */
export function levelFromRms(rms) {
  if (!(rms > 0)) return 0;
  const db = 20 * Math.log10(rms);
  return Math.min(1, Math.max(0, (db - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB));
}

/**
 * Judge a connection: the worst of its measures decides. Nothing measured is `unknown`.
 * @param {Measures} m
 * @returns {Quality}
 */
export function judgeQuality(m) {
  if (m.stalled) return 'poor';
  /** @type {Quality[]} */
  const verdicts = [];
  /**
   * @param {number | null} value
   * @param {{fair: number, poor: number}} limits
   */
  const judge = (value, limits) => {
    if (value === null) return;
    verdicts.push(value >= limits.poor ? 'poor' : value >= limits.fair ? 'fair' : 'good');
  };
  judge(m.lossFraction, QUALITY_LIMITS.lossFraction);
  judge(m.jitterMs, QUALITY_LIMITS.jitterMs);
  judge(m.rttMs, QUALITY_LIMITS.rttMs);
  if (m.limited) verdicts.push('fair');
  if (verdicts.length === 0) return 'unknown';
  if (verdicts.includes('poor')) return 'poor';
  if (verdicts.includes('fair')) return 'fair';
  return 'good';
}

/**
 * Cumulative counters of one moment.
 * @typedef {object} Sample
 * @property {number} at `performance.now()` when read.
 * @property {Map<string, {received: number, lost: number, jitterMs: number, energy: number, duration: number, audioLevel: number | null}>} inbound
 *   Per inbound stream (stats id), with its publisher in `owner`.
 * @property {Map<string, string>} owner Inbound stream id → participant ID.
 * @property {number | null} rttMs Selected candidate pair's current round trip.
 * @property {number | null} uplinkLoss The server's worst reported loss of what we send.
 * @property {boolean} limited Whether an outbound stream is limited by bandwidth or CPU.
 */

export class MeetingStats {
  /** @type {RTCPeerConnection} */
  #pc;
  /** @type {() => Record<string, TrackInfo>} */
  #tracks;
  /** @type {(report: MeetingReport) => void} */
  #report;
  /** @type {Sample[]} Oldest first, spanning QUALITY_WINDOW_MS. */
  #samples = [];
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;
  #busy = false;

  /**
   * @param {RTCPeerConnection} pc
   * @param {() => Record<string, TrackInfo>} tracks The mid → publisher map of the latest offer.
   * @param {(report: MeetingReport) => void} report
   */
  constructor(pc, tracks, report) {
    this.#pc = pc;
    this.#tracks = tracks;
    this.#report = report;
    this.#timer = setInterval(() => this.#tick(), STATS_INTERVAL_MS);
  }

  /** Stop reading. Idempotent. */
  stop() {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #tick() {
    if (this.#busy || this.#timer === undefined) return;
    if (this.#pc.connectionState === 'closed') {
      this.stop();
      return;
    }
    this.#busy = true;
    try {
      const sample = await this.#read();
      if (this.#timer === undefined) return;
      this.#samples.push(sample);
      while (this.#samples.length > 2 && sample.at - this.#samples[1].at >= QUALITY_WINDOW_MS) {
        this.#samples.shift();
      }
      this.#report(this.#judge());
    } catch (e) {
      console.warn('conclave: reading statistics failed', e);
    } finally {
      this.#busy = false;
    }
  }

  /** @returns {Promise<Sample>} */
  async #read() {
    const tracks = this.#tracks();
    /** @type {Map<string, string>} */
    const midByTrack = new Map();
    for (const t of this.#pc.getTransceivers()) {
      if (t.mid !== null) midByTrack.set(t.receiver.track.id, t.mid);
    }
    const report = await this.#pc.getStats();
    /** @type {Sample} */
    const sample = {
      at: performance.now(),
      inbound: new Map(),
      owner: new Map(),
      rttMs: null,
      uplinkLoss: null,
      limited: false,
    };
    /** @type {string | null} */
    let selectedPair = null;
    report.forEach((/** @type {any} */ s) => {
      if (s.type === 'transport' && typeof s.selectedCandidatePairId === 'string') {
        selectedPair = s.selectedCandidatePairId;
      }
    });
    report.forEach((/** @type {any} */ s) => {
      switch (s.type) {
        case 'inbound-rtp': {
          const mid = s.mid ?? midByTrack.get(s.trackIdentifier);
          const info = mid !== undefined ? tracks[mid] : undefined;
          if (!info) break;
          sample.owner.set(s.id, info.participant);
          sample.inbound.set(s.id, {
            received: s.packetsReceived ?? 0,
            lost: Math.max(0, s.packetsLost ?? 0),
            jitterMs: (s.jitter ?? 0) * 1000,
            energy: info.source === 'microphone' ? (s.totalAudioEnergy ?? 0) : 0,
            duration: info.source === 'microphone' ? (s.totalSamplesDuration ?? 0) : 0,
            audioLevel: info.source === 'microphone' && typeof s.audioLevel === 'number' ? s.audioLevel : null,
          });
          break;
        }
        case 'candidate-pair':
          if (s.id === selectedPair && typeof s.currentRoundTripTime === 'number') {
            sample.rttMs = s.currentRoundTripTime * 1000;
          }
          break;
        case 'remote-inbound-rtp':
          if (typeof s.fractionLost === 'number') {
            sample.uplinkLoss = Math.max(sample.uplinkLoss ?? 0, s.fractionLost);
          }
          break;
        case 'outbound-rtp':
          if (s.qualityLimitationReason === 'bandwidth' || s.qualityLimitationReason === 'cpu') {
            sample.limited = true;
          }
          break;
      }
    });
    return sample;
  }

  /** @returns {MeetingReport} */
  #judge() {
    const now = this.#samples[this.#samples.length - 1];
    const previous = this.#samples.length > 1 ? this.#samples[this.#samples.length - 2] : null;
    const oldest = this.#samples[0];
    const span = now.at - oldest.at;

    /** @type {Map<string, number>} */
    const levels = new Map();
    /** @type {Map<string, {received: number, lost: number, jitterMs: number}>} */
    const perParticipant = new Map();
    let allReceived = 0;
    let allLost = 0;
    let worstJitter = 0;
    for (const [id, stream] of now.inbound) {
      const participant = now.owner.get(id);
      if (participant === undefined) continue;
      // Level: the mean power since the last reading (energy is the sum of squared samples
      // times their duration), else the browser's momentary level.
      const before = previous?.inbound.get(id);
      if (stream.duration > 0 || stream.audioLevel !== null) {
        const dDuration = before ? stream.duration - before.duration : 0;
        const rms =
          dDuration > 0
            ? Math.sqrt(Math.max(0, stream.energy - (before?.energy ?? 0)) / dDuration)
            : (stream.audioLevel ?? 0);
        levels.set(participant, Math.max(levels.get(participant) ?? 0, levelFromRms(rms)));
      }
      const first = oldest.inbound.get(id);
      const received = stream.received - (first?.received ?? 0);
      const lost = stream.lost - (first?.lost ?? 0);
      const sum = perParticipant.get(participant) ?? { received: 0, lost: 0, jitterMs: 0 };
      sum.received += received;
      sum.lost += Math.max(0, lost);
      sum.jitterMs = Math.max(sum.jitterMs, stream.jitterMs);
      perParticipant.set(participant, sum);
      allReceived += received;
      allLost += Math.max(0, lost);
      worstJitter = Math.max(worstJitter, stream.jitterMs);
    }

    /** @type {Map<string, Quality>} */
    const quality = new Map();
    const judged = span >= QUALITY_MIN_SPAN_MS;
    for (const [participant, sum] of perParticipant) {
      if (!judged) {
        quality.set(participant, 'unknown');
        continue;
      }
      const expected = sum.received + sum.lost;
      quality.set(
        participant,
        judgeQuality({
          lossFraction: expected > 0 ? sum.lost / expected : null,
          jitterMs: expected > 0 ? sum.jitterMs : null,
          rttMs: null,
          limited: false,
          stalled: expected === 0,
        }),
      );
    }

    const expected = allReceived + allLost;
    const downLoss = expected > 0 ? allLost / expected : null;
    const upLoss = now.uplinkLoss;
    const loss = downLoss === null ? upLoss : upLoss === null ? downLoss : Math.max(downLoss, upLoss);
    const self = judged
      ? judgeQuality({
          lossFraction: loss,
          jitterMs: expected > 0 ? worstJitter : null,
          rttMs: now.rttMs,
          limited: now.limited,
          stalled: false,
        })
      : 'unknown';
    return { levels, quality, self };
  }
}
