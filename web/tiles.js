// The people in the meeting as the page shows them: one tile per person in a grid whose
// columns follow the number of people, the own tile (mirrored, muted) first, and the
// participant list. Knows nothing of the wire: app.js feeds it what the session reports.

import { onLocaleChange, t } from './i18n.js';

/** @typedef {import('./protocol.js').Source} Source */
/** @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('./protocol.js').RemoteTrack} RemoteTrack */

/**
 * @typedef {object} Tile
 * @property {HTMLElement} root
 * @property {HTMLVideoElement} video
 * @property {HTMLAudioElement | null} audio Null for the own tile: we never play ourselves.
 * @property {HTMLElement} name
 * @property {HTMLElement} avatar
 * @property {HTMLElement} mutedBadge
 * @property {HTMLElement} handBadge
 * @property {HTMLElement} roleBadge "Moderator", shown for moderators.
 * @property {HTMLElement} identityBadge "Signed in" or "Guest".
 * @property {HTMLElement} speakingBadge Shown while this participant is the active speaker.
 * @property {QualityBadge | null} quality How well their media arrives (not on the own tile).
 * @property {ParticipantInfo} info
 */

/**
 * A connection-quality indicator: bars (more filled is better) and a word.
 * @typedef {object} QualityBadge
 * @property {HTMLElement} root
 * @property {HTMLElement} text
 * @property {Quality} quality
 */

/** @typedef {import('./stats.js').Quality} Quality */
/** @typedef {'grid' | 'speaker'} Layout */

/**
 * A shared screen, shown larger than the tiles, above them.
 * @typedef {object} Presentation
 * @property {HTMLElement} root
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} caption
 * @property {MediaStreamTrack} track
 */

/** The key of the own tile and list entry (participant IDs are 16 hex digits). */
export const SELF = 'self';

/** The width of a tile in the strip of the speaker view, in CSS pixels. */
const STRIP_TILE_PX = 160;

/** The catalog key of each quality's word. @type {Record<Exclude<Quality, 'unknown'>, import('./i18n.js').MessageKey>} */
const QUALITY_WORDS = { good: 'qualityGood', fair: 'qualityFair', poor: 'qualityPoor' };

/** The shape of every tile. */
const TILE_ASPECT = 16 / 9;

/**
 * The grid for `count` tiles in a `width` × `height` area with `gap` between tiles: the
 * number of columns that makes the tiles largest while all of them fit, and the tiles'
 * width. Tiles never get narrower than `minWidth` (the page scrolls instead).
 * @param {number} count
 * @param {number} width
 * @param {number} height
 * @param {number} gap
 * @param {number} [minWidth]
 * @returns {{cols: number, rows: number, tileWidth: number}}
 */
export function bestGrid(count, width, height, gap, minWidth = 160) {
  const n = Math.max(1, count);
  let best = { cols: 1, rows: n, tileWidth: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const byWidth = (width - (cols - 1) * gap) / cols;
    const byHeight = ((height - (rows - 1) * gap) / rows) * TILE_ASPECT;
    const tileWidth = Math.max(Math.min(minWidth, byWidth), Math.min(byWidth, byHeight));
    if (tileWidth > best.tileWidth) {
      best = { cols, rows, tileWidth };
    }
  }
  return best;
}

/**
 * The room the grid may take: its width, and the height it has without scrolling.
 * @typedef {() => {width: number, height: number, gap: number}} MeasureArea
 */

export class Roster {
  /** @type {HTMLElement} */
  #grid;
  /** @type {HTMLUListElement} */
  #list;
  /** @type {HTMLElement} */
  #heading;
  /** @type {HTMLElement} */
  #presentations;
  /** @type {Map<string, Presentation>} Shared screens by participant ID. */
  #shown = new Map();
  /** @type {HTMLElement} */
  #count;
  /** @type {MeasureArea} */
  #measure;
  /** @type {Map<string, Tile>} Every tile, the own one under SELF. */
  #tiles = new Map();
  /** Remote tracks by participant and source, kept even if a track arrives before its tile. */
  /** @type {Map<string, Map<Source, RemoteTrack>>} */
  #remote = new Map();
  /** @type {Layout} */
  #layoutMode = 'grid';
  /** Who the speaker view shows large, if the caller has a wish. @type {string | null} */
  #featured = null;
  /** The key of the highlighted tile. @type {string | null} */
  #speaking = null;
  /** Adds controls to the list entry of someone else (moderators' actions). @type {((item: HTMLLIElement, info: ParticipantInfo) => void) | null} */
  #decorate = null;

