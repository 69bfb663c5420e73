// What a proxy with one fixed upstream checks when it starts: that the
// upstream is not the proxy itself (every connection or datagram would come
// straight back: a loop), and that its name resolves now (said at once, not
// found per connection).
import { lookup } from 'node:dns/promises';
import type net from 'node:net';
import { formatEndpoint, isListeningEndpoint, loopError } from './endpoints';

/**
 * The addresses `upstream` resolves to now, or undefined (and a warning)
 * when it does not resolve. Throws `ERR_PROXY_LOOP` when one of them, at the
 * upstream's port, is where `listening` accepts.
 */
export async function checkUpstream(
  upstream: { host: string; port: number },
  listening: net.AddressInfo,
  warn: (message: string) => void,
): Promise<string[] | undefined> {
  let addresses: string[];
  try {
    addresses = (await lookup(upstream.host, { all: true })).map((entry) => entry.address);
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    warn(`the upstream ${formatEndpoint(upstream.host, upstream.port)} does not resolve now (${code}): its connections fail until it does`);
    return undefined;
  }
  const own = addresses.find((address) => isListeningEndpoint(address, upstream.port, listening));
  if (own !== undefined) {
    throw loopError(
      `the upstream ${formatEndpoint(upstream.host, upstream.port)} is this proxy's own listening address ${formatEndpoint(listening.address, listening.port)}: ` +
        'everything would come straight back. Give the address of the server to relay to',
    );
  }
  return addresses;
}
