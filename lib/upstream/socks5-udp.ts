// UDP through a SOCKS5 upstream (RFC 1928 section 7, UDP ASSOCIATE): a TCP
// control connection (opened like connectVia's, records and mark on it before
// it connects) keeps the association alive, and datagrams go to the relay the
// upstream names, each behind the RFC 1928 UDP request header.
//
// The UDP socket is Node's dgram, without redirect records: on Windows the
// records mark a connection WFP already redirected, and they are set on the
// control connection, the one that WFP's connect-redirect layer sees with the
// proxied flow's records. The relay's datagrams are new flows of their own to
// the upstream's relay port; they are redirected again only if the callout's
// filters match that port (see the report that came with this file).
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { decodeSockaddr, encodeSockaddr } from '../sockaddr';
import { checkDestination, resolveHere } from './connect-via';
import { UpstreamError, printable } from './errors';
import { ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6, COMMAND_UDP_ASSOCIATE, encodeAddress, ipv6Text, malformed, socks5Handshake, type SocksAddress } from './socks5';
import { Deadline, openTunnel, type UpstreamSocketOptions } from './tunnel';
import { isHostName, parseUpstream, type Upstream, type UpstreamInit } from './url';

export interface UdpAssociationStats {
  sent: number;
  received: number;
  /** Datagrams with FRAG != 0: fragmentation is not supported, so they are dropped. */
  droppedFragments: number;
  /** Datagrams whose header is cut short or names an unknown address type. */
  droppedMalformed: number;
  /** Datagrams from anyone but the relay. */
  droppedForeign: number;
  /** Sends that failed (the error went to the send's callback, if any). */
  sendErrors: number;
}

/** Where an unwrapped datagram came from, as the upstream says: the destination that answered. */
export interface UdpAssociationRemoteInfo {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6' | 'name';
  size: number;
}

export type ParsedDatagram = { host: string; port: number; type: number; payload: Buffer } | 'fragment' | 'malformed';

/** Reads the RFC 1928 UDP request header; never past the datagram's end. */
export function parseUdpDatagram(datagram: Buffer): ParsedDatagram {
  if (datagram.length < 4) return 'malformed';
  if (datagram[2] !== 0) return 'fragment';
  const type = datagram[3];
  let host: string;
  let offset: number;
  if (type === ATYP_IPV4) {
    if (datagram.length < 10) return 'malformed';
    host = [...datagram.subarray(4, 8)].join('.');
    offset = 8;
  } else if (type === ATYP_IPV6) {
    if (datagram.length < 22) return 'malformed';
    host = normalIpv6(ipv6Text(datagram.subarray(4, 20)));
    offset = 20;
  } else if (type === ATYP_DOMAIN) {
    if (datagram.length < 5 || datagram.length < 5 + datagram[4] + 2) return 'malformed';
    host = datagram.toString('latin1', 5, 5 + datagram[4]);
    offset = 5 + datagram[4];
  } else {
    return 'malformed';
  }
  return { host, port: datagram.readUInt16BE(offset), type, payload: datagram.subarray(offset + 2) };
}

/** The RFC 5952 form, as dgram reports a sender. */
function normalIpv6(address: string): string {
  return decodeSockaddr(encodeSockaddr({ address, port: 0 })).address;
}

function isUnspecified(host: string): boolean {
  return host === '0.0.0.0' || (net.isIPv6(host) && normalIpv6(host) === '::');
}

function sameAddress(a: string, b: string): boolean {
  return net.isIPv6(a) && net.isIPv6(b) ? normalIpv6(a) === normalIpv6(b) : a === b;
}

