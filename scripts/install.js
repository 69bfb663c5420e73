#!/usr/bin/env node
// npm's install step. Where the package ships a prebuilt addon for this
// platform (prebuilds/), there is nothing to do: the loader finds it itself,
// so installing with scripts off (pnpm 10, bun, --ignore-scripts) works too.
// Otherwise native/ is compiled with node-gyp, which needs Python 3 and a C++
// compiler, against this machine's Node headers when it has them.
//
// In a git checkout (it has tsconfig.json, which the package does not ship)
// it first compiles lib/ into dist/, as a build of the package would.
'use strict';
const { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { dirname, join } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const target = `${process.platform}-${process.arch}`;
const say = (message) => console.log(`wfp-redirect: ${message}`);

function run(file, args) {
  const result = spawnSync(file, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' && !file.endsWith('.exe') });
  return result.error ? { failed: result.error.message } : { failed: result.status === 0 ? undefined : `exit ${result.status ?? result.signal}` };
}

/** A checkout, not an installed package: compile the TypeScript (tsc is a devDependency there). */
function compileCheckout() {
  if (!existsSync(join(root, 'tsconfig.json'))) return;
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  } catch {
    return say('a checkout without typescript installed: dist/ not compiled (run `npm install`)');
  }
  const { failed } = run(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')]);
  if (failed) fail(`compiling lib/ into dist/ failed (${failed})`);
}

/** Node's headers on this machine, for node-gyp's --nodedir (otherwise it downloads them). */
function localNodedir() {
  const candidates = [process.env.npm_config_nodedir, process.config.variables.node_prefix, dirname(dirname(process.execPath))];
  return candidates.find((dir) => dir && existsSync(join(dir, 'include', 'node', 'node_api.h')));
}

function fail(message) {
  console.error(`wfp-redirect: ${message}`);
  process.exit(1);
}

/** node-gyp rebuild; a build that worked before is put back when this one fails. */
function buildFromSource() {
  const nodedir = localNodedir();
  say(
    `no prebuilt addon for ${target}: building it from source with node-gyp, which needs Python 3 and a C++ compiler ` +
      `(Linux: g++ and make; macOS: Xcode's command line tools; Windows: Visual Studio Build Tools). ` +
      (nodedir
        ? `Node's headers: ${join(nodedir, 'include', 'node')} (this machine's; nothing is downloaded).`
        : `No local Node headers were found, so node-gyp will download them for Node ${process.version} (or set npm_config_nodedir).`),
  );
  const built = join(root, 'build', 'Release', 'wfp_redirect.node');
  const kept = existsSync(built) ? join(mkdtempSync(join(tmpdir(), 'wfp-redirect-')), 'wfp_redirect.node') : undefined;
  if (kept) copyFileSync(built, kept);
  // npm tells install scripts where its own node-gyp is; otherwise one on PATH.
  const nodeGyp = process.env.npm_config_node_gyp;
  const args = ['rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
  const { failed } = nodeGyp ? run(process.execPath, [nodeGyp, ...args]) : run('node-gyp', args);
  if (!failed) return kept && rmSync(dirname(kept), { recursive: true, force: true });
  if (kept) {
    mkdirSync(dirname(built), { recursive: true });
    copyFileSync(kept, built);
    rmSync(dirname(kept), { recursive: true, force: true });
    say(`the rebuild failed; the previous build is kept in ${built}`);
  }
  fail(
    `building the addon failed (${failed}). Install Python 3 and a C++ compiler and run \`npm rebuild wfp-redirect --foreground-scripts\`, ` +
      `or use a platform with a prebuilt addon (linux-x64, linux-arm64 with glibc 2.28+, win32-x64).`,
  );
}

/** Whether this system's C library is glibc (the Linux prebuilds need it; Alpine's musl cannot load them). */
function hasGlibc() {
  return process.platform !== 'linux' || Boolean(process.report?.getReport?.().header?.glibcVersionRuntime);
}

function main() {
  compileCheckout();
  const prebuilt = join(root, 'prebuilds', target, 'wfp_redirect.node');
  if (existsSync(prebuilt) && hasGlibc()) return say(`using the prebuilt addon ${prebuilt}`);
  buildFromSource();
}

main();
