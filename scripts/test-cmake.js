#!/usr/bin/env node
// `npm run test:cmake`: runs the compiled suite against the cmake-js build
// (build-cmake/Release/wfp_redirect.node) instead of node-gyp's, in the newest
// supported Linux Node line, and checks that this build is the one the suite loaded.
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');
const env = {
  ...process.env,
  WFP_REDIRECT_ADDON: join(root, 'build-cmake', 'Release', 'wfp_redirect.node'),
  WFP_REDIRECT_EXPECT_BUILD: 'cmake-js',
};
const result = spawnSync(process.execPath, [join(__dirname, 'test-linux.js'), '--newest'], { cwd: root, env, stdio: 'inherit' });
if (result.error) throw result.error;
process.exit(result.status ?? 1);
