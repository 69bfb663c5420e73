// Accepting natively (lib/proxy/native-accept.ts, binding.relayGroupListen,
// or binding.relayConnect where Node accepts): with `relay: 'native'` and
// nothing decided per connection in JavaScript, the addon accepts from the
// listening socket itself, decides, connects and relays; no net.Socket is
// made and no JavaScript runs before a connection's end. What the proxy does must not change: the same log
// entries, the connect's failures and time, maxConnections, shutdown,
// ERR_NOT_REDIRECTED; per-connection JavaScript keeps the JS accept path.
// Real sockets on loopback (the loops and netfilter's records: loop.test.ts,
// netns.test.ts). Linux: elsewhere there is no native relay.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import { TransparentProxy, type ConnectionLog, type ProxyOptions } from '..';
import { binding } from '../dist/native';
import { acceptTakeOverMissing, listeningDescriptor } from '../dist/node-internals';
import { nativeRelayUnavailable } from '../dist/proxy/native-relay';
import { closedPortBelowEphemeral, freePort, received, spy, thrown, until, type Spied } from './helpers';
import { CLI, echoServer, start, stop } from './proxy-process';

const HOST = '127.0.0.1';

describe('TransparentProxy accepting natively (relay: native, nothing decided per connection)', function () {
  this.timeout(20_000);
  let server: net.Server;
  let serverPort: number;
  let socketsMade = 0;
  type Entry = 'relayConnect' | 'relayStart' | 'relayGroupListen';
  const spies: Partial<Record<Entry, Spied>> = {};
  const calls = (name: Entry) => spies[name]!.calls.length;

  before(async function () {
    // Windows has the relay but not native accept: JavaScript accepts there (for the records) and hands over.
    const why =
      nativeRelayUnavailable() ??
      (typeof binding.relayConnect === 'function' ? undefined : `this ${process.platform} build accepts in JavaScript and hands each connection over; accepting natively is Linux only`);
    if (why) {
      console.warn(`    !!! NOT RUN: ${why}`);
      this.skip();
    }
    server = await echoServer();
    serverPort = (server.address() as net.AddressInfo).port;
  });
  after(() => server?.close());
  beforeEach(() => {
    socketsMade = 0;
    spies.relayConnect = spy('relayConnect');
    spies.relayStart = spy('relayStart');
    spies.relayGroupListen = spy('relayGroupListen');
  });
  afterEach(() => Object.values(spies).forEach((s) => s.restore()));

  async function proxyWith(options: Partial<ProxyOptions> = {}) {
    const logs: ConnectionLog[] = [];
    const warnings: string[] = [];
    const proxy = new TransparentProxy({
      listen: { host: HOST, port: 0 },
      destination: { kind: 'upstream', upstream: { host: HOST, port: serverPort } },
      relay: 'native',
      log: (entry) => logs.push(entry),
      warn: (line) => warnings.push(line),
      ...options,
    });
    proxy.server.on('connection', () => socketsMade++);
    return { proxy, port: (await proxy.listen()).port, logs, warnings };
  }

  /** One connection through the proxy: sends `bytes` and its FIN, answers what came back and the client's own port. */
  async function exchange(port: number, bytes: number): Promise<{ answer: string; clientPort: number }> {
    const client = net.connect({ port, host: HOST, allowHalfOpen: true });
    await once(client, 'connect');
    const clientPort = client.localPort!;
    const answer = received(client);
    client.end('x'.repeat(bytes));
    return { answer: await answer, clientPort };
  }

  it('relays both ways with half-close, makes no net.Socket, and logs each connection as the JS path does (ids, client, destination, bytes)', async function () {
    const entries: Record<string, ConnectionLog[]> = {};
    for (const relay of ['native', 'streams'] as const) {
      const { proxy, port, logs } = await proxyWith({ relay });
      const clients: number[] = [];
      for (const bytes of [1, 70_000, 1_000_000]) {
        const { answer, clientPort } = await exchange(port, bytes);
        assert.equal(answer.length, bytes);
        clients.push(clientPort);
      }
      await until(() => logs.length === 3, 'three log lines');
      await proxy.shutdown(1000);
      logs.forEach((entry, i) => {
        assert.equal(typeof entry.durationMs, 'number');
        assert.deepEqual({ ...entry, durationMs: 0 }, { id: i + 1, client: `${HOST}:${clients[i]}`, destination: `${HOST}:${serverPort}`, records: 0, bytesUp: entry.bytesDown, bytesDown: [1, 70_000, 1_000_000][i], durationMs: 0 });
      });
      entries[relay] = logs;
      if (relay === 'native') {
        const made = [socketsMade, calls('relayGroupListen'), calls('relayConnect'), calls('relayStart')];
        assert.deepEqual(made, [0, 1, 0, 0], 'native: [net.Sockets made, relayGroupListen, relayConnect, relayStart]');
        assert.equal(proxy.server.listening, false, "Node's own handle is closed: the addon accepts");
      }
    }
    assert.deepEqual(Object.keys(entries.native![0]!), Object.keys(entries.streams![0]!), 'the same fields, in the same order');
  });

  const perConnection: Array<[string, Partial<ProxyOptions>]> = [
    ['a route hook', { route: () => undefined }],
    ['logStart', { logStart: () => {} }],
    ['sniff', { sniff: { maxBytes: 16, timeoutMs: 50 } }],
    ['processLookup', { processLookup: true }],
    ['an upstream given by name', { destination: { kind: 'upstream', upstream: { host: 'localhost', port: 0 } } }],
  ];
  for (const [what, options] of perConnection) {
    it(`with ${what}, connections are accepted in JavaScript and handed over to the native relay once decided`, async function () {
      const named = options.destination ? { destination: { kind: 'upstream' as const, upstream: { host: 'localhost', port: serverPort } } } : {};
      const { proxy, port, logs } = await proxyWith({ ...options, ...named });
      try {
        assert.equal((await exchange(port, 1000)).answer.length, 1000);
        await until(() => logs.length === 1, 'a log line');
        assert.equal(logs[0]!.error, undefined);
        assert.deepEqual([socketsMade, calls('relayConnect'), calls('relayStart')], [1, 0, 1], '[net.Sockets made, relayConnect, relayStart]');
      } finally {
        await proxy.shutdown(0);
      }
    });
  }

  it('a destination that refuses: logged ECONNREFUSED with its destination, the client closed', async function () {
    const closed = await closedPortBelowEphemeral();
    const { proxy, port, logs } = await proxyWith({ destination: { kind: 'upstream', upstream: { host: HOST, port: closed } } });
    try {
      const client = net.connect({ port, host: HOST }).on('error', () => {});
      await once(client, 'close');
      await until(() => logs.length === 1, 'a log line');
      assert.deepEqual([logs[0]!.error, logs[0]!.destination, logs[0]!.bytesUp, logs[0]!.bytesDown], ['ECONNREFUSED', `${HOST}:${closed}`, 0, 0]);
      assert.equal(calls('relayGroupListen'), 1);
    } finally {
      await proxy.shutdown(0);
    }
  });

  describe('a destination that never answers the connect (a listener whose queue is full)', function () {
    let stuck: ChildProcess;
    let stuckPort: number;
    const fillers: net.Socket[] = [];
    before(async function () {
      // A process that listens with the shortest queue, then blocks: its queue fills, and later SYNs go unanswered.
      stuck = spawn(process.execPath, ['-e', "const s=require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},()=>{console.log(s.address().port);Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,60000);process.exit()})"]);
      stuckPort = Number(String((await once(stuck.stdout!, 'data'))[0]).trim());
      for (let i = 0; i < 3; i++) fillers.push(net.connect({ port: stuckPort, host: HOST }).on('error', () => {}));
      await new Promise((resolve) => setTimeout(resolve, 200));
    });
    after(() => {
      fillers.forEach((socket) => socket.destroy());
      stuck?.kill('SIGKILL');
    });

    for (const relay of ['native', 'streams'] as const) {
      it(`relay: '${relay}': given up at connectTimeout and logged ETIMEDOUT, the client closed`, async function () {
        const { proxy, port, logs } = await proxyWith({ relay, connectTimeout: 300, destination: { kind: 'upstream', upstream: { host: HOST, port: stuckPort } } });
        try {
          const started = Date.now();
          const client = net.connect({ port, host: HOST }).on('error', () => {});
          await once(client, 'close');
          const waited = Date.now() - started;
          await until(() => logs.length === 1, 'a log line');
          assert.equal(logs[0]!.error, 'ETIMEDOUT');
          assert.ok(waited >= 250 && waited < 5000, `closed after ${waited} ms`);
        } finally {
          await proxy.shutdown(0);
        }
      });
    }

    // Accepted natively; accepted in JavaScript and handed over (logStart); on streams.
    for (const [what, options] of [
      ['accepted natively', {}],
      ['handed over', { logStart: () => {} }],
      ['on streams', { relay: 'streams' }],
    ] as const) {
      it(`${what}: a client that resets while the outbound side connects is logged ECONNRESET at once, and frees its place`, async function () {
        const { proxy, port, logs } = await proxyWith({ ...options, maxConnections: 1, connectTimeout: 5_000, destination: { kind: 'upstream', upstream: { host: HOST, port: stuckPort } } });
        try {
          const client = net.connect({ port, host: HOST }).on('error', () => {});
          await once(client, 'connect');
          client.write('sent before the reset');
          await new Promise((resolve) => setTimeout(resolve, 100));
          const reset = Date.now();
          client.resetAndDestroy();
          await until(() => logs.length === 1, 'a log line', 3_000);
          assert.equal(logs[0]!.error, 'ECONNRESET', JSON.stringify(logs));
          assert.ok(Date.now() - reset < 2_000, `logged ${Date.now() - reset} ms after the reset`);
          assert.equal(proxy.connections, 0, 'its place is free');
        } finally {
          await proxy.shutdown(0);
        }
      });
    }
  });

  it('maxConnections: one more is closed unlogged, as Node refuses it; the open ones go on, and a place freed is taken again', async function () {
    const { proxy, port, logs } = await proxyWith({ maxConnections: 2 });
    const clients: net.Socket[] = [];
    try {
      const open = await Promise.all([0, 1].map(async () => {
        const client = net.connect({ port, host: HOST, allowHalfOpen: true });
        clients.push(client);
        const echo = once(client, 'data');
        client.write('a');
        await echo;
        return client;
      }));
      assert.equal(proxy.connections, 2);
      const refused = net.connect({ port, host: HOST }).on('error', () => {});
      let got = 0;
      refused.on('data', (chunk: Buffer) => (got += chunk.length));
      refused.write('b');
      await once(refused, 'close');
      assert.equal(got, 0);
      const answer = received(open[0]!);
      open[0]!.end('c');
      assert.equal(await answer, 'c');
      await until(() => logs.length === 1 && proxy.connections === 1, 'the first to end');
      assert.equal((await exchange(port, 10)).answer.length, 10);
      open[1]!.end();
      await until(() => logs.length === 3, 'three log lines');
      assert.deepEqual(logs.map((entry) => entry.error), [undefined, undefined, undefined]);
    } finally {
      clients.forEach((client) => client.destroy());
      await proxy.shutdown(0);
    }
  });

  it('shutdown waits for an open connection to end, and resolves with none cut', async function () {
    const { proxy, port, logs } = await proxyWith();
    const client = net.connect({ port, host: HOST, allowHalfOpen: true });
    const echo = once(client, 'data');
    client.write('a');
    await echo;
    let settled: number | undefined;
    const stopping = proxy.shutdown(10_000).then((cut) => (settled = cut));
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(settled, undefined, 'shutdown waited');
      const answer = received(client);
      client.end('b');
      assert.equal(await answer, 'b');
      assert.equal(await stopping, 0);
      assert.equal(logs.length, 1);
    } finally {
      // A failure above must not leave the connection (and the shutdown) open.
      client.destroy();
      await stopping;
    }
  });

  it("a log callback that shuts the proxy down (its group closed from inside the group's own callback) ends cleanly", function () {
    // In a process of its own: the defect this guards against was a double free, which ends the process.
    const run = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'shutdown-from-log.js')], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(run.signal, null, `ended by ${run.signal}: ${run.stderr}`);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim()), { logged: [{ bytesUp: 5 }], cut: 0 });
  });

  it("kind 'original' without a redirect: ERR_NOT_REDIRECTED, no destination, the client closed; as the JS path logs it", async function () {
    const entries: ConnectionLog[] = [];
    for (const relay of ['native', 'streams'] as const) {
      const { proxy, port, logs } = await proxyWith({ relay, destination: { kind: 'original' } });
      try {
        const client = net.connect({ port, host: HOST }).on('error', () => {});
        await once(client, 'close');
        await until(() => logs.length === 1, 'a log line');
        entries.push({ ...logs[0]!, client: '', durationMs: 0 });
      } finally {
        await proxy.shutdown(0);
      }
    }
    assert.deepEqual(entries[0], entries[1]);
    assert.deepEqual([entries[0]!.error, entries[0]!.destination], ['ERR_NOT_REDIRECTED', undefined]);
    assert.equal(calls('relayGroupListen'), 1);
  });

  it("the CLI relays natively by default (--relay auto): accepted natively with --upstream at an address, handed over with --sniff; --relay streams keeps streams", async function () {
    const preload = join(__dirname, 'fixtures', 'count-relay-calls.js');
    const base = [CLI, '--listen', `${HOST}:0`, '--upstream', `${HOST}:${serverPort}`];
    for (const [extra, expected] of [[[], 'called relayGroupListen'], [['--sniff'], 'called relayStart'], [['--relay', 'streams'], undefined]] as const) {
      const proxy = await start(['-r', preload, ...base, ...extra], /listening on .*:(\d+)$/);
      try {
        assert.equal((await exchange(proxy.port, 100)).answer.length, 100);
        await until(() => proxy.stdout.length === 1, 'a log line');
        assert.deepEqual(proxy.stderr.filter((line) => line.startsWith('called ')), expected ? [expected] : [], `${extra.join(' ')}: ${proxy.stderr.join('\n')}`);
      } finally {
        await stop(proxy);
      }
    }
  });

  it("where the addon cannot accept itself (no relayGroupListen, or the listening handle's fd missing): Node accepts and each descriptor goes to relayConnect", async function () {
    assert.equal(listeningDescriptor({ _handle: null } as unknown as net.Server), 'net.Server._handle');
    assert.equal(listeningDescriptor({ _handle: { fd: -1 } } as unknown as net.Server), 'net.Server._handle.fd');
    const relayGroupListen = binding.relayGroupListen;
    (binding as { relayGroupListen?: unknown }).relayGroupListen = undefined;
    try {
      const { proxy, port, logs, warnings } = await proxyWith();
      try {
        assert.equal(proxy.server.listening, true, "Node's handle stays: it accepts");
        const clients: number[] = [];
        for (let i = 0; i < 3; i++) {
          const { answer, clientPort } = await exchange(port, 10);
          assert.equal(answer.length, 10);
          clients.push(clientPort);
        }
        await until(() => logs.length === 3, 'three log lines');
        assert.deepEqual(logs.map((entry) => [entry.id, entry.client, entry.error]), clients.map((client, i) => [i + 1, `${HOST}:${client}`, undefined]));
        assert.deepEqual([socketsMade, calls('relayConnect'), calls('relayStart'), warnings], [0, 3, 0, []]);
      } finally {
        await proxy.shutdown(0);
      }
    } finally {
      (binding as { relayGroupListen?: unknown }).relayGroupListen = relayGroupListen;
    }
  });

  for (const [relay, nodeAccepts] of [['native', false], ['native', true], ['streams', false]] as const) {
    it(`relay: '${relay}'${nodeAccepts ? ', Node accepting (relayConnect)' : ''}: connections closed past maxConnections are said in a warning, the first at once, the rest counted`, async function () {
      const relayGroupListen = binding.relayGroupListen;
      if (nodeAccepts) (binding as { relayGroupListen?: unknown }).relayGroupListen = undefined;
      const { proxy, port, warnings } = await proxyWith({ relay, maxConnections: 1 }).finally(() => {
        (binding as { relayGroupListen?: unknown }).relayGroupListen = relayGroupListen;
      });
      const held = net.connect({ port, host: HOST, allowHalfOpen: true }).on('error', () => {});
      try {
        const echo = once(held, 'data');
        held.write('a');
        await echo;
        for (let i = 0; i < 3; i++) {
          const refused = net.connect({ port, host: HOST }).on('error', () => {});
          await once(refused, 'close');
        }
        await until(() => warnings.length === 1, 'a warning');
        assert.match(warnings[0]!, /^refused a connection: 1 \(maxConnections, --max-connections\) are open/);
        held.destroy();
        // The other two are counted, and said when the proxy stops.
        await proxy.shutdown(1000);
        assert.match(warnings[1] ?? '', /^still at maxConnections: 2 more connection\(s\) refused/, JSON.stringify(warnings));
      } finally {
        held.destroy();
        await proxy.shutdown(0);
      }
    });
  }

  it("out of descriptors at accept4 itself: the waiting clients are closed at once (libuv's reserve-descriptor trick), said as EMFILE; with descriptors back, the next is relayed", async function () {
    // A process of its own with a low descriptor limit, used up once it listens: a client that waited would hang here.
    const child = spawn('sh', ['-c', 'ulimit -n 64 && exec "$0" "$@"', process.execPath, join(__dirname, 'fixtures', 'listen-out-of-descriptors.js'), String(serverPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: Array<{ port?: number; code?: string; count?: number; freed?: boolean; ended?: string | null }> = [];
    child.stdout!.setEncoding('utf8').on('data', (text: string) => text.split('\n').filter(Boolean).forEach((line) => lines.push(JSON.parse(line))));
    try {
      await until(() => lines.some((line) => line.port), 'the fixture to listen');
      const port = lines.find((line) => line.port)!.port!;
      const closedAt = await Promise.all([0, 1, 2].map(async () => {
        const client = net.connect({ port, host: HOST }).on('error', () => {});
        const started = Date.now();
        await new Promise((resolve) => client.once('close', resolve));
        return Date.now() - started;
      }));
      assert.ok(closedAt.every((ms) => ms < 2_000), `closed after ${closedAt.join(', ')} ms`);
      // The fixture says so after it has closed them: its lines may come after the clients' close.
      const refused = () => lines.filter((line) => line.code !== undefined);
      await until(() => refused().reduce((sum, line) => sum + line.count!, 0) >= 3, `three refusals: ${JSON.stringify(lines)}`);
      assert.ok(refused().every((line) => line.code === 'EMFILE'), JSON.stringify(lines));
      assert.equal(refused().reduce((sum, line) => sum + line.count!, 0), 3);
      // Refused at accept4, not accepted and then failed (a relay's end): that would be the outbound socket's EMFILE.
      assert.ok(!lines.some((line) => 'ended' in line), JSON.stringify(lines));
      child.stdin!.write('free\n');
      await until(() => lines.some((line) => line.freed), 'the descriptors back');
      assert.equal((await exchange(port, 10)).answer.length, 10);
    } finally {
      child.kill();
    }
  });

  it('the addon accepts only from a listening TCP socket, once per group, and not for a closed group', async function () {
    const done = () => {};
    const refused = () => {};
    const listening = net.createServer().listen(0, HOST);
    await once(listening, 'listening');
    const connected = net.connect({ port: (listening.address() as net.AddressInfo).port, host: HOST });
    await once(connected, 'connect');
    const group = binding.relayGroup!(HOST, 1, HOST, 2, -1, 0, 0, 0, done);
    try {
      const fd = listeningDescriptor(listening) as number;
      const connectedFd = (connected as unknown as { _handle: { fd: number } })._handle.fd;
      for (const args of [[group, connectedFd, 1, refused], [group, fd, 0, refused], [group, fd, 1, undefined], [group + 1000, fd, 1, refused], [group, -1, 1, refused]] as const) {
        assert.equal(thrown(() => binding.relayGroupListen!(...(args as unknown as [number, number, number, () => void]))).code, 'ERR_INVALID_ARG_TYPE', JSON.stringify(args.slice(0, 3)));
      }
      assert.equal(binding.relayGroupListen!(group, fd, 1, refused), true);
      assert.equal(thrown(() => binding.relayGroupListen!(group, fd, 1, refused)).code, 'ERR_INVALID_ARG_TYPE', 'a second listener');
      assert.equal(binding.relayGroupSize!(group), 0);
    } finally {
      binding.relayGroupClose!(group);
      connected.destroy();
      listening.close();
    }
    assert.equal(binding.relayGroupSize!(group), 0, 'a group that is gone');
    assert.equal(thrown(() => binding.relayGroupListen!(group, 0, 1, refused)).code, 'ERR_INVALID_ARG_TYPE', 'a closed group');
  });

  it('where an internal is missing (net.Server._handle.onconnection) or the addon has no relayGroup: accepted in JavaScript and handed over, said once', async function () {
    assert.equal(acceptTakeOverMissing({ _handle: null } as unknown as net.Server), 'net.Server._handle');
    assert.equal(acceptTakeOverMissing({ _handle: {} } as unknown as net.Server), 'net.Server._handle.onconnection');
    const relayGroup = binding.relayGroup;
    (binding as { relayGroup?: unknown }).relayGroup = undefined;
    try {
      const { proxy, port, logs, warnings } = await proxyWith();
      try {
        for (let i = 0; i < 2; i++) assert.equal((await exchange(port, 10)).answer.length, 10);
        await until(() => logs.length === 2, 'two log lines');
        assert.deepEqual(warnings, ['connections are accepted and connected in JavaScript, then relayed natively: this build has no native relay']);
        assert.deepEqual([socketsMade, calls('relayConnect'), calls('relayStart')], [2, 0, 2]);
      } finally {
        await proxy.shutdown(0);
      }
    } finally {
      (binding as { relayGroup?: unknown }).relayGroup = relayGroup;
    }
  });

  it('a warn callback that throws ends nothing: listen() resolves, connections are relayed and logged', async function () {
    const relayGroup = binding.relayGroup;
    (binding as { relayGroup?: unknown }).relayGroup = undefined;
    try {
      const { proxy, port, logs } = await proxyWith({
        warn: () => {
          throw new Error('a warn callback that throws');
        },
      });
      try {
        assert.equal((await exchange(port, 10)).answer.length, 10);
        await until(() => logs.length === 1, 'a log line');
      } finally {
        await proxy.shutdown(0);
      }
    } finally {
      (binding as { relayGroup?: unknown }).relayGroup = relayGroup;
    }
  });

  // Natively accepted; accepted in JavaScript and handed over (sniff); on streams.
  for (const [what, options] of [
    ['accepted natively', {}],
    ['handed over', { sniff: true }],
    ['on streams', { relay: 'streams' }],
  ] as const) {
    it(`${what}: shutdown() resolves once every connection has its log line, whether it ended by itself (no error) or was cut (ERR_PROXY_SHUTDOWN)`, async function () {
      for (const deadline of [5_000, 200]) {
        const { proxy, port, logs } = await proxyWith(options);
        const clients = await Promise.all(
          [1, 2, 3].map(async () => {
            const client = net.connect({ port, host: HOST, allowHalfOpen: true }).on('error', () => {});
            const echo = once(client, 'data');
            client.write('a');
            await echo;
            return client;
          }),
        );
        const stopping = proxy.shutdown(deadline);
        // With the long deadline the clients end their connections; with the short one they are cut.
        if (deadline > 1_000) for (const client of clients) client.end();
        const cut = await stopping;
        assert.deepEqual([cut, logs.length], [deadline > 1_000 ? 0 : 3, 3], JSON.stringify(logs));
        const errors = logs.map((entry) => entry.error);
        assert.deepEqual(errors, Array(3).fill(deadline > 1_000 ? undefined : 'ERR_PROXY_SHUTDOWN'), JSON.stringify(logs));
        for (const client of clients) client.destroy();
      }
    });
  }

  it('shutdown() before listen() has listened: listen() rejects with ERR_SERVER_NOT_RUNNING, it does not hang', async function () {
    for (const host of [HOST, 'localhost']) {
      const proxy = new TransparentProxy({ listen: { host, port: 0 }, destination: { kind: 'upstream', upstream: { host: HOST, port: serverPort } }, relay: 'native' });
      const listening = proxy.listen();
      await proxy.shutdown(0);
      await assert.rejects(listening, { code: 'ERR_SERVER_NOT_RUNNING' });
    }
  });

  it('listen() while a shutdown runs waits for it; a second shutdown() joins the first and resolves to 0', async function () {
    const { proxy, port, logs } = await proxyWith({ maxConnections: 4 });
    const client = net.connect({ port, host: HOST, allowHalfOpen: true }).on('error', () => {});
    const echo = once(client, 'data');
    client.write('a');
    await echo;
    const first = proxy.shutdown(300);
    const second = proxy.shutdown(10_000);
    const again = proxy.listen();
    assert.deepEqual(await Promise.all([first, second]), [1, 0]);
    assert.equal(logs.length, 1);
    const { port: newPort } = await again;
    try {
      assert.equal(proxy.connections, 0);
      assert.equal((await exchange(newPort, 10)).answer.length, 10);
    } finally {
      client.destroy();
      await proxy.shutdown(0);
    }
  });

  it('the same port again right after shutdown() (the listening socket closed at once, as Node closes its own), and listen() twice refused with ERR_SERVER_ALREADY_LISTEN', async function () {
    const port = await freePort();
    const { proxy } = await proxyWith({ listen: { host: HOST, port } });
    try {
      assert.equal(proxy.server.listening, false, 'the addon accepts');
      await assert.rejects(proxy.listen(), { code: 'ERR_SERVER_ALREADY_LISTEN' });
      await proxy.shutdown(0);
      // In the same tick as the shutdown's end: the addon's duplicate must be closed by now.
      assert.equal((await proxy.listen()).port, port);
      assert.equal((await exchange(port, 10)).answer.length, 10);
    } finally {
      await proxy.shutdown(0);
    }
  });

  it('the addon refuses what is not a group, a descriptor or an id, and a group it closed', function () {
    const done = () => {};
    const group = binding.relayGroup!(HOST, 1, HOST, 2, -1, 0, 0, 0, done);
    for (const args of [[-1, group, 1], [0, group + 1000, 1], [0, group, -1], [0, 'x', 1], [1.5, group, 1]] as const) {
      assert.equal(thrown(() => binding.relayConnect!(...(args as unknown as [number, number, number]))).code, 'ERR_INVALID_ARG_TYPE', JSON.stringify(args));
    }
    for (const args of [['localhost', 1, HOST, 2], [HOST, 70000, HOST, 2], [HOST, 1, 'x', 2], [HOST, 1, HOST, -2]] as const) {
      assert.equal(thrown(() => binding.relayGroup!(args[0], args[1], args[2], args[3], -1, 0, 0, 0, done)).code, 'ERR_INVALID_ARG_TYPE', JSON.stringify(args));
    }
    assert.equal(binding.relayGroupClose!(group), true);
    assert.equal(binding.relayGroupClose!(group), false);
    assert.equal(thrown(() => binding.relayConnect!(0, group, 1)).code, 'ERR_INVALID_ARG_TYPE');
  });
});
