// What moderators see and use: the lobby's knock queue (admit, deny), the actions on each
// other participant in the participant list (mute, stop camera or screen, allow again,
// grant or revoke the moderator role, remove, ban) and the meeting's settings (mute all,
// lock, lobby, password, permissions, end for all).
//
// Knows nothing of the wire: it calls `send` with a moderator message and draws what the
// page hands it. The server decides; a refused action comes back as `forbidden` and the page
// shows it. Everything here is hidden unless our role is `moderator`.

import { PERMISSIONS } from './protocol.js';
import { onLocaleChange, t } from './i18n.js';
import { announce, byId } from './page.js';

/** @typedef {import('./protocol.js').ModeratorMessage} ModeratorMessage */
/** @typedef {import('./protocol.js').Knock} Knock */
/** @typedef {import('./protocol.js').RoomState} RoomState */
/** @typedef {import('./protocol.js').Role} Role */
/** @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('./protocol.js').Permission} Permission */
/** @typedef {import('./protocol.js').Source} Source */
/** @typedef {import('./i18n.js').MessageKey} MessageKey */

/** @type {Record<Permission, MessageKey>} */
const PERMISSION_LABELS = {
  unmute: 'permUnmute',
  camera: 'permCamera',
  screen: 'permScreen',
  chat: 'permChat',
  files: 'permFiles',
  record: 'permRecord',
};

/** Per source: the words for stopping it and for allowing it again. */
const SOURCE_ACTIONS = /** @type {const} */ ([
  ['microphone', 'muteMicrophone', 'allowMicrophone'],
  ['camera', 'stopCamera', 'allowCamera'],
  ['screen', 'stopScreen', 'allowScreen'],
]);

