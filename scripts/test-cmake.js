#!/usr/bin/env node
// `npm run test:cmake`: runs the specs of the addon's own API against the
// cmake-js build (build-cmake/Release/wfp_redirect.node) instead of node-gyp's,
// in the newest supported Linux Node line, and checks that this build is the
// one they loaded. The same sources, built another way: what could differ is
// the binary, and these specs call every function it exports. The application
// above it (CLI, relays, rules, sniffers, upstreams) is the same JavaScript
// whichever build is loaded; the whole suite runs against node-gyp's build.
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { exitWhenWritten } = require('./exit');

const root = join(__dirname, '..');
const env = {
  ...process.env,
  WFP_REDIRECT_ADDON: join(root, 'build-cmake', 'Release', 'wfp_redirect.node'),
  WFP_REDIRECT_EXPECT_BUILD: 'cmake-js',
};
// Every export of the binding, on real sockets: the lookup, the IOCTL paths, UDP, the
// original destination (through a real REDIRECT and TPROXY), process lookup, the native relay, the loader.
const ADDON_SPECS = [
  'bad-input', 'connect', 'constants', 'context-layouts', 'conformance', 'loader', 'native-relay', 'netns', 'node-internals',
  'original-destination', 'process', 'redirect', 'reliability', 'sockaddr', 'socket-handle', 'transparent-proxy', 'udp-socket',
  'udp-tproxy', 'wfp-errors', 'windows',
].map((name) => `dist-test/${name}.test.js`);
const args = [join(__dirname, 'test-linux.js'), '--newest', `--specs=${ADDON_SPECS.join(',')}`];
const result = spawnSync(process.execPath, args, { cwd: root, env, stdio: 'inherit' });
if (result.error) throw result.error;
exitWhenWritten(result.status ?? 1);
