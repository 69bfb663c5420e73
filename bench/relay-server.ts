// The server of the relay benchmark (bench/relay.ts), in a process of its own.
// One port, three services chosen by a connection's first byte: 'S' is a sink
// (reads to the end, then answers with the byte count and closes), 'L' a sink
// told its length (bytes 1-8, big-endian: the total the stream sends, these 9
// bytes included) that answers once it has that many, for relays that carry
// no half-close (tinyproxy's CONNECT tunnel closes both ways at the client's
// end), 'E' an echo.
// Prints the port it got as one JSON line.
import net from 'node:net';

const host = process.argv[2] ?? '127.0.0.1';
const port = Number(process.argv[3] ?? 0);

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  let started = false;
  socket.on('error', () => socket.destroy());
  // A connection that ends without a byte (a readiness probe) just closes.
  socket.once('end', () => {
    if (!started) socket.end();
  });
  socket.once('data', (first: Buffer) => {
    started = true;
    if (first[0] === 0x45 /* E */) {
      socket.write(first);
      socket.pipe(socket);
      return;
    }
    let bytes = first.length;
    if (first[0] === 0x4c /* L */) {
      // The load's first write holds the whole 9-byte header; a split one is not expected on loopback.
      const total = first.length >= 9 ? Number(first.readBigUInt64BE(1)) : Infinity;
      const answerWhenDone = () => bytes >= total && socket.end(`${bytes}\n`);
      socket.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        answerWhenDone();
      });
      answerWhenDone();
      return;
    }
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on('end', () => socket.end(`${bytes}\n`));
  });
});
server.listen(port, host, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
});
