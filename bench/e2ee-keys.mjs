#!/usr/bin/env node
// MLS key agreement with N members: how long after a join, and after a leave, until every
// member holds the keys of the new epoch. Real server binary, real WebSockets, headless
// Chromium, one browser context (its own renderer) per member, no media.
//
//   node bench/e2ee-keys.mjs [--members 100] [--rounds 3] [--json]
//   node bench/e2ee-keys.mjs --members 25,50,100        # several sizes, one after the other
//
// Needs target/release/conclave (`cargo build --release -p conclave`), `npm ci` and Debian's
// chromium (CHROMIUM_BIN overrides /usr/bin/chromium, E2E_SERVER_BIN the server binary).
//
// Each member is a page on the server's origin (/healthz: a same-origin document with the
// server's CSP and nothing else) that imports /e2ee/group.js and speaks protocol v1 on
// /ws: join, E2eeGroup.create with the participant id, setPresent from the roster, start,
// handle() every mls_* message in arrival order (offers are ignored: no media). Pages report
// each new epoch to node through a binding; their timestamps are wall-clock milliseconds
// (performance.timeOrigin + performance.now(), the same clock in node and every page).
//
// Setup: members 1..N-1 join one by one, each join waiting until all have the new epoch.
// Then, per round:
//   JOIN   a prepared page (module loaded, socket not yet open) sends `join`; measured until
//          the newcomer has the new epoch (its external commit accepted) and until all N
//          members have it.
//   LEAVE  one member's page closes; measured from the close until all N-1 others are in
//          the epoch without it (includes the remove commit of the lowest-ranked member).
// After every phase the bench asserts that all members are in one epoch with an identical
// mediaSecret() and sas() and a roster of exactly the present members; it fails otherwise.
// CPU: utime+stime of the browser's and the server's processes (/proc) over each phase.

import { readFile, readdir } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, randomRoomId, withTimeout } from '../tests/e2e/helpers.mjs';
import { startServer } from '../tests/e2e/server.mjs';

const USAGE = 'usage: node bench/e2ee-keys.mjs [--members N[,N...]] [--rounds R] [--json]';

/** Bound of one setup join (all members reach its epoch). */
const SETUP_JOIN_TIMEOUT_MS = 120_000;
/** Bound of one measured phase. */
const PHASE_TIMEOUT_MS = 60_000;
/** Quiet time after a phase, so a late duplicate remove commit would still be seen. */
const SETTLE_MS = 500;

function parseArgs(argv) {
  const opts = { members: [100], rounds: 3, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--members') {
      opts.members = value().split(',').map((s) => Number(s));
      if (opts.members.some((n) => !Number.isInteger(n) || n < 3 || n > 500)) {
        throw new Error(`--members: integers from 3 to 500\n${USAGE}`);
      }
    } else if (a === '--rounds') {
      opts.rounds = Number(value());
      if (!Number.isInteger(opts.rounds) || opts.rounds < 1 || opts.rounds > 50) {
        throw new Error(`--rounds: an integer from 1 to 50\n${USAGE}`);
      }
    } else if (a === '--json') opts.json = true;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return opts;
}

const now = () => performance.timeOrigin + performance.now();
const log = (/** @type {string} */ s) => process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------- page side

