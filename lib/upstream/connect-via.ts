// connectVia: a TCP connection to a destination through an upstream proxy
// (SOCKS5 or HTTP CONNECT), resolved once the proxy has connected it, so the
// socket carries the destination's bytes from the first one.
import dns from 'node:dns';
import net from 'node:net';
import { invalidArgType, outOfRange } from '../errors';
import { UpstreamError, printable } from './errors';
import { DEFAULT_MAX_HEADER_SIZE, httpConnect } from './http-connect';
import { COMMAND_CONNECT, socks5Handshake, socksTargetProblem } from './socks5';
import { Deadline, openTunnel, type UpstreamSocketOptions } from './tunnel';
import { isHostName, parseUpstream, type Upstream, type UpstreamInit } from './url';

export interface ConnectViaOptions extends UpstreamSocketOptions {
  /** HTTP upstreams: the most bytes the answer's header may take. Default 16384. */
  maxHeaderSize?: number | undefined;
}

export interface UpstreamDestination {
  /** An IP address or a host name. */
  host: string;
  port: number;
}

/** Letters, digits, '-', '_' and '.': a host name that no protocol here can misread (no space, CR, LF, ':' or '@'). */

function invalidDestination(what: string): UpstreamError {
  return new UpstreamError(`Invalid destination for an upstream proxy: ${what}`, { code: 'ERR_UPSTREAM_DESTINATION_INVALID' });
}

/** The destination, checked: it often comes from the network (a client's request, an original destination). */
export function checkDestination(destination: UpstreamDestination): UpstreamDestination {
  if (destination === null || typeof destination !== 'object') throw invalidArgType('destination', 'an object with host and port', destination);
  const { host, port } = destination;
  if (typeof host !== 'string') throw invalidArgType('destination.host', 'a string', host);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidDestination(`port ${printable(String(port), 20)} is not 1 to 65535`);
  if (net.isIP(host) === 0 && !isHostName(host)) throw invalidDestination(`host ${JSON.stringify(printable(host))} is neither an IP address nor a host name`);
  const problem = socksTargetProblem(host);
  if (problem !== undefined) throw invalidDestination(problem);
  return { host, port };
}

/** For socks5:// (not socks5h): the destination's name resolved here, so the upstream gets an address. */
export async function resolveHere(host: string, options: UpstreamSocketOptions, deadline: Deadline): Promise<string> {
  if (net.isIP(host) !== 0) return host;
  const lookup = options.lookup ?? dns.lookup;
  const looked = new Promise<string>((resolve, reject) => {
    // dns.lookup throws at once for a name it will not look up (an empty one, a NUL byte): as its failure.
    const failed = (error: NodeJS.ErrnoException) =>
      reject(new UpstreamError(`Could not resolve ${JSON.stringify(printable(host))} (${error.code ?? error.name}); socks5h:// lets the upstream resolve names`, { code: 'ERR_UPSTREAM_DESTINATION_LOOKUP', cause: error }));
    try {
      lookup(host, {}, (error, address) => {
        if (error) return failed(error);
        if (typeof address !== 'string' || net.isIP(address) === 0) return reject(new UpstreamError(`The lookup of ${JSON.stringify(printable(host))} gave no single IP address`, { code: 'ERR_UPSTREAM_DESTINATION_LOOKUP' }));
        resolve(address);
      });
    } catch (error) {
      failed(error as NodeJS.ErrnoException);
    }
  });
  return deadline.race(looked);
}

function checkMaxHeaderSize(value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_HEADER_SIZE;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 16 || value > 1024 * 1024) {
    throw outOfRange('ERR_OUT_OF_RANGE', `options.maxHeaderSize must be an integer from 16 to 1048576. Received ${String(value)}`);
  }
  return value;
}

/**
 * Opens a TCP connection to `destination` through `upstream` (a URL such as
 * `socks5://user:pass@127.0.0.1:1080`, `socks5h://...` or `http://...`; see
 * url.ts). `redirectRecords` and `mark` go on the socket that connects to the
 * upstream, before it connects. Resolves to a connected `net.Socket` whose
 * next bytes are the destination's (any the upstream sent right after its
 * answer are put back into it); rejects with an UpstreamError (or AbortError),
 * leaving nothing open.
 */
export async function connectVia(upstream: string | UpstreamInit | Upstream, destination: UpstreamDestination, options: ConnectViaOptions = {}): Promise<net.Socket> {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
  const proxy = parseUpstream(upstream, options);
  const target = checkDestination(destination);
  const maxHeaderSize = checkMaxHeaderSize(options.maxHeaderSize);
  const deadline = new Deadline(proxy, options);
  try {
    const host = proxy.protocol === 'socks5' ? await resolveHere(target.host, options, deadline) : target.host;
    const { socket } = await openTunnel<unknown>(proxy, options, deadline, (write) =>
      proxy.protocol === 'http' ? httpConnect(write, proxy, host, target.port, maxHeaderSize) : socks5Handshake(write, proxy, COMMAND_CONNECT, { host, port: target.port }),
    );
    return socket;
  } finally {
    deadline.clear();
  }
}
