// Where an accepted connection was going before it was redirected to this
// process: one call for both systems. Linux: netfilter's record of an iptables
// REDIRECT/DNAT (SO_ORIGINAL_DST), or the socket's local address under TPROXY.
// Windows: the WFP redirect context, decoded in a named layout
// (lib/context-layouts.ts) or by your decoder.
import net from 'node:net';
import { decodeContext, type ContextLayout, type DecodedContext } from './context-layouts';
import { notRedirected, outOfRange, redirectedWithoutContext, WfpRedirectError } from './errors';
import { binding } from './native';
import { queryRedirectContextSync } from './redirect';
import { unmapped } from './sockaddr';
import { resolveSocketHandle } from './socket-handle';

/**
 * Where the connection was going. From a WFP context, what else its layout
 * carries: `originalSource` (wfpsampler) and `processId` (wfpr).
 */
export type OriginalDestination = DecodedContext;

export interface OriginalDestinationOptions {
  /**
   * Linux: for sockets of an iptables TPROXY rule, whose local address is the
   * original destination, answer the local address when netfilter has no other.
   */
  tproxy?: boolean | undefined;
  /**
   * Windows: decodes your callout driver's context (default: a SOCKADDR at
   * `contextOffset`). `family` may be left out when `address` is an IP address.
   */
  decode?: ((context: Buffer) => { address: string; port: number; family?: 'IPv4' | 'IPv6' }) | undefined;
  /** Windows: where the SOCKADDR starts in the context (default 0). */
  contextOffset?: number | undefined;
  /**
   * Windows: the layout your callout driver writes: 'sockaddr', 'sockaddr@OFFSET',
   * 'wfpsampler' (Microsoft's WFPSampler) or 'wfpr' (docs/redirectors.md).
   * Give it, or `decode` / `contextOffset`, not both.
   */
  layout?: ContextLayout | undefined;
}

function familyOf(address: string): 'IPv4' | 'IPv6' {
  return net.isIPv6(address) ? 'IPv6' : 'IPv4';
}

/** Checks what a `decode` option returned; the family is the address's own unless given. */
function decoded(result: unknown): OriginalDestination {
  const { address, port, family } = (result ?? {}) as { address?: unknown; port?: unknown; family?: unknown };
  const bad = (why: string) =>
    Object.assign(new TypeError(`The decode option returned ${why}; it must return { address, port } (and family when address is not an IP address)`), {
      code: 'ERR_INVALID_RETURN_VALUE',
    });
  if (typeof address !== 'string' || address === '') throw bad('no address');
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw bad(`port ${String(port)}`);
  if (family !== undefined && family !== 'IPv4' && family !== 'IPv6') throw bad(`family ${String(family)}`);
  const kind = net.isIP(address);
  if (family === undefined && kind === 0) throw bad(`"${address}", not an IP address, without a family`);
  if (family !== undefined && kind !== 0 && family !== familyOf(address)) throw bad(`family ${family} for ${address}`);
  return { family: family ?? familyOf(address), address, port };
}

function fromWfpContext(socket: net.Socket, options: OriginalDestinationOptions): OriginalDestination {
  let context: Buffer;
  try {
    context = queryRedirectContextSync(socket);
  } catch (error) {
    if (error instanceof WfpRedirectError && error.code === 'WSAEINVAL') {
      throw notRedirected('the socket has no WFP redirect context (no callout redirected it to this process)', error);
    }
    // WFPSampler's helper reads this answer as "redirected, but no context": so does this package.
    if (error instanceof WfpRedirectError && error.code === 'FWP_E_NOT_FOUND') throw redirectedWithoutContext(error);
    throw error;
  }
  return originalDestinationFromContext(context, options);
}

/**
 * The original destination in a WFP redirect context: what
 * getOriginalDestination answers on Windows, for a context you hold (a UDP
 * flow's, from its first datagram). Throws `ERR_NOT_REDIRECTED` for an empty one.
 */
export function originalDestinationFromContext(
  context: Buffer,
  options: Pick<OriginalDestinationOptions, 'decode' | 'contextOffset' | 'layout'> = {},
): OriginalDestination {
  if (options.layout !== undefined && (options.decode !== undefined || options.contextOffset !== undefined)) {
    const error = new TypeError('Give the context layout, or decode / contextOffset, not both: layout "sockaddr@OFFSET" is contextOffset');
    throw Object.assign(error, { code: 'ERR_INVALID_ARG_VALUE' as const });
  }
  if (context.length === 0) throw notRedirected('the WFP redirect context is empty');
  if (options.decode) return decoded(options.decode(context));
  return decodeContext(context, options.layout ?? sockaddrAt(options.contextOffset ?? 0));
}

/** The layout `contextOffset` stands for; a context is at most 64 KiB, so no SOCKADDR starts past 65535. */
function sockaddrAt(offset: number): ContextLayout {
  if (!Number.isInteger(offset) || offset < 0 || offset > 65535) {
    throw outOfRange('ERR_OUT_OF_RANGE', `The "contextOffset" option must be an integer from 0 to 65535. Received ${String(offset)}`);
  }
  return `sockaddr@${offset}`;
}

function fromNetfilter(socket: net.Socket, handle: number, options: OriginalDestinationOptions): OriginalDestination {
  const local = { address: unmapped(socket.localAddress!), port: socket.localPort! };
  const found = binding.originalDestination(handle);
  // A connection netfilter did not rewrite is reported with its own local address.
  if (found && !(found.address === local.address && found.port === local.port)) {
    return { family: familyOf(found.address), ...found };
  }
  if (options.tproxy) return { family: familyOf(local.address), ...local };
  throw notRedirected(
    found
      ? 'netfilter shows no REDIRECT or DNAT for it (its destination is this socket itself); for TPROXY pass { tproxy: true }'
      : 'netfilter keeps no record of it (no REDIRECT or DNAT rule matched, or connection tracking is not loaded)',
  );
}

/**
 * Where an accepted connection was going before the kernel redirected it to
 * this process: netfilter on Linux (IPv4 and IPv6), the WFP redirect context
 * on Windows. Rejects with `ERR_NOT_REDIRECTED` when it was not redirected.
 */
export async function getOriginalDestination(socket: net.Socket, options: OriginalDestinationOptions = {}): Promise<OriginalDestination> {
  // The context query validates and resolves the socket itself.
  if (process.platform === 'win32') return fromWfpContext(socket, options);
  const handle = resolveSocketHandle(socket);
  if (!binding.hasNetfilter) {
    throw new WfpRedirectError(
      `getOriginalDestination knows Linux (netfilter) and Windows (WFP); ${process.platform} is neither`,
      { code: 'ERR_WFP_UNSUPPORTED_PLATFORM' },
    );
  }
  return fromNetfilter(socket, handle, options);
}
