// Moderation in the browser: roles and their controls, hard mute, remove and ban, the lobby,
// invitation links (tokens) and room passwords. Each test starts the real server with the
// configuration it needs (as CONCLAVE_* environment variables) and drives real Chromium pages.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  inboundStreams,
  joinMeeting,
  launchBrowser,
  openParticipant,
  participantId,
  randomRoomId,
  setToggle,
  setToggles,
  sleep,
  waitFor,
  withParticipants,
} from './helpers.mjs';
import { serverBinary, startServer } from './server.mjs';
import { textContrastFailures } from './contrast.mjs';

/** @type {import('playwright-core').Browser | undefined} */
let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

function br() {
  if (!browser) throw new Error('the browser did not start');
  return browser;
}

/**
 * Run `body` with a server started with `env`, and stop it afterwards.
 * @param {Record<string, string>} env
 * @param {(server: import('./server.mjs').RunningServer) => Promise<void>} body
 */
async function withServer(env, body) {
  const server = await startServer({ env });
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

/**
 * The alert text of `p`'s page, once it contains `needle`.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} needle
 */
function expectAlert(p, needle) {
  return waitFor(`${p.label} to show an alert with "${needle}"`, async () => {
    const alert = p.page.locator('#alert');
    if (!(await alert.isVisible())) return null;
    const text = (await alert.textContent()) ?? '';
    return text.includes(needle) ? text : null;
  });
}

/**
 * Click a moderator action in `mod`'s participant list and, if asked, confirm it.
 * @param {import('./helpers.mjs').Participant} mod
 * @param {string} action e.g. "Mute microphone"
 * @param {string} name whose entry
 * @param {boolean} [confirm]
 */
async function moderate(mod, action, name, confirm = false) {
  await mod.page.getByRole('button', { name: `${action}: ${name}`, exact: true }).click();
  if (confirm) await mod.page.getByRole('button', { name: 'Confirm', exact: true }).click();
}

/**
 * The audio packets `p` has received from participant `from`.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} from
 */
async function audioPacketsFrom(p, from) {
  const streams = await inboundStreams(p);
  return streams
    .filter((s) => s.kind === 'audio' && s.participant === from)
    .reduce((sum, s) => sum + s.packetsReceived, 0);
}

/**
 * Open `mod`'s moderation settings panel (idempotent).
 * @param {import('./helpers.mjs').Participant} mod
 */
async function openSettings(mod) {
  const button = mod.page.getByRole('button', { name: 'Moderation', exact: true });
  if ((await button.getAttribute('aria-expanded')) !== 'true') await button.click();
}

test('open mode: the first moderates; hard mute, remove, ban', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withServer({}, async (srv) => {
    await withParticipants('moderation-mute-remove-ban', srv, async (ps) => {
      const url = `${srv.url}/r/${randomRoomId()}`;
      const ada = await openParticipant(br(), url, { label: 'ada' });
      ps.push(ada);
      await joinMeeting(ada);
      const bob = await openParticipant(br(), url, { label: 'bob' });
      ps.push(bob);
      await setToggle(bob, 'Microphone', true);
      const bobId = await joinMeeting(bob);

      // Only the moderator sees the controls.
      await ada.page.getByRole('button', { name: 'Moderation', exact: true }).waitFor({ state: 'visible' });
      assert.equal(await bob.page.getByRole('button', { name: 'Moderation', exact: true }).count(), 0);
      await ada.page.getByRole('button', { name: 'Mute microphone: bob', exact: true }).waitFor({ state: 'visible' });
      assert.equal(await bob.page.getByRole('button', { name: 'Mute microphone: ada', exact: true }).count(), 0);
      assert.equal(await ada.page.locator('#people-list .badge.role').first().textContent(), 'Moderator');

      // Ada receives Bob's audio; after the mute it stops growing.
      await waitFor('ada to receive audio from bob', async () => (await audioPacketsFrom(ada, bobId)) > 0);
      await moderate(ada, 'Mute microphone', 'bob');
      const mic = bob.page.getByRole('button', { name: 'Microphone', exact: true });
      await waitFor('bob: microphone disabled and off', async () =>
        (await mic.isDisabled()) && (await mic.getAttribute('aria-pressed')) === 'false',
      );
      const note = await bob.page.locator('#permission-note').textContent();
      assert.match(note ?? '', /A moderator muted you/);
      assert.equal(await mic.getAttribute('aria-describedby'), 'permission-note');
      await waitFor('ada: no more audio from bob', async () => {
        const a = await audioPacketsFrom(ada, bobId);
        await sleep(1500);
        const b = await audioPacketsFrom(ada, bobId);
        return a === b;
      });

      // Allowed again: the control works, but Bob stays muted.
      await moderate(ada, 'Allow microphone', 'bob');
      await waitFor('bob: microphone enabled again', async () => !(await mic.isDisabled()));
      assert.equal(await mic.getAttribute('aria-pressed'), 'false');
      assert.equal(await bob.page.locator('#permission-note').isVisible(), false);

      // Removed: a clear message, no automatic reconnect; Bob may come back.
      await moderate(ada, 'Remove', 'bob', true);
      await expectAlert(bob, 'removed you');
      await bob.page.getByRole('button', { name: 'Join', exact: true }).waitFor({ state: 'visible' });
      await sleep(1500);
      assert.equal(await bob.page.getByRole('button', { name: 'Leave', exact: true }).isVisible(), false);
      await bob.page.getByRole('button', { name: 'Join', exact: true }).click();
      await bob.page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
      await participantId(bob);

      // Banned: the rejoin (same browser context, same guest cookie) is refused.
      await moderate(ada, 'Ban', 'bob', true);
      await expectAlert(bob, 'banned you');
      await bob.page.getByRole('button', { name: 'Join', exact: true }).click();
      await expectAlert(bob, 'You cannot join it again');
      assert.equal(await bob.page.getByRole('button', { name: 'Leave', exact: true }).isVisible(), false);
    });
  });
});

