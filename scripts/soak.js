#!/usr/bin/env node
// `npm run test:soak`: the soak (test/soak.test.ts) in its full form, 20,000
// connections (SOAK_CONNECTIONS overrides), in this Node. `npm test` runs a
// short form of it in every line.
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { MOCHA } = require('./suite');

const root = join(__dirname, '..');
const result = spawnSync(process.execPath, [MOCHA, '--no-config', '--reporter', 'spec', join(root, 'dist-test', 'soak.test.js')], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, SOAK_CONNECTIONS: process.env.SOAK_CONNECTIONS ?? '20000' },
});
process.exit(result.status ?? 1);
