// Redirected UDP flows in Windows node.exe: the unmodified production
// wfp_redirect.node over the simulated WFP service (test/wfp-sim.ts), which
// hands the addon a WSARecvMsg that adds a flow's records and context to its
// first datagram as control messages, and notes the records each WSASendMsg
// carries. Wine's own WSARecvMsg and WSASendMsg run underneath, so the
// datagrams are real. Pending, with a notice, off Windows.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { encodeSockaddr, encodeWfprContext, encodeWfpSamplerContext, originalDestinationFromContext, RedirectUdpSocket, type FlowLog, type RedirectedRemoteInfo } from '..';
import { isWindows, LOOPBACK, type Family, OWN_IMAGE } from './helpers';
import { askProxy, CLI, start, stop, type Running } from './proxy-process';
import { join } from 'node:path';
import {
  IPPROTO_IP,
  IPPROTO_IPV6,
  REDIRECT_CONTEXT_OPTION,
  REDIRECT_RECORDS_OPTION,
  removeWfpSim,
  wfpSim,
  type ControlForm,
  type SocketOption,
  type UdpSendCall,
  type WfpSim,
} from './wfp-sim';

const FLOWS = 10;
const SIZES = [1, 1024 + 1, 64 * 1024];

/** `size` bytes naming flow `index`: no two flows' blobs are equal. */
function blobFor(index: number, size: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 29 + index * 11 + 3) & 0xff;
  bytes[0] = index;
  return bytes;
}

interface Received {
  data: Buffer;
  rinfo: RedirectedRemoteInfo;
}

