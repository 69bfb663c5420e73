// The UDP relay's rules and QUIC sniffing, in one process on loopback (the
// relay's fixed-upstream mode; the TPROXY path is in proxy-rules.test.ts):
// rules asked once per flow, a blocked flow's later datagrams dropped without
// asking again, blocked flows logged at most once per interval, and a QUIC
// Initial's server name on the flow's log line.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { UdpRelay, type FlowLog } from '..';
import { checkConfig, RuleMatcher, type MatchFacts } from '../dist/proxy/rules';
import { clientHelloMessage, cryptoFrame, protectedInitial, serverNameExtension } from './sniff-helpers';

async function socket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  return s;
}

/** Sends `payload` and resolves to the reply, or undefined after `ms`. */
function exchange(client: dgram.Socket, port: number, payload: Buffer, ms = 1000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      resolve(undefined);
    }, ms);
    const onMessage = (message: Buffer) => {
      clearTimeout(timer);
      resolve(message);
    };
    client.once('message', onMessage);
    client.send(payload, port, '127.0.0.1');
  });
}

describe('UdpRelay with rules and QUIC sniffing', function () {
  this.timeout(20_000);
  let reflector: dgram.Socket;
  before(async () => {
    reflector = await socket();
    reflector.on('message', (message, rinfo) => reflector.send(Buffer.from(message).reverse(), rinfo.port, rinfo.address));
  });
  after(() => reflector.close());

  const relayWith = async (rules: ConstructorParameters<typeof UdpRelay>[0]['rules'], logs: FlowLog[], sniff = false) => {
    const relay = new UdpRelay({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port: reflector.address().port } },
      rules,
      sniff,
      log: (entry) => logs.push({ ...entry }),
    });
    const { port } = await relay.listen();
    return { relay, port };
  };

  it('a blocked flow: its datagrams dropped, the rules asked once for it, one log line naming the rule; blocked flows beyond the first in an interval are counted, not logged', async function () {
    const matcher = new RuleMatcher(checkConfig({ rules: [{ protocol: 'udp', port: reflector.address().port, action: 'block', name: 'no-udp' }] }, 'rules.json'));
    const asked: MatchFacts[] = [];
    const logs: FlowLog[] = [];
    const { relay, port } = await relayWith({ wantsDomain: false, wantsProcess: false, match: (facts) => (asked.push(facts), matcher.match(facts)) }, logs);
    const clients = await Promise.all([socket(), socket(), socket()]);
    try {
      for (let i = 0; i < 3; i++) assert.equal(await exchange(clients[0], port, Buffer.from(`datagram ${i}`), 200), undefined);
      assert.equal(asked.length, 1, 'one flow, asked once');
      assert.deepEqual([asked[0].protocol, asked[0].address, asked[0].port], ['udp', '127.0.0.1', reflector.address().port]);
      for (const other of clients.slice(1)) assert.equal(await exchange(other, port, Buffer.from('x'), 200), undefined);
      assert.equal(asked.length, 3);
      assert.equal(relay.stats.dropped, 5);
      assert.equal(relay.stats.flows, 0);
      assert.equal(logs.length, 1, JSON.stringify(logs));
      assert.deepEqual([logs[0].end, logs[0].error, logs[0].rule], ['blocked', 'ERR_PROXY_BLOCKED', 'no-udp']);
    } finally {
      for (const client of clients) client.close();
      await relay.shutdown();
    }
  });

  it('direct: relayed, the rule on the flow\'s line; with sniff, a QUIC Initial\'s server name and "quic", other datagrams "none"', async function () {
    const logs: FlowLog[] = [];
    const { relay, port } = await relayWith(new RuleMatcher(checkConfig({ rules: [{ domain: 'other.test', action: 'block' }] }, 'rules.json')), logs, true);
    const [quic, plain] = await Promise.all([socket(), socket()]);
    try {
      const initial = protectedInitial(cryptoFrame(0, clientHelloMessage([serverNameExtension('h3.example.test')])));
      assert.ok((await exchange(quic, port, initial))?.equals(Buffer.from(initial).reverse()));
      assert.ok((await exchange(plain, port, Buffer.from('plain')))?.equals(Buffer.from('nialp')));
      await relay.shutdown();
      const of = (client: dgram.Socket) => logs.find((entry) => entry.client === `127.0.0.1:${client.address().port}`);
      assert.deepEqual([of(quic)?.domain, of(quic)?.learned, of(quic)?.rule], ['h3.example.test', 'quic', 'default']);
      assert.deepEqual([of(plain)?.domain, of(plain)?.learned, of(plain)?.rule], [undefined, 'none', 'default']);
    } finally {
      quic.close();
      plain.close();
    }
  });

  // The client sockets are this process's own: a rule naming "node" (this process's name) matches them, one naming
  // another does not. Linux only: on Windows the lookup leaves out the relay's own process's rows (wfp-sim-rules.test.ts
  // decides a node.exe client of another process there).
  const NODE = 'node';
  const notLinux = () => {
    if (process.platform === 'linux') return false;
    console.warn('    !!! not Linux: the in-process UDP process-rule tests are NOT run here (wfp-sim-rules.test.ts covers node.exe)');
    return true;
  };
  const processRelay = async (action: 'block' | 'direct', name: string, logs: FlowLog[]) =>
    relayWith(new RuleMatcher(checkConfig({ rules: [{ name: 'by-process', process: name, protocol: 'udp', action }], default: action === 'block' ? 'direct' : 'block' }, 'rules.json')), logs);
  /** Sends `count` numbered datagrams at once (before the relay can decide the flow); resolves to the replies that came in `ms`. */
  const burst = async (client: dgram.Socket, port: number, count: number, ms = 1500): Promise<string[]> => {
    const replies: string[] = [];
    client.on('message', (message) => replies.push(Buffer.from(message).reverse().toString()));
    for (let i = 0; i < count; i++) client.send(Buffer.from(`datagram ${i}`), port, '127.0.0.1');
    await new Promise((resolve) => setTimeout(resolve, ms));
    return replies;
  };

  it('a rule naming the client\'s process: the new flow waits for its lookup, then its queued datagrams go out in order, the process and rule on its line', async function () {
    if (notLinux()) this.skip();
    const logs: FlowLog[] = [];
    const { relay, port } = await processRelay('direct', NODE, logs);
    const client = await socket();
    let open = true;
    try {
      const replies = await burst(client, port, 5);
      assert.deepEqual(replies, [0, 1, 2, 3, 4].map((i) => `datagram ${i}`), 'every queued datagram relayed, in order');
      await relay.shutdown();
      open = false;
      assert.equal(logs.length, 1, JSON.stringify(logs));
      assert.equal(logs[0].rule, 'by-process');
      assert.equal(logs[0].process?.name, NODE);
      assert.equal(logs[0].process?.pid, process.pid);
      assert.equal(logs[0].datagramsUp, 5);
    } finally {
      client.close();
      if (open) await relay.shutdown();
    }
  });

  it('a rule naming another process: this one goes by the default (block): its whole queue dropped, the flow remembered as blocked', async function () {
    if (notLinux()) this.skip();
    const logs: FlowLog[] = [];
    const { relay, port } = await processRelay('direct', 'not-this-process', logs);
    const client = await socket();
    try {
      assert.deepEqual(await burst(client, port, 3, 800), []);
      assert.equal(relay.stats.dropped, 3);
      assert.equal(await exchange(client, port, Buffer.from('later'), 300), undefined);
      assert.equal(relay.stats.dropped, 4, 'a later datagram of the blocked flow dropped too');
      assert.equal(relay.stats.flows, 0);
      assert.equal(logs.length, 1, JSON.stringify(logs));
      assert.deepEqual([logs[0].end, logs[0].rule, logs[0].process?.pid], ['blocked', 'default', process.pid]);
    } finally {
      client.close();
      await relay.shutdown();
    }
  });

  it('a flow waiting for its process queues at most 16 datagrams and 64 KiB: the rest are dropped, counted and reported once', async function () {
    if (notLinux()) this.skip();
    const logs: FlowLog[] = [];
    const warnings: string[] = [];
    const matcher = new RuleMatcher(checkConfig({ rules: [{ process: NODE, protocol: 'udp', action: 'direct' }] }, 'rules.json'));
    const relay = new UdpRelay({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port: reflector.address().port } },
      rules: matcher,
      log: (entry) => logs.push({ ...entry }),
      warn: (line) => warnings.push(line),
    });
    const { port } = await relay.listen();
    const client = await socket();
    try {
      const replies = await burst(client, port, 24);
      assert.deepEqual(replies, Array.from({ length: 16 }, (_, i) => `datagram ${i}`), 'the first 16, in order');
      assert.equal(relay.stats.dropped, 8);
      const dropped = logs.filter((entry) => entry.end === 'dropped');
      assert.deepEqual(dropped.map((entry) => entry.error), ['ERR_PROXY_QUEUE_FULL'], 'the first drop logged, the rest counted');
      assert.ok(warnings.some((line) => line.includes('ERR_PROXY_QUEUE_FULL')), warnings.join('\n'));
      // Bytes: two of 30000 fit in 64 KiB, the third does not.
      const big = await socket();
      const got: number[] = [];
      big.on('message', (message) => got.push(message.length));
      for (let i = 0; i < 4; i++) big.send(Buffer.alloc(30_000, i), port, '127.0.0.1');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      big.close();
      assert.deepEqual(got, [30_000, 30_000]);
      assert.equal(relay.stats.dropped, 10);
    } finally {
      client.close();
      await relay.shutdown();
    }
  });

  it('shutdown while a flow waits for its process: nothing is relayed or opened after it', async function () {
    if (notLinux()) this.skip();
    const logs: FlowLog[] = [];
    const { relay, port } = await processRelay('direct', NODE, logs);
    const client = await socket();
    const relayed: Buffer[] = [];
    const count = (message: Buffer) => relayed.push(message);
    reflector.on('message', count);
    try {
      client.send(Buffer.from('before shutdown'), port, '127.0.0.1');
      // The datagram is read, then the relay shuts down before the lookup answers.
      await new Promise((resolve) => setImmediate(resolve));
      for (let i = 0; i < 20 && relay.stats.dropped === 0 && (relay as unknown as { pending: Map<string, unknown> }).pending.size === 0; i++) await new Promise((resolve) => setTimeout(resolve, 1));
      assert.equal((relay as unknown as { pending: Map<string, unknown> }).pending.size, 1, 'the flow is waiting');
      await relay.shutdown();
      await new Promise((resolve) => setTimeout(resolve, 700));
      assert.deepEqual(relayed, []);
      assert.equal(relay.stats.flows, 0);
      assert.deepEqual(logs, []);
    } finally {
      reflector.off('message', count);
      client.close();
    }
  });

  it('without rules or sniff, the first datagram is not looked at', async function () {
    const logs: FlowLog[] = [];
    const { relay, port } = await relayWith(undefined, logs);
    const client = await socket();
    try {
      const initial = protectedInitial(cryptoFrame(0, clientHelloMessage([serverNameExtension('h3.example.test')])));
      assert.ok(await exchange(client, port, initial));
      await relay.shutdown();
      assert.deepEqual([logs[0].domain, logs[0].learned, logs[0].rule], [undefined, undefined, undefined]);
    } finally {
      client.close();
    }
  });
});
