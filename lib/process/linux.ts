// Linux: sock_diag names the client's socket by its exact 4-tuple (inode and
// owner uid); a scan of /proc/<pid>/fd finds the process holding that inode.
// The holder of a socket is cached by inode and checked (its descriptor still
// links to that inode) before every use, so a cached answer is never another
// socket's; processes that held recent sockets are scanned first.
import { readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { binding } from '../native';
import type { CheckedQuery } from './query';
import type { ProcessInfo, ProcessLookupStats } from './types';

interface Holder {
  pid: number;
  fd: number;
}

/** Pids remembered to scan first. */
const RECENT_PIDS = 16;

export class LinuxProcessLookup {
  private readonly holders = new Map<number, Holder>();
  private readonly recent: number[] = [];

  constructor(
    private readonly budget: number,
    private readonly cacheSize: number,
    private readonly stats: ProcessLookupStats,
  ) {}

  async lookup({ udp, local, remote }: CheckedQuery): Promise<ProcessInfo | undefined> {
    // TCP's socket is named by both ends; an unconnected UDP socket answers for any peer.
    if (!remote && !udp) return undefined;
    const peer = remote ?? { address: local.address.includes(':') ? '::' : '0.0.0.0', port: 0 };
    const identity = binding.socketIdentity(udp, local.address, local.port, peer.address, peer.port);
    if (!identity) return undefined;
    // Twice at most: the descriptor found may be gone by the time it is checked while the socket is still held
    // through another (a shell's `>&3` dups it to 1 for one command), or by the process it was handed to.
    for (let scan = 0; scan < 2; scan++) {
      const holder = await this.holderOf(identity.inode, identity.uid);
      if (!holder) return undefined;
      const info = describeLinuxProcess(holder.pid);
      if (info && binding.holdsSocket(holder.pid, holder.fd, identity.inode)) return info;
      // It let go of that descriptor, or exited (its pid then maybe another's), while it was read: never answered.
      this.holders.delete(identity.inode);
    }
    return undefined;
  }

  private async holderOf(inode: number, uid: number): Promise<Holder | undefined> {
    const cached = this.holders.get(inode);
    if (cached) {
      if (binding.holdsSocket(cached.pid, cached.fd, inode)) {
        this.stats.cacheHits++;
        return cached;
      }
      this.stats.cacheStale++;
      this.holders.delete(inode);
    }
    const scan = await binding.findSocketHolder(inode, uid, this.recent, this.budget);
    this.stats.examined += scan.examined;
    if (scan.exhausted) this.stats.exhausted++;
    if (scan.pid === 0) return undefined;
    const holder = { pid: scan.pid, fd: scan.fd };
    this.remember(inode, holder);
    return holder;
  }

  private remember(inode: number, holder: Holder): void {
    if (this.holders.size >= this.cacheSize) this.holders.delete(this.holders.keys().next().value!);
    this.holders.set(inode, holder);
    const at = this.recent.indexOf(holder.pid);
    if (at >= 0) this.recent.splice(at, 1);
    this.recent.unshift(holder.pid);
    if (this.recent.length > RECENT_PIDS) this.recent.pop();
  }
}

/** The name and path of process `pid`, or undefined when it is gone. */
export function describeLinuxProcess(pid: number): ProcessInfo | undefined {
  let comm: string;
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'latin1').replace(/\n$/, '');
  } catch {
    return undefined;
  }
  let path: string | undefined;
  try {
    path = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    path = undefined; // a kernel thread, or not ours to read
  }
  // The image's name in full (comm is cut at 15 bytes, and a program may rename it); comm where the image is unknown.
  const name = path ? basename(path.replace(/ \(deleted\)$/, '')) : comm;
  return { pid, name, path };
}
