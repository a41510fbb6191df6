#!/usr/bin/env node
// Regenerates tests/web/mls-vectors/ from the official RFC 9420 test vectors
// (mlswg/mls-implementations, folder test-vectors/): keeps only the files that
// tests/web/mls-vectors.test.mjs runs and, in them, only the cases of ciphersuite 1
// (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, the only one web/vendor supports).
//
//   node scripts/mls-vectors-filter.mjs <mls-implementations checkout or git dir> [commit]
//
// With a checkout (a directory that has test-vectors/), the files are read from its work tree
// and the commit is read from it with `git rev-parse HEAD`. With a bare git directory, the
// files are read with `git show <commit>:test-vectors/<file>` (commit defaults to HEAD).
//
// Output: one JSON array per file, one case per line (compact, diffable), plus SOURCE.json
// (the repository, commit, and per file the sha256 and case count of the upstream file and
// the count kept). Running it twice on the same commit gives byte-identical output.
//
// The only subset beyond the ciphersuite filter: passive-client-random has a single
// ciphersuite-1 case of 200 epochs (1.9 MB); we keep its first RANDOM_EPOCHS epochs. A passive
// client must process epochs in order from the Welcome, so a prefix is the only valid subset.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const OUT = join(dirname(fileURLToPath(import.meta.url)), '..', 'tests', 'web', 'mls-vectors');
const CIPHER_SUITE = 1;
const RANDOM_EPOCHS = 100;
const FILES = [
  'passive-client-welcome',
  'passive-client-handling-commit',
  'passive-client-random',
  'tree-validation',
  'tree-operations',
  'treekem',
  'secret-tree',
  'message-protection',
];

const [source, commitArg] = process.argv.slice(2);
if (!source) {
  console.error('usage: node scripts/mls-vectors-filter.mjs <mls-implementations checkout or git dir> [commit]');
  process.exit(2);
}
const src = resolve(source);
const checkout = existsSync(join(src, 'test-vectors'));
if (checkout && commitArg) throw new Error('a commit can only be given with a bare git dir (a checkout is read as it is)');
const gitDir = checkout ? ['-C', src] : ['--git-dir', src];
const commit = execFileSync('git', [...gitDir, 'rev-parse', `${commitArg ?? 'HEAD'}^{commit}`], { encoding: 'utf8' }).trim();

/** @param {string} name */
function upstream(name) {
  const path = `test-vectors/${name}.json`;
  return checkout
    ? readFileSync(join(src, path))
    : execFileSync('git', [...gitDir, 'show', `${commit}:${path}`], { maxBuffer: 64 << 20 });
}

mkdirSync(OUT, { recursive: true });
const files = {};
let total = 0;
for (const name of FILES) {
  const raw = upstream(name);
  const all = JSON.parse(raw.toString('utf8'));
  if (!Array.isArray(all)) throw new Error(`${name}: not a JSON array`);
  let kept = all.filter((c) => c.cipher_suite === CIPHER_SUITE);
  if (kept.length === 0) throw new Error(`${name}: no case for ciphersuite ${CIPHER_SUITE}`);
  let note;
  if (name === 'passive-client-random') {
    kept = kept.map((c) => {
      if (c.epochs.length <= RANDOM_EPOCHS) return c;
      note = `first ${RANDOM_EPOCHS} of ${c.epochs.length} epochs`;
      return { ...c, epochs: c.epochs.slice(0, RANDOM_EPOCHS) };
    });
  }
  const text = '[\n' + kept.map((c) => JSON.stringify(c)).join(',\n') + '\n]\n';
  writeFileSync(join(OUT, `${name}.json`), text);
  total += text.length;
  files[name] = {
    upstream_sha256: createHash('sha256').update(raw).digest('hex'),
    upstream_cases: all.length,
    kept_cases: kept.length,
    ...(note ? { note } : {}),
  };
  console.log(`${name}: ${kept.length} of ${all.length} cases${note ? ` (${note})` : ''}, ${text.length} bytes`);
}
const meta = {
  repository: 'mlswg/mls-implementations',
  commit,
  filter: `cipher_suite == ${CIPHER_SUITE} (scripts/mls-vectors-filter.mjs)`,
  files,
};
writeFileSync(join(OUT, 'SOURCE.json'), JSON.stringify(meta, null, 2) + '\n');
console.log(`total ${total} bytes, from ${meta.repository}@${commit}`);