/** Runs in the page: load the group module and prepare (socket not opened yet). */
async function pagePrepare() {
  const mod = await import('/e2ee/group.js');
  const w = /** @type {any} */ (window);
  const t = () => performance.timeOrigin + performance.now();
  const b = {
    joinSent: 0, joinedAt: 0, id: '', keygenMs: 0, startMs: 0,
    reached: /** @type {Record<number, number>} */ ({}),
    commits: /** @type {any[]} */ ([]), sent: /** @type {any[]} */ ([]),
    handleMs: 0, warnings: /** @type {string[]} */ ([]), errors: /** @type {any[]} */ ([]),
    group: /** @type {any} */ (null), ws: /** @type {WebSocket | null} */ (null),
  };
  w.bench = b;
  const warn = console.warn.bind(console);
  console.warn = (...a) => {
    b.warnings.push(a.map(String).join(' '));
    warn(...a);
  };
  b.join = (/** @type {string} */ room, /** @type {string} */ name) => {
    const present = new Map();
    let chain = Promise.resolve();
    let last = -1;
    const onChange = () => {
      const e = b.group?.epoch;
      if (typeof e === 'number' && e !== last) {
        last = e;
        b.reached[e] = t();
        w.benchEpoch(e);
      }
    };
    const ws = new WebSocket(`wss://${location.host}/ws`);
    b.ws = ws;
    const send = (/** @type {any} */ m) => {
      b.sent.push({ type: m.type, epoch: m.epoch ?? null, t: t() });
      ws.send(JSON.stringify(m));
    };
    ws.onmessage = (ev) => {
      const arrived = t();
      const msg = JSON.parse(ev.data);
      const step = (/** @type {() => Promise<void> | void} */ f) => {
        chain = chain.then(f).catch((err) => { b.errors.push(String(err)); });
      };
      switch (msg.type) {
        case 'joined':
          b.joinedAt = arrived;
          b.id = msg.id;
          for (const p of msg.participants) present.set(p.id, p.name);
          present.set(msg.id, msg.name);
          step(async () => {
            const k0 = t();
            b.group = await mod.E2eeGroup.create({ participant: msg.id, name: msg.name, send, onChange });
            b.keygenMs = t() - k0;
            b.group.setPresent(present);
            const s0 = t();
            await b.group.start(msg.e2ee);
            b.startMs = t() - s0;
          });
          break;
        case 'participant_joined':
          present.set(msg.participant.id, msg.participant.name);
          step(() => b.group?.setPresent(present));
          break;
        case 'participant_left':
          present.delete(msg.id);
          step(() => b.group?.setPresent(present));
          break;
        case 'mls_accepted':
        case 'mls_rejected':
        case 'mls_commit':
          step(async () => {
            const t0 = t();
            await b.group.handle(msg);
            const t1 = t();
            b.handleMs += t1 - t0;
            b.commits.push({ type: msg.type, epoch: msg.epoch, from: msg.from ?? null, arrived, start: t0, done: t1 });
          });
          break;
        case 'error':
        case 'bye':
          b.errors.push(msg);
          break;
        default: // offer, participant_updated, ...: no media here
      }
    };
    ws.onerror = () => b.errors.push('websocket error');
    ws.onopen = () => {
      b.joinSent = t();
      ws.send(JSON.stringify({ type: 'join', v: 1, room, name }));
    };
  };
}

/** Runs in the page: what the assertions and the tables need. */
async function pageState() {
  const b = /** @type {any} */ (window).bench;
  const g = b.group;
  const out = {
    id: b.id, member: !!g?.member, epoch: g?.epoch ?? null, leaf: g?.ownLeaf ?? null,
    secret: '', sas: '', roster: /** @type {any[]} */ ([]),
    warnings: b.warnings.slice(), errors: b.errors.map((e) => (typeof e === 'string' ? e : JSON.stringify(e))),
  };
  if (g?.member) {
    const m = await g.mediaSecret();
    out.secret = `${m.epoch}:${btoa(String.fromCharCode(...m.secret))}`;
    const s = await g.sas();
    out.sas = `${s.epoch}:${s.digits}:${s.emoji.map((/** @type {any} */ e) => e.name).join(',')}`;
    out.roster = g.roster().map((/** @type {any} */ r) => ({ participant: r.participant, present: r.present }));
  }
  return out;
}

