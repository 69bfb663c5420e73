// Windows: the owner-pid tables. A redirected client's socket is known by its
// local endpoint (a WFP connect redirect leaves it in place; what the table
// shows as the remote end may be the original destination or the proxy), so
// rows are matched on it, the proxy's own rows left out (its outbound
// sockets can share a local port), and a row whose remote end is the one
// asked is preferred. Rows of more than one process that cannot be told
// apart answer unknown.
import net from 'node:net';
import { win32 } from 'node:path';
import { binding } from '../native';
import type { CheckedQuery } from './query';
import type { ProcessInfo } from './types';

interface Row {
  localAddress: string;
  localPort: number;
  remoteAddress?: string;
  remotePort?: number;
  pid: number;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

function plain(address: string): string {
  return (address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address).replace(/%.*$/, '');
}

/** The one pid among `rows`, or undefined when there is none or more than one. */
function onlyPid(rows: Row[]): number | undefined {
  const pids = new Set(rows.map((row) => row.pid));
  return pids.size === 1 ? rows[0]!.pid : undefined;
}

/** The pid of the client's socket, from the table rows on its local port. */
export function choosePid(rows: Row[], { udp, local, remote }: CheckedQuery, ownPid: number): number | undefined {
  const address = plain(local.address);
  const theirs = rows.filter((row) => row.pid !== 0 && row.pid !== ownPid && row.localPort === local.port);
  const exact = theirs.filter((row) => plain(row.localAddress) === address);
  if (udp) return onlyPid(exact.length > 0 ? exact : theirs.filter((row) => WILDCARDS.has(plain(row.localAddress))));
  const toRemote = remote ? exact.filter((row) => row.remotePort === remote.port && plain(row.remoteAddress ?? '') === plain(remote.address)) : [];
  return onlyPid(toRemote.length > 0 ? toRemote : exact);
}

export function lookupWindows(query: CheckedQuery): ProcessInfo | undefined {
  const ipv4 = net.isIPv4(query.local.address);
  let rows = binding.ownerPidRows(query.udp, ipv4 ? 4 : 6, query.local.port) as Row[];
  // A dual-stack socket's IPv4 connection is in the IPv6 table, its address mapped.
  if (ipv4 && choosePid(rows, query, process.pid) === undefined) rows = rows.concat(binding.ownerPidRows(query.udp, 6, query.local.port) as Row[]);
  const pid = choosePid(rows, query, process.pid);
  if (pid === undefined) return undefined;
  return describeWindowsProcess(pid);
}

/** Process `pid`'s image name and path (OpenProcess with PROCESS_QUERY_LIMITED_INFORMATION); undefined when it is gone or refused. */
export function describeWindowsProcess(pid: number): ProcessInfo | undefined {
  const path = binding.processImagePath(pid);
  if (path === null) return undefined;
  return { pid, name: win32.basename(path), path };
}
