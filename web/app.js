// The entry point: the language switch, then the landing page or the room page, by URL.
//
// Modules: protocol.js (the wire, no DOM), media.js (devices, no page), i18n.js (texts),
// page.js (alert, status, announcements), home.js (landing page), account.js (sign-in over
// HTTP, no page), signin.js (the landing page's account controls), room.js (pre-join and
// meeting), devices.js (own camera and microphone), tiles.js (grid and participant list),
// moderation.js (moderators' controls), refusals.js (join errors and end states in words).

import { ROOM_ID_PATTERN } from './protocol.js';
import { getLocale, isLocale, setLocale, translatePage } from './i18n.js';
import { byId, showAlert } from './page.js';
import { showHome } from './home.js';
import { showRoom } from './room.js';

function start() {
  translatePage(document);
  const language = byId('language-select', HTMLSelectElement);
  language.value = getLocale();
  language.addEventListener('change', () => {
    if (isLocale(language.value)) setLocale(language.value);
  });

  const match = /^\/r\/([^/]*)\/?$/.exec(location.pathname);
  if (!match) {
    showHome();
    return;
  }
  const room = match[1];
  if (!ROOM_ID_PATTERN.test(room)) {
    showAlert('invalidRoom');
    showHome();
    return;
  }
  showRoom(room);
}

start();
