// How the package reports an addon it cannot use: a missing file and a file
// the OS refuses, each in a process of its own (the addon loads once per
// process). Runs on Linux and in Windows node.exe.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..');

/** Requires the package in a new process with WFP_REDIRECT_ADDON set; returns what it threw. */
function loadWith(addon: string, dir: string): { code?: string; message: string; cause?: string } {
  const out = join(dir, 'result.json');
  // The child writes a file: under Wine a pipe breaks console.log.
  const script = `
    const { writeFileSync } = require('node:fs');
    let result;
    try { require(${JSON.stringify(root)}); result = { message: 'loaded' }; }
    catch (error) { result = { code: error.code, message: error.message, cause: error.cause && error.cause.message }; }
    writeFileSync(${JSON.stringify(out)}, JSON.stringify(result));`;
  const run = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, WFP_REDIRECT_ADDON: addon }, stdio: 'ignore', timeout: 60_000 });
  assert.equal(run.status, 0, `the child failed: ${run.error?.message ?? run.signal ?? run.status}`);
  return JSON.parse(readFileSync(out, 'utf8'));
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
});
