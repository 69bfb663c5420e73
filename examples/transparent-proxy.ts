// A transparent proxy with wfp-redirect's public API only.
//
// On Windows, each connection a WFP callout redirected here goes on to its
// original destination (read from the redirect context, a SOCKADDR) over a
// connection that carries its redirect records, so it is not redirected
// again. Elsewhere, or for a connection nobody redirected, it goes to FALLBACK.
//
//   node dist-examples/transparent-proxy.js LISTEN_PORT [FALLBACK_HOST:PORT]
import net from 'node:net';
import { connectRedirected, decodeSockaddr, isSupported, queryRedirectContext, queryRedirectRecords } from 'wfp-redirect';

const [listenPort = '8888', fallback] = process.argv.slice(2);

async function destinationOf(inbound: net.Socket): Promise<{ host: string; port: number; records?: Buffer }> {
  if (isSupported()) {
    try {
      const records = await queryRedirectRecords(inbound);
      const { address, port } = decodeSockaddr(await queryRedirectContext(inbound));
      return { host: address, port, records };
    } catch (error) {
      if (!fallback) throw error; // not a redirected connection
    }
  }
  if (!fallback) throw new Error('not redirected, and no fallback destination given');
  const colon = fallback.lastIndexOf(':');
  return { host: fallback.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(fallback.slice(colon + 1)) };
}

const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, async (inbound) => {
  inbound.on('error', () => inbound.destroy());
  try {
    const { host, port, records } = await destinationOf(inbound);
    const outbound = connectRedirected({ host, port, redirectRecords: records, allowHalfOpen: true });
    outbound.on('error', () => inbound.destroy());
    inbound.on('error', () => outbound.destroy());
    inbound.pipe(outbound).pipe(inbound); // backpressure and half-close both ways
  } catch (error) {
    console.error(`connection from ${inbound.remoteAddress}: ${(error as Error).message}`);
    inbound.destroy();
  }
});

server.listen(Number(listenPort), '127.0.0.1', () => {
  console.log(`listening on port ${(server.address() as net.AddressInfo).port}`);
});
