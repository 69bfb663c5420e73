// What the relay benchmarks (relay.ts, relay-cpu.ts) both need of ports.
import { once } from 'node:events';
import net from 'node:net';

/** A port nothing listens on now on `host` (the OS's pick for port 0). */
export async function freePort(host: string): Promise<number> {
  const server = net.createServer().listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
