// The relay of lib/proxy/tcp-proxy.ts in this process, with the addon's two redirect
// calls replaced at the binding: the query answers records unique to each
// client, and the set call notes what it was given, on which OS socket, and
// whether that socket was connected yet. So the test can see what no real
// redirect is needed for: which records reached which outbound socket.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { binding } from '../dist/native';
import { probe } from './conformance';
import { TransparentProxy, WfpRedirectError, type ConnectionLog, type DestinationSource, type RouteRequest } from '..';
import { spy, type Spied } from './helpers';

const CLIENTS = 20;

interface SetCall {
  osSocket: number;
  records: string;
  connectedAtSet: boolean;
}

/** Whether the OS reports a peer for the socket: a connected TCP socket. */
function connected(osSocket: number): boolean {
  try {
    return probe.describeSocket(osSocket).remotePort !== 0;
  } catch {
    return false;
  }
}

/** A `log` option that keeps the entries and says when `count` of them have arrived. */
function logCollector(): { logs: ConnectionLog[]; log: (entry: ConnectionLog) => void; logged: (count: number) => Promise<void> } {
  const logs: ConnectionLog[] = [];
  const waiting: Array<{ count: number; resolve: () => void }> = [];
  return {
    logs,
    log: (entry) => {
      logs.push(entry);
      for (const waiter of waiting.filter((w) => logs.length >= w.count)) waiter.resolve();
    },
    logged: (count) => (logs.length >= count ? Promise.resolve() : new Promise((resolve) => waiting.push({ count, resolve }))),
  };
}

describe('TransparentProxy gives each outbound connection the records of its own client', function () {
  this.timeout(60_000);
  const spies: Spied[] = [];
  const realHasIoctls = binding.hasRedirectIoctls;
  let upstream: net.Server;
  let proxy: TransparentProxy;

  afterEach(async () => {
    for (const spied of spies.splice(0)) spied.restore();
    (binding as { hasRedirectIoctls: boolean }).hasRedirectIoctls = realHasIoctls;
    await proxy?.shutdown(0);
    upstream?.close();
  });

  it(`relays ${CLIENTS} concurrent clients, each outbound socket set with its client's records before it connects`, async function () {
    // The query answers, for the accepted socket it is asked about, records naming that client's port.
    (binding as { hasRedirectIoctls: boolean }).hasRedirectIoctls = true;
    spies.push(spy('queryRedirectRecords', (_real, osSocket: number) => Buffer.from(`records of client ${probe.describeSocket(osSocket).remotePort}`)));
    const sets: SetCall[] = [];
    spies.push(
      spy('setRedirectRecords', (_real, osSocket: number, records: Uint8Array) => {
        sets.push({ osSocket, records: Buffer.from(records).toString(), connectedAtSet: connected(osSocket) });
      }),
    );

    // Upstream: each connection names its client in its first bytes; note
    // which outbound socket (by its local port, as upstream sees it) it came on.
    const arrivals: Array<{ client: string; outboundPort: number }> = [];
    upstream = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', (data) => {
        arrivals.push({ client: data.toString(), outboundPort: socket.remotePort! });
        socket.write('ok');
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');

    const { logs, log, logged } = logCollector();
    proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port: (upstream.address() as net.AddressInfo).port } },
      idleTimeout: 0,
      connectTimeout: 10_000,
      maxConnections: 1000,
      log,
    });
    const { port } = await proxy.listen();

    // All clients hold their connections open until every outbound socket is
    // known by its local port: no OS socket number is reused meanwhile.
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        const client = net.connect({ host: '127.0.0.1', port });
        client.on('error', () => {});
        await once(client, 'connect');
        client.write(String(client.localPort));
        const [reply] = await once(client, 'data');
        assert.equal(String(reply), 'ok');
        return client;
      }),
    );
    const outboundPorts = new Map(sets.map((call) => [call.osSocket, probe.describeSocket(call.osSocket).localPort]));
    for (const client of clients) client.end();
    await logged(CLIENTS);
    assert.equal(logs.length, CLIENTS);

    assert.equal(arrivals.length, CLIENTS);
    assert.equal(sets.length, CLIENTS, 'one set call per outbound connection');
    assert.equal(outboundPorts.size, CLIENTS, 'each set call on an OS socket of its own');
    for (const { client, outboundPort } of arrivals) {
      const set = sets.find((call) => outboundPorts.get(call.osSocket) === outboundPort);
      assert.ok(set, `no set call on the outbound socket of client ${client}`);
      assert.equal(set.records, `records of client ${client}`, "an outbound socket carried another client's records");
      assert.equal(set.connectedAtSet, false, 'the records were set after the outbound socket connected');
    }
    for (const entry of logs) {
      assert.equal(entry.error, undefined, JSON.stringify(entry));
      assert.equal(entry.records, `records of client ${entry.client.split(':')[1]}`.length);
    }
  });

  // A connection straight to the proxy: the query answers WSAEINVAL, as Windows does for a socket no callout redirected.
  for (const kind of ['upstream', 'resolver'] as const) {
    it(`${kind === 'upstream' ? 'with --upstream, relays a connection nobody redirected without records' : 'with the destination from the redirect, logs a connection nobody redirected as ERR_NOT_REDIRECTED, as on Linux'}`, async function () {
      (binding as { hasRedirectIoctls: boolean }).hasRedirectIoctls = true;
      spies.push(
        spy('queryRedirectRecords', () => {
          throw new WfpRedirectError('SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS failed with WSAEINVAL', { code: 'WSAEINVAL', errno: 10022, syscall: 'WSAIoctl' });
        }),
      );
      upstream = net.createServer((socket) => socket.end('ok'));
      upstream.listen(0, '127.0.0.1');
      await once(upstream, 'listening');
      const target = { host: '127.0.0.1', port: (upstream.address() as net.AddressInfo).port };
      const destination: DestinationSource = kind === 'upstream' ? { kind, upstream: target } : { kind, resolve: async () => target };
      const { logs, log, logged } = logCollector();
      proxy = new TransparentProxy({ listen: { host: '127.0.0.1', port: 0 }, destination, idleTimeout: 0, connectTimeout: 10_000, maxConnections: 10, log });
      const { port } = await proxy.listen();
      const client = net.connect({ host: '127.0.0.1', port });
      client.on('error', () => {});
      const received: Buffer[] = [];
      client.on('data', (data) => received.push(data));
      await once(client, 'close');
      await logged(1);
      if (kind === 'upstream') {
        assert.equal(Buffer.concat(received).toString(), 'ok');
        assert.equal(logs[0].error, undefined);
        assert.equal(logs[0].records, 0);
      } else {
        assert.equal(received.length, 0);
        assert.equal(logs[0].error, 'ERR_NOT_REDIRECTED');
      }
    });
  }
});

