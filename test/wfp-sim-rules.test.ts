// --config in Windows node.exe: the proxy CLI with its addon over the
// simulated WFP redirect service (test/wfp-sim.ts), each client's original
// destination a context the test registers. Rules by address and port and by
// the sniffed domain decide each connection (direct: its records carried;
// block: a reset), and a change of the file (Windows has no SIGHUP) reads the
// rules again, a bad new file leaving the old in force. Pending off Windows.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSockaddr, type ConnectionLog } from '..';
import { isWindows, OWN_IMAGE } from './helpers';
import { clientHelloMessage, cryptoFrame, protectedInitial, serverNameExtension } from './sniff-helpers';
import { askProxy, CLI, echoServer, start, stop, type Running } from './proxy-process';

const PRELOAD = join(__dirname, 'fixtures', 'wfp-sim-preload.js');
/** Clients connect from here: an address the proxy's own outbound connections never have. */
const CLIENT_ADDRESS = '127.0.0.2';

/** A local port free now on CLIENT_ADDRESS, for a client whose redirect is registered before it connects. */
async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, CLIENT_ADDRESS);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A redirected client to `origin` that sends `payload`: what came back and how it ended (ECONNRESET for a block). */
async function redirectedClient(proxy: Running, origin: number, payload: string, records: Buffer): Promise<{ echoed: string; ended: string }> {
  const localPort = await freePort();
  await askProxy(proxy, {
    redirect: { peerAddress: CLIENT_ADDRESS, peerPort: localPort, records: records.toString('base64'), context: encodeSockaddr({ address: '127.0.0.1', port: origin }).toString('base64') },
  });
  const socket = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: CLIENT_ADDRESS, localPort, allowHalfOpen: true });
  let echoed = '';
  let ended = 'close';
  socket.on('data', (data) => {
    echoed += data;
    if (echoed.length >= payload.length) socket.end();
  });
  socket.on('error', (error: NodeJS.ErrnoException) => (ended = error.code ?? error.message));
  socket.write(payload);
  // Not events.once: it rejects on the 'error' a reset emits, which is an outcome here.
  await new Promise((resolve) => socket.once('close', resolve));
  return { echoed, ended };
}

const logsOf = (proxy: Running): ConnectionLog[] => proxy.stdout.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));

