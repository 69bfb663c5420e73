#!/usr/bin/env node
// `npm run bench:win32` (on Linux): the benchmarks inside Windows node.exe
// under Wine, where the call overhead is compared with a raw WSAIoctl loop in
// C on the same socket. Writes bench/results-win32.json (or, with --quick,
// under dist-bench/). Needs what `npm run test:win32` needs.
'use strict';
const { join } = require('node:path');
const { cache, found, sh, winePrefix, runInWindowsNode, stopWineserver, INSTALL_HINT, WINE_CANDIDATES, VERSIONS } = require('./test-win32');

const root = join(__dirname, '..');
const quick = process.argv.includes('--quick');
const wine = WINE_CANDIDATES.find(found);
if (!wine) {
  console.error(`bench:win32 needs Wine: ${INSTALL_HINT}`);
  process.exit(1);
}
sh(process.execPath, [join(__dirname, 'build-win32.js')]);
const prefix = winePrefix(wine);
const version = VERSIONS[VERSIONS.length - 1];
const out = quick ? join(root, 'dist-bench', 'results-win32-quick.json') : join(root, 'bench', 'results-win32.json');
const args = ['--expose-gc', join(root, 'dist-bench', 'run.js'), ...(quick ? ['--quick'] : [])];
const result = runInWindowsNode(wine, prefix, version, args, { WFP_REDIRECT_BENCH_OUT: out }, join(cache, `bench-win32-${version}.log`));
stopWineserver(wine, prefix);
process.exit(result.status ?? 1);
