// Pieces of the network tests (run by tests/netns/run.sh, which creates the namespaces and
// exports their names): the server in the server namespace on 10.77.0.1:443, firewall rules,
// packet loss and delay in the namespaces, and what ICE chose in a page.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../e2e/server.mjs';

/** @param {string} name */
function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the network tests with tests/netns/run.sh`);
  return v;
}

export const SERVER_NS = env('E2E_NETNS_SRV');
export const CLIENT_NS = env('E2E_NETNS_CLI');
export const SERVER_IP = '10.77.0.1';

/**
 * Run `args` in namespace `ns`; returns its output.
 * @param {string} ns
 * @param {string[]} args
 */
export function inNamespace(ns, args) {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * `conclave serve` in the server namespace on 10.77.0.1:443, TURN on its standard ports
 * (UDP/TCP 3478, TLS 5349, and on 443).
 * @param {import('../e2e/server.mjs').ServerOptions} [options]
 */
export function netnsServer(options = {}) {
  return startServer({
    ...options,
    listen: `${SERVER_IP}:443`,
    wrapper: ['ip', 'netns', 'exec', SERVER_NS],
    env: {
      CONCLAVE_TURN__UDP_PORT: '3478',
      CONCLAVE_TURN__TCP_PORT: '3478',
      CONCLAVE_TURN__TLS_PORT: '5349',
      ...options.env,
    },
  });
}

/**
 * Let the client reach the server only by TCP 443 (as a network that allows only HTTPS):
 * every other packet to it, UDP and other TCP ports, is dropped.
 */
export function onlyTcp443() {
  const rules = `table inet conclave_test {
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr ${SERVER_IP} tcp dport 443 accept
    ip daddr ${SERVER_IP} counter drop
  }
}
`;
  execFileSync('ip', ['netns', 'exec', CLIENT_NS, 'nft', '-f', '-'], { input: rules });
}

/** The packets `onlyTcp443` dropped so far. */
export function droppedPackets() {
  const out = inNamespace(CLIENT_NS, ['nft', 'list', 'table', 'inet', 'conclave_test']);
  const m = /counter packets (\d+)/.exec(out);
  return m ? Number(m[1]) : 0;
}

export function clearFirewall() {
  try {
    inNamespace(CLIENT_NS, ['nft', 'delete', 'table', 'inet', 'conclave_test']);
  } catch {
    // Not set.
  }
}

/**
 * Lose `percent` % of the packets each way on the link, at random (nft `numgen random` in
 * each namespace's output). netem would do this, but this kernel has no sch_netem
 * ("Specified qdisc kind is unknown"); nft is what both CI and this machine have.
 * @param {number} percent
 */
export function loseOnLink(percent) {
  const rules = `table inet conclave_loss {
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "lo" accept
    numgen random mod 100 < ${percent} counter drop
  }
}
`;
  for (const ns of [SERVER_NS, CLIENT_NS]) execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules });
}

/** Packets `loseOnLink` dropped so far, both ways. */
export function lostPackets() {
  let n = 0;
  for (const ns of [SERVER_NS, CLIENT_NS]) {
    const m = /counter packets (\d+)/.exec(inNamespace(ns, ['nft', 'list', 'table', 'inet', 'conclave_loss']));
    n += m ? Number(m[1]) : 0;
  }
  return n;
}

export function clearLoss() {
  for (const ns of [SERVER_NS, CLIENT_NS]) {
    try {
      inNamespace(ns, ['nft', 'delete', 'table', 'inet', 'conclave_loss']);
    } catch {
      // Not set.
    }
  }
}

/**
 * @typedef {{delayed: number, mean_delay_ms: number, overruns: number}} DelayStats
 * @typedef {{stop: () => Promise<DelayStats>, stats: () => DelayStats}} Delay
 */

/**
 * Delay every packet on the link by `delayMs` ± `jitterMs` (uniform), each way, as
 * `tc qdisc add … netem delay 50ms 20ms` on both ends would. Without sch_netem the kernel's
 * NFQUEUE target hands the client namespace's packets on the link, in and out, to
 * tests/netns/delay.py, which accepts each one after its delay. `--queue-bypass`: should the
 * process die, packets pass undelayed rather than vanish, and `stats()` shows it.
 * @param {{delayMs: number, jitterMs: number}} opts
 * @returns {Promise<Delay>}
 */
export async function delayOnLink({ delayMs, jitterMs }) {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-delay-'));
  const statsFile = join(dir, 'stats.json');
  const script = new URL('./delay.py', import.meta.url).pathname;
  const child = spawn(
    'ip',
    ['netns', 'exec', CLIENT_NS, 'python3', script, '--delay-ms', String(delayMs), '--jitter-ms', String(jitterMs), '--stats', statsFile],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 10_000;
  while (!existsSync(statsFile)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`delay.py did not start (exit ${child.exitCode})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // Everything but loopback, both ways: the browsers' media and signalling to the server.
  const rules = [
    ['OUTPUT', '-o'],
    ['INPUT', '-i'],
  ];
  for (const [chain, flag] of rules) {
    inNamespace(CLIENT_NS, ['iptables-legacy', '-A', chain, '!', flag, 'lo', '-j', 'NFQUEUE', '--queue-num', '0', '--queue-bypass']);
  }
  /** @returns {DelayStats} */
  const stats = () => JSON.parse(readFileSync(statsFile, 'utf8'));
  return {
    stats,
    async stop() {
      for (const [chain] of rules) inNamespace(CLIENT_NS, ['iptables-legacy', '-F', chain]);
      child.kill('SIGTERM');
      await exited;
      const s = stats();
      rmSync(dir, { recursive: true, force: true });
      return s;
    },
  };
}

/**
 * The ICE candidates of `p`'s peer connection and the pair it selected.
 * @param {import('../e2e/helpers.mjs').Participant} p
 * @returns {Promise<{selected: {local: Candidate, remote: Candidate, rtt: number | null} | null, local: Candidate[]}>}
 * @typedef {{type: string, protocol: string, relayProtocol: string | null, address: string, port: number}} Candidate
 */
export function icePath(p) {
  return p.page.evaluate(async () => {
    /** @type {RTCPeerConnection | undefined} */
    const pc = /** @type {any} */ (window).conclave?.pc;
    if (!pc) return { selected: null, local: [] };
    const report = await pc.getStats();
    /** @type {Map<string, any>} */
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    /** @param {any} c */
    const cand = (c) => ({
      type: String(c.candidateType),
      protocol: String(c.protocol),
      relayProtocol: c.relayProtocol ?? null,
      address: String(c.address ?? ''),
      port: Number(c.port),
    });
    let pairId = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    // Firefox has no transport stats: its selected pair says `selected` (or is the nominated
    // one that succeeded).
    if (!pairId) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && (s.selected === true || (s.nominated && s.state === 'succeeded'))) pairId = s.id;
      });
    }
    const pair = pairId ? byId.get(pairId) : null;
    /** @type {any[]} */
    const local = [];
    report.forEach((s) => {
      if (s.type === 'local-candidate') local.push(cand(s));
    });
    return {
      selected: pair
        ? {
            local: cand(byId.get(pair.localCandidateId)),
            remote: cand(byId.get(pair.remoteCandidateId)),
            // Seconds, from the latest connectivity check.
            rtt: typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime : null,
          }
        : null,
      local,
    };
  });
}