test('lobby: a newcomer waits, is admitted and sees video; another is denied with a message', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withServer({}, async (srv) => {
    await withParticipants('moderation-lobby', srv, async (ps) => {
      const url = `${srv.url}/r/${randomRoomId()}`;
      const ada = await openParticipant(br(), url, { label: 'ada' });
      ps.push(ada);
      await setToggles(ada, ['Microphone', 'Camera'], true);
      const adaId = await joinMeeting(ada);
      await openSettings(ada);
      const lobbyToggle = ada.page.getByRole('button', { name: 'Lobby for newcomers', exact: true });
      await lobbyToggle.click();
      await waitFor('the lobby to be on', async () => (await lobbyToggle.getAttribute('aria-pressed')) === 'true');

      const carol = await openParticipant(br(), url, { label: 'carol' });
      ps.push(carol);
      await carol.page.getByLabel('Name', { exact: true }).fill('carol');
      await carol.page.getByRole('button', { name: 'Join', exact: true }).click();
      await carol.page.getByRole('heading', { name: 'Waiting to be let in' }).waitFor({ state: 'visible' });
      assert.notEqual(((await carol.page.locator('#lobby-message').textContent()) ?? '').trim(), '');

      // The moderator hears of the knock, sees a count, and admits.
      await waitFor('ada to announce the knock', async () =>
        ((await ada.page.locator('#announcer').textContent()) ?? '').includes('carol is waiting'),
      );
      assert.equal(await ada.page.locator('#lobby-count').textContent(), '1');
      await ada.page.getByRole('button', { name: 'Lobby (1 waiting)', exact: true }).click();
      const failures = await textContrastFailures(ada.page);
      assert.deepEqual(failures, [], 'moderator panels meet WCAG AA contrast');
      await ada.page.getByRole('button', { name: 'Admit: carol', exact: true }).click();
      await carol.page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
      await participantId(carol);
      await expectMediaFrom(carol, [adaId]);
      await waitFor('the knock to be gone', async () => (await ada.page.locator('#knock-list li').count()) === 0);

      // Denied with a message.
      const dave = await openParticipant(br(), url, { label: 'dave' });
      ps.push(dave);
      await dave.page.getByLabel('Name', { exact: true }).fill('dave');
      await dave.page.getByRole('button', { name: 'Join', exact: true }).click();
      await dave.page.getByRole('heading', { name: 'Waiting to be let in' }).waitFor({ state: 'visible' });
      await ada.page.getByLabel('Message when denying (optional)').fill('Not today, sorry');
      await ada.page.getByRole('button', { name: 'Deny: dave', exact: true }).click();
      const text = await expectAlert(dave, 'Not today, sorry');
      assert.match(text, /did not let you in/);
      await dave.page.getByRole('button', { name: 'Join', exact: true }).waitFor({ state: 'visible' });
    });
  });
});

