// Start the real `conclave` binary for one test file: fresh data directory, port 0 for HTTPS
// and media, and wait for the line that says where it listens.

import { execFile, spawn } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

/** How long the server may take to print its address. */
const START_TIMEOUT_MS = 20_000;
/** How long the server may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_GRACE_MS = 3_000;

/**
 * The server binary: $E2E_SERVER_BIN, or target/release/conclave of this repository.
 * @returns {string}
 */
export function serverBinary() {
  return process.env.E2E_SERVER_BIN || join(repoRoot, 'target', 'release', 'conclave');
}

/**
 * @typedef {object} RunningServer
 * @property {string} url Base URL, e.g. https://127.0.0.1:41234
 * @property {string} listen The HTTPS address it listens on, e.g. 127.0.0.1:41234
 * @property {string} dataDir Its data directory.
 * @property {() => string} log Everything the server printed so far (stdout and stderr).
 * @property {() => Promise<void>} stop Terminate the server and delete its data directory.
 * @property {() => Promise<void>} kill Kill the server at once (SIGKILL, as in a crash) and
 *   keep its data directory, so that a new server can start on it (see `restartServer`).
 */

/**
 * @typedef {object} ServerOptions
 * @property {string[]} [extraArgs] More arguments to `conclave serve`.
 * @property {string} [listen] HTTPS address; default 127.0.0.1:0 (a free port).
 * @property {string} [dataDir] Data directory to use; default a fresh temporary one. Either
 *   way the returned server's `stop` deletes it.
 * @property {Record<string, string>} [env] More environment variables, e.g. configuration
 *   as `CONCLAVE_ACCESS__MODE=hosts`.
 * @property {string[]} [wrapper] A command the server runs under, e.g.
 *   `['ip', 'netns', 'exec', 'ns']` to start it in a network namespace.
 */

/**
 * Start `conclave serve` on loopback with ephemeral ports.
 * @param {ServerOptions} [options]
 * @returns {Promise<RunningServer>}
 */
export async function startServer(options = {}) {
  const bin = serverBinary();
  try {
    await access(bin, constants.X_OK);
  } catch {
    throw new Error(
      `server binary ${bin} is missing: run \`cargo build --release\` or set E2E_SERVER_BIN`,
    );
  }
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'conclave-e2e-')));
  const args = [
    'serve',
    '--listen', options.listen ?? '127.0.0.1:0',
    '--media-port', '0',
    '--data-dir', dataDir,
    ...(options.extraArgs ?? []),
  ];
  // The server reads every CONCLAVE_* variable as configuration and refuses unknown ones;
  // the test's own settings are named E2E_* so they never reach it as config.
  // TURN ports 0: the test files run in parallel, each with its own server.
  const env = {
    ...process.env,
    NO_COLOR: '1',
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    CONCLAVE_TURN__UDP_PORT: '0',
    CONCLAVE_TURN__TCP_PORT: '0',
    CONCLAVE_TURN__TLS_PORT: '0',
    ...options.env,
  };
  const [cmd, ...cmdArgs] = [...(options.wrapper ?? []), bin, ...args];
  const child = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  let exited = false;
  const exitPromise = new Promise((resolveExit) => {
    child.once('exit', (code, signal) => {
      exited = true;
      output += `\n[conclave exited: code ${code}, signal ${signal}]\n`;
      resolveExit(undefined);
    });
  });

  const url = await new Promise((resolveUrl, rejectUrl) => {
    const timer = setTimeout(() => {
      rejectUrl(new Error(`server printed no "listening on" within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      output += chunk.toString('utf8');
      const match = /listening on (https:\/\/[^\s/]+:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      rejectUrl(err);
    });
    child.once('exit', () => {
      clearTimeout(timer);
      rejectUrl(new Error(`server exited before listening:\n${output}`));
    });
  }).catch(async (err) => {
    if (!exited) child.kill('SIGKILL');
    // A directory handed in belongs to the caller until a server started on it.
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  });

  let stopped = false;
  return {
    url,
    listen: url.replace(/^https:\/\//, ''),
    dataDir,
    log: () => output,
    async kill() {
      if (stopped) return;
      stopped = true;
      if (!exited) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (!exited) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exitPromise;
        clearTimeout(killer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** How long `restartServer` keeps trying to bind the old port (it may linger for a moment). */
const RESTART_TIMEOUT_MS = 10_000;

/**
 * Start a new server on the address and data directory of `old`, which must have been
 * killed: the same URL and certificate, nothing of its rooms. Retries while the port is
 * still taken, for at most RESTART_TIMEOUT_MS.
 * @param {RunningServer} old
 * @param {ServerOptions} [options]
 * @returns {Promise<RunningServer>}
 */
export async function restartServer(old, options = {}) {
  const deadline = Date.now() + RESTART_TIMEOUT_MS;
  for (;;) {
    try {
      return await startServer({ ...options, listen: old.listen, dataDir: old.dataDir });
    } catch (e) {
      if (Date.now() >= deadline || !/address already in use|Address in use/i.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Add an account with the real binary (`conclave user add`) on `dataDir`, the password on
 * standard input.
 * @param {string} dataDir
 * @param {string} username
 * @param {string} name
 * @param {string} password
 * @param {string[]} [extraArgs] e.g. ['--role', 'member']
 * @returns {Promise<string>} What it printed.
 */
export function addUser(dataDir, username, name, password, extraArgs = []) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      serverBinary(),
      ['user', 'add', username, '--name', name, '--password-stdin', '--data-dir', dataDir, ...extraArgs],
      { timeout: 30_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`conclave user add: ${err.message}\n${stderr}`)) : resolve(stdout)),
    );
    child.stdin?.end(`${password}\n`);
  });
}