/** Runs in the page: timings since `since` (wall clock ms). */
function pageTimings(since) {
  const b = /** @type {any} */ (window).bench;
  return {
    id: b.id, joinSent: b.joinSent, joinedAt: b.joinedAt, keygenMs: b.keygenMs, startMs: b.startMs,
    reached: b.reached,
    commits: b.commits.filter((/** @type {any} */ c) => c.arrived >= since),
    sent: b.sent.filter((/** @type {any} */ s) => s.t >= since),
  };
}

// ---------------------------------------------------------------- node side

/** utime+stime (clock ticks) per process whose ancestor is this node process, and the
 * number of renderer processes. */
async function childCpu() {
  const stats = new Map();
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = await readFile(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // gone meanwhile
    }
  }
  /** @type {Map<number, number>} */
  const ticks = new Map();
  let renderers = 0;
  for (const [pid, s] of stats) {
    let p = s.ppid;
    for (let depth = 0; p > 1 && depth < 10; depth++) {
      if (p === process.pid) {
        ticks.set(pid, s.ticks);
        const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (cmd.includes('--type=renderer')) renderers++;
        break;
      }
      p = stats.get(p)?.ppid ?? 0;
    }
  }
  return { ticks, renderers };
}

/** CPU seconds between two snapshots, of the server and of everything else (the browser).
 * A process that exited in between is missing from the second snapshot: its last moments
 * are not counted. */
function cpuDelta(a, b, serverPid) {
  let browser = 0;
  let server = 0;
  for (const [pid, t] of b.ticks) {
    const d = t - (a.ticks.get(pid) ?? 0);
    if (pid === serverPid) server += d;
    else browser += d;
  }
  return { browser: browser / 100, server: server / 100, renderers: b.renderers };
}

async function findServerPid(listen) {
  const port = listen.split(':')[1];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes('conclave') && cmd.includes('serve')) {
      const ppid = Number((await readFile(`/proc/${d}/stat`, 'utf8')).split(') ')[1].split(' ')[1]);
      if (ppid === process.pid) return Number(d);
    }
  }
  throw new Error(`cannot find the server process (port ${port})`);
}

const median = (/** @type {number[]} */ xs) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const max = (/** @type {number[]} */ xs) => (xs.length ? Math.max(...xs) : NaN);

class Bench {
  constructor(browser, server, serverPid, room) {
    this.browser = browser;
    this.server = server;
    this.serverPid = serverPid;
    this.room = room;
    /** @type {{name: string, context: any, page: any, epoch: number}[]} */
    this.members = [];
    this.waiters = new Set();
    this.serial = 0;
  }

  /** A new page with the module loaded and the socket not yet open. */
  async prepare() {
    const name = `m${++this.serial}`;
    const context = await this.browser.newContext({ ignoreHTTPSErrors: true });
    const m = { name, context, page: null, epoch: -1 };
    await context.exposeBinding('benchEpoch', (_src, e) => {
      m.epoch = e;
      for (const w of this.waiters) w();
    });
    m.page = await context.newPage();
    m.page.on('pageerror', (e) => log(`${name}: pageerror ${e.message}`));
    await m.page.goto(`${this.server.url}/healthz`);
    await m.page.evaluate(pagePrepare);
    return m;
  }

  /** Resolves when `pred()` holds; re-checked on every epoch report. */
  until(what, pred, ms) {
    return withTimeout(new Promise((resolve) => {
      const check = () => {
        if (pred()) {
          this.waiters.delete(check);
          resolve(undefined);
        }
      };
      this.waiters.add(check);
      check();
    }), ms, what).catch(async (e) => {
      const epochs = this.members.map((m) => `${m.name}:${m.epoch}`).join(' ');
      throw new Error(`${e.message}\nepochs: ${epochs}`);
    });
  }

  allAt(epoch) {
    return this.members.every((m) => m.epoch === epoch);
  }

