// A UDP socket for redirected datagram flows, in the shape of Node's dgram:
// each 'message' carries the redirect data that came with the datagram (WFP
// records and context on Windows, the TPROXY original destination on Linux),
// and send() can carry redirect records (Windows) or leave from an original
// destination (Linux). dgram cannot: it has no control messages.
import { EventEmitter } from 'node:events';
import { lookup } from 'node:dns';
import net from 'node:net';
import { invalidArgType, WfpRedirectError } from './errors';
import { checkMark } from './connect';
import { checkPort } from './ports';
import { binding, type NativeUdpSocket } from './native';
import type { OriginalDestination } from './original-destination';

export type UdpSocketType = 'udp4' | 'udp6';

export interface RedirectUdpSocketOptions {
  type: UdpSocketType;
  /**
   * Linux: the socket may be the target of an iptables TPROXY rule, and each
   * datagram reports its original destination (IP_TRANSPARENT and
   * IP_RECVORIGDSTADDR; needs CAP_NET_ADMIN). Replies can then be sent
   * `from` that destination.
   */
  transparent?: boolean | undefined;
  /** Linux: `SO_MARK` on the socket, as connectRedirected's `mark` (needs CAP_NET_ADMIN). */
  mark?: number | undefined;
}

/** Where a datagram came from, as dgram's rinfo, with the redirect data that came with it. */
export interface RedirectedRemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
  /** Windows: the WFP redirect records, with the first datagram of a redirected flow. */
  redirectRecords?: Buffer;
  /** Windows: the WFP redirect context, with the same datagram (see originalDestinationFromContext). */
  redirectContext?: Buffer;
  /** Linux, transparent sockets: where the datagram was going before TPROXY diverted it. */
  originalDestination?: OriginalDestination;
}

export interface UdpSendOptions {
  /** Windows: sent with this datagram as an IP_WFP_REDIRECT_RECORDS control message (a flow's first). */
  redirectRecords?: Uint8Array | undefined;
  /** Linux, transparent sockets: send from this address and port (a reply from the original destination). */
  from?: { address: string; port: number } | undefined;
}

export interface UdpSocketStats {
  /** Datagrams read from the OS. */
  received: number;
  /** Datagrams larger than 65,536 bytes: dropped, never handed on cut short. */
  truncated: number;
  /** Datagrams whose control data was cut short or malformed: that part skipped, never read past. */
  malformedControl: number;
  /** Datagrams that found the socket's send buffer full and waited in its queue to go. */
  sendsQueued: number;
  /** Sends refused with ERR_WFP_UDP_SEND_QUEUE_FULL: the queue was at its limit. */
  sendQueueFull: number;
}

type SendCallback = (error: Error | null) => void;

/** Errors of the caller's own making, which bind() throws at once (as dgram's does). */
const isCallerMistake = (error: unknown): boolean =>
  error instanceof TypeError ||
  error instanceof RangeError ||
  ['ERR_SOCKET_ALREADY_BOUND', 'ERR_SOCKET_DGRAM_NOT_RUNNING'].includes((error as { code?: string })?.code ?? '');

const familyOf = (address: string): 'IPv4' | 'IPv6' => (net.isIPv6(address) ? 'IPv6' : 'IPv4');

export declare interface RedirectUdpSocket {
  on(event: 'message', listener: (message: Buffer, rinfo: RedirectedRemoteInfo) => void): this;
  on(event: 'listening' | 'close', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  once(event: 'message', listener: (message: Buffer, rinfo: RedirectedRemoteInfo) => void): this;
  once(event: 'listening' | 'close', listener: () => void): this;
  once(event: 'error', listener: (error: Error) => void): this;
}

export class RedirectUdpSocket extends EventEmitter {
  readonly type: UdpSocketType;
  /** Linux TPROXY: see RedirectUdpSocketOptions.transparent. */
  readonly transparent: boolean;
  private readonly native: NativeUdpSocket;
  private bound = false;
  private closed = false;
  /** Callbacks of datagrams the native socket queued (its buffer was full), by ticket. */
  private readonly waiting = new Map<number, (error: Error | null) => void>();
  private nextTicket = 1;

