#!/usr/bin/env node
// `npm run bench [-- --quick]`: runs bench/run.ts (compiled to dist-bench/)
// with the GC exposed, as the memory figures need, in the official Linux
// build of the newest supported Node line (elsewhere, in this machine's Node).
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { root, LINUX_VERSIONS, officialNode } = require('./node-builds');

const node = process.platform === 'linux' && process.arch === 'x64' ? officialNode('linux', LINUX_VERSIONS[LINUX_VERSIONS.length - 1]) : process.execPath;
const result = spawnSync(node, ['--expose-gc', join(root, 'dist-bench', 'run.js'), ...process.argv.slice(2)], { stdio: 'inherit' });
if (result.error) throw result.error;
process.exit(result.status ?? 1);
