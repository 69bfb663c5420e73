#!/usr/bin/env node
// `npm run bench [-- --quick]`: the addon's costs (bench/run.ts, with the GC
// exposed, as the memory figures need), then relay speed side by side
// (bench/relay.ts), then what connections held open cost the CLI
// (bench/hold.ts), and the process lookup's cost per connection
// (bench/process.ts), all compiled to dist-bench/, in the official Linux build
// of the newest supported Node line (elsewhere, in this machine's Node).
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { root, LINUX_VERSIONS, officialNode } = require('./node-builds');
const { exitWhenWritten } = require('./exit');

const node = process.platform === 'linux' && process.arch === 'x64' ? officialNode('linux', LINUX_VERSIONS[LINUX_VERSIONS.length - 1]) : process.execPath;
const args = process.argv.slice(2);
let status = 0;
for (const script of [['--expose-gc', join(root, 'dist-bench', 'run.js')], [join(root, 'dist-bench', 'relay.js')], [join(root, 'dist-bench', 'hold.js')], [join(root, 'dist-bench', 'process.js')]]) {
  const result = spawnSync(node, [...script, ...args], { stdio: 'inherit' });
  if (result.error) throw result.error;
  if (result.status !== 0) status = result.status ?? 1;
}
exitWhenWritten(status);
