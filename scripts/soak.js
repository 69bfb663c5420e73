#!/usr/bin/env node
// `npm run test:soak`: the soaks in their full form, in this Node: TCP
// (test/soak.test.ts, 20,000 connections; SOAK_CONNECTIONS overrides) and UDP
// (test/soak-udp.test.ts, 10,000 flows; SOAK_UDP_FLOWS overrides). `npm test`
// runs a short form of each in every line.
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { MOCHA } = require('./suite');
const { exitWhenWritten } = require('./exit');

const root = join(__dirname, '..');
const specs = ['soak.test.js', 'soak-udp.test.js'].map((spec) => join(root, 'dist-test', spec));
const result = spawnSync(process.execPath, [MOCHA, '--no-config', '--reporter', 'spec', ...specs], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, SOAK_CONNECTIONS: process.env.SOAK_CONNECTIONS ?? '20000', SOAK_UDP_FLOWS: process.env.SOAK_UDP_FLOWS ?? '10000' },
});
exitWhenWritten(result.status ?? 1);
