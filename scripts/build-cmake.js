#!/usr/bin/env node
// `npm run build:cmake`: builds the addon with cmake-js into build-cmake/Release,
// against the headers of the Node that runs this script when they are on this
// machine (no download), as node-gyp does with npm's `nodedir`.
'use strict';
const { existsSync } = require('node:fs');
const { dirname, join } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath))].filter(Boolean);
const nodedir = candidates.find((dir) => existsSync(join(dir, 'include', 'node', 'node_api.h')) && existsSync(join(dir, 'include', 'node', 'uv.h')));
const env = { ...process.env };
if (nodedir) {
  env.npm_config_nodedir = nodedir;
  console.log(`build:cmake: using the local Node headers in ${join(nodedir, 'include', 'node')}`);
} else {
  console.warn('build:cmake: no local Node headers found; cmake-js will download them for this Node version');
}
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const result = spawnSync(process.execPath, [cmakeJs, 'rebuild', '--directory', join(root, 'native'), '--out', join(root, 'build-cmake')], {
  cwd: root,
  env,
  stdio: 'inherit',
});
if (result.error) throw result.error;
process.exit(result.status ?? 1);