  /** Every member in one epoch, identical media secret and SAS, roster = the members. */
  async verify(label) {
    const states = await Promise.all(this.members.map((m) => m.page.evaluate(pageState)));
    const problems = [];
    const ids = new Set(states.map((s) => s.id));
    const first = states[0];
    for (const [i, s] of states.entries()) {
      const who = this.members[i].name;
      if (!s.member) problems.push(`${who} is not a member`);
      if (s.secret !== first.secret) problems.push(`${who} has another media secret (${s.secret} vs ${first.secret})`);
      if (s.sas !== first.sas) problems.push(`${who} has another SAS (${s.sas} vs ${first.sas})`);
      if (s.roster.length !== this.members.length) problems.push(`${who} has ${s.roster.length} leaves, ${this.members.length} members`);
      const rosterIds = new Set(s.roster.map((r) => r.participant));
      if (rosterIds.size !== ids.size || [...ids].some((id) => !rosterIds.has(id))) problems.push(`${who}: roster differs from the members`);
      if (s.roster.some((r) => !r.present)) problems.push(`${who}: roster has a leaf not matching a present participant`);
      for (const w of s.warnings) problems.push(`${who} warned: ${w}`);
      for (const e of s.errors) problems.push(`${who} error: ${e}`);
    }
    if (problems.length) throw new Error(`${label}: the group is broken:\n  ${problems.slice(0, 20).join('\n  ')}`);
    return { epoch: first.epoch, sas: first.sas.split(':')[1] };
  }

  async setup(n) {
    for (let i = 0; i < n; i++) {
      const m = await this.prepare();
      const epoch = i; // the first creates epoch 0, each later join adds one
      this.members.push(m);
      const t0 = now();
      await m.page.evaluate(([room, name]) => /** @type {any} */ (window).bench.join(room, name), [this.room, m.name]);
      await this.until(`setup: all ${i + 1} members at epoch ${epoch}`, () => this.allAt(epoch), SETUP_JOIN_TIMEOUT_MS);
      if ((i + 1) % 10 === 0 || i + 1 === n) log(`  setup: ${i + 1} members, last join ${Math.round(now() - t0)} ms`);
    }
    return this.verify('after setup');
  }

  async timings(since) {
    return Promise.all(this.members.map((m) => m.page.evaluate(pageTimings, since)));
  }

  async joinRound() {
    const m = await this.prepare();
    const epoch = this.members[0].epoch + 1;
    const cpu0 = await childCpu();
    const t0 = now();
    this.members.push(m);
    await m.page.evaluate(([room, name]) => /** @type {any} */ (window).bench.join(room, name), [this.room, m.name]);
    await this.until(`join: all ${this.members.length} members at epoch ${epoch}`, () => this.allAt(epoch), PHASE_TIMEOUT_MS);
    const t1 = now();
    const cpu = cpuDelta(cpu0, await childCpu(), this.serverPid);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const v = await this.verify(`join to epoch ${epoch}`);
    const ts = await this.timings(t0);
    const mine = ts[ts.length - 1];
    const others = ts.slice(0, -1);
    const relay = others.map((o) => {
      const c = o.commits.find((x) => x.type === 'mls_commit' && x.epoch === epoch - 1);
      return c ? c.done - c.arrived : NaN;
    });
    const commitSent = mine.sent.find((s) => s.type === 'mls_commit');
    return {
      epoch, sas: v.sas,
      allMs: max(ts.map((x) => x.reached[epoch])) - mine.joinSent,
      wallMs: t1 - t0,
      newcomerMs: mine.reached[epoch] - mine.joinSent,
      joinedMs: mine.joinedAt - mine.joinSent,
      keygenMs: mine.keygenMs,
      startMs: mine.startMs,
      commitSentMs: commitSent ? commitSent.t - mine.joinSent : NaN,
      relayMedianMs: median(relay),
      relayMaxMs: max(relay),
      sumProcessMs: others.reduce((a, o) => a + o.commits.filter((c) => c.epoch === epoch - 1).reduce((x, c) => x + c.done - c.start, 0), 0),
      cpuBrowserS: cpu.browser,
      cpuServerS: cpu.server,
      renderers: cpu.renderers,
    };
  }

