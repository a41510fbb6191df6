// node mls-bench-node.mjs [N] [suite]
import * as mls from 'ts-mls';
import { runMlsBench } from './web/mls-bench.mjs';
const n = Number(process.argv[2] || 100);
await runMlsBench(mls, { n, suite: process.argv[3] || undefined });
