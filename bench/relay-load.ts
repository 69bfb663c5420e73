// The load of the relay benchmark (bench/relay.ts), in a process of its own so
// that it does not share an event loop with the proxy or the server.
// node relay-load.js '{"host","port","bulk":[{streams,bytes}],"connections":{count,inFlight},"halfClose"?:false}'
// With halfClose false, each bulk stream tells the sink its length up front
// and does not end its half before the sink's answer (relays that cannot
// carry a half-close, such as tinyproxy's CONNECT).
// Prints one JSON line: MB/s per bulk test; connections/s and connect-to-echo
// latency (p50, p99, in ms) for the connection test.
import net from 'node:net';

interface Plan {
  host: string;
  port: number;
  bulk: Array<{ streams: number; bytes: number }>;
  connections: { count: number; inFlight: number };
  halfClose?: boolean;
}

const plan = JSON.parse(process.argv[2]) as Plan;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
CHUNK[0] = 0x53; // 'S': the server's sink (each stream's first byte decides)
CHUNK[1] = 0x00; // neither TLS nor HTTP at its second byte: a sniffing proxy knows at once, rather than at its time bound
const MESSAGE = Buffer.alloc(32, 0x65);
MESSAGE[0] = 0x45; // 'E': the server's echo
MESSAGE[1] = 0x00; // as CHUNK[1]

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

/** Sends `bytes` on one connection, then waits for the sink's count of them. */
function stream(bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: plan.host, port: plan.port, allowHalfOpen: true });
    const told = plan.halfClose === false;
    let left = bytes;
    let answer = '';
    let first = true;
    const write = () => {
      while (left > 0) {
        let chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        if (first && told) {
          // 'L' and the stream's length (at least 9 bytes: the header itself).
          chunk = Buffer.from(chunk);
          chunk[0] = 0x4c;
          chunk.writeBigUInt64BE(BigInt(bytes), 1);
        }
        first = false;
        left -= chunk.length;
        if (!socket.write(chunk)) return;
      }
      if (!told) socket.end();
    };
    if (told) socket.on('end', () => socket.end());
    socket.on('connect', write);
    socket.on('drain', write);
    socket.on('data', (chunk) => (answer += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      if (Number(answer) === bytes) resolve();
      else reject(new Error(`the sink counted ${answer.trim() || 'nothing'} of ${bytes} bytes`));
    });
  });
}

async function bulk(streams: number, bytes: number): Promise<number> {
  const share = Math.floor(bytes / streams);
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: streams }, () => stream(share)));
  return (share * streams) / 2 ** 20 / seconds(start);
}

/** One connection: connect, send 32 bytes, wait for all 32 back, close. Resolves to the time that took, in ms. */
function echoOnce(): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const socket = net.connect({ host: plan.host, port: plan.port });
    let received = 0;
    let took = 0;
    socket.on('connect', () => socket.write(MESSAGE));
    socket.on('data', (chunk) => {
      received += chunk.length;
      if (received >= MESSAGE.length && took === 0) {
        took = Number(process.hrtime.bigint() - start) / 1e6;
        socket.end();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => (took > 0 ? resolve(took) : reject(new Error(`the echo returned ${received} of ${MESSAGE.length} bytes`))));
  });
}

async function connections(count: number, inFlight: number) {
  const latencies: number[] = [];
  let started = 0;
  const start = process.hrtime.bigint();
  const lane = async () => {
    while (started < count) {
      started++;
      latencies.push(await echoOnce());
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const perSecond = count / seconds(start);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { perSecond, p50: at(0.5), p99: at(0.99) };
}

async function main() {
  const mbps: number[] = [];
  for (const { streams, bytes } of plan.bulk) mbps.push(await bulk(streams, bytes));
  const conn = await connections(plan.connections.count, plan.connections.inFlight);
  process.stdout.write(`${JSON.stringify({ mbps, ...conn })}\n`);
}

main().catch((error) => {
  process.stderr.write(`relay-load: ${(error as Error).stack}\n`);
  process.exit(1);
});
