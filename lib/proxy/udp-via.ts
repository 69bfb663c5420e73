// A UDP flow's outbound side through a SOCKS5 upstream: a UDP ASSOCIATE made
// when the flow opens, with the flow's records and mark on its TCP control
// connection. Shaped like the part of RedirectUdpSocket the relay uses, so a
// flow sends and hears replies the same way either side. Datagrams sent
// before the association is up wait, up to a bound.
import { EventEmitter } from 'node:events';
import { coded } from './endpoints';
import { associateUdp, type Socks5UdpAssociation } from '../upstream/socks5-udp';
import type { Upstream } from '../upstream/url';

/** Datagrams a flow may send before its association is up; more fail. */
export const PENDING_DATAGRAMS = 64;

type SendCallback = (error: Error | null) => void;

export class AssociatedFlowSocket extends EventEmitter {
  private association: Socks5UdpAssociation | undefined;
  private pending: Array<{ data: Uint8Array; port: number; host: string; callback: SendCallback }> = [];
  private closed = false;

  constructor(upstream: Upstream, options: { redirectRecords: Buffer | undefined; mark: number | undefined; handshakeTimeout: number | undefined }) {
    super();
    associateUdp(upstream, options).then(
      (association) => this.opened(association),
      (error: Error) => this.failed(error),
    );
  }

  private opened(association: Socks5UdpAssociation): void {
    if (this.closed) return association.close();
    this.association = association;
    association.on('message', (payload, from) => this.emit('message', payload, from));
    association.on('close', (error?: Error) => {
      if (!this.closed) this.emit('error', error ?? coded('the upstream ended the UDP association', 'ERR_SOCKS_UDP_CLOSED'));
    });
    const waiting = this.pending;
    this.pending = [];
    for (const { data, port, host, callback } of waiting) this.send(data, port, host, callback);
  }

  private failed(error: Error): void {
    const waiting = this.pending;
    this.pending = [];
    for (const { callback } of waiting) callback(error);
    if (!this.closed) this.emit('error', error);
  }

  send(data: Uint8Array, port: number, host: string, callback: SendCallback): void {
    if (this.closed) return callback(coded('the flow is closed', 'ERR_SOCKET_DGRAM_NOT_RUNNING'));
    if (this.association) {
      try {
        this.association.send(data, port, host, callback);
      } catch (error) {
        callback(error as Error);
      }
      return;
    }
    if (this.pending.length >= PENDING_DATAGRAMS) {
      return callback(coded(`more than ${PENDING_DATAGRAMS} datagrams before the upstream's UDP association was up`, 'ERR_UDP_ASSOCIATION_PENDING'));
    }
    this.pending.push({ data, port, host, callback });
  }

  close(): void {
    this.closed = true;
    this.pending = [];
    this.association?.close();
  }
}
