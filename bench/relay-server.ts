// The server of the relay benchmark (bench/relay.ts), in a process of its own.
// One port, two services chosen by a connection's first byte: 'S' is a sink
// (reads to the end, then answers with the byte count and closes), 'E' an echo.
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
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on('end', () => socket.end(`${bytes}\n`));
  });
});
server.listen(port, host, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
});
