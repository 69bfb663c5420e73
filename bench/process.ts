// The process lookup's cost per connection (Linux: sock_diag, then the /proc
// scan for the socket's holder; Windows: the owner-pid tables): a helper
// process opens CONNECTIONS TCP connections to a server here, and each is
// looked up (1) by a fresh lookup (no cache, no recent pids: the scan reads
// /proc until it finds the holder), (2) by one shared lookup (after the first,
// the holder's pid is scanned first), (3) the same sockets again (cached), (4)
// a scan for a socket nobody holds, which reads every descriptor (the worst
// case; a lookup stops at its budget), and (5) a remote client (no OS call).
//   node dist-bench/process.js [--quick]
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { ProcessLookup } from '../dist/index';
import { binding } from '../dist/native';

const quick = process.argv.includes('--quick');
const CONNECTIONS = quick ? 20 : 200;

function openFds(): number {
  if (process.platform !== 'linux') return NaN;
  let fds = 0;
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      fds += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // gone
    }
  }
  return fds;
}

async function main(): Promise<void> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((socket) => accepted.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const helper = spawn(process.execPath, ['-e', `for (let i = 0; i < ${CONNECTIONS}; i++) require('net').connect(${port}, '127.0.0.1').on('error', () => {}); setTimeout(() => {}, 120000)`], { stdio: 'ignore' });
  while (accepted.length < CONNECTIONS) await new Promise((resolve) => setTimeout(resolve, 20));
  const queries = accepted.map((socket) => ({ protocol: 'tcp' as const, local: { address: socket.remoteAddress!, port: socket.remotePort! }, remote: { address: socket.localAddress!, port: socket.localPort! } }));
  const processes = process.platform === 'linux' ? readdirSync('/proc').filter((name) => /^\d+$/.test(name)).length : NaN;
  const host = process.platform === 'linux' ? `this host: ${processes} processes, ${openFds()} open descriptors` : 'Windows: every lookup reads the owner-pid table (no scan, no cache: the rows below differ only by chance)';
  console.log(`process lookup, ${CONNECTIONS} connections of one helper process${quick ? ' (quick: not a measurement)' : ''}; ${host}`);

  const row = async (label: string, run: () => Promise<{ examined: number }>) => {
    const started = process.hrtime.bigint();
    const { examined } = await run();
    const us = Number(process.hrtime.bigint() - started) / 1000 / CONNECTIONS;
    console.log(`${label.padEnd(58)} ${us.toFixed(0).padStart(8)} us per lookup  ${(examined / CONNECTIONS).toFixed(0).padStart(6)} descriptors read`);
  };
  await row('fresh lookup each time (full scan until the holder)', async () => {
    let examined = 0;
    for (const query of queries) {
      const lookup = new ProcessLookup();
      if ((await lookup.lookup(query))?.pid !== helper.pid) throw new Error('the lookup did not find the helper');
      examined += lookup.stats.examined;
    }
    return { examined };
  });
  const shared = new ProcessLookup();
  await row('one shared lookup (recent holders scanned first)', async () => {
    for (const query of queries) if ((await shared.lookup(query))?.pid !== helper.pid) throw new Error('the lookup did not find the helper');
    return { examined: shared.stats.examined };
  });
  const again = shared.stats.examined;
  await row('the same sockets again (cached, verified)', async () => {
    for (const query of queries) await shared.lookup(query);
    return { examined: shared.stats.examined - again };
  });
  // The worst case short of the budget: a socket no process holds (inode 1 is never a socket), so the scan reads every descriptor.
  if (process.platform === 'linux') {
    await row('a full scan that finds no holder (every descriptor read)', async () => {
      let examined = 0;
      for (let i = 0; i < CONNECTIONS; i++) examined += (await binding.findSocketHolder(1, 0, [], 1_000_000)).examined;
      return { examined };
    });
  }
  await row('a remote client (no OS call)', async () => {
    for (let i = 0; i < CONNECTIONS; i++) await shared.lookup({ protocol: 'tcp', local: { address: '192.0.2.1', port: 40000 + i }, remote: { address: '127.0.0.1', port } });
    return { examined: 0 };
  });
  helper.kill();
  for (const socket of accepted) socket.destroy();
  server.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