/** A RedirectUdpSocket bound on loopback that collects what arrives. */
async function receiver(family: Family): Promise<{ socket: RedirectUdpSocket; port: number; received: Received[]; arrived(count: number): Promise<void> }> {
  const socket = new RedirectUdpSocket(family === 'IPv6' ? 'udp6' : 'udp4');
  const received: Received[] = [];
  socket.on('message', (data, rinfo) => received.push({ data, rinfo }));
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK[family], resolve));
  const arrived = async (count: number) => {
    const deadline = Date.now() + 10_000;
    while (received.length < count) {
      if (Date.now() > deadline) throw new Error(`${received.length} of ${count} datagrams arrived`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  return { socket, port: socket.address().port, received, arrived };
}

async function client(family: Family): Promise<dgram.Socket> {
  const socket = dgram.createSocket(family === 'IPv6' ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK[family], resolve));
  return socket;
}

describe('redirected UDP flows in Windows node.exe, against a simulated WFP redirect service', function () {
  this.timeout(120_000);
  let sim: WfpSim;

  before(function () {
    if (!isWindows) {
      console.warn('    !!! not Windows: the simulated-WFP UDP tests are NOT run here; `npm run test:win32` runs them in Windows node.exe under Wine');
      this.skip();
    }
    sim = wfpSim();
  });
  after(() => removeWfpSim());
  beforeEach(() => sim?.reset());

  for (const family of ['IPv4', 'IPv6'] as Family[]) {
    it(`${family}: the first datagram of each of ${FLOWS} flows carries its records and context (${SIZES.join(', ')} bytes), later ones none`, async function () {
      const server = await receiver(family);
      const clients = await Promise.all(Array.from({ length: FLOWS }, () => client(family)));
      try {
        const expected = clients.map((socket, index) => {
          const records = blobFor(index, SIZES[index % SIZES.length]);
          const context = encodeSockaddr({ address: family === 'IPv6' ? `2001:db8::${index + 1}` : `192.0.2.${index + 1}`, port: 5000 + index });
          sim.udpRedirect(LOOPBACK[family], socket.address().port, records, context, 'well-formed');
          return { port: socket.address().port, records, context };
        });
        for (let round = 0; round < 3; round++) {
          for (const [index, socket] of clients.entries()) socket.send(Buffer.from(`flow ${index} datagram ${round}`), server.port, LOOPBACK[family]);
          await server.arrived(FLOWS * (round + 1));
        }
        for (const [index, flow] of expected.entries()) {
          const mine = server.received.filter(({ rinfo }) => rinfo.port === flow.port);
          assert.deepEqual(mine.map(({ data }) => data.toString()), [0, 1, 2].map((round) => `flow ${index} datagram ${round}`));
          assert.ok(mine[0].rinfo.redirectRecords?.equals(flow.records), `flow ${index}: its own records on its first datagram`);
          assert.ok(mine[0].rinfo.redirectContext?.equals(flow.context), `flow ${index}: its own context`);
          assert.equal(originalDestinationFromContext(mine[0].rinfo.redirectContext!).port, 5000 + index);
          for (const later of mine.slice(1)) {
            assert.equal(later.rinfo.redirectRecords, undefined);
            assert.equal(later.rinfo.redirectContext, undefined);
          }
        }
        assert.equal(sim.calls().udpDelivered, FLOWS);
        assert.equal(sim.calls().udpWithheld, 0, 'the socket did not ask for the control messages');
        assert.equal(server.socket.stats.malformedControl, 0);
      } finally {
        for (const socket of clients) socket.close();
        server.socket.close();
      }
    });

    it(`${family}: send() carries the records as a control message on exactly that datagram, and the network gets the bytes alone`, async function () {
      const target = await client(family);
      const arrived: Buffer[] = [];
      target.on('message', (data) => arrived.push(data));
      const sender = new RedirectUdpSocket(family === 'IPv6' ? 'udp6' : 'udp4');
      try {
        const records = blobFor(7, 300);
        const port = target.address().port;
        await new Promise<void>((resolve, reject) => sender.send(Buffer.from('first'), port, LOOPBACK[family], { redirectRecords: records }, (e) => (e ? reject(e) : resolve())));
        await new Promise<void>((resolve, reject) => sender.send(Buffer.from('second'), port, LOOPBACK[family], (e) => (e ? reject(e) : resolve())));
        while (arrived.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.deepEqual(arrived.map(String), ['first', 'second']);
        const sends = sim.udpSends();
        assert.equal(sends.length, 2);
        assert.equal(sends[0].localPort, sender.address().port);
        assert.equal(sends[0].port, port);
        assert.ok(sends[0].records?.equals(records), 'exactly the records');
        assert.equal(sends[1].records, null);
      } finally {
        sender.close();
        target.close();
      }
    });
  }

  // Microsoft's code (eBPF for Windows' UDP redirect tests) turns the messages
  // on first: IP_WFP_REDIRECT_* = 1 at IPPROTO_IP for IPv4, IPV6_WFP_REDIRECT_*
  // = 1 at IPPROTO_IPV6 for IPv6 (both for a dual-stack socket; this
  // package's IPv6 sockets are IPv6-only). The simulated stack delivers nothing
  // to a socket that did not ask.
  for (const [type, level] of [['udp4', IPPROTO_IP], ['udp6', IPPROTO_IPV6]] as const) {
    it(`${type}: the socket asks for the records and the context at ${level === IPPROTO_IP ? 'IPPROTO_IP' : 'IPPROTO_IPV6'} when it opens, and only there`, async function () {
      const key = (option: SocketOption) => `${option.socket}/${option.level}/${option.name}`;
      const before = new Set(sim.socketOptions().map(key));
      const socket = new RedirectUdpSocket(type);
      await new Promise<void>((resolve) => socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', resolve));
      const added = sim.socketOptions().filter((option) => !before.has(key(option)));
      socket.close();
      assert.deepEqual(
        added.map(({ level, name }) => ({ level, name })).sort((a, b) => a.name - b.name),
        [
          { level, name: REDIRECT_RECORDS_OPTION },
          { level, name: REDIRECT_CONTEXT_OPTION },
        ],
      );
      assert.equal(new Set(added.map((option) => option.socket)).size, 1, 'one socket');
    });
  }

  it("a flow's data reported at the other IP level is taken as well (eBPF for Windows' tests accept either level)", async function () {
    const server = await receiver('IPv4');
    const sender = await client('IPv4');
    try {
      const records = blobFor(4, 600);
      const context = encodeWfprContext({ address: '192.0.2.4', port: 4444, processId: 77 });
      sim.udpRedirect('127.0.0.1', sender.address().port, records, context, 'other-ip-level');
      sender.send(Buffer.from('one'), server.port, '127.0.0.1');
      await server.arrived(1);
      const [first] = server.received;
      assert.ok(first.rinfo.redirectRecords?.equals(records), 'records at IPPROTO_IPV6 on an IPv4 socket');
      assert.ok(first.rinfo.redirectContext?.equals(context));
      assert.deepEqual(originalDestinationFromContext(first.rinfo.redirectContext!, { layout: 'wfpr' }), { family: 'IPv4', address: '192.0.2.4', port: 4444, processId: 77 });
      assert.equal(server.socket.stats.malformedControl, 0);
    } finally {
      sender.close();
      server.socket.close();
    }
  });

  it("a flow with WFPSampler's context: its destination and original local endpoint from the first datagram", async function () {
    const server = await receiver('IPv6');
    const sender = await client('IPv6');
    try {
      const context = encodeWfpSamplerContext({ address: '2001:db8::53', port: 53 }, { address: '2001:db8::100', port: 40001 });
      sim.udpRedirect('::1', sender.address().port, blobFor(5, 4000), context, 'well-formed');
      sender.send(Buffer.from('query'), server.port, '::1');
      await server.arrived(1);
      assert.deepEqual(originalDestinationFromContext(server.received[0].rinfo.redirectContext!, { layout: 'wfpsampler' }), {
        family: 'IPv6',
        address: '2001:db8::53',
        port: 53,
        originalSource: { family: 'IPv6', address: '2001:db8::100', port: 40001 },
      });
    } finally {
      sender.close();
      server.socket.close();
    }
  });

  const FORMS: Array<{ form: ControlForm; malformed: number; context: boolean }> = [
    { form: 'truncated-header', malformed: 1, context: false },
    { form: 'length-past-buffer', malformed: 1, context: true },
    { form: 'wrong-level', malformed: 0, context: false },
  ];
  for (const { form, malformed, context } of FORMS) {
    it(`malformed control data (${form}) is skipped and counted, never read past; the datagram and the socket go on`, async function () {
      const server = await receiver('IPv4');
      const sender = await client('IPv4');
      try {
        const records = blobFor(1, 40);
        const contextBytes = encodeSockaddr({ address: '192.0.2.9', port: 9 });
        sim.udpRedirect('127.0.0.1', sender.address().port, records, contextBytes, form);
        sender.send(Buffer.from('payload one'), server.port, '127.0.0.1');
        await server.arrived(1);
        sender.send(Buffer.from('payload two'), server.port, '127.0.0.1');
        await server.arrived(2);
        const [first, second] = server.received;
        assert.equal(first.data.toString(), 'payload one');
        assert.equal(first.rinfo.redirectRecords, undefined, 'no records from a malformed or foreign message');
        assert.equal(first.rinfo.redirectContext !== undefined, context);
        if (context) assert.ok(first.rinfo.redirectContext!.equals(contextBytes), 'the well-formed message before the bad one is read');
        assert.equal(second.data.toString(), 'payload two');
        assert.equal(server.socket.stats.malformedControl, malformed);
      } finally {
        sender.close();
        server.socket.close();
      }
    });
  }
});

// The proxy CLI (--udp --transparent) in its own node.exe, the simulated
// service put under it by a --require'd script the test drives over IPC.
describe('the proxy CLI relaying UDP in Windows node.exe, against a simulated WFP redirect service', function () {
  this.timeout(120_000);
  const PRELOAD = join(__dirname, 'fixtures', 'wfp-sim-preload.js');
  const DATAGRAMS = 20;

  before(function () {
    if (!isWindows) {
      console.warn('    !!! not Windows: the simulated-WFP UDP proxy tests are NOT run here; `npm run test:win32` runs them in Windows node.exe under Wine');
      this.skip();
    }
  });

  it(`${FLOWS} flows relayed intact both ways to the destinations their contexts name; each flow's first outbound datagram carries exactly its records, later ones none; a datagram nobody redirected is dropped and logged`, async function () {
    // Request/response servers that answer with the bytes reversed.
    const servers = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const server = dgram.createSocket('udp4');
        server.on('message', (data, rinfo) => server.send(Buffer.from(data).reverse(), rinfo.port, rinfo.address));
        await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
        return server;
      }),
    );
    let proxy: Running | undefined;
    const clients = await Promise.all(Array.from({ length: FLOWS }, () => client('IPv4')));
    try {
      proxy = await start(['--require', PRELOAD, CLI, '--listen', '127.0.0.1:0', '--transparent', '--udp', '--udp-idle-timeout', '1000', '--log', 'json'], /relaying UDP on .*:(\d+)$/, { ipc: true });
      const running = proxy;
      const flows = clients.map((socket, index) => ({
        socket,
        records: blobFor(index, SIZES[index % SIZES.length]),
        server: servers[index % servers.length].address().port,
      }));
      for (const flow of flows) {
        const context = encodeSockaddr({ address: '127.0.0.1', port: flow.server });
        await askProxy(running, { udpRedirect: { peerAddress: '127.0.0.1', peerPort: flow.socket.address().port, records: flow.records.toString('base64'), context: context.toString('base64') } });
      }
      await Promise.all(
        flows.map(async ({ socket }, index) => {
          for (let i = 0; i < DATAGRAMS; i++) {
            const request = blobFor(index * 100 + i, 1 + ((index * 997 + i * 131) % 3000));
            const reply = once(socket, 'message');
            socket.send(request, running.port, '127.0.0.1');
            const [data] = (await Promise.race([reply, new Promise((_, reject) => setTimeout(() => reject(new Error(`flow ${index}: no reply to datagram ${i}`)), 5000))])) as [Buffer];
            assert.ok(data.equals(Buffer.from(request).reverse()), `flow ${index} datagram ${i} came back changed`);
          }
        }),
      );
      const { sends } = await askProxy<{ sends: Array<Omit<UdpSendCall, 'records'> & { records: string | null }> }>(running, { udpSends: true });
      // The proxy's outbound datagrams, per outbound socket (one per flow), in order.
      const outbound = sends.filter((call) => call.port !== flows[0].socket.address().port && flows.every((flow) => flow.socket.address().port !== call.port));
      const bySocket = new Map<number, typeof outbound>();
      for (const call of outbound) bySocket.set(call.localPort, [...(bySocket.get(call.localPort) ?? []), call]);
      assert.equal(bySocket.size, FLOWS, 'one outbound socket per flow');
      const seen = new Set<string>();
      for (const calls of bySocket.values()) {
        assert.equal(calls.length, DATAGRAMS);
        const first = Buffer.from(calls[0].records ?? '', 'base64');
        const flow = flows.find((candidate) => candidate.records.equals(first));
        assert.ok(calls[0].records !== null && flow, 'the first outbound datagram carries one flow\'s records, exactly');
        assert.equal(calls[0].port, flow!.server, 'to the destination its context names');
        seen.add(first.toString('hex'));
        for (const later of calls.slice(1)) assert.equal(later.records, null, 'later datagrams carry none');
      }
      assert.equal(seen.size, FLOWS, 'each flow its own records');

      // Straight to the proxy, from a sender nobody redirected.
      const stranger = await client('IPv4');
      stranger.send(Buffer.from('not redirected'), running.port, '127.0.0.1');
      const deadline = Date.now() + 10_000;
      const logs = () => running.stdout.map((line) => JSON.parse(line) as FlowLog);
      while (logs().length < FLOWS + 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      stranger.close();
      const entries = logs();
      const dropped = entries.filter((entry) => entry.end === 'dropped');
      assert.equal(dropped.length, 1, JSON.stringify(entries));
      assert.equal(dropped[0].error, 'ERR_NOT_REDIRECTED');
      const relayed = entries.filter((entry) => entry.end === 'idle');
      assert.equal(relayed.length, FLOWS, JSON.stringify(entries));
      for (const entry of relayed) {
        assert.equal(entry.datagramsUp, DATAGRAMS);
        assert.equal(entry.datagramsDown, DATAGRAMS);
        assert.ok(SIZES.includes(entry.records), `records size ${entry.records}`);
      }
    } finally {
      if (proxy) await stop(proxy);
      for (const socket of clients) socket.close();
      for (const server of servers) server.close();
    }
  });
  it("--process: a redirected flow's log names its client's process (the UDP owner-pid table; the relay's own sockets left out)", async function () {
    const server = dgram.createSocket('udp4');
    server.on('message', (data, rinfo) => server.send(data, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    const socket = await client('IPv4');
    let proxy: Running | undefined;
    try {
      proxy = await start(['--require', PRELOAD, CLI, '--listen', '127.0.0.1:0', '--transparent', '--udp', '--udp-idle-timeout', '300', '--process', '--log', 'json'], /relaying UDP on .*:(\d+)$/, { ipc: true });
      const running = proxy;
      const context = encodeSockaddr({ address: '127.0.0.1', port: server.address().port });
      await askProxy(running, { udpRedirect: { peerAddress: '127.0.0.1', peerPort: socket.address().port, records: blobFor(1, 16).toString('base64'), context: context.toString('base64') } });
      const reply = once(socket, 'message');
      socket.send(Buffer.from('who am i'), running.port, '127.0.0.1');
      await reply;
      const deadline = Date.now() + 10_000;
      const logs = () => running.stdout.map((line) => JSON.parse(line) as FlowLog);
      while (logs().length < 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const [entry] = logs();
      assert.equal(entry?.end, 'idle', JSON.stringify(logs()));
      assert.equal(entry.process?.pid, process.pid, `Wine must fill the UDP table's owning pid: ${JSON.stringify(entry)}`);
      assert.equal(entry.process?.name.toLowerCase(), OWN_IMAGE);
    } finally {
      if (proxy) await stop(proxy);
      socket.close();
      server.close();
    }
  });
});
