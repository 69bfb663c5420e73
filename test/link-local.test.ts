// Two link-local connections that differ in nothing but their interface: in a
// network namespace of its own, fe80::1 on two interfaces, one connection
// over each with the same ports. getSocketHandle must tell them apart by the
// scope Node reports ("fe80::1%v0"). Needs Linux, root and iproute2 (.ci/run
// installs them); without them it says so loudly and is reported pending.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { addNetworkNamespace } from './helpers';

const NAMESPACE = `wfp-redirect-ll-${process.pid}`;

function inNamespace(command: string[]): string {
  return execFileSync('ip', ['netns', 'exec', NAMESPACE, ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('getSocketHandle with link-local IPv6 twins on two interfaces (Linux network namespace)', function () {
  this.timeout(60_000);

  before(function () {
    const reason = addNetworkNamespace(NAMESPACE);
    if (reason) {
      console.warn(`    !!! THE LINK-LOCAL LOOKUP TEST WAS NOT RUN: ${reason}`);
      this.skip();
    }
    inNamespace(['ip', 'link', 'set', 'lo', 'up']);
    for (const device of ['v0', 'v1']) {
      inNamespace(['ip', 'link', 'add', device, 'type', 'veth', 'peer', 'name', `${device}p`]);
      inNamespace(['ip', 'link', 'set', device, 'up']);
      inNamespace(['ip', 'link', 'set', `${device}p`, 'up']);
      inNamespace(['ip', '-6', 'addr', 'add', 'fe80::1/64', 'dev', device, 'nodad']);
    }
  });

  after(function () {
    spawnSync('ip', ['netns', 'del', NAMESPACE]);
  });

  it('each of the four sockets resolves to its own descriptor, not its twin on the other interface', function () {
    const run = spawnSync('ip', ['netns', 'exec', NAMESPACE, process.execPath, join(__dirname, 'fixtures', 'link-local-lookup.js')], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    const line = run.stdout.trim().split('\n').pop() ?? '';
    assert.ok(line.startsWith('{'), `no result from the namespace: ${run.stdout}\n${run.stderr}`);
    const result = JSON.parse(line);
    assert.equal(result.ok, true, result.error);
    assert.equal(result.results.length, 4);
    // The precondition: Node names the interface, so the twins can be told apart at all.
    assert.deepEqual(result.results.map((r: { remoteAddress: string }) => r.remoteAddress), ['fe80::1%v0', 'fe80::1%v0', 'fe80::1%v1', 'fe80::1%v1']);
    for (const socket of result.results) assert.equal(socket.handle, socket.fd, `${socket.name}: got another socket's descriptor`);
  });
});
