// The redirect records (Windows) and the mark (Linux) go on the socket that
// connects to the upstream, before it connects: WFP would redirect the
// proxy's own connection to the upstream again otherwise. In Windows node.exe
// against the simulated WFP service (test/wfp-sim.ts); on Linux by watching
// the addon's calls.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { associateUdp, connectVia, getSocketHandle } from '..';
import { binding } from '../dist/native';
import { isWindows, nodeFd, spy } from './helpers';
import { readSocksGreeting, readSocksRequest, scriptedServer } from './fixtures/upstream-servers';
import { removeWfpSim, wfpSim, type WfpSim } from './wfp-sim';

const RECORDS = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7 + 3) & 0xff));

interface SetCall {
  socket: number;
  records: Buffer;
  /** Connections the upstream had accepted when the records were set. */
  acceptedAtSet: number;
}

/** A SOCKS5 upstream that says yes to CONNECT and to UDP ASSOCIATE (its relay: port 9). */
function agreeableSocks() {
  return scriptedServer(async (socket, read) => {
    await readSocksGreeting(read);
    socket.write(Buffer.from([5, 0]));
    const { command } = await readSocksRequest(read);
    socket.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, command === 3 ? 9 : 80]));
  });
}

describe('connectVia and associateUdp: the records on the socket to the upstream, before it connects', function () {
  this.timeout(30_000);
  let sim: WfpSim | undefined;
  let server: Awaited<ReturnType<typeof agreeableSocks>>;
  let setCalls: () => SetCall[];
  let restore = (): void => {};

  before(async () => {
    server = await agreeableSocks();
    if (isWindows) sim = wfpSim();
    // Each set is watched with what the upstream had accepted by then. In
    // Windows node.exe it goes on to the simulated WFP service; Linux has no
    // WFP, so there it is answered as Windows would.
    const calls: SetCall[] = [];
    const spied = spy('setRedirectRecords', (original, socket: number, records: Uint8Array) => {
      calls.push({ socket, records: Buffer.from(records), acceptedAtSet: server.connections.size + httpAccepted() });
      return isWindows ? original(socket, records) : undefined;
    });
    restore = () => spied.restore();
    setCalls = () => calls.splice(0);
  });
  beforeEach(() => (sim?.reset(), setCalls()));
  after(async () => {
    restore();
    if (isWindows) removeWfpSim();
    await server?.close();
  });

  for (const scheme of ['socks5', 'http']) {
    it(`${scheme}: exactly the records, on the very socket that then connects to the upstream, before it connects`, async function () {
      const upstream = scheme === 'http' ? await httpAgreeable() : server;
      try {
        const socket = await connectVia(`${scheme}://127.0.0.1:${upstream.port}`, { host: '192.0.2.1', port: 80 }, { redirectRecords: RECORDS });
        const calls = setCalls();
        assert.equal(calls.length, 1, 'records set once');
        if (sim) {
          const [set] = sim.sets();
          assert.ok(set.records.equals(RECORDS) && set.connectedAtSet === false && set.socket === getSocketHandle(socket), 'the simulated WFP service saw another set');
        }
        assert.ok(calls[0].records.equals(RECORDS), 'other bytes than the records');
        assert.equal(calls[0].acceptedAtSet, 0, 'the upstream had accepted the connection before its records were set');
        assert.equal(calls[0].socket, isWindows ? getSocketHandle(socket) : nodeFd(socket), 'the records went on another socket');
        assert.ok([...upstream.connections].some((accepted) => accepted.remotePort === socket.localPort), 'the upstream saw another connection');
        socket.destroy();
      } finally {
        if (upstream !== server) await upstream.close();
      }
    });
  }

  it('associateUdp: the records on the control connection, before it connects', async () => {
    const association = await associateUdp(`socks5://127.0.0.1:${server.port}`, { redirectRecords: RECORDS });
    try {
      const calls = setCalls();
      assert.equal(calls.length, 1);
      assert.ok(calls[0].records.equals(RECORDS));
      assert.equal(calls[0].acceptedAtSet, 0);
    } finally {
      association.close();
    }
  });

  it('Linux: the mark on the socket to the upstream, before it connects (root)', async function () {
    if (!binding.hasSocketMark || process.getuid?.() !== 0) {
      console.warn('    !!! not run: SO_MARK needs Linux and CAP_NET_ADMIN (root)');
      this.skip();
    }
    const marks: Array<{ socket: number; mark: number; accepted: number }> = [];
    const marking = spy('setSocketMark', (original, socket, mark) => (marks.push({ socket, mark, accepted: server.connections.size }), original(socket, mark)));
    try {
      const socket = await connectVia(`socks5://127.0.0.1:${server.port}`, { host: '192.0.2.1', port: 80 }, { mark: 0x2a });
      assert.deepEqual(marks, [{ socket: nodeFd(socket), mark: 0x2a, accepted: 0 }]);
      socket.destroy();
    } finally {
      marking.restore();
    }
  });
});

let httpConnections = new Set<net.Socket>();
const httpAccepted = (): number => httpConnections.size;

/** An HTTP upstream that answers every CONNECT with 200. */
async function httpAgreeable() {
  const upstream = await scriptedServer((socket) => {
    let head = '';
    socket.on('data', (chunk) => {
      head += chunk;
      if (head.includes('\r\n\r\n')) socket.write('HTTP/1.1 200 OK\r\n\r\n');
    });
  });
  httpConnections = upstream.connections;
  return upstream;
}
