// How the package finds its addon and reports one it cannot use: a missing
// file and a file the OS refuses, each in a process of its own (the addon
// loads once per process); the parts that need no addon working without one;
// a prebuilt addon found before a build. Runs on Linux and in Windows node.exe.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { binding } from '../dist/native';

const root = join(__dirname, '..');

type Outcome = { code?: string; message: string; cause?: string; build?: string };

/**
 * Runs `body` (JavaScript with `pkg`, the required package) in a new process
 * with `env` added; returns what it returned, or what it threw.
 */
function inChild(body: string, dir: string, env: NodeJS.ProcessEnv, pkg = root): Outcome {
  const out = join(dir, 'result.json');
  rmSync(out, { force: true });
  // The child writes a file: under Wine a pipe breaks console.log.
  const script = `
    const { writeFileSync } = require('node:fs');
    let result;
    try { const pkg = require(${JSON.stringify(pkg)}); result = (() => { ${body} })(); }
    catch (error) { result = { code: error.code, message: error.message, cause: error.cause && error.cause.message }; }
    writeFileSync(${JSON.stringify(out)}, JSON.stringify(result));`;
  const run = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, stdio: 'ignore', timeout: 60_000 });
  assert.equal(run.status, 0, `the child failed: ${run.error?.message ?? run.signal ?? run.status}`);
  return JSON.parse(readFileSync(out, 'utf8'));
}

/** Requires the package in a new process with WFP_REDIRECT_ADDON set and makes it load the addon; returns what it threw. */
function loadWith(addon: string, dir: string): Outcome {
  return inChild(`pkg.isSupported(); return { message: 'loaded' };`, dir, { WFP_REDIRECT_ADDON: addon });
}

/** The addon this run uses (as the loader finds it, WFP_REDIRECT_ADDON aside). */
function addonUnderTest(): string {
  const candidates = [
    process.env.WFP_REDIRECT_ADDON,
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'wfp_redirect.node'),
    join(root, 'build', 'Release', 'wfp_redirect.node'),
  ];
  const found = candidates.find((file) => file && existsSync(file));
  assert.ok(found, `no addon in ${candidates.join(', ')}`);
  return found;
}

/** A valid addon that is not wfp_redirect.node: the conformance test addon. */
function testAddon(): string {
  const file = join(root, 'test', 'native', process.platform === 'win32' ? 'build-win32' : join('build', 'Release'), 'wfp_conformance.node');
  assert.ok(existsSync(file), `${file} is not built: run \`npm run build:conformance\``);
  return file;
}

/** A copy of the package's JavaScript (dist/, package.json) in `dir`, with no addon of its own. */
function bareCopy(dir: string): string {
  const copy = join(dir, 'package');
  cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
  copyFileSync(join(root, 'package.json'), join(copy, 'package.json'));
  return copy;
}

