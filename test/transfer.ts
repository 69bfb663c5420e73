// Carrying a known amount of data both ways over a connection and checking it
// arrived intact (sha256 on each side).
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type net from 'node:net';

const CHUNK = randomBytes(1 << 20);

/** Writes `bytes` (made of a random chunk and a counter) with backpressure; resolves to their sha256. */
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
  return hash.digest('hex');
}

/** Reads until `bytes` have arrived; resolves to their sha256. An end, an error or more bytes than that fail it. */
export function receiveAll(socket: net.Socket, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  let received = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (data: Buffer) => {
      hash.update(data);
      received += data.length;
      if (received > bytes) reject(new Error(`${received} bytes arrived, ${bytes} were sent`));
      else if (received === bytes) resolve(hash.digest('hex'));
    });
    socket.once('end', () => reject(new Error(`${received} of ${bytes} bytes, then the peer ended`)));
    socket.once('error', reject);
  });
}

/**
 * Both directions at once over the two ends of one connection, then a
 * half-close each way that the other side must see. The ends come only after
 * every byte has arrived: Wine's Winsock can drop data still in flight when a
 * socket is shut down (plain net.connect loses it the same way there), and
 * that is not what these tests are about.
 */
export async function exchange(a: net.Socket, b: net.Socket, bytes: number): Promise<void> {
  const [aSent, bSent, bGot, aGot] = await Promise.all([sendAll(a, bytes), sendAll(b, bytes), receiveAll(b, bytes), receiveAll(a, bytes)]);
  if (bGot !== aSent) throw new Error(`a -> b: ${bytes} bytes, sha256 differs`);
  if (aGot !== bSent) throw new Error(`b -> a: ${bytes} bytes, sha256 differs`);
  const ended = Promise.all([once(a, 'end'), once(b, 'end')]);
  a.end();
  b.end();
  await ended;
}