  async leaveRound(round) {
    // a member in the middle of the tree, a different one each round; never the newest
    const idx = 1 + ((round * 37 + 11) % (this.members.length - 2));
    const [gone] = this.members.splice(idx, 1);
    const epoch = this.members[0].epoch + 1;
    const cpu0 = await childCpu();
    const t0 = now();
    await gone.page.close();
    await this.until(`leave: all ${this.members.length} members at epoch ${epoch}`, () => this.allAt(epoch), PHASE_TIMEOUT_MS);
    const t1 = now();
    const cpu = cpuDelta(cpu0, await childCpu(), this.serverPid);
    await gone.context.close();
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const v = await this.verify(`leave to epoch ${epoch}`);
    const ts = await this.timings(t0);
    const committer = ts.findIndex((x) => x.sent.some((s) => s.type === 'mls_commit' && s.epoch === epoch - 1));
    const commitSent = committer >= 0 ? ts[committer].sent.find((s) => s.type === 'mls_commit').t : NaN;
    const others = ts.filter((_, i) => i !== committer);
    const relay = others.map((o) => {
      const c = o.commits.find((x) => x.type === 'mls_commit' && x.epoch === epoch - 1);
      return c ? c.done - c.arrived : NaN;
    });
    return {
      epoch, sas: v.sas, leaver: gone.name,
      allMs: max(ts.map((x) => x.reached[epoch])) - t0,
      wallMs: t1 - t0,
      commitSentMs: commitSent - t0,
      committerMs: committer >= 0 ? ts[committer].reached[epoch] - t0 : NaN,
      relayMedianMs: median(relay),
      relayMaxMs: max(relay),
      sumProcessMs: others.reduce((a, o) => a + o.commits.filter((c) => c.epoch === epoch - 1).reduce((x, c) => x + c.done - c.start, 0), 0),
      cpuBrowserS: cpu.browser,
      cpuServerS: cpu.server,
      renderers: cpu.renderers,
    };
  }

  async close() {
    for (const m of this.members) await m.context.close().catch(() => {});
    this.members = [];
  }
}

async function runSize(n, rounds) {
  const server = await startServer({
    env: {
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      // Pages send no UDP: the media plane would remove them after participant_timeout_secs.
      CONCLAVE_PARTICIPANT_TIMEOUT_SECS: '3600',
      CONCLAVE_LIMITS__MAX_PARTICIPANTS_PER_ROOM: String(n + 10),
      CONCLAVE_LIMITS__MAX_PARTICIPANTS: String(n + 10),
      CONCLAVE_LIMITS__MESSAGES_PER_SECOND: '1000',
      CONCLAVE_LIMITS__MESSAGE_BURST: '1000',
    },
  });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  const bench = new Bench(browser, server, await findServerPid(server.listen), randomRoomId());
  try {
    log(`N = ${n}: building the group of ${n - 1} members`);
    const s0 = now();
    await bench.setup(n - 1);
    const setupS = (now() - s0) / 1000;
    log(`  setup took ${setupS.toFixed(0)} s`);
    const joins = [];
    const leaves = [];
    for (let r = 0; r < rounds; r++) {
      const j = await bench.joinRound();
      joins.push(j);
      log(`  round ${r + 1} join:  all ${j.allMs.toFixed(0)} ms, newcomer ${j.newcomerMs.toFixed(0)} ms, relay->processed median ${j.relayMedianMs.toFixed(0)} max ${j.relayMaxMs.toFixed(0)} ms, sum ${j.sumProcessMs.toFixed(0)} ms, cpu ${j.cpuBrowserS.toFixed(2)} s, epoch ${j.epoch} SAS ${j.sas}`);
      const l = await bench.leaveRound(r);
      leaves.push(l);
      log(`  round ${r + 1} leave: all ${l.allMs.toFixed(0)} ms, commit sent ${l.commitSentMs.toFixed(0)} ms, relay->processed median ${l.relayMedianMs.toFixed(0)} max ${l.relayMaxMs.toFixed(0)} ms, sum ${l.sumProcessMs.toFixed(0)} ms, cpu ${l.cpuBrowserS.toFixed(2)} s, epoch ${l.epoch} SAS ${l.sas}`);
    }
    return { members: n, rounds, setupS, joins, leaves };
  } catch (e) {
    const tail = server.log().split('\n').slice(-20).join('\n');
    throw new Error(`${e instanceof Error ? e.message : e}\nserver log (tail):\n${tail}`);
  } finally {
    await bench.close();
    await browser.close();
    await server.stop();
  }
}

