// The landing page: make a new meeting (and copy its link), or open one by link or ID; sign
// in or out (signin.js).

import { ROOM_ID_PATTERN } from './protocol.js';
import { byId, clearAlert, copyLink, showAlert } from './page.js';
import { showAccountPanel } from './signin.js';

/**
 * A fresh room ID: 16 random bytes as 22 base64url characters (128 bits).
 * @returns {string}
 */
export function newRoomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const base64 = btoa(String.fromCharCode(...bytes));
  return base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The room ID in what the user typed: a bare ID, or a link whose path is `/r/<id>`.
 * @param {string} input
 * @returns {string | null}
 */
export function roomIdFromInput(input) {
  const text = input.trim();
  if (ROOM_ID_PATTERN.test(text)) return text;
  let url;
  try {
    url = new URL(text, location.origin);
  } catch {
    return null;
  }
  const match = /^\/r\/([^/]+)\/?$/.exec(url.pathname);
  return match && ROOM_ID_PATTERN.test(match[1]) ? match[1] : null;
}

/**
 * The link of `room` on this server.
 * @param {string} room
 */
export function roomLink(room) {
  return `${location.origin}/r/${room}`;
}

/** Show the landing page and wire its controls. */
export function showHome() {
  const ui = {
    view: byId('home-view', HTMLElement),
    newMeeting: byId('new-meeting', HTMLButtonElement),
    created: byId('created', HTMLElement),
    createdHeading: byId('created-heading', HTMLHeadingElement),
    createdLink: byId('created-link', HTMLInputElement),
    copyCreated: byId('copy-created', HTMLButtonElement),
    goToMeeting: byId('go-to-meeting', HTMLAnchorElement),
    openForm: byId('open-form', HTMLFormElement),
    openInput: byId('open-input', HTMLInputElement),
  };
  ui.view.hidden = false;
  showAccountPanel();
  ui.newMeeting.addEventListener('click', () => {
    // The room exists from its first join: making one is only making an unguessable name.
    const room = newRoomId();
    clearAlert();
    ui.createdLink.value = roomLink(room);
    ui.goToMeeting.href = `/r/${room}`;
    ui.created.hidden = false;
    ui.createdHeading.focus();
  });
  ui.copyCreated.addEventListener('click', () => copyLink(ui.createdLink));
  ui.openForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = roomIdFromInput(ui.openInput.value);
    if (room) location.assign(`/r/${room}`);
    else showAlert('invalidRoom');
  });
}
