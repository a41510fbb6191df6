// A real OpenID Provider (the `oidc-provider` package) over HTTPS on 127.0.0.1, for browser
// tests of OpenID Connect sign-in.
//
// One confidential client (authorization code + PKCE S256, client_secret_basic, RS256 ID
// tokens) and a fixed set of accounts. The login UI is the package's built-in development
// interactions: a form with `login` and `password` inputs (any password is accepted, the login
// becomes the account id) and then a consent page with a "Continue" button. loginAtProvider
// drives both.
//
// The certificate is a fresh self-signed leaf for IP 127.0.0.1 (and DNS localhost) made with
// the openssl CLI; `caFile` is its PEM, for a client that trusts it as its only root.

import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * @typedef {object} RunningProvider
 * @property {string} issuer `https://127.0.0.1:PORT`, no trailing slash.
 * @property {string} caFile Path of the PEM certificate the provider serves (self-signed).
 * @property {() => Promise<void>} stop Close the server and remove the temp dir.
 */

/**
 * Drop the package's development-only warnings (in-memory adapter, dev interactions,
 * unsupported runtime) while `fn` runs; everything else still reaches the console.
 * @template T
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
async function quietly(fn) {
  const { warn, info } = console;
  /** @param {(...args: unknown[]) => void} original */
  const filter = (original) => (/** @type {unknown[]} */ ...args) => {
    if (typeof args[0] === 'string' && /^oidc-provider (WARNING|NOTICE):/.test(args[0])) return;
    original.apply(console, args);
  };
  console.warn = filter(warn);
  console.info = filter(info);
  try {
    return await fn();
  } finally {
    console.warn = warn;
    console.info = info;
  }
}

/** @param {string} text */
function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * @param {string} title
 * @param {string} body HTML
 */
