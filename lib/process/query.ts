// A lookup's query, checked: caller mistakes are TypeError / RangeError with a code.
import net from 'node:net';
import { invalidArgType, outOfRange } from '../errors';
import { unmapped } from '../sockaddr';
import type { ProcessEndpoint, ProcessLookupQuery } from './types';

export interface CheckedQuery {
  udp: boolean;
  local: ProcessEndpoint;
  remote: ProcessEndpoint | undefined;
}

function invalidValue(name: string, message: string): TypeError {
  return Object.assign(new TypeError(`The "${name}" argument ${message}`), { code: 'ERR_INVALID_ARG_VALUE' as const });
}

function endpoint(value: unknown, name: string): ProcessEndpoint {
  if (value === null || typeof value !== 'object') throw invalidArgType(name, 'an object { address, port }', value);
  const { address, port } = value as { address?: unknown; port?: unknown };
  if (typeof address !== 'string') throw invalidArgType(`${name}.address`, 'a string', address);
  const plain = unmapped(address);
  if (net.isIP(plain.replace(/%.*$/, '')) === 0) throw invalidValue(`${name}.address`, `must be an IP address. Received "${address.slice(0, 64)}"`);
  if (typeof port !== 'number') throw invalidArgType(`${name}.port`, 'a number', port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw outOfRange('ERR_OUT_OF_RANGE', `The "${name}.port" argument must be an integer from 0 to 65535. Received ${port}`);
  return { address: plain, port };
}

export function checkQuery(query: unknown): CheckedQuery {
  if (query === null || typeof query !== 'object') throw invalidArgType('query', 'an object { protocol, local, remote? }', query);
  const { protocol, local, remote } = query as Partial<ProcessLookupQuery>;
  if (protocol !== 'tcp' && protocol !== 'udp') throw invalidValue('query.protocol', `must be 'tcp' or 'udp'. Received ${String(protocol).slice(0, 32)}`);
  const checkedLocal = endpoint(local, 'query.local');
  const checkedRemote = remote === undefined ? undefined : endpoint(remote, 'query.remote');
  // No socket has its two ends in different families (a WFP redirect can change the family): such a remote says nothing.
  const sameFamily = checkedRemote !== undefined && net.isIPv4(checkedLocal.address) === net.isIPv4(checkedRemote.address);
  return { udp: protocol === 'udp', local: checkedLocal, remote: sameFamily ? checkedRemote : undefined };
}
