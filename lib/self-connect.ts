// A TCP connection that met itself. Linux connects a socket to a closed port
// of this host in the ephemeral range from that very port now and then (a
// simultaneous open with itself), and such a socket echoes what it is sent:
// a proxy would hand the client its own bytes back as the destination's
// answer, and an upstream handshake would read its own request as the reply.
// Nothing listens there, so it is refused as a closed port is.
import type net from 'node:net';

/**
 * Whether `socket`, connected to `port`, has its own endpoint as its peer.
 * Its peer is asked (a system call) only when its own port is `port`; its own
 * endpoint the proxy asks anyway.
 */
export function connectedToItself(socket: net.Socket, port: number): boolean {
  return socket.localPort === port && socket.remotePort === port && socket.localAddress === socket.remoteAddress;
}

/** The refusal for a connection to `address`:`port` that met itself: ECONNREFUSED, shaped as Node's connect errors are. */
export function selfConnectError(address: string, port: number): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`connect ECONNREFUSED ${address}:${port}: the connection met itself (nothing listens there)`);
  return Object.assign(error, { code: 'ECONNREFUSED', syscall: 'connect', address, port });
}
