// The floor the relay benchmark compares the CLI with: what a Node developer
// writes for a TCP relay in six lines (net + pipe, half-close kept).
// node node-pipe-proxy.js LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT
import net from 'node:net';

const [listenHost, listenPort, upstreamHost, upstreamPort] = process.argv.slice(2);
net
  .createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ host: upstreamHost, port: Number(upstreamPort), allowHalfOpen: true });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  })
  .listen(Number(listenPort), listenHost);