const TOKEN_ENV = {
  CONCLAVE_ACCESS__MODE: 'closed',
  CONCLAVE_TOKENS__ENABLED: 'true',
  CONCLAVE_TOKENS__SECRET: 'e2e-only-secret-0123456789abcdefghijklmnop',
  CONCLAVE_TOKENS__AUDIENCE: 'conclave-e2e',
  CONCLAVE_TOKENS__ISSUER: 'conclave-e2e-issuer',
};

/**
 * Mint an invite link with the real `conclave token`, with the server's token settings.
 * @param {string} base The server's URL.
 * @param {string} room
 * @param {string} name
 * @param {string[]} [flags]
 */
async function mintLink(base, room, name, flags = []) {
  const { stdout } = await promisify(execFile)(
    serverBinary(),
    ['token', '--room', room, '--name', name, '--ttl', '1h', ...flags],
    { env: { ...process.env, ...TOKEN_ENV } },
  );
  const link = new URL(stdout.trim());
  assert.ok(link.searchParams.get('jwt'), `a link with a token: ${stdout}`);
  return `${base}${link.pathname}${link.search}`;
}

test('token link: joins as the named user; without a token, sign-in is required', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withServer(TOKEN_ENV, async (srv) => {
    await withParticipants('moderation-token', srv, async (ps) => {
      const room = randomRoomId();
      const mona = await openParticipant(br(), await mintLink(srv.url, room, 'Mona Moderator', ['--moderator']), {
        label: 'mona',
      });
      ps.push(mona);
      assert.equal(new URL(mona.page.url()).searchParams.has('jwt'), false, 'the token left the address bar');
      assert.equal(await mona.page.getByLabel('Name', { exact: true }).isVisible(), false);
      await mona.page.getByRole('button', { name: 'Join', exact: true }).click();
      await mona.page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
      await mona.page.locator('.tile.self .tile-name', { hasText: 'Mona Moderator (you)' }).waitFor();

      const tina = await openParticipant(br(), await mintLink(srv.url, room, 'Tina Token'), { label: 'tina' });
      ps.push(tina);
      await tina.page.getByRole('button', { name: 'Join', exact: true }).click();
      // A new room of a `closed` server starts with the lobby on: the moderator admits her,
      // and sees in the queue that she is signed in (by her token).
      await tina.page.getByRole('heading', { name: 'Waiting to be let in' }).waitFor({ state: 'visible' });
      await mona.page.getByRole('button', { name: 'Lobby (1 waiting)', exact: true }).click();
      const knock = mona.page.locator('#knock-list li', { hasText: 'Tina Token' });
      assert.equal(await knock.locator('.badge.identity').textContent(), 'Signed in');
      await mona.page.getByRole('button', { name: 'Admit: Tina Token', exact: true }).click();
      await tina.page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
      await tina.page.locator('.tile.self .tile-name', { hasText: 'Tina Token (you)' }).waitFor();
      assert.equal(new URL(tina.page.url()).searchParams.has('jwt'), false);
      const entry = mona.page.locator('#people-list li', { hasText: 'Tina Token' });
      await entry.waitFor();
      assert.equal(await entry.locator('.badge.identity').textContent(), 'Signed in');

      const guest = await openParticipant(br(), `${srv.url}/r/${room}`, { label: 'gus' });
      ps.push(guest);
      await guest.page.getByLabel('Name', { exact: true }).fill('gus');
      await guest.page.getByRole('button', { name: 'Join', exact: true }).click();
      await expectAlert(guest, 'only signed-in people and holders of an invitation link');
    });
  });
});

