#!/usr/bin/env node
// npm's install step: use the prebuilt addon shipped for this platform if
// there is one, otherwise compile native/ with node-gyp (npm provides it to
// install scripts). Nothing is downloaded.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');

const prebuilt = join(__dirname, '..', 'prebuilds', `${process.platform}-${process.arch}`, 'wfp_redirect.node');
if (existsSync(prebuilt)) {
  console.log(`wfp-redirect: using the prebuilt addon ${prebuilt}`);
  process.exit(0);
}
const result = spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit', shell: process.platform === 'win32' });
if (result.error) {
  console.error(`wfp-redirect: could not run node-gyp (${result.error.message}); install it or use a package with prebuilds for ${process.platform}-${process.arch}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
