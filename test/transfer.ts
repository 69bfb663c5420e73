// Carrying a known amount of data both ways over a connection and checking it
// arrived intact (sha256 on each side).
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type net from 'node:net';

const CHUNK = randomBytes(1 << 20);

/** Writes `bytes` (made of a random chunk and a counter) with backpressure, then ends; resolves to their sha256. */
export async function sendAll(socket: net.Socket, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  let sent = 0;
  let counter = 0;
  while (sent < bytes) {
    const piece = Buffer.from(CHUNK.subarray(0, Math.min(CHUNK.length, bytes - sent)));
    piece.writeUInt32LE(counter++ >>> 0, 0);
    hash.update(piece);
    sent += piece.length;
    if (!socket.write(piece)) await once(socket, 'drain');
  }
  socket.end();
  return hash.digest('hex');
}

/** Reads until the peer ends; resolves to the sha256 and the byte count of what arrived. */
export function receiveAll(socket: net.Socket): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (data: Buffer) => {
      hash.update(data);
      bytes += data.length;
    });
    socket.once('end', () => resolve({ sha256: hash.digest('hex'), bytes }));
    socket.once('error', reject);
  });
}

/** Both directions at once over the two ends of one connection. */
export async function exchange(a: net.Socket, b: net.Socket, bytes: number): Promise<void> {
  const [aSent, bSent, bGot, aGot] = await Promise.all([sendAll(a, bytes), sendAll(b, bytes), receiveAll(b), receiveAll(a)]);
  if (bGot.bytes !== bytes || bGot.sha256 !== aSent) throw new Error(`a -> b: ${bGot.bytes} of ${bytes} bytes, sha256 ${bGot.sha256 === aSent ? 'equal' : 'differs'}`);
  if (aGot.bytes !== bytes || aGot.sha256 !== bSent) throw new Error(`b -> a: ${aGot.bytes} of ${bytes} bytes, sha256 ${aGot.sha256 === bSent ? 'equal' : 'differs'}`);
}