export class ModerationUI {
  /** @type {(msg: ModeratorMessage) => boolean} */
  #send;
  /** @type {() => void} Redraws the participant list (its entries carry our actions). */
  #redrawPeople;
  #role = /** @type {Role} */ ('participant');
  /** @type {RoomState | null} */
  #state = null;
  /** @type {Map<string, Knock>} */
  #knocks = new Map();
  /** The role of each participant before we made them a moderator. @type {Map<string, Role>} */
  #formerRoles = new Map();
  /** Whether the knock and settings panels are open. */
  #open = { knocks: false, settings: false };
  #ui = {
    knockPanel: byId('knock-panel', HTMLElement),
    knockList: byId('knock-list', HTMLUListElement),
    knocksEmpty: byId('knocks-empty', HTMLParagraphElement),
    denyMessage: byId('deny-message', HTMLInputElement),
    lobbyButton: byId('lobby-button', HTMLButtonElement),
    lobbyCount: byId('lobby-count', HTMLSpanElement),
    lobbyCountLabel: byId('lobby-count-label', HTMLSpanElement),
    panel: byId('moderation-panel', HTMLElement),
    button: byId('moderation-button', HTMLButtonElement),
    muteAll: byId('mute-all', HTMLButtonElement),
    lock: byId('lock-toggle', HTMLButtonElement),
    lobby: byId('lobby-toggle', HTMLButtonElement),
    passwordForm: byId('room-password-form', HTMLFormElement),
    password: byId('room-password', HTMLInputElement),
    passwordState: byId('password-state', HTMLParagraphElement),
    clearPassword: byId('clear-password', HTMLButtonElement),
    endMeeting: byId('end-meeting', HTMLButtonElement),
    dialog: byId('confirm-dialog', HTMLDialogElement),
    dialogText: byId('confirm-text', HTMLParagraphElement),
    /** @type {Record<'participant' | 'guest', HTMLFieldSetElement>} */
    permissions: {
      participant: byId('perm-participant', HTMLFieldSetElement),
      guest: byId('perm-guest', HTMLFieldSetElement),
    },
  };
  /** @type {Record<'participant' | 'guest', Record<Permission, HTMLInputElement>>} */
  #checks;
  /** @type {(() => void) | null} Runs when the user confirms the open dialog. */
  #onConfirm = null;
  /** The confirmation text, redrawn on a language switch. @type {{key: MessageKey, name?: string} | null} */
  #confirmText = null;
  /** Whether we are in a meeting (the controls show only then). */
  #inMeeting = false;

  /**
   * @param {(msg: ModeratorMessage) => boolean} send
   * @param {() => void} redrawPeople
   * @param {() => void} onPanels Called when a panel opened or closed (the grid relayouts).
   */
  constructor(send, redrawPeople, onPanels) {
    this.#send = send;
    this.#redrawPeople = redrawPeople;
    const ui = this.#ui;
    this.#checks = {
      participant: this.#buildChecks('participant'),
      guest: this.#buildChecks('guest'),
    };
    ui.lobbyButton.addEventListener('click', () => {
      this.#open.knocks = !this.#open.knocks;
      this.#draw();
      onPanels();
    });
    ui.button.addEventListener('click', () => {
      this.#open.settings = !this.#open.settings;
      this.#draw();
      onPanels();
    });
    ui.muteAll.addEventListener('click', () => this.#send({ type: 'mute_all', source: 'microphone' }));
    ui.lock.addEventListener('click', () => this.#send({ type: 'lock', locked: !this.#state?.locked }));
    ui.lobby.addEventListener('click', () => this.#send({ type: 'set_lobby', enabled: !this.#state?.lobby }));
    ui.passwordForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const password = ui.password.value;
      if (!password) return;
      if (this.#send({ type: 'set_password', password })) ui.password.value = '';
    });
    ui.clearPassword.addEventListener('click', () => this.#send({ type: 'set_password', password: null }));
    ui.endMeeting.addEventListener('click', () =>
      this.#confirm({ key: 'confirmEnd' }, () => this.#send({ type: 'end_meeting' })),
    );
    ui.dialog.addEventListener('close', () => {
      const run = ui.dialog.returnValue === 'yes' ? this.#onConfirm : null;
      this.#onConfirm = null;
      this.#confirmText = null;
      run?.();
    });
    onLocaleChange(() => {
      this.#drawKnocks();
      this.#draw();
      if (this.#confirmText) this.#drawConfirmText();
    });
    this.#draw();
  }

  /** Whether we are a moderator now. */
  get isModerator() {
    return this.#role === 'moderator';
  }

  /** Whether one of our panels is open (for the page's layout). */
  get panelOpen() {
    return this.#inMeeting && this.isModerator && (this.#open.knocks || this.#open.settings);
  }

  /**
   * Show the controls for a meeting we just joined.
   * @param {Role} role
   * @param {RoomState | null} state
   * @param {Knock[]} knocks
   */
  start(role, state, knocks) {
    this.#inMeeting = true;
    this.#role = role;
    this.#state = state;
    this.#knocks = new Map(knocks.map((k) => [k.participant, k]));
    this.#drawKnocks();
    this.#draw();
  }

  /** Hide everything (the meeting is over). */
  stop() {
    this.#inMeeting = false;
    this.#role = 'participant';
    this.#state = null;
    this.#knocks.clear();
    this.#formerRoles.clear();
    this.#open = { knocks: false, settings: false };
    if (this.#ui.dialog.open) this.#ui.dialog.close('no');
    this.#drawKnocks();
    this.#draw();
  }

  /**
   * Our role changed.
   * @param {Role} role
   */
  setRole(role) {
    if (role === this.#role) return;
    this.#role = role;
    if (role !== 'moderator') this.#knocks.clear();
    this.#drawKnocks();
    this.#draw();
    this.#redrawPeople();
  }

  /** @param {RoomState} state */
  setRoomState(state) {
    const before = this.#state;
    this.#state = state;
    if (before && before.locked !== state.locked) {
      announce(state.locked ? 'roomLockedAnnounce' : 'roomUnlockedAnnounce');
    }
    this.#draw();
  }

  /** @param {Knock} knock */
  addKnock(knock) {
    const isNew = !this.#knocks.has(knock.participant);
    this.#knocks.set(knock.participant, knock);
    this.#drawKnocks();
    if (isNew && this.isModerator) announce('personKnocks', { name: knock.name });
  }

  /** @param {string} participant */
  removeKnock(participant) {
    if (!this.#knocks.delete(participant)) return;
    this.#drawKnocks();
  }

  /**
   * Someone left: forget what we stopped for them.
   * @param {string} id
   */
  forget(id) {
    this.#formerRoles.delete(id);
  }

  /**
   * Add our actions to the list entry of `info` (someone else), when we are a moderator.
   * @param {HTMLLIElement} item
   * @param {ParticipantInfo} info
   */
  decorate(item, info) {
    if (!this.#inMeeting || !this.isModerator) return;
    const group = document.createElement('div');
    group.className = 'person-actions';
    group.setAttribute('role', 'group');
    group.setAttribute('aria-label', t('actionFor', { action: t('moderation'), name: info.name }));
    // what a moderator (any of us) stopped, as the server says (`denied`)
    const stopped = new Set(info.denied ?? []);
    /**
     * @param {MessageKey} key
     * @param {() => void} action
     * @param {string} [className]
     */
    const button = (key, action, className) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = t(key);
      b.dataset.action = key;
      b.setAttribute('aria-label', t('actionFor', { action: t(key), name: info.name }));
      if (className) b.className = className;
      b.addEventListener('click', action);
      group.append(b);
    };
    for (const [source, stopKey, allowKey] of SOURCE_ACTIONS) {
      if (stopped.has(source)) {
        // the server's participant_updated redraws the entry
        button(allowKey, () => this.#send({ type: 'allow', participant: info.id, source }));
      } else {
        button(stopKey, () => this.#send({ type: 'mute', participant: info.id, source }));
      }
    }
    if (info.role === 'moderator') {
      // Back to the role they had when we promoted them; else `participant` (the server
      // does not tell which of participant or guest someone would be).
      const role = this.#formerRoles.get(info.id) ?? 'participant';
      button('revokeModerator', () => this.#send({ type: 'set_role', participant: info.id, role }));
    } else {
      button('makeModerator', () => {
        if (this.#send({ type: 'set_role', participant: info.id, role: 'moderator' })) {
          this.#formerRoles.set(info.id, info.role ?? 'participant');
        }
      });
    }
    button('remove', () =>
      this.#confirm({ key: 'confirmRemove', name: info.name }, () =>
        this.#send({ type: 'remove', participant: info.id }),
      ),
    );
    button(
      'ban',
      () =>
        this.#confirm({ key: 'confirmBan', name: info.name }, () =>
          this.#send({ type: 'ban', participant: info.id }),
        ),
      'danger',
    );
    item.append(group);
  }

  /**
   * Ask before a hard-to-undo action elsewhere on the page (e.g. resetting the encryption)
   * in the same dialog; `run` runs only after "Confirm".
   * @param {{key: MessageKey, name?: string}} text
   * @param {() => void} run
   */
  confirm(text, run) {
    this.#confirm(text, run);
  }

  /**
   * Ask before a hard-to-undo action; `run` runs only after "Confirm".
   * @param {{key: MessageKey, name?: string}} text
   * @param {() => void} run
   */
  #confirm(text, run) {
    const dialog = this.#ui.dialog;
    if (dialog.open) dialog.close('no');
    this.#onConfirm = run;
    this.#confirmText = text;
    this.#drawConfirmText();
    dialog.returnValue = '';
    dialog.showModal();
  }

  #drawConfirmText() {
    const text = this.#confirmText;
    if (!text) return;
    this.#ui.dialogText.textContent = text.name !== undefined ? t(text.key, { name: text.name }) : t(text.key);
  }

  /**
   * The six checkboxes of one role's permissions; a change sends all six.
   * @param {'participant' | 'guest'} role
   * @returns {Record<Permission, HTMLInputElement>}
   */
  #buildChecks(role) {
    const fieldset = this.#ui.permissions[role];
    /** @type {Partial<Record<Permission, HTMLInputElement>>} */
    const checks = {};
    for (const permission of PERMISSIONS) {
      const row = document.createElement('div');
      row.className = 'check';
      const input = document.createElement('input');
      input.type = 'checkbox';
      input.id = `perm-${role}-${permission}`;
      input.dataset.permission = permission;
      const label = document.createElement('label');
      label.htmlFor = input.id;
      label.dataset.key = PERMISSION_LABELS[permission];
      row.append(input, label);
      fieldset.append(row);
      checks[permission] = input;
      input.addEventListener('change', () => {
        const state = this.#state;
        if (!state) return;
        const permissions = { ...state[role], [permission]: input.checked };
        if (!this.#send({ type: 'set_permissions', role, permissions })) input.checked = !input.checked;
      });
    }
    return /** @type {Record<Permission, HTMLInputElement>} */ (checks);
  }

  #drawKnocks() {
    const ui = this.#ui;
    const items = [...this.#knocks.values()].map((knock) => {
      const item = document.createElement('li');
      item.dataset.participant = knock.participant;
      const name = document.createElement('span');
      name.className = 'person-name';
      name.textContent = knock.name;
      const badge = document.createElement('span');
      badge.className = 'badge identity';
      badge.dataset.identity = knock.signed_in ? 'signed-in' : 'guest';
      badge.textContent = t(knock.signed_in ? 'badgeSignedIn' : 'badgeGuest');
      const admit = document.createElement('button');
      admit.type = 'button';
      admit.className = 'primary';
      admit.textContent = t('admit');
      admit.setAttribute('aria-label', t('actionFor', { action: t('admit'), name: knock.name }));
      admit.addEventListener('click', () => this.#send({ type: 'admit', participant: knock.participant }));
      const deny = document.createElement('button');
      deny.type = 'button';
      deny.textContent = t('deny');
      deny.setAttribute('aria-label', t('actionFor', { action: t('deny'), name: knock.name }));
      deny.addEventListener('click', () => {
        const message = ui.denyMessage.value.trim();
        /** @type {ModeratorMessage} */
        const msg = message
          ? { type: 'deny', participant: knock.participant, message }
          : { type: 'deny', participant: knock.participant };
        if (this.#send(msg)) ui.denyMessage.value = '';
      });
      item.append(name, ' ', badge, ' ', admit, ' ', deny);
      return item;
    });
    ui.knockList.replaceChildren(...items);
    ui.knocksEmpty.hidden = items.length > 0;
    const count = this.#knocks.size;
    ui.lobbyCount.textContent = count > 0 ? String(count) : '';
    ui.lobbyCountLabel.textContent = count > 0 ? t('lobbyCount', { count }) : '';
  }

  #draw() {
    const ui = this.#ui;
    const shown = this.#inMeeting && this.isModerator;
    ui.lobbyButton.hidden = !shown;
    ui.button.hidden = !shown;
    ui.knockPanel.hidden = !shown || !this.#open.knocks;
    ui.panel.hidden = !shown || !this.#open.settings;
    ui.lobbyButton.setAttribute('aria-expanded', String(shown && this.#open.knocks));
    ui.button.setAttribute('aria-expanded', String(shown && this.#open.settings));
    const state = this.#state;
    ui.lock.setAttribute('aria-pressed', String(state?.locked === true));
    ui.lobby.setAttribute('aria-pressed', String(state?.lobby === true));
    ui.passwordState.textContent = t(state?.password_set ? 'passwordIsSet' : 'passwordNotSet');
    ui.clearPassword.disabled = !state?.password_set;
    for (const role of /** @type {const} */ (['participant', 'guest'])) {
      for (const permission of PERMISSIONS) {
        const input = this.#checks[role][permission];
        input.checked = state?.[role][permission] === true;
        const label = input.labels?.[0];
        if (label) label.textContent = t(PERMISSION_LABELS[permission]);
      }
    }
  }
}
