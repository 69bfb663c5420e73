#!/usr/bin/env node
// `npm run build:sea` (on Linux, with Wine; see scripts/wine.js): the proxy CLI
// as one Windows program, build-sea/wfp-redirect-proxy.exe, made from the
// official node.exe of the newest supported line as a Node single-executable
// application: the compiled lib/ bundled into one script, the win32 addon as
// an asset (lib/native.ts writes it to a cache file and loads it from there).
// Needs no Node on the machine that runs it.
'use strict';
const { execFileSync } = require('node:child_process');
const { copyFileSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { join, relative } = require('node:path');
const { root, cache, WIN_VERSIONS, officialNode } = require('./node-builds');

const out = join(root, 'build-sea');
const EXE = join(out, 'wfp-redirect-proxy.exe');
// Node's fixed fuse string that marks where the blob goes (Node's SEA documentation).
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** The .js files under `dir`, as paths relative to it with '/' ('index.js', 'proxy/cli.js'). */
function scripts(dir, prefix = '') {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((entry) => {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) return scripts(dir, path);
    return entry.name.endsWith('.js') ? [path] : [];
  });
}

/**
 * dist/ as one CommonJS script: each module in a function, named by its path
 * in dist/ ('proxy/cli'), with a require that serves relative ids from the
 * bundle and anything else from Node's built-ins (all a single-executable app
 * can require).
 */
function bundle(version) {
  const dist = join(root, 'dist');
  const modules = scripts(dist).map(
    (file) => `  ${JSON.stringify(file.slice(0, -3))}: function (exports, require, module, __filename, __dirname) {\n${readFileSync(join(dist, file), 'utf8')}\n  },`,
  );
  return `'use strict';
// wfp-redirect-proxy ${version}, bundled by scripts/build-sea.js.
globalThis.WFP_REDIRECT_VERSION = ${JSON.stringify(version)};
const { posix } = require('node:path');
const modules = {
${modules.join('\n')}
};
const loaded = {};
function load(id) {
  // As Node resolves './process': the file, or else the folder's index.
  const name = id in modules || !(id + '/index' in modules) ? id : id + '/index';
  if (loaded[name]) return loaded[name].exports;
  if (!(name in modules)) throw new Error('wfp-redirect-proxy: ' + name + ' is not in the bundle');
  const module = (loaded[name] = { exports: {} });
  const requireFromBundle = (id) => (id.startsWith('.') ? load(posix.join(posix.dirname(name), id).replace(/\\.js$/, '')) : require(id));
  modules[name].call(module.exports, module.exports, requireFromBundle, module, name + '.js', __dirname);
  return module.exports;
}
load('proxy/cli').main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2000).unref();
});
`;
}

async function main() {
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  execFileSync(process.execPath, [join(__dirname, 'build-win32.js'), '--addon-only'], { cwd: root, stdio: 'inherit' });
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'proxy.js'), bundle(version));
  const addon = join(root, 'prebuilds', 'win32-x64', 'wfp_redirect.node');
  const config = {
    main: relative(root, join(out, 'proxy.js')),
    output: relative(root, join(out, 'sea-prep.blob')),
    disableExperimentalSEAWarning: true,
    assets: { 'wfp_redirect.node': relative(root, addon) },
  };
  writeFileSync(join(out, 'sea-config.json'), JSON.stringify(config, null, 2));

  // The blob must come from the node.exe it goes into: make it there, under Wine.
  const nodeVersion = WIN_VERSIONS[WIN_VERSIONS.length - 1];
  const node = officialNode('win32', nodeVersion);
  const wine = require('./wine');
  const missing = wine.missingTools();
  if (missing.length) throw new Error(`build:sea needs ${missing.join(', ')}. ${wine.INSTALL_HINT}`);
  wine.ensureWine();
  const logFile = join(cache, 'build-sea.log');
  const log = openSync(logFile, 'w');
  let result;
  try {
    result = wine.spawnWindows(node, ['--experimental-sea-config', relative(root, join(out, 'sea-config.json'))], {}, log);
  } finally {
    closeSync(log);
    wine.stopWineserver();
  }
  if (result.status !== 0) throw new Error(`build:sea: node.exe could not make the blob:\n${readFileSync(logFile, 'utf8')}`);

  copyFileSync(node, EXE);
  const { inject } = require('postject');
  await inject(EXE, 'NODE_SEA_BLOB', readFileSync(join(out, 'sea-prep.blob')), { sentinelFuse: SENTINEL_FUSE });
  console.log(`build:sea: ${EXE} (node.exe ${nodeVersion}, wfp-redirect ${version})`);
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
