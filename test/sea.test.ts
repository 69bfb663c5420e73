// wfp-redirect-proxy.exe, the proxy CLI as a Node single-executable app
// (scripts/build-sea.js, which `npm run test:win32` runs first): a host that is
// not node.exe, with the addon as an asset written to a checked cache file.
// Runs in Windows node.exe; pending, with a notice, elsewhere.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionLog } from '..';
import { isWindows } from './helpers';
import { echoServer, root, roundTrip, start, stop } from './proxy-process';

const EXE = join(root, 'build-sea', 'wfp-redirect-proxy.exe');
const ADDON = join(root, 'prebuilds', 'win32-x64', 'wfp_redirect.node');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('wfp-redirect-proxy.exe, a single-executable app (Windows)', function () {
  this.timeout(180_000);
  let cache: string;
  let env: NodeJS.ProcessEnv;

  before(function () {
    if (!isWindows) {
      console.warn('    !!! not Windows: the single-executable tests are NOT run here; `npm run test:win32` builds the .exe and runs them under Wine');
      this.skip();
    }
    assert.ok(existsSync(EXE), `${EXE} is not built: run \`npm run build:sea\``);
    cache = mkdtempSync(join(tmpdir(), 'wfp-sea-'));
    env = { ...process.env, WFP_REDIRECT_SEA_CACHE: cache };
  });
  after(() => cache && rmSync(cache, { recursive: true, force: true }));

  /** Runs the exe to its end. */
  function run(args: string[]): { status: number | null; out: string } {
    const result = spawnSync(EXE, args, { env, timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    return { status: result.status, out: `${result.stdout}${result.stderr}` };
  }

  const cached = () => readdirSync(cache).filter((name) => name.endsWith('.node')).map((name) => join(cache, name));

  it('prints --version and --help without loading the addon: nothing is written to its cache', function () {
    const version = run(['--version']);
    assert.equal(version.status, 0, version.out);
    assert.equal(version.out.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
    const help = run(['--help']);
    assert.equal(help.status, 0, help.out);
    assert.match(help.out, /^Usage: wfp-redirect-proxy --listen/);
    assert.deepEqual(cached(), []);
  });

  /** Starts the exe as a proxy (which loads the addon: it asks Winsock about the IOCTLs), then stops it. */
  async function startAndStop(): Promise<void> {
    const proxy = await start(['--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9'], /listening on .*:(\d+)$/, { command: EXE, env });
    await stop(proxy);
  }

  it('a proxy that starts writes the addon to its cache, byte for byte the shipped one; a second start reuses the file; a cut-short one is noticed and rewritten', async function () {
    await startAndStop();
    const files = cached();
    assert.equal(files.length, 1, `cache holds ${files.join(', ')}`);
    assert.equal(sha256(readFileSync(files[0])), sha256(readFileSync(ADDON)));
    const [file] = files;
    const before = statSync(file).mtimeMs;
    await startAndStop();
    assert.equal(statSync(file).mtimeMs, before, 'the cache file was rewritten although it was intact');
    truncateSync(file, 1000);
    await startAndStop();
    assert.equal(sha256(readFileSync(file)), sha256(readFileSync(ADDON)), 'the cut-short cache file was not rewritten');
  });

  it('relays 10 connections of 1 MB each, intact, in --upstream mode', async function () {
    const upstream = await echoServer();
    const proxy = await start(['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${(upstream.address() as net.AddressInfo).port}`], /listening on .*:(\d+)$/, { command: EXE, env });
    try {
      await Promise.all(Array.from({ length: 10 }, () => roundTrip(proxy.port, 1)));
    } finally {
      await stop(proxy);
      upstream.close();
    }
  });

  it('reaches WSAIoctl through its addon: --transparent logs a connection nobody redirected as ERR_NOT_REDIRECTED, and says once at start-up when Winsock lacks the IOCTLs', async function () {
    const proxy = await start(['--listen', '127.0.0.1:0', '--transparent', '--log', 'json'], /listening on .*:(\d+)$/, { command: EXE, env });
    try {
      const client = net.connect(proxy.port, '127.0.0.1');
      client.on('error', () => {});
      await new Promise((resolve) => client.once('close', resolve));
      for (let waited = 0; !proxy.stdout.some((line) => line.startsWith('{')) && waited < 20_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      const [log] = proxy.stdout.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as ConnectionLog);
      assert.ok(log, `no log line: ${proxy.stderr.join('\n')}`);
      // Wine's Winsock answers 10045 (said once at start-up); a real Windows without a redirect driver answers
      // WSAEINVAL. Either way the connection was not redirected, as UDP says of a datagram without records.
      assert.equal(log.error, 'ERR_NOT_REDIRECTED', JSON.stringify(log));
      if (process.env.WFP_REDIRECT_UNDER_WINE === '1') {
        const said = proxy.stderr.filter((line) => /answers the WFP redirect IOCTLs with WSAEOPNOTSUPP/.test(line));
        assert.equal(said.length, 1, proxy.stderr.join('\n'));
      }
    } finally {
      await stop(proxy);
    }
  });
});
