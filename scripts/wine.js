// Windows node.exe on Linux: Wine 10 from Debian 13, in a chroot this script
// builds and caches in the git-ignored .cache/wine10/.
//
// Why a chroot: Node 24 and later do not start under Debian 12's Wine 8 (V8
// reserves memory with MEM_RESERVE_PLACEHOLDER, which Wine 8 refuses), and
// Debian 12 has no newer Wine. Debian 13's Wine 10 runs the official node.exe
// of every maintained line unmodified, so one Wine serves them all. Nothing
// on the host changes but the debootstrap package.
//
// Each run enters a private mount namespace (so nothing stays mounted on the
// host), mounts /dev and /proc into the chroot, bind-mounts the project at
// its own path (so paths need no translation), and runs Wine there as root
// with a Windows 10 prefix. Needs root (unshare, chroot), as CI has.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { root, cache } = require('./node-builds');
const { RUN_TIMEOUT_MS, runLogged } = require('./suite');

const home = join(cache, 'wine10');
const rootfs = join(home, 'root');
const prefix = join(home, 'prefix');
const ROOTFS_READY = join(rootfs, '.wfp-redirect-ready');
const PREFIX_READY = join(prefix, '.wfp-redirect-win10');
const SUITE = 'trixie';
const WINE = '/usr/lib/wine/wine64';
const WINESERVER = '/usr/lib/wine/wineserver';
// Inside the chroot; Wine 10 prints an error into the program's output without it.
const RUNTIME_DIR = '/run/wfp-redirect-xdg';

const INSTALL_HINT =
  'apt-get install debootstrap g++-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64   (Debian; run as root; apt-get update first)';

function found(command, args = ['--version']) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return !result.error && result.status === 0;
}

/** What is missing to run Windows node.exe here, as human-readable names (empty when nothing is). */
function missingTools() {
  const missing = [];
  if (process.platform !== 'linux') missing.push('Linux (Wine runs node.exe on Linux)');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) missing.push('root (for unshare and chroot)');
  if (!found('unshare')) missing.push('unshare (util-linux)');
  if (!existsSync(ROOTFS_READY) && !found('debootstrap', ['--help'])) missing.push('debootstrap');
  if (!found('x86_64-w64-mingw32-g++-posix')) missing.push('mingw-w64 g++ (posix threads)');
  if (!found('x86_64-w64-mingw32-dlltool')) missing.push('mingw-w64 binutils');
  return missing;
}

/**
 * The Debian mirror to build the chroot from: WFP_REDIRECT_DEBIAN_MIRROR, or
 * the one the host's own apt uses (so the chroot reaches what the host does).
 */
function debianMirror() {
  if (process.env.WFP_REDIRECT_DEBIAN_MIRROR) return process.env.WFP_REDIRECT_DEBIAN_MIRROR;
  const texts = [];
  if (existsSync('/etc/apt/sources.list')) texts.push(readFileSync('/etc/apt/sources.list', 'utf8'));
  if (existsSync('/etc/apt/sources.list.d')) {
    for (const name of readdirSync('/etc/apt/sources.list.d')) {
      if (/\.(list|sources)$/.test(name)) texts.push(readFileSync(join('/etc/apt/sources.list.d', name), 'utf8'));
    }
  }
  for (const text of texts) {
    for (const match of text.matchAll(/(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/gm)) {
      if (/\/debian\/?$/.test(match[1])) return match[1];
    }
  }
  throw new Error('test:win32: no Debian mirror in /etc/apt; set WFP_REDIRECT_DEBIAN_MIRROR to one');
}

/**
 * The argv that runs `command` inside the chroot: a private mount namespace,
 * /dev, /proc and the project mounted, then chroot with a clean environment.
 */
function inChroot(command, env, cwd = root) {
  const script = [
    'set -e',
    'r=$1; p=$2; c=$3; shift 3',
    'mount --rbind /dev "$r/dev"',
    'mount -t proc proc "$r/proc"',
    'mkdir -p "$r$p" "$r' + RUNTIME_DIR + '"',
    'chmod 700 "$r' + RUNTIME_DIR + '"',
    'mount --bind "$p" "$r$p"',
    // A git worktree may link .cache to another checkout's: make that path exist in the chroot too.
    'if [ "$c" != "$p/.cache" ]; then mkdir -p "$r$c"; mount --bind "$c" "$r$c"; fi',
    'exec chroot "$r" "$@"',
  ].join('\n');
  const vars = Object.entries({ HOME: '/root', PATH: '/usr/sbin:/usr/bin:/sbin:/bin', XDG_RUNTIME_DIR: RUNTIME_DIR, ...env }).map(
    ([name, value]) => `${name}=${value}`,
  );
  return ['unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', rootfs, root, realpathSync(cache), '/usr/bin/env', '-i', '-C', cwd, ...vars, ...command]];
}