describe('TransparentProxy, as the package exports it', function () {
  this.timeout(30_000);
  const servers: net.Server[] = [];
  let proxy: TransparentProxy | undefined;
  afterEach(async () => {
    await proxy?.shutdown(0);
    proxy = undefined;
    for (const server of servers.splice(0)) server.close();
  });

  /** A server that answers every connection with its name and closes. */
  async function named(name: string): Promise<{ host: string; port: number }> {
    const server = net.createServer((socket) => socket.end(name));
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
  }

  async function fetch(port: number): Promise<string> {
    const client = net.connect({ host: '127.0.0.1', port });
    client.on('error', () => {});
    const chunks: Buffer[] = [];
    client.on('data', (data) => chunks.push(data));
    await once(client, 'close');
    return Buffer.concat(chunks).toString();
  }

  it('needs only listen and destination; the route hook sends a connection elsewhere, or refuses it', async function () {
    const [a, b] = await Promise.all([named('a'), named('b')]);
    const asked: RouteRequest[] = [];
    const answers: Array<{ host: string; port: number } | null | undefined> = [b, null, undefined];
    const { logs, log, logged } = logCollector();
    proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: a },
      log,
      route: (request) => {
        asked.push(request);
        return answers[asked.length - 1];
      },
    });
    const { port } = await proxy.listen();
    assert.equal(await fetch(port), 'b', 'the hook chose b');
    assert.equal(await fetch(port), '', 'the hook refused');
    assert.equal(await fetch(port), 'a', 'the hook said nothing');
    await logged(3);
    assert.deepEqual(asked.map((request) => request.destination), [a, a, a]);
    assert.ok(asked.every((request) => request.socket instanceof net.Socket && request.records === undefined));
    const byId = [...logs].sort((x, y) => x.id - y.id);
    assert.deepEqual(byId.map((entry) => entry.error), [undefined, 'ERR_PROXY_REFUSED', undefined]);
    assert.equal(byId[0].destination, `127.0.0.1:${b.port}`);
  });

  it('a route hook that returns something else, or throws, fails that connection only', async function () {
    const a = await named('a');
    const { logs, log, logged } = logCollector();
    let call = 0;
    proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: a },
      log,
      route: () => {
        call++;
        if (call === 1) return { host: 'x' } as never;
        if (call === 2) throw Object.assign(new Error('no'), { code: 'E_HOOK' });
        return undefined;
      },
    });
    const { port } = await proxy.listen();
    assert.equal(await fetch(port), '');
    assert.equal(await fetch(port), '');
    assert.equal(await fetch(port), 'a');
    await logged(3);
    assert.deepEqual([...logs].sort((x, y) => x.id - y.id).map((entry) => entry.error), ['ERR_INVALID_RETURN_VALUE', 'E_HOOK', undefined]);
  });

  it('refuses bad options synchronously', function () {
    const base = { listen: { host: '127.0.0.1', port: 0 }, destination: { kind: 'upstream' as const, upstream: { host: '127.0.0.1', port: 1 } } };
    assert.throws(() => new TransparentProxy(null as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new TransparentProxy({ ...base, maxConnections: 0 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new TransparentProxy({ ...base, idleTimeout: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new TransparentProxy({ ...base, route: 'x' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    // Options given as undefined take their defaults.
    assert.doesNotThrow(() => new TransparentProxy({ ...base, idleTimeout: undefined, log: undefined, route: undefined }));
  });
});
