// The proxy's own connections coming back to it (Linux, in a network
// namespace of the test's own): with an iptables REDIRECT that does not exempt
// the proxy, one client connection must make exactly one refused loop
// (ERR_PROXY_LOOP), not a flood until EMFILE; with the rule exempting a mark
// and the proxy started with --mark, the connection reaches its original
// destination intact; a client redirected to the proxy's own port at
// another of its addresses is refused at once (the own-listener check).
// Needs Linux, root, iproute2 and iptables; without them it says so loudly
// and is reported pending.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { nativeRelayUnavailable } from '../dist/proxy/native-relay';
import { addNetworkNamespace } from './helpers';

const NAMESPACE = `wfp-redirect-loop-${process.pid}`;
const SERVER = '10.78.0.2';
const SERVER_PORT = 7070;
const PROXY_PORT = 7171;
const MARK = 119;

describe('redirect loops and --mark, through an unexempted iptables REDIRECT in a network namespace (Linux)', function () {
  this.timeout(120_000);

  before(function () {
    const reason = addNetworkNamespace(NAMESPACE, ['iptables']);
    if (reason) {
      console.warn(`    !!! THE REDIRECT-LOOP TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    const run = (command: string[]) => execFileSync('ip', ['netns', 'exec', NAMESPACE, ...command]);
    run(['ip', 'link', 'set', 'lo', 'up']);
    // The server's address, on the namespace's loopback.
    run(['ip', 'addr', 'add', `${SERVER}/32`, 'dev', 'lo']);
  });

  after(function () {
    spawnSync('ip', ['netns', 'del', NAMESPACE]);
  });

  interface LogLine { client?: string; destination?: string; error?: string; bytesUp?: number; bytesDown?: number }
  interface Phase { logs: LogLine[]; stderr: string[] }
  interface NamespaceRun { phase1: Phase & { originConnections: number }; phase2: Phase; phase3: Phase & { client: string } }

  /** The fixture's three phases in the namespace, once per --relay value (both of its specs read them). */
  const runs = new Map<string, NamespaceRun>();
  function namespaceRun(relay: string): NamespaceRun {
    const known = runs.get(relay);
    if (known) return known;
    const run = spawnSync('ip', ['netns', 'exec', NAMESPACE, process.execPath, join(__dirname, 'fixtures', 'loop-e2e.js'), SERVER, String(SERVER_PORT), String(PROXY_PORT), String(MARK), relay], {
      encoding: 'utf8',
      timeout: 100_000,
    });
    const line = run.stdout.trim().split('\n').pop() ?? '';
    assert.ok(line.startsWith('{'), `no result from the namespace: ${run.stdout}\n${run.stderr}`);
    const result = JSON.parse(line) as NamespaceRun & { ok: boolean; error?: string };
    assert.equal(result.ok, true, result.error);
    runs.set(relay, result);
    return result;
  }

  // --relay native: accepted, decided (netfilter's record, the loop checks), connected and relayed in the addon.
  for (const relay of ['streams', 'native']) {
    it(`--relay ${relay}: one client connection makes exactly one refused loop; exempted by --mark, the next reaches the server intact`, function () {
      if (relay === 'native' && nativeRelayUnavailable()) this.skip();
      const { phase1, phase2 } = namespaceRun(relay);
      const loops = phase1.logs.filter((entry) => entry.error === 'ERR_PROXY_LOOP');
      assert.equal(loops.length, 1, `exactly one refused loop: ${JSON.stringify(phase1.logs)}`);
      assert.equal(phase1.logs.length, 2, `the client's connection and its one loop, nothing more: ${JSON.stringify(phase1.logs)}`);
      assert.equal(phase1.originConnections, 0, 'nothing reached the server while the proxy looped');
      assert.equal(phase1.stderr.filter((text) => text.includes('ERR_PROXY_LOOP')).length, 1, phase1.stderr.join('\n'));
      const [relayed] = phase2.logs;
      assert.ok(relayed, 'phase 2 logged the relayed connection');
      assert.equal(relayed.error, undefined, JSON.stringify(relayed));
      assert.equal(relayed.destination, `${SERVER}:${SERVER_PORT}`);
      assert.equal(relayed.bytesUp, 1024 * 1024);
      assert.equal(relayed.bytesDown, 1024 * 1024);
    });

    it(`--relay ${relay}: a client redirected to the proxy's own port at another of this host's addresses is refused as a loop at once, for that client, and not connected again`, function () {
      if (relay === 'native' && nativeRelayUnavailable()) this.skip();
      const { phase3 } = namespaceRun(relay);
      // Accepted and decided in JavaScript instead, the JS check would answer for the addon's.
      if (relay === 'native') assert.doesNotMatch(phase3.stderr.join('\n'), /in JavaScript/);
      // Connected again, it would reach the listener a second time (a second line: ERR_NOT_REDIRECTED, from the proxy's own endpoint).
      assert.deepEqual(
        phase3.logs.map((entry) => [entry.client, entry.destination, entry.error]),
        [[phase3.client, `${SERVER}:${PROXY_PORT}`, 'ERR_PROXY_LOOP']],
        JSON.stringify(phase3.logs),
      );
    });
  }
});
