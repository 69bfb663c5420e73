// Whether an address is this host's own: a remote client's process is not
// ours to find, and asking the OS about it could only find a local socket
// that happens to share the port (an unconnected UDP socket).
import net from 'node:net';
import { networkInterfaces } from 'node:os';

const REFRESH_MS = 1000;
let addresses: Set<string> | undefined;
let readAt = 0;

/** This host's interface addresses, read again at most once a second (getifaddrs is a system call). */
function interfaceAddresses(): Set<string> {
  const now = Date.now();
  if (!addresses || now - readAt > REFRESH_MS) {
    addresses = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((entry) => entry.address.replace(/%.*$/, ''))));
    readAt = now;
  }
  return addresses;
}

/** `address` unmapped; a link-local scope is ignored. */
export function isThisHost(address: string): boolean {
  const plain = address.replace(/%.*$/, '');
  if (plain === '::1' || (net.isIPv4(plain) && plain.startsWith('127.'))) return true;
  return interfaceAddresses().has(plain);
}