/** The relay's address: the reply's, or the upstream's own when the reply leaves it unspecified (RFC 1928 practice). */
async function relayEndpoint(bound: SocksAddress, control: net.Socket, options: UpstreamSocketOptions, deadline: Deadline, upstream: Upstream): Promise<SocksAddress> {
  // Nothing can be sent to port 0, or to a name no lookup takes.
  if (bound.port === 0) throw malformed(upstream, 'the UDP relay is at port 0');
  if (net.isIP(bound.host) === 0 && !isHostName(bound.host)) throw malformed(upstream, `the UDP relay's host ${JSON.stringify(printable(bound.host))} is not a host name`);
  if (net.isIP(bound.host) === 0) return { host: await resolveHere(bound.host, options, deadline), port: bound.port };
  if (isUnspecified(bound.host)) return { host: control.remoteAddress ?? bound.host, port: bound.port };
  return bound;
}

/** A UDP socket of the relay's family, on the control connection's local address when it is of that family. */
function bindUdp(relay: SocksAddress, control: net.Socket, deadline: Deadline): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const family = net.isIP(relay.host);
    const udp = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    const local = control.localAddress !== undefined && net.isIP(control.localAddress) === family ? control.localAddress : undefined;
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      stop();
      udp.close();
      reject(error);
    };
    const stop = deadline.onFire(fail);
    udp.once('error', fail);
    udp.bind({ port: 0, address: local }, () => {
      if (settled) return;
      settled = true;
      stop();
      udp.removeListener('error', fail);
      resolve(udp);
    });
  });
}

/**
 * One SOCKS5 UDP association. 'message' (payload, remote): a datagram from the
 * relay, unwrapped, with the source the upstream names. 'close' (error?): the
 * association ended; `error` says why when it was not close(). The network can
 * make it close, never throw: malformed datagrams are dropped and counted.
 */
export class Socks5UdpAssociation extends EventEmitter {
  readonly upstream: Upstream;
  /** Where datagrams go: the relay the upstream named. */
  readonly relay: { address: string; port: number };
  readonly #control: net.Socket;
  readonly #udp: dgram.Socket;
  readonly #options: UpstreamSocketOptions;
  readonly #stats: UdpAssociationStats = { sent: 0, received: 0, droppedFragments: 0, droppedMalformed: 0, droppedForeign: 0, sendErrors: 0 };
  #closed = false;