  /**
   * @param {{grid: HTMLElement, list: HTMLUListElement, heading: HTMLElement, count: HTMLElement, presentations: HTMLElement}} elements
   * @param {MeasureArea} measure
   */
  constructor({ grid, list, heading, count, presentations }, measure) {
    this.#grid = grid;
    this.#presentations = presentations;
    this.#list = list;
    this.#heading = heading;
    this.#count = count;
    this.#measure = measure;
    onLocaleChange(() => this.#redraw());
  }

  /** How many others are in the meeting. */
  get othersCount() {
    return this.#tiles.size - (this.#tiles.has(SELF) ? 1 : 0);
  }

  /**
   * The name of participant `id`, if shown.
   * @param {string} id
   */
  nameOf(id) {
    return this.#tiles.get(id)?.info.name;
  }

  /**
   * Whether participant `id` has a raised hand.
   * @param {string} id
   */
  handOf(id) {
    return this.#tiles.get(id)?.info.hand_raised === true;
  }

  /**
   * Whether participant `id` publishes a screen now.
   * @param {string} id
   */
  isSharing(id) {
    return this.#tiles.get(id)?.info.sources.includes('screen') === true;
  }

  /**
   * Show whether our own hand is raised.
   * @param {boolean} raised
   */
  setSelfHand(raised) {
    const tile = this.#tiles.get(SELF);
    if (tile) this.#upsert({ ...tile.info, hand_raised: raised }, true);
  }

  /**
   * Let `decorate` add controls to every other participant's list entry, each time it is
   * drawn; `redraw` draws them all again (e.g. after our role changed).
   * @param {(item: HTMLLIElement, info: ParticipantInfo) => void} decorate
   */
  setDecorator(decorate) {
    this.#decorate = decorate;
  }

  /** Draw every tile and list entry again. */
  redraw() {
    this.#redraw();
  }

  /**
   * The participant `id` as last shown.
   * @param {string} id
   * @returns {ParticipantInfo | undefined}
   */
  infoOf(id) {
    return this.#tiles.get(id)?.info;
  }

  /**
   * Show the own tile (first in the grid) under `name`, with our role and whether we are
   * signed in (the badges the others see).
   * @param {string} name
   * @param {import('./protocol.js').Role} [role]
   * @param {boolean} [signedIn]
   */
  showSelf(name, role, signedIn) {
    const existing = this.#tiles.get(SELF);
    const info = {
      id: SELF,
      name,
      sources: existing?.info.sources ?? [],
      hand_raised: existing?.info.hand_raised ?? false,
      role: role ?? existing?.info.role,
      signed_in: signedIn ?? existing?.info.signed_in,
    };
    this.#upsert(info, true);
  }

  /**
   * Show what we send in the own tile: the camera track (mirrored), and whether we are muted.
   * @param {MediaStreamTrack | null} camera
   * @param {boolean} microphoneOn
   */
  setSelfMedia(camera, microphoneOn) {
    const tile = this.#tiles.get(SELF);
    if (!tile) return;
    /** @type {Source[]} */
    const sources = [];
    if (microphoneOn) sources.push('microphone');
    if (camera) sources.push('camera');
    const current = tile.video.srcObject;
    const showing = current instanceof MediaStream ? current.getVideoTracks()[0] : null;
    if (camera !== showing) tile.video.srcObject = camera ? new MediaStream([camera]) : null;
    this.#upsert({ ...tile.info, sources }, true);
  }

  /**
   * Show `participant` (someone else), creating their tile if new.
   * @param {ParticipantInfo} participant
   * @returns {boolean} Whether the tile is new.
   */
  upsert(participant) {
    return this.#upsert(participant, false);
  }

  /**
   * Remove participant `id`'s tile and list entry.
   * @param {string} id
   */
  remove(id) {
    const tile = this.#tiles.get(id);
    this.#remote.delete(id);
    this.#syncPresentation(id);
    if (!tile) return;
    tile.video.srcObject = null;
    if (tile.audio) tile.audio.srcObject = null;
    tile.root.remove();
    this.#tiles.delete(id);
    if (this.#speaking === id) this.#speaking = null;
    this.#list.querySelector(`[data-key="${id}"]`)?.remove();
    this.#layout();
  }

  /**
   * Remove the tiles of everyone else who is not in `ids` (after a reconnect), quietly.
   * @param {string[]} ids
   */
  retain(ids) {
    const keep = new Set(ids);
    for (const id of [...this.#tiles.keys()]) {
      if (id !== SELF && !keep.has(id)) this.remove(id);
    }
  }

  /**
   * Highlight the tile of the active speaker (SELF for ourselves), or none.
   * @param {string | null} key
   */
  setSpeaking(key) {
    if (key === this.#speaking) return;
    this.#speaking = key;
    for (const [k, tile] of this.#tiles) this.#drawSpeaking(k, tile);
  }

  /**
   * Show how well each other participant's media arrives; those missing from `qualities`
   * (nothing received from them) show nothing.
   * @param {Map<string, Quality>} qualities
   */
  setQualities(qualities) {
    for (const [key, tile] of this.#tiles) {
      const badge = tile.quality;
      if (key === SELF || !badge) continue;
      const quality = qualities.get(key) ?? 'unknown';
      if (badge.quality === quality) continue;
      badge.quality = quality;
      drawQuality(badge);
    }
  }

  /** The layout now. @returns {Layout} */
  get layout() {
    return this.#layoutMode;
  }

  /**
   * Grid (every tile alike) or speaker view (one large, the others in a strip).
   * @param {Layout} layout
   */
  setLayout(layout) {
    this.#layoutMode = layout;
    this.#layout();
  }

  /**
   * Whom the speaker view shows large: participant `id` (the one who spoke last), or with
   * null the first of the others. A shared screen goes before either.
   * @param {string | null} id
   */
  setFeatured(id) {
    if (id === this.#featured) return;
    this.#featured = id;
    if (this.#layoutMode === 'speaker') this.#layout();
  }

  /** Remove every tile, the own one too. */
  clear() {
    for (const id of [...this.#tiles.keys()]) this.remove(id);
    this.#remote.clear();
  }

  /** @param {RemoteTrack} remote */
  addTrack(remote) {
    let tracks = this.#remote.get(remote.participant);
    if (!tracks) {
      tracks = new Map();
      this.#remote.set(remote.participant, tracks);
    }
    tracks.set(remote.source, remote);
    if (remote.source === 'screen') {
      this.#syncPresentation(remote.participant);
      return;
    }
    const tile = this.#tiles.get(remote.participant);
    if (!tile) return; // Attached when the tile appears.
    const element = remote.source === 'camera' ? tile.video : tile.audio;
    if (element) attachTrack(element, remote.track);
    updateVideoVisibility(tile);
  }

  /** @param {RemoteTrack} remote */
  removeTrack(remote) {
    const tracks = this.#remote.get(remote.participant);
    if (tracks?.get(remote.source)?.track === remote.track) tracks.delete(remote.source);
    if (remote.source === 'screen') {
      this.#syncPresentation(remote.participant);
      return;
    }
    const tile = this.#tiles.get(remote.participant);
    if (!tile) return;
    const element = remote.source === 'camera' ? tile.video : tile.audio;
    const stream = element?.srcObject;
    if (element && stream instanceof MediaStream && stream.getTracks().includes(remote.track)) {
      element.srcObject = null;
    }
    updateVideoVisibility(tile);
  }

  /**
   * @param {ParticipantInfo} info
   * @param {boolean} self
   * @returns {boolean} Whether the tile is new.
   */
  #upsert(info, self) {
    const key = self ? SELF : info.id;
    let tile = this.#tiles.get(key);
    const isNew = !tile;
    if (!tile) {
      tile = createTile(info, self);
      this.#tiles.set(key, tile);
      if (self) this.#grid.prepend(tile.root);
      else this.#grid.append(tile.root);
      const item = document.createElement('li');
      item.dataset.key = key;
      if (self) this.#list.prepend(item);
      else this.#list.append(item);
      for (const remote of this.#remote.get(key)?.values() ?? []) {
        if (remote.source === 'screen') continue;
        const element = remote.source === 'camera' ? tile.video : tile.audio;
        if (element) attachTrack(element, remote.track);
      }
    }
    tile.info = info;
    for (const source of /** @type {Source[]} */ (['microphone', 'camera'])) {
      tile.root.dataset[source] = info.sources.includes(source) ? 'on' : 'off';
    }
    this.#drawTile(key, tile);
    updateVideoVisibility(tile);
    if (!self) this.#syncPresentation(key);
    if (isNew) this.#layout();
    return isNew;
  }

  /**
   * Draw the texts of one tile and its list entry.
   * @param {string} key
   * @param {Tile} tile
   */
  #drawTile(key, tile) {
    const { name } = tile.info;
    const shown = key === SELF ? t('nameYou', { name }) : name;
    const muted = !tile.info.sources.includes('microphone');
    tile.name.textContent = shown;
    tile.avatar.textContent = [...name.trim()][0]?.toUpperCase() ?? '?';
    tile.mutedBadge.textContent = t('muted');
    tile.mutedBadge.hidden = !muted;
    const hand = tile.info.hand_raised === true;
    tile.handBadge.textContent = t('handRaised');
    tile.handBadge.hidden = !hand;
    tile.root.dataset.hand = hand ? 'raised' : 'lowered';
    const moderator = tile.info.role === 'moderator';
    tile.roleBadge.textContent = t('badgeModerator');
    tile.roleBadge.hidden = !moderator;
    const identity = identityWord(tile.info);
    tile.identityBadge.textContent = identity ? t(identity) : '';
    tile.identityBadge.hidden = identity === null;
    tile.identityBadge.dataset.identity = tile.info.signed_in ? 'signed-in' : 'guest';
    this.#drawSpeaking(key, tile);
    if (tile.quality) drawQuality(tile.quality);
    const item = this.#list.querySelector(`[data-key="${key}"]`);
    if (!item) return;
    const label = document.createElement('span');
    label.className = 'person-name';
    label.textContent = shown;
    item.replaceChildren(label);
    if (moderator) {
      const badge = document.createElement('span');
      badge.className = 'badge role';
      badge.textContent = t('badgeModerator');
      item.append(' ', badge);
    }
    if (identity) {
      const badge = document.createElement('span');
      badge.className = 'badge identity';
      badge.dataset.identity = tile.info.signed_in ? 'signed-in' : 'guest';
      badge.textContent = t(identity);
      item.append(' ', badge);
    }
    if (hand) {
      const badge = document.createElement('span');
      badge.className = 'badge hand';
      badge.textContent = t('handRaised');
      item.append(' ', badge);
    }
    if (muted) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = t('muted');
      item.append(' ', badge);
    }
    if (key !== SELF && this.#decorate && item instanceof HTMLLIElement) this.#decorate(item, tile.info);
  }

  /**
   * Show participant `id`'s shared screen while they publish it and its track arrived;
   * remove it otherwise.
   * @param {string} id
   */
  #syncPresentation(id) {
    const track = this.#remote.get(id)?.get('screen')?.track;
    const tile = this.#tiles.get(id);
    const sharing = track && tile && tile.info.sources.includes('screen') ? track : null;
    let shown = this.#shown.get(id);
    if (shown && shown.track !== sharing) {
      shown.video.srcObject = null;
      shown.root.remove();
      this.#shown.delete(id);
      shown = undefined;
    }
    if (sharing && tile && !shown) {
      shown = createPresentation(id, sharing);
      this.#shown.set(id, shown);
      this.#presentations.append(shown.root);
      attachTrack(shown.video, sharing);
    }
    if (shown && tile) shown.caption.textContent = t('screenOf', { name: tile.info.name });
    const hidden = this.#shown.size === 0;
    if (this.#presentations.hidden !== hidden) {
      this.#presentations.hidden = hidden;
      this.#layout();
    }
  }

  /**
   * @param {string} key
   * @param {Tile} tile
   */
  #drawSpeaking(key, tile) {
    const speaking = key === this.#speaking;
    tile.root.dataset.speaking = String(speaking);
    tile.speakingBadge.hidden = !speaking;
    const label = tile.speakingBadge.querySelector('.speaking-text');
    if (label) label.textContent = t('speaking');
  }

  #redraw() {
    for (const [key, tile] of this.#tiles) this.#drawTile(key, tile);
    for (const id of this.#shown.keys()) this.#syncPresentation(id);
    this.#layout();
  }

  /** Fit the grid to the room it has now (after the window or the side panels changed). */
  relayout() {
    this.#layout();
  }

  /** Set the grid's shape and the participant count for the current number of tiles. */
  #layout() {
    const count = this.#tiles.size;
    this.#grid.dataset.count = String(count);
    this.#heading.textContent = t('participantsCount', { count });
    this.#count.textContent = String(count);
    this.#grid.dataset.layout = this.#layoutMode;
    this.#presentations.dataset.layout = this.#layoutMode;
    const featured = this.#layoutMode === 'speaker' ? this.#featuredKey() : null;
    for (const [key, tile] of this.#tiles) {
      if (key === featured) tile.root.dataset.featured = 'true';
      else delete tile.root.dataset.featured;
    }
    if (this.#grid.hidden) return;
    const area = this.#measure();
    if (this.#layoutMode === 'speaker') {
      // One large tile above a strip of small ones (all in the strip while a screen is shown).
      const strip = count - (featured === null ? 0 : 1);
      const perRow = Math.max(1, Math.floor((area.width + area.gap) / (STRIP_TILE_PX + area.gap)));
      const stripRows = Math.ceil(strip / perRow);
      const stripHeight = stripRows * (STRIP_TILE_PX / TILE_ASPECT + area.gap);
      const featureWidth = Math.max(
        STRIP_TILE_PX,
        Math.min(area.width, (area.height - stripHeight) * TILE_ASPECT),
      );
      this.#grid.dataset.cols = String(perRow);
      this.#grid.style.setProperty('--tile-width', `${STRIP_TILE_PX}px`);
      this.#grid.style.setProperty('--feature-width', `${Math.floor(featureWidth)}px`);
      return;
    }
    const shape = bestGrid(count, area.width, area.height, area.gap);
    this.#grid.dataset.cols = String(shape.cols);
    this.#grid.style.setProperty('--tile-width', `${Math.floor(shape.tileWidth)}px`);
  }

  /**
   * The tile the speaker view shows large: none while a screen is shown; else the wished
   * participant, the first of the others, or ourselves when alone.
   * @returns {string | null}
   */
  #featuredKey() {
    if (this.#shown.size > 0) return null;
    if (this.#featured !== null && this.#featured !== SELF && this.#tiles.has(this.#featured)) {
      return this.#featured;
    }
    for (const key of this.#tiles.keys()) if (key !== SELF) return key;
    return this.#tiles.has(SELF) ? SELF : null;
  }
}

/**
 * @param {ParticipantInfo} info
 * @param {boolean} self
 * @returns {Tile}
 */
function createTile(info, self) {
  const root = document.createElement('figure');
  root.className = self ? 'tile self' : 'tile';
  if (self) root.dataset.self = 'true';
  else root.dataset.participantId = info.id;
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.setAttribute('aria-hidden', 'true');
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // Sound comes from the audio element (and never from our own tile).
  video.hidden = true;
  video.setAttribute('aria-hidden', 'true'); // The caption names the tile; the picture is not text.
  const caption = document.createElement('figcaption');
  const name = document.createElement('span');
  name.className = 'tile-name';
  const mutedBadge = document.createElement('span');
  mutedBadge.className = 'badge';
  const handBadge = document.createElement('span');
  handBadge.className = 'badge hand';
  handBadge.hidden = true;
  const speakingBadge = document.createElement('span');
  speakingBadge.className = 'badge speaking';
  speakingBadge.hidden = true;
  const speakingText = document.createElement('span');
  speakingText.className = 'speaking-text';
  speakingBadge.append(bars('speaking-icon'), speakingText);
  const roleBadge = document.createElement('span');
  roleBadge.className = 'badge role';
  roleBadge.hidden = true;
  const identityBadge = document.createElement('span');
  identityBadge.className = 'badge identity';
  identityBadge.hidden = true;
  caption.append(name, roleBadge, identityBadge, speakingBadge, handBadge, mutedBadge);
  root.append(avatar, video);
  /** @type {QualityBadge | null} */
  let quality = null;
  if (!self) {
    quality = createQualityBadge();
    root.append(quality.root);
  }
  /** @type {HTMLAudioElement | null} */
  let audio = null;
  if (!self) {
    audio = document.createElement('audio');
    audio.autoplay = true;
    root.append(audio);
  }
  root.append(caption);
  return { root, video, audio, name, avatar, mutedBadge, handBadge, roleBadge, identityBadge, speakingBadge, quality, info };
}

/**
 * The badge word for how someone joined: "Signed in" (account or token) or "Guest"; none
 * while the server has not said (an older server).
 * @param {ParticipantInfo} info
 * @returns {import('./i18n.js').MessageKey | null}
 */
function identityWord(info) {
  if (info.signed_in === undefined) return null;
  return info.signed_in ? 'badgeSignedIn' : 'badgeGuest';
}

/**
 * Three bars for an icon (drawn by CSS; hidden from assistive technology).
 * @param {string} className
 * @returns {HTMLElement}
 */
function bars(className) {
  const icon = document.createElement('span');
  icon.className = `bars ${className}`;
  icon.setAttribute('aria-hidden', 'true');
  for (let i = 0; i < 3; i++) icon.append(document.createElement('span'));
  return icon;
}

/**
 * A quality indicator, hidden until there is something to show.
 * @param {HTMLElement} [root] An element of the page to use (e.g. in the control bar).
 * @returns {QualityBadge}
 */
export function createQualityBadge(root) {
  const el = root ?? document.createElement('span');
  el.classList.add('quality');
  el.setAttribute('role', 'img');
  el.hidden = true;
  const text = document.createElement('span');
  text.className = 'quality-text';
  text.setAttribute('aria-hidden', 'true');
  el.replaceChildren(bars('quality-bars'), text);
  /** @type {QualityBadge} */
  const badge = { root: el, text, quality: 'unknown' };
  return badge;
}

/**
 * Draw `badge` for its quality in the current language; hidden while `unknown`. A tile shows
 * the word ("Good"), the control bar says whose it is ("Your connection: Good"); the
 * accessible name always says what is measured.
 * @param {QualityBadge} badge
 * @param {boolean} [own] Our own connection (in the control bar).
 */
export function drawQuality(badge, own = false) {
  const { quality } = badge;
  badge.root.dataset.quality = quality;
  badge.root.hidden = quality === 'unknown';
  if (quality === 'unknown') return;
  const word = t(QUALITY_WORDS[quality]);
  const label = t(own ? 'selfQualityLabel' : 'qualityLabel', { quality: word });
  badge.text.textContent = own ? label : word;
  badge.root.setAttribute('aria-label', label);
}

/**
 * @param {string} id
 * @param {MediaStreamTrack} track
 * @returns {Presentation}
 */
function createPresentation(id, track) {
  const root = document.createElement('figure');
  root.className = 'presentation';
  root.dataset.participantId = id;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true;
  video.setAttribute('aria-hidden', 'true');
  const caption = document.createElement('figcaption');
  root.append(video, caption);
  return { root, video, caption, track };
}

/** @param {Tile} tile */
function updateVideoVisibility(tile) {
  tile.video.hidden = !(tile.video.srcObject && tile.info.sources.includes('camera'));
}

/**
 * @param {HTMLMediaElement} element
 * @param {MediaStreamTrack} track
 */
function attachTrack(element, track) {
  element.srcObject = new MediaStream([track]);
  element.play().catch(() => {
    // Autoplay refused: the element starts when the browser allows it.
  });
}
