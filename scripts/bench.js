#!/usr/bin/env node
// `npm run bench [-- --quick]`: runs bench/run.ts (compiled to dist-bench/)
// with the GC exposed, as the memory figures need.
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');
const result = spawnSync(process.execPath, ['--expose-gc', join(root, 'dist-bench', 'run.js'), ...process.argv.slice(2)], { stdio: 'inherit' });
if (result.error) throw result.error;
process.exit(result.status ?? 1);