function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>${body}</body></html>`;
}

/** @returns {Promise<number>} a port that was free on 127.0.0.1 a moment ago */
function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

/**
 * Make a self-signed leaf certificate (not a CA: webpki rejects a CA certificate used as an
 * end-entity) for 127.0.0.1 and localhost in `dir`.
 * @param {string} dir
 */
async function makeCertificate(dir) {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  await run('openssl', [
    'req', '-x509',
    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', keyFile, '-out', certFile,
    '-days', '1', '-nodes',
    '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext', 'basicConstraints=critical,CA:FALSE',
    '-addext', 'keyUsage=critical,digitalSignature',
    '-addext', 'extendedKeyUsage=serverAuth',
  ]);
  return { keyFile, certFile };
}

/**
 * Start the provider.
 * @param {object} options
 * @param {string} options.clientId
 * @param {string} options.clientSecret
 * @param {string} options.redirectUri
 * @param {Record<string, Record<string, unknown>>} options.accounts login name → claims
 *   (e.g. name, preferred_username, realm_access: { roles: [...] }); `sub` is the login name.
 * @param {string[]} [options.postLogoutRedirectUris] allowed `post_logout_redirect_uri`s of
 *   the end-session endpoint; by default the redirect URI's origin followed by `/`.
 * @returns {Promise<RunningProvider>}
 */
export async function startOidcProvider({
  clientId,
  clientSecret,
  redirectUri,
  accounts,
  postLogoutRedirectUris = [`${new URL(redirectUri).origin}/`],
}) {
  const dir = await mkdtemp(join(tmpdir(), 'oidc-provider-'));
  try {
    const { keyFile, certFile } = await makeCertificate(dir);
    const [key, cert] = await Promise.all([readFile(keyFile), readFile(certFile)]);
    const port = await freePort();
    const issuer = `https://127.0.0.1:${port}`;

    const provider = await quietly(async () => {
      const { default: Provider } = await import('oidc-provider');
      const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
        .privateKey.export({ format: 'jwk' });
      return new Provider(issuer, {
        clients: [{
          client_id: clientId,
          client_secret: clientSecret,
          redirect_uris: [redirectUri],
          post_logout_redirect_uris: postLogoutRedirectUris,
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
          id_token_signed_response_alg: 'RS256',
        }],
        jwks: { keys: [{ ...signingKey, kid: 'e2e-rs256', alg: 'RS256', use: 'sig' }] },
        cookies: { keys: [randomBytes(32).toString('base64url')] },
        claims: {
          openid: ['sub'],
          profile: ['name', 'preferred_username', 'realm_access'],
        },
        // Scope-requested claims go into the ID token too, not only to userinfo.
        conformIdTokenClaims: false,
        pkce: { required: () => true },
        // Explicit lifetimes and pages: the defaults print a notice each time they are used
        // (and the default pages load a web font from the internet).
        ttl: {
          AccessToken: 3600,
          AuthorizationCode: 60,
          IdToken: 3600,
          Interaction: 3600,
          Session: 86400,
          Grant: 86400,
        },
        renderError(ctx, out) {
          ctx.type = 'html';
          ctx.body = page('Error', `<h1>oops! something went wrong</h1><pre>${escapeHtml(
            Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('\n'),
          )}</pre>`);
        },
        features: {
          devInteractions: { enabled: true },
          rpInitiatedLogout: {
            enabled: true,
            // `form` is the provider's hidden form; the buttons submit it (same as the default
            // page): "Yes, sign me out" has name="logout" value="yes".
            logoutSource(ctx, form) {
              ctx.body = page('Logout Request', `<h1>Do you want to sign-out from ${escapeHtml(ctx.host)}?</h1>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
            },
            postLogoutSuccessSource(ctx) {
              ctx.body = page('Sign-out Success', '<h1>Sign-out Success</h1>');
            },
          },
        },
        async findAccount(_ctx, id) {
          if (!Object.hasOwn(accounts, id)) return undefined;
          const claims = accounts[id];
          return { accountId: id, claims: async () => ({ ...claims, sub: id }) };
        },
      });
    });

    // The development login form accepts any login; answer an unknown one (and only the
    // login step, so the consent form still reaches the built-in handler unread) with
    // access_denied to the redirect URI instead of a server error.
    provider.use(async (ctx, next) => {
      if (ctx.method !== 'POST' || !/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
      const details = await provider.interactionDetails(ctx.req, ctx.res).catch(() => undefined);
      if (details?.prompt.name !== 'login') return next();
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const body = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const login = body.get('login') ?? '';
      const result = Object.hasOwn(accounts, login)
        ? { login: { accountId: login } }
        : { error: 'access_denied', error_description: 'unknown login' };
      ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, {
        mergeWithLastSubmission: false,
      }));
      ctx.status = 303;
    });

    const server = createHttpsServer({ key, cert }, provider.callback());
    await new Promise((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolveListen(undefined));
    });

    return {
      issuer,
      caFile: certFile,
      async stop() {
        server.closeAllConnections();
        await new Promise((r) => server.close(() => r(undefined)));
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * On a page showing the provider's login form: sign in as `login`, then confirm consent if
 * the provider asks for it. Returns once the browser is on its way to a page outside the
 * provider's interactions (the redirect URI, normally).
 * @param {import('playwright-core').Page} page
 * @param {string} login
 * @param {string} [password] any value works with the development interactions
 * @param {{timeout?: number}} [options]
 */
export async function loginAtProvider(page, login, password = 'password', { timeout = 20_000 } = {}) {
  const loginForm = page.locator('form:has(input[name="prompt"][value="login"])');
  await loginForm.waitFor({ state: 'visible', timeout });
  await loginForm.locator('input[name="login"]').fill(login);
  await loginForm.locator('input[name="password"]').fill(password);
  await loginForm.locator('button[type="submit"]').click();

  // Then either the consent page (first authorization of the client in this session) or
  // straight out to the redirect URI.
  const consentForm = page.locator('form:has(input[name="prompt"][value="consent"])');
  const providerOrigin = new URL(page.url()).origin;
  const leftInteractions = (/** @type {URL} */ url) => url.origin !== providerOrigin
    || !(url.pathname.startsWith('/interaction/') || url.pathname.startsWith('/auth'));
  const next = await Promise.race([
    consentForm.waitFor({ state: 'visible', timeout }).then(() => 'consent'),
    page.waitForURL(leftInteractions, { waitUntil: 'commit', timeout }).then(() => 'done'),
  ]);
  if (next === 'consent') {
    await consentForm.locator('button[type="submit"]').click();
    await page.waitForURL(leftInteractions, { waitUntil: 'commit', timeout });
  }
}