async function waitFor(what: () => boolean, proxy: Running, label: string): Promise<void> {
  for (let waited = 0; !what(); waited += 50) {
    if (waited > 15_000) assert.fail(`${label}: not within 15 s\n${proxy.stderr.join('\n')}\n${proxy.stdout.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('--config in Windows node.exe, against a simulated WFP redirect service', function () {
  this.timeout(120_000);
  let dir: string;

  before(function () {
    if (!isWindows) {
      console.warn('    !!! not Windows: the --config tests against the simulated WFP service are NOT run here; `npm run test:win32` runs them in Windows node.exe under Wine');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'wfp-rules-win-'));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('rules by port and by domain: direct relayed with its records, blocked reset; then a change of the file reads the rules again, and a bad one leaves them', async function () {
    const [open, closed] = await Promise.all([echoServer(), echoServer()]);
    const portOf = (server: net.Server) => (server.address() as net.AddressInfo).port;
    const file = join(dir, 'rules.json');
    writeFileSync(file, JSON.stringify({ rules: [{ cidr: '127.0.0.1/32', port: portOf(closed), action: 'block', name: 'closed-port' }, { domain: '*.blocked.test', action: 'block' }] }));
    const proxy = await start(['--require', PRELOAD, CLI, '--listen', '127.0.0.1:0', '--transparent', '--config', file, '--log', 'json'], /listening on .*:(\d+)$/, { ipc: true });
    try {
      const direct = await redirectedClient(proxy, portOf(open), 'GET / HTTP/1.1\r\nHost: fine.test\r\n\r\n', Buffer.from('records-1'));
      assert.deepEqual(direct, { echoed: 'GET / HTTP/1.1\r\nHost: fine.test\r\n\r\n', ended: 'close' });
      assert.deepEqual(await redirectedClient(proxy, portOf(closed), 'hello', Buffer.from('records-2')), { echoed: '', ended: 'ECONNRESET' });
      assert.deepEqual(await redirectedClient(proxy, portOf(open), 'GET / HTTP/1.1\r\nHost: www.blocked.test\r\n\r\n', Buffer.from('records-3')), { echoed: '', ended: 'ECONNRESET' });
      await waitFor(() => logsOf(proxy).length >= 3, proxy, 'three log lines');
      const logs = logsOf(proxy);
      const line = (domain: string | undefined, port: number) => logs.find((entry) => entry.domain === domain && entry.destination === `127.0.0.1:${port}`);
      assert.deepEqual([line('fine.test', portOf(open))?.rule, line('fine.test', portOf(open))?.records, line('fine.test', portOf(open))?.error], ['default', 9, undefined]);
      assert.deepEqual([line(undefined, portOf(closed))?.rule, line(undefined, portOf(closed))?.error], ['closed-port', 'ERR_PROXY_BLOCKED'], JSON.stringify(logs));
      assert.deepEqual([line('www.blocked.test', portOf(open))?.rule, line('www.blocked.test', portOf(open))?.error], ['rules[1]', 'ERR_PROXY_BLOCKED']);

      // No SIGHUP on Windows: the file's change is the signal.
      writeFileSync(file, JSON.stringify({ rules: [{ domain: 'fine.test', action: 'block', name: 'now-fine-is-blocked' }] }));
      await waitFor(() => proxy.stderr.some((text) => text.includes('reloaded')), proxy, 'the reload');
      assert.deepEqual(await redirectedClient(proxy, portOf(closed), 'hello', Buffer.from('records-4')), { echoed: 'hello', ended: 'close' });
      writeFileSync(file, '{ "rules": [ { "port": "http", "action": "block" } ] }');
      await waitFor(() => proxy.stderr.some((text) => text.includes('not reloaded')), proxy, 'the refusal');
      assert.ok(proxy.stderr.some((text) => text.includes('rules[0].port: wants a port number')), proxy.stderr.join('\n'));
      assert.deepEqual(await redirectedClient(proxy, portOf(open), 'GET / HTTP/1.1\r\nHost: fine.test\r\n\r\n', Buffer.from('records-5')), { echoed: '', ended: 'ECONNRESET' }, 'the good rules stay in force');
    } finally {
      await stop(proxy);
      open.close();
      closed.close();
    }
  });

  it('UDP: each flow decided at its first datagram (the one with the context): direct relayed, blocked by port or by a QUIC Initial\'s name dropped, its later datagrams (no context) dropped with it, one line per blocked flow', async function () {
    const reflector = async () => {
      const server = dgram.createSocket('udp4');
      server.on('message', (data, rinfo) => server.send(Buffer.from(data).reverse(), rinfo.port, rinfo.address));
      await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
      return server;
    };
    const [open, closed] = await Promise.all([reflector(), reflector()]);
    const file = join(dir, 'udp-rules.json');
    writeFileSync(file, JSON.stringify({ rules: [{ protocol: 'udp', port: closed.address().port, action: 'block', name: 'udp-closed' }, { domain: 'quic.blocked.test', action: 'block', name: 'no-quic' }] }));
    const proxy = await start(['--require', PRELOAD, CLI, '--listen', '127.0.0.1:0', '--transparent', '--udp', '--config', file, '--log', 'json'], /relaying UDP on .*:(\d+)$/, { ipc: true });
    const sockets: dgram.Socket[] = [];
    try {
      /** A redirected flow to `server`: sends each payload, and says for each whether the reversed bytes came back. */
      const flow = async (server: dgram.Socket, payloads: Buffer[]) => {
        const socket = dgram.createSocket('udp4');
        sockets.push(socket);
        await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
        const context = encodeSockaddr({ address: '127.0.0.1', port: server.address().port });
        await askProxy(proxy, { udpRedirect: { peerAddress: '127.0.0.1', peerPort: socket.address().port, records: Buffer.from('udp-records').toString('base64'), context: context.toString('base64') } });
        const answered: boolean[] = [];
        for (const payload of payloads) {
          const reply = new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), 700);
            socket.once('message', (data) => {
              clearTimeout(timer);
              resolve(data.equals(Buffer.from(payload).reverse()));
            });
          });
          socket.send(payload, proxy.port, '127.0.0.1');
          answered.push(await reply);
        }
        return { port: socket.address().port, answered };
      };
      const three = [Buffer.from('one'), Buffer.from('two'), Buffer.from('three')];
      const direct = await flow(open, three);
      const byPort = await flow(closed, three);
      const initial = protectedInitial(cryptoFrame(0, clientHelloMessage([serverNameExtension('quic.blocked.test')])));
      const byName = await flow(open, [initial, Buffer.from('after')]);
      assert.deepEqual([direct.answered, byPort.answered, byName.answered], [[true, true, true], [false, false, false], [false, false]]);
      await waitFor(() => logsOf(proxy).filter((entry) => (entry as { end?: string }).end === 'blocked').length >= 2, proxy, 'two blocked lines');
      const logs = logsOf(proxy) as Array<ConnectionLog & { end?: string }>;
      const of = (port: number) => logs.filter((entry) => entry.client === `127.0.0.1:${port}`);
      assert.deepEqual(of(byPort.port).map((entry) => [entry.end, entry.rule, entry.error]), [['blocked', 'udp-closed', 'ERR_PROXY_BLOCKED']], JSON.stringify(logs));
      assert.deepEqual(of(byName.port).map((entry) => [entry.end, entry.rule, entry.domain, entry.learned]), [['blocked', 'no-quic', 'quic.blocked.test', 'quic']]);
      assert.ok(!logs.some((entry) => entry.error === 'ERR_NOT_REDIRECTED'), 'a blocked flow\'s later datagrams are not "nobody redirected"');
      const { sends } = await askProxy<{ sends: Array<{ port: number }> }>(proxy, { udpSends: true });
      assert.ok(!sends.some((call) => call.port === closed.address().port), 'nothing was sent to the blocked destination');
    } finally {
      for (const socket of sockets) socket.close();
      await stop(proxy);
      open.close();
      closed.close();
    }
  });
  it('process rules (no --process): a rule naming node.exe decides the test\'s own clients, TCP and UDP; a UDP flow\'s datagrams sent at once (only the first with a context) all relayed, in order', async function () {
    const [open, closed] = await Promise.all([echoServer(), echoServer()]);
    const portOf = (server: net.Server) => (server.address() as net.AddressInfo).port;
    const reflector = dgram.createSocket('udp4');
    reflector.on('message', (data, rinfo) => reflector.send(Buffer.from(data).reverse(), rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => reflector.bind(0, '127.0.0.1', resolve));
    const file = join(dir, 'process-rules.json');
    writeFileSync(file, JSON.stringify({
      rules: [
        { name: 'not-node', process: 'curl.exe', action: 'direct' },
        { name: 'node-tcp', process: OWN_IMAGE, protocol: 'tcp', port: portOf(open), action: 'direct' },
        { name: 'node-udp', process: OWN_IMAGE, protocol: 'udp', action: 'direct' },
      ],
      default: 'block',
    }));
    const proxy = await start(['--require', PRELOAD, CLI, '--listen', '127.0.0.1:0', '--transparent', '--udp', '--config', file, '--log', 'json', '--log-start'], /relaying UDP on .*:(\d+)$/, { ipc: true });
    const socket = dgram.createSocket('udp4');
    try {
      assert.deepEqual(await redirectedClient(proxy, portOf(open), 'hello', Buffer.from('records-1')), { echoed: 'hello', ended: 'close' });
      assert.deepEqual(await redirectedClient(proxy, portOf(closed), 'hello', Buffer.from('records-2')), { echoed: '', ended: 'ECONNRESET' }, 'node.exe to another port: the default blocks');
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const context = encodeSockaddr({ address: '127.0.0.1', port: reflector.address().port });
      await askProxy(proxy, { udpRedirect: { peerAddress: '127.0.0.1', peerPort: socket.address().port, records: Buffer.from('udp-records').toString('base64'), context: context.toString('base64') } });
      const replies: string[] = [];
      socket.on('message', (data) => replies.push(Buffer.from(data).reverse().toString()));
      for (const word of ['one', 'two', 'three', 'four']) socket.send(Buffer.from(word), proxy.port, '127.0.0.1');
      for (let waited = 0; replies.length < 4 && waited < 3000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(replies, ['one', 'two', 'three', 'four'], `every datagram relayed, in order\n${proxy.stderr.join('\n')}\n${proxy.stdout.join('\n')}`);
      // A flow's end line comes at its end (node.exe is not stopped gently under Wine): its start line (--log-start) says how it was decided.
      await waitFor(() => logsOf(proxy).some((entry) => (entry as { protocol?: string }).protocol === 'udp'), proxy, 'the UDP flow\'s start line');
      const logs = logsOf(proxy) as Array<ConnectionLog & { end?: string; protocol?: string }>;
      const tcp = (port: number) => logs.find((entry) => entry.protocol !== 'udp' && entry.destination === `127.0.0.1:${port}` && entry.rule !== undefined);
      assert.deepEqual([tcp(portOf(open))?.rule, tcp(portOf(open))?.process?.name?.toLowerCase(), tcp(portOf(open))?.process?.pid], ['node-tcp', OWN_IMAGE, process.pid], JSON.stringify(logs));
      const blocked = logs.find((entry) => entry.destination === `127.0.0.1:${portOf(closed)}` && entry.error !== undefined);
      assert.deepEqual([blocked?.rule, blocked?.error, blocked?.process?.pid], ['default', 'ERR_PROXY_BLOCKED', process.pid]);
      const udp = logs.filter((entry) => entry.protocol === 'udp');
      assert.equal(udp.length, 1, JSON.stringify(udp));
      assert.deepEqual([udp[0].rule, udp[0].process?.pid, udp[0].records], ['node-udp', process.pid, 11]);
      assert.ok(!logs.some((entry) => entry.error === 'ERR_NOT_REDIRECTED'), 'the datagrams without a context joined the waiting flow');
    } finally {
      socket.close();
      reflector.close();
      await stop(proxy);
      open.close();
      closed.close();
    }
  });
});