  constructor(options: RedirectUdpSocketOptions | UdpSocketType) {
    super();
    const { type, transparent = false, mark } = typeof options === 'string' ? ({ type: options } as RedirectUdpSocketOptions) : (options ?? ({} as RedirectUdpSocketOptions));
    if (type !== 'udp4' && type !== 'udp6') throw invalidArgType('options.type', "'udp4' or 'udp6'", type);
    if (typeof transparent !== 'boolean') throw invalidArgType('options.transparent', 'a boolean', transparent);
    if (transparent && !binding.udpHasTproxy) {
      throw new WfpRedirectError(`A transparent UDP socket is Linux's TPROXY; ${process.platform} has none`, { code: 'ERR_WFP_UNSUPPORTED_PLATFORM' });
    }
    this.type = type;
    this.transparent = transparent;
    if (mark !== undefined) checkMark(mark);
    this.native = new binding.UdpSocket(type === 'udp6' ? 6 : 4, transparent, this.onMessage.bind(this), this.onNativeError.bind(this), this.onSent.bind(this));
    if (mark !== undefined) {
      try {
        this.native.setMark(mark);
      } catch (error) {
        this.native.close();
        throw error;
      }
    }
  }

  private onMessage(data: Buffer, address: string, port: number, records?: Buffer, context?: Buffer, destinationAddress?: string, destinationPort?: number): void {
    const rinfo: RedirectedRemoteInfo = { address, family: familyOf(address), port, size: data.length };
    if (records) rinfo.redirectRecords = records;
    if (context) rinfo.redirectContext = context;
    if (destinationAddress !== undefined && destinationPort !== undefined) {
      rinfo.originalDestination = { address: destinationAddress, family: familyOf(destinationAddress), port: destinationPort };
    }
    this.emit('message', data, rinfo);
  }

  /** `closed`: the native socket gave up after repeated poll failures and is closed. */
  private onNativeError(error: Error, closed: boolean): void {
    if (closed) this.markClosed();
    this.emit('error', error);
  }

  private onSent(ticket: number, error?: Error): void {
    const done = this.waiting.get(ticket);
    this.waiting.delete(ticket);
    done?.(error ?? null);
  }

