// A transparent proxy with wfp-redirect's public API only, on Linux and
// Windows alike.
//
// Each connection goes on to where it was going before the kernel redirected
// it here (getOriginalDestination: netfilter's record on Linux, the WFP
// redirect context on Windows), over a connection that carries the WFP
// redirect records where the platform has them (Windows), so that it is not
// redirected again. On Linux the redirect rule must exempt this program's own
// connections (run it as a user the rule skips). A connection nobody
// redirected goes to FALLBACK when one is given. Every failure is logged.
//
//   node dist-examples/transparent-proxy.js LISTEN_PORT [FALLBACK_HOST:PORT]
import net from 'node:net';
import { connectRedirected, getOriginalDestination, isSupported, queryRedirectRecords } from 'wfp-redirect';

const [listenPort = '8888', fallback] = process.argv.slice(2);

interface Target {
  host: string;
  port: number;
  records: Buffer | undefined;
}

async function destinationOf(inbound: net.Socket): Promise<Target> {
  try {
    const { address, port } = await getOriginalDestination(inbound);
    // Opaque: passed on unread. Only Windows has them.
    const records = isSupported() ? await queryRedirectRecords(inbound) : undefined;
    return { host: address, port, records };
  } catch (error) {
    if (!fallback) throw error; // ERR_NOT_REDIRECTED: nobody sent this connection here
    const colon = fallback.lastIndexOf(':');
    return { host: fallback.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(fallback.slice(colon + 1)), records: undefined };
  }
}

const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, async (inbound) => {
  const client = `${inbound.remoteAddress}:${inbound.remotePort}`;
  inbound.on('error', (error: NodeJS.ErrnoException) => console.error(`${client}: ${error.code ?? error.message}`));
  try {
    const { host, port, records } = await destinationOf(inbound);
    // The records are set on the outbound socket before it connects.
    const outbound = connectRedirected({ host, port, redirectRecords: records, allowHalfOpen: true });
    outbound.on('error', (error: NodeJS.ErrnoException) => {
      console.error(`${client} -> ${host}:${port}: ${error.code ?? error.message}`);
      inbound.destroy();
    });
    inbound.on('error', () => outbound.destroy());
    inbound.pipe(outbound).pipe(inbound); // backpressure and half-close both ways
  } catch (error) {
    console.error(`${client}: ${(error as { code?: string }).code ?? (error as Error).message}`);
    inbound.destroy();
  }
});

server.listen(Number(listenPort), '127.0.0.1', () => {
  console.log(`listening on port ${(server.address() as net.AddressInfo).port}`);
});