test('password: a newcomer is asked for it; a wrong one is refused, the right one joins', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withServer({}, async (srv) => {
    await withParticipants('moderation-password', srv, async (ps) => {
      const url = `${srv.url}/r/${randomRoomId()}`;
      const ada = await openParticipant(br(), url, { label: 'ada' });
      ps.push(ada);
      await joinMeeting(ada);
      await openSettings(ada);
      await ada.page.getByLabel('New room password', { exact: true }).fill('correct horse 42');
      await ada.page.getByRole('button', { name: 'Set password', exact: true }).click();
      await waitFor('the password to be set', async () =>
        (await ada.page.locator('#password-state').textContent()) === 'A password is set.',
      );

      const erin = await openParticipant(br(), url, { label: 'erin' });
      ps.push(erin);
      await erin.page.getByLabel('Name', { exact: true }).fill('erin');
      await erin.page.getByRole('button', { name: 'Join', exact: true }).click();
      await expectAlert(erin, 'This meeting has a password');
      // The pre-join form asks for it (the lobby's field of the same name is hidden).
      const field = erin.page.locator('#password-input');
      assert.equal(await field.isVisible(), true);
      assert.equal(await field.evaluate((el) => el.labels?.[0]?.textContent), 'Room password');
      await field.fill('wrong horse 42');
      await erin.page.getByRole('button', { name: 'Join', exact: true }).click();
      await expectAlert(erin, 'That password is wrong');
      await field.fill('correct horse 42');
      await erin.page.getByRole('button', { name: 'Join', exact: true }).click();
      await erin.page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
      await participantId(erin);
    });
  });
});

test('lock keeps newcomers out; mute all; end meeting for all (after confirmation)', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withServer({}, async (srv) => {
    await withParticipants('moderation-lock-end', srv, async (ps) => {
      const url = `${srv.url}/r/${randomRoomId()}`;
      const ada = await openParticipant(br(), url, { label: 'ada' });
      ps.push(ada);
      await joinMeeting(ada);
      const bob = await openParticipant(br(), url, { label: 'bob' });
      ps.push(bob);
      await setToggle(bob, 'Microphone', true);
      await joinMeeting(bob);

      await openSettings(ada);
      await ada.page.getByRole('button', { name: 'Mute everyone', exact: true }).click();
      const mic = bob.page.getByRole('button', { name: 'Microphone', exact: true });
      await waitFor('bob: microphone disabled and off', async () =>
        (await mic.isDisabled()) && (await mic.getAttribute('aria-pressed')) === 'false',
      );

      const lock = ada.page.getByRole('button', { name: 'Lock meeting', exact: true });
      await lock.click();
      await waitFor('the meeting to be locked', async () => (await lock.getAttribute('aria-pressed')) === 'true');
      const cleo = await openParticipant(br(), url, { label: 'cleo' });
      ps.push(cleo);
      await cleo.page.getByLabel('Name', { exact: true }).fill('cleo');
      await cleo.page.getByRole('button', { name: 'Join', exact: true }).click();
      await expectAlert(cleo, 'locked this meeting');

      // Made a moderator: Bob's page follows self_updated (controls appear, the muted
      // microphone works again: moderators may do everything) and everyone sees the badge.
      await moderate(ada, 'Make moderator', 'bob');
      await bob.page.getByRole('button', { name: 'Moderation', exact: true }).waitFor({ state: 'visible' });
      await waitFor('bob: microphone enabled again', async () => !(await mic.isDisabled()));
      await ada.page.locator('#people-list li', { hasText: 'bob' }).locator('.badge.role').waitFor();
      await moderate(ada, 'Revoke moderator', 'bob');
      await waitFor('bob: moderation controls gone', async () =>
        !(await bob.page.getByRole('button', { name: 'Moderation', exact: true }).isVisible()),
      );

      // Ending asks first; Cancel changes nothing.
      await ada.page.getByRole('button', { name: 'End meeting for all', exact: true }).click();
      await ada.page.getByRole('button', { name: 'Cancel', exact: true }).click();
      await sleep(500);
      assert.equal(await bob.page.getByRole('button', { name: 'Leave', exact: true }).isVisible(), true);
      await ada.page.getByRole('button', { name: 'End meeting for all', exact: true }).click();
      await ada.page.getByRole('button', { name: 'Confirm', exact: true }).click();
      await expectAlert(bob, 'ended the meeting for everyone');
      await bob.page.getByRole('button', { name: 'Join', exact: true }).waitFor({ state: 'visible' });
    });
  });
});