  /**
   * Closed from here on; 'close' follows. Datagrams still queued never go:
   * their callbacks get ERR_SOCKET_DGRAM_NOT_RUNNING (where dgram's get
   * ECANCELED), each once, after this call returns.
   */
  private markClosed(): void {
    this.closed = true;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    process.nextTick(() => {
      for (const done of waiting) done(new WfpRedirectError('The UDP socket was closed before the datagram could be sent', { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
      this.emit('close');
    });
  }

  private ensureRunning(): void {
    if (this.closed) throw new WfpRedirectError('The UDP socket is closed', { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
  }

  /**
   * Binds (default: every address, a free port) and starts receiving;
   * 'listening' follows. As with dgram, a mistake in the arguments throws,
   * and the OS refusing the bind (EADDRINUSE, ...) is an 'error' event, after
   * which the callback is not called and the socket can be bound again or closed.
   */
  bind(port = 0, address?: string, callback?: () => void): this {
    this.ensureRunning();
    port = checkPort(port, 'port', 0);
    const host = address ?? (this.type === 'udp6' ? '::' : '0.0.0.0');
    if (typeof host !== 'string' || net.isIP(host) !== (this.type === 'udp6' ? 6 : 4)) {
      throw invalidArgType('address', `an ${this.type === 'udp6' ? 'IPv6' : 'IPv4'} address`, address);
    }
    try {
      this.bindNow(host, port);
    } catch (error) {
      if (isCallerMistake(error)) throw error;
      process.nextTick(() => this.emit('error', error));
      return this;
    }
    if (callback) this.once('listening', callback);
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  /** Binds at once; throws whatever the native socket throws. */
  private bindNow(host: string, port: number): void {
    this.native.bind(host, port);
    this.bound = true;
  }

  address(): net.AddressInfo {
    this.ensureRunning();
    if (!this.bound) throw new WfpRedirectError('The UDP socket is not bound', { code: 'ERR_SOCKET_DGRAM_NOT_BOUND' });
    return this.native.address();
  }

  /**
   * Sends one datagram to `address` (an IP address, or a name looked up in the
   * socket's family). An unbound socket is bound to a free port first, as
   * dgram does. Errors go to `callback`, or to 'error' when there is none.
   */
  send(message: Uint8Array | string, port: number, address: string, options?: UdpSendOptions | SendCallback, callback?: SendCallback): void {
    this.ensureRunning();
    if (typeof options === 'function') [options, callback] = [undefined, options];
    const data = typeof message === 'string' ? Buffer.from(message) : message;
    if (!(data instanceof Uint8Array)) throw invalidArgType('message', 'a Buffer, Uint8Array or string', message);
    port = checkPort(port, 'port', 1);
    if (typeof address !== 'string' || address === '') throw invalidArgType('address', 'a non-empty string', address);
    const { redirectRecords, from } = options ?? {};
    let fromPort: number | undefined;
    if (redirectRecords !== undefined) {
      binding.checkDatagramRecords(redirectRecords);
      if (!binding.udpSendsRecords) {
        throw new WfpRedirectError(`WFP redirect records go with a datagram (the IP_WFP_REDIRECT_RECORDS control message) on Windows only; ${process.platform} has none`, { code: 'ERR_WFP_UNSUPPORTED_PLATFORM' });
      }
    }
    if (from !== undefined) {
      if (from === null || typeof from !== 'object' || typeof from.address !== 'string') throw invalidArgType('options.from', 'an { address, port } object', from);
      fromPort = checkPort(from.port, 'options.from.port', 1);
      if (!this.transparent) {
        throw Object.assign(new TypeError('options.from needs a socket created with { transparent: true } (Linux TPROXY)'), { code: 'ERR_INVALID_ARG_VALUE' });
      }
    }
    const done = (error: Error | null) => {
      if (callback) callback(error);
      else if (error) this.emit('error', error);
    };
    const sendTo = (ip: string) => {
      if (this.closed) return done(new WfpRedirectError('The UDP socket is closed', { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
      const ticket = this.nextTicket++;
      try {
        if (!this.bound) this.bindNow(this.type === 'udp6' ? '::' : '0.0.0.0', 0);
        // false: queued until the socket can take it; onSent answers the ticket.
        if (!this.native.send(data, ip, port, redirectRecords, from?.address, fromPort, ticket)) {
          this.waiting.set(ticket, done);
          return;
        }
      } catch (error) {
        return done(error as Error);
      }
      done(null);
    };
    if (net.isIP(address)) {
      process.nextTick(sendTo, address);
      return;
    }
    lookup(address, { family: this.type === 'udp6' ? 6 : 4 }, (error, ip) => (error ? done(error) : sendTo(ip)));
  }

  /** Stops receiving and closes the socket; 'close' follows. Safe to call twice. */
  close(callback?: () => void): this {
    if (this.closed) return this;
    this.native.close();
    if (callback) this.once('close', callback);
    this.markClosed();
    return this;
  }

  /** Counts of what arrived and what was dropped. */
  get stats(): UdpSocketStats {
    return this.native.stats();
  }

  ref(): this {
    this.native.ref();
    return this;
  }

  unref(): this {
    this.native.unref();
    return this;
  }
}

/** A RedirectUdpSocket, with an optional 'message' listener, as dgram.createSocket. */
export function createRedirectUdpSocket(
  options: RedirectUdpSocketOptions | UdpSocketType,
  listener?: (message: Buffer, rinfo: RedirectedRemoteInfo) => void,
): RedirectUdpSocket {
  const socket = new RedirectUdpSocket(options);
  if (listener) socket.on('message', listener);
  return socket;
}