  /** @internal Use associateUdp. */
  constructor(upstream: Upstream, control: net.Socket, udp: dgram.Socket, relay: SocksAddress, options: UpstreamSocketOptions) {
    super();
    this.upstream = upstream;
    this.relay = { address: net.isIPv6(relay.host) ? normalIpv6(relay.host) : relay.host, port: relay.port };
    this.#control = control;
    this.#udp = udp;
    this.#options = options;
    // The control connection carries nothing after the reply; it is read only to see it end.
    control.on('data', () => {});
    control.on('error', (error) => this.#end(new UpstreamError(`The UDP association's control connection to ${upstream.display} failed`, { code: 'ERR_UPSTREAM_CLOSED', cause: error })));
    control.on('close', () => this.#end(new UpstreamError(`The upstream ${upstream.display} closed the UDP association's control connection`, { code: 'ERR_UPSTREAM_CLOSED' })));
    udp.on('message', (datagram, remote) => this.#onDatagram(datagram, remote));
    udp.on('error', (error) => this.#end(error));
    udp.on('close', () => this.#end(undefined));
    if (control.destroyed) this.#end(new UpstreamError(`The upstream ${upstream.display} closed the UDP association's control connection`, { code: 'ERR_UPSTREAM_CLOSED' }));
  }

  get closed(): boolean {
    return this.#closed;
  }

  stats(): UdpAssociationStats {
    return { ...this.#stats };
  }

  #onDatagram(datagram: Buffer, remote: dgram.RemoteInfo): void {
    if (remote.port !== this.relay.port || !sameAddress(remote.address, this.relay.address)) {
      this.#stats.droppedForeign++;
      return;
    }
    const parsed = parseUdpDatagram(datagram);
    if (parsed === 'fragment') this.#stats.droppedFragments++;
    else if (parsed === 'malformed') this.#stats.droppedMalformed++;
    else {
      this.#stats.received++;
      const family = parsed.type === ATYP_IPV4 ? 'IPv4' : parsed.type === ATYP_IPV6 ? 'IPv6' : 'name';
      this.emit('message', parsed.payload, { address: parsed.host, port: parsed.port, family, size: parsed.payload.length } satisfies UdpAssociationRemoteInfo);
    }
  }

  /**
   * Sends `data` to `host:port` through the relay. With socks5:// a name is
   * resolved here first; with socks5h:// it goes to the upstream. Failures go to
   * `callback` (and are counted), never to an 'error' event.
   */
  send(data: Uint8Array, port: number, host: string, callback?: (error: Error | null) => void): void {
    if (this.#closed) throw new UpstreamError('The UDP association is closed: open a new one with associateUdp', { code: 'ERR_SOCKS_UDP_CLOSED' });
    const target = checkDestination({ host, port });
    const done = (error: Error | null): void => {
      if (error) this.#stats.sendErrors++;
      else this.#stats.sent++;
      callback?.(error);
    };
    if (this.upstream.protocol === 'socks5' && net.isIP(target.host) === 0) {
      const deadline = new Deadline(this.upstream, { handshakeTimeout: this.#options.handshakeTimeout });
      resolveHere(target.host, this.#options, deadline).then(
        (address) => this.#sendTo(address, target.port, data, done),
        (error: Error) => done(error),
      ).finally(() => deadline.clear());
      return;
    }
    this.#sendTo(target.host, target.port, data, done);
  }

  #sendTo(host: string, port: number, data: Uint8Array, done: (error: Error | null) => void): void {
    if (this.#closed) return done(new UpstreamError('The UDP association closed before the datagram was sent', { code: 'ERR_SOCKS_UDP_CLOSED' }));
    const header = Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(host, port)]);
    // A send dgram refuses at once (a closed socket, say) is the callback's failure too, never a throw from an event.
    try {
      this.#udp.send([header, data], this.relay.port, this.relay.address, (error) => done(error ?? null));
    } catch (error) {
      done(error as Error);
    }
  }

  /** Ends the association: the control connection and the UDP socket close. */
  close(): void {
    this.#end(undefined);
  }

  #end(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#control.destroy();
    try {
      this.#udp.close();
    } catch {
      // Closed already: it was its 'close' that brought us here.
    }
    process.nextTick(() => this.emit('close', error));
  }
}

/**
 * Opens a UDP association through a SOCKS5 upstream: resolves once the
 * upstream has answered and the local UDP socket is bound, or rejects with an
 * UpstreamError (or AbortError) leaving nothing open.
 */
export async function associateUdp(upstream: string | UpstreamInit | Upstream, options: UpstreamSocketOptions = {}): Promise<Socks5UdpAssociation> {
  const proxy = parseUpstream(upstream, options);
  if (proxy.protocol === 'http') {
    throw new UpstreamError(`UDP needs a SOCKS5 upstream; ${proxy.display} is HTTP: use socks5:// or socks5h://`, { code: 'ERR_UPSTREAM_URL_INVALID' });
  }
  const deadline = new Deadline(proxy, options);
  let control: net.Socket | undefined;
  try {
    // The client's own address is not sent (zeros): behind NAT it is not what the upstream sees.
    const tunnel = await openTunnel(proxy, options, deadline, (write, socket) =>
      socks5Handshake(write, proxy, COMMAND_UDP_ASSOCIATE, { host: socket.remoteFamily === 'IPv6' ? '::' : '0.0.0.0', port: 0 }),
    );
    control = tunnel.socket;
    const stopOnDeadline = deadline.onFire((error) => control?.destroy(error));
    // Until the association listens, a failure of the control connection is the deadline's or the check below's to report.
    control.on('error', () => {});
    const relay = await relayEndpoint(tunnel.value, control, options, deadline, proxy);
    const udp = await bindUdp(relay, control, deadline);
    stopOnDeadline();
    return new Socks5UdpAssociation(proxy, control, udp, relay, options);
  } catch (error) {
    control?.destroy();
    throw error;
  } finally {
    deadline.clear();
  }
}