/** Runs bin/wfp-redirect-proxy with `args` in a new process; its exit code and what it wrote. */
function cli(args: string[], dir: string, env: NodeJS.ProcessEnv): { status: number | null; output: string } {
  const log = join(dir, 'cli.log');
  const fd = openSync(log, 'w');
  try {
    const run = spawnSync(process.execPath, [join(root, 'bin', 'wfp-redirect-proxy'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], timeout: 60_000 });
    return { status: run.status, output: readFileSync(log, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

describe('loading the addon: errors that say what failed and what to do', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'wfp-loader-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a file the OS refuses: ERR_WFP_ADDON_LOAD_FAILED naming the file, the target and the OS reason, not a crash', function () {
    const corrupt = join(dir, 'wfp_redirect.node');
    writeFileSync(corrupt, Buffer.concat([Buffer.from('MZ'), Buffer.alloc(4094, 0x5a)]));
    const error = loadWith(corrupt, dir);
    assert.equal(error.code, 'ERR_WFP_ADDON_LOAD_FAILED', error.message);
    assert.ok(error.message.includes(corrupt), error.message);
    assert.ok(error.message.includes(`${process.platform}-${process.arch} (Node-API ${process.versions.napi})`), error.message);
    assert.ok(error.cause && error.message.includes(error.cause.split('\n')[0]), `the OS's reason is missing: ${error.message}`);
    assert.match(error.message, /npm rebuild wfp-redirect/);
  });

  it('a file that is not there: ERR_WFP_ADDON_NOT_FOUND naming it', function () {
    const missing = join(dir, 'nothing-here.node');
    const error = loadWith(missing, dir);
    assert.equal(error.code, 'ERR_WFP_ADDON_NOT_FOUND');
    assert.ok(error.message.includes(missing), error.message);
    assert.match(error.message, /WFP_REDIRECT_ADDON/);
  });

  it('without an addon anywhere: one short line naming the two places looked in and what to do, on first use, not at require', function () {
    const copy = bareCopy(join(dir, 'bare'));
    const error = inChild(`pkg.getSocketHandle; return pkg.queryRedirectRecordsSync({});`, dir, { WFP_REDIRECT_ADDON: '' }, copy);
    assert.equal(error.code, 'ERR_WFP_ADDON_NOT_FOUND', error.message);
    assert.ok(error.message.includes(join(copy, 'prebuilds', `${process.platform}-${process.arch}`)), error.message);
    assert.ok(error.message.includes(join(copy, 'build')), error.message);
    assert.match(error.message, /npm rebuild wfp-redirect/);
    assert.match(error.message, /Python and a C\+\+ compiler/);
    assert.doesNotMatch(error.message, /\n/);
    assert.ok(error.message.length < 500, `${error.message.length} characters: ${error.message}`);
  });

  it('without an addon, what needs none works: sockaddr, constants, errors', function () {
    const result = inChild(
      `const bytes = pkg.encodeSockaddr({ family: 'IPv6', address: '::1', port: 8080 });
       const back = pkg.decodeSockaddr(bytes);
       const error = new pkg.WfpRedirectError('m', { code: 'WSAEINVAL' });
       return { message: [back.address, back.port, pkg.MAX_BLOB_SIZE, pkg.SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, error.code].join(' ') };`,
      dir,
      { WFP_REDIRECT_ADDON: join(dir, 'nothing-here.node') },
    );
    assert.equal(result.message, `::1 8080 65536 ${0x980000de} WSAEINVAL`);
  });

  it('a prebuilt addon is found before a build, so no install step is needed where one is shipped', function () {
    const copy = bareCopy(join(dir, 'both'));
    const prebuilt = join(copy, 'prebuilds', `${process.platform}-${process.arch}`, 'wfp_redirect.node');
    mkdirSync(dirname(prebuilt), { recursive: true });
    copyFileSync(addonUnderTest(), prebuilt);
    // Another addon that loads (a test addon, which has no `build`) in the build folder: found first, it would be the one used.
    mkdirSync(join(copy, 'build', 'Release'), { recursive: true });
    copyFileSync(testAddon(), join(copy, 'build', 'Release', 'wfp_redirect.node'));
    const result = inChild(`return { message: String(require(${JSON.stringify(join(copy, 'dist', 'native'))}).binding.build) };`, dir, { WFP_REDIRECT_ADDON: '' }, copy);
    assert.equal(result.message, binding.build, `${result.code ?? ''} ${result.message}`);
  });
});

describe('the CLI without an addon', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'wfp-cli-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--help and --version work', function () {
    const env = { WFP_REDIRECT_ADDON: join(dir, 'nothing-here.node') };
    const help = cli(['--help'], dir, env);
    assert.equal(help.status, 0, help.output);
    assert.match(help.output, /^Usage: wfp-redirect-proxy /);
    const version = cli(['--version'], dir, env);
    assert.equal(version.status, 0, version.output);
    assert.equal(version.output.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  });
});