function table(results) {
  const f = (/** @type {number} */ x) => (Number.isFinite(x) ? String(Math.round(x)) : '-');
  const f2 = (/** @type {number} */ x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const rows = [];
  const row = (n, phase, what, xs, fmt = f) => rows.push(`| ${n} | ${phase} | ${what} | ${fmt(median(xs))} | ${fmt(max(xs))} |`);
  for (const r of results) {
    const n = r.members;
    const J = (/** @type {string} */ k) => r.joins.map((x) => x[k]);
    const L = (/** @type {string} */ k) => r.leaves.map((x) => x[k]);
    row(n, 'join', 'join sent → all N members in the new epoch, ms', J('allMs'));
    row(n, 'join', 'join sent → newcomer has the keys (commit accepted), ms', J('newcomerMs'));
    row(n, 'join', '  of which: key package generation, ms', J('keygenMs'));
    row(n, 'join', '  of which: external commit + GroupInfo (start), ms', J('startMs'));
    row(n, 'join', 'existing member: commit arrived → processed, median over members, ms', J('relayMedianMs'));
    row(n, 'join', 'existing member: commit arrived → processed, max over members, ms', J('relayMaxMs'));
    row(n, 'join', 'sum of handle() wall time over the members (includes waiting for a core), ms', J('sumProcessMs'));
    row(n, 'join', 'CPU of the browser during the phase, s', J('cpuBrowserS'), f2);
    row(n, 'join', 'browser CPU per member (CPU / N), ms', r.joins.map((x) => (x.cpuBrowserS * 1000) / n));
    row(n, 'join', 'CPU of the server during the phase, s', J('cpuServerS'), f2);
    row(n, 'leave', 'page closed → all N-1 members in the new epoch, ms', L('allMs'));
    row(n, 'leave', 'page closed → remove commit sent, ms', L('commitSentMs'));
    row(n, 'leave', 'existing member: commit arrived → processed, median over members, ms', L('relayMedianMs'));
    row(n, 'leave', 'existing member: commit arrived → processed, max over members, ms', L('relayMaxMs'));
    row(n, 'leave', 'sum of handle() wall time over the members (includes waiting for a core), ms', L('sumProcessMs'));
    row(n, 'leave', 'CPU of the browser during the phase, s', L('cpuBrowserS'), f2);
    row(n, 'leave', 'browser CPU per member (CPU / (N-1)), ms', r.leaves.map((x) => (x.cpuBrowserS * 1000) / (n - 1)));
    row(n, 'leave', 'CPU of the server during the phase, s', L('cpuServerS'), f2);
  }
  return ['| N | phase | what | median | max |', '|---|---|---|---|---|', ...rows].join('\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const results = [];
  for (const n of opts.members) results.push(await runSize(n, opts.rounds));
  if (opts.json) console.log(JSON.stringify(results, null, 2));
  else {
    console.log(`\nE2EE key agreement, ${opts.rounds} rounds (median and max over rounds)\n`);
    console.log(table(results));
    for (const r of results) console.log(`\nN = ${r.members}: setup of ${r.members - 1} members took ${r.setupS.toFixed(0)} s; renderer processes ${r.joins[0]?.renderers}`);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