function runInChroot(command, env = {}, options = {}) {
  const [file, args] = inChroot(command, env);
  execFileSync(file, args, { stdio: 'inherit', ...options });
}

/** The host's apt network settings (files of Acquire:: lines only), so apt in the chroot behaves as the host's does. */
function copyAptNetworkSettings() {
  const dir = '/etc/apt/apt.conf.d';
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const text = readFileSync(join(dir, name), 'utf8');
    const lines = text.split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('//') && !line.startsWith('#'));
    if (lines.length && lines.every((line) => line.startsWith('Acquire::'))) {
      writeFileSync(join(rootfs, 'etc', 'apt', 'apt.conf.d', name), text);
    }
  }
}

/** Debian 13 with Wine 10 in .cache/wine10/root, built once (about a minute and 1.2 GB). */
function ensureRootfs() {
  if (existsSync(ROOTFS_READY)) return;
  // A half-built chroot from an interrupted run cannot be resumed by debootstrap.
  rmSync(rootfs, { recursive: true, force: true });
  mkdirSync(rootfs, { recursive: true });
  const mirror = debianMirror();
  console.log(`wine: building a Debian 13 (${SUITE}) chroot with Wine 10 in ${rootfs} (once; about a minute)`);
  execFileSync('debootstrap', ['--variant=minbase', SUITE, rootfs, mirror], { stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(join(rootfs, 'etc', 'resolv.conf'), readFileSync('/etc/resolv.conf'));
  // minbase has no /etc/hosts, and the suite connects to 'localhost'.
  writeFileSync(join(rootfs, 'etc', 'hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  copyAptNetworkSettings();
  const apt = { DEBIAN_FRONTEND: 'noninteractive' };
  runInChroot(['apt-get', 'update', '-qq'], apt);
  runInChroot(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'wine64'], apt, { stdio: ['ignore', 'ignore', 'inherit'] });
  runInChroot(['apt-get', 'clean'], apt);
  writeFileSync(ROOTFS_READY, `${SUITE} wine64\n`);
}

function wineEnv(extra = {}) {
  return { WINEPREFIX: prefix, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=', ...extra };
}

/** A Wine prefix that reports Windows 10 (a fresh one says Windows 7, which Node refuses). */
function ensurePrefix() {
  if (existsSync(PREFIX_READY)) return;
  console.log('wine: preparing a Wine prefix set to Windows 10 (once)');
  rmSync(prefix, { recursive: true, force: true });
  runInChroot([WINE, 'winecfg', '-v', 'win10'], wineEnv(), { stdio: 'ignore' });
  writeFileSync(PREFIX_READY, 'win10\n');
}

/** Ends the prefix's wineserver, which otherwise lingers after the last Windows process. */
function stopWineserver() {
  const [file, args] = inChroot([WINESERVER, '-k'], wineEnv());
  spawnSync(file, args, { stdio: 'ignore' });
}

/** Builds the chroot and the prefix if needed. Throws when that fails. */
function ensureWine() {
  ensureRootfs();
  ensurePrefix();
}

/** The [file, argv] that run `exe <args>` (a Windows executable) under Wine, in the chroot, with the extra environment. */
function windowsCommand(exe, args, extraEnv = {}) {
  return inChroot([WINE, exe, ...args], wineEnv({ WFP_REDIRECT_UNDER_WINE: '1', ...extraEnv }));
}

/**
 * Starts `exe <args>` (a Windows executable) under Wine with the extra
 * environment and its stdout and stderr on `logFd`: a file, since with a pipe
 * console.log in node.exe fails with EBADF. Returns spawnSync's result.
 */
function spawnWindows(exe, args, extraEnv, logFd) {
  const [file, argv] = windowsCommand(exe, args, extraEnv);
  return spawnSync(file, argv, { stdio: ['ignore', logFd, logFd], timeout: RUN_TIMEOUT_MS });
}

/** spawnWindows, its output through `logFile` and then printed. Returns spawnSync's result. */
function runWindows(exe, args, extraEnv, logFile) {
  return runLogged(logFile, (log) => spawnWindows(exe, args, extraEnv, log)).result;
}

/** The version Wine reports, e.g. 'wine-10.0 (Debian 10.0~repack-6)'. */
function wineVersion() {
  const [file, args] = inChroot([WINE, '--version'], wineEnv());
  return execFileSync(file, args, { encoding: 'utf8' }).trim();
}

module.exports = { INSTALL_HINT, missingTools, ensureWine, windowsCommand, spawnWindows, runWindows, stopWineserver, wineVersion };
