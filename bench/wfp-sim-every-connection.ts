// Loaded with --require into a proxy in Windows node.exe by the relay
// benchmark (bench/relay.ts --windows): puts the simulated WFP service
// (test/native/wfp_sim.cc) under the process's wfp_redirect.node. With
// WFP_SIM_REDIRECT_EVERY_CONNECTION_TO=HOST:PORT (IPv4) every connection is
// redirected, its context a SOCKADDR_IN of HOST:PORT; without it none is (the
// queries answer WSAEINVAL, as for a connection nobody redirected).
import { join } from 'node:path';
import net from 'node:net';

const { wfpSim } = require(join(__dirname, '..', 'dist-test', 'wfp-sim.js')) as { wfpSim(): { redirectEvery(records: Uint8Array, context: Uint8Array): void } };

const sim = wfpSim();
const target = process.env.WFP_SIM_REDIRECT_EVERY_CONNECTION_TO;
if (target) {
  const [host, port] = target.split(':');
  if (net.isIPv4(host) === false) throw new Error(`WFP_SIM_REDIRECT_EVERY_CONNECTION_TO wants IPv4:PORT, not ${target}`);
  // SOCKADDR_IN: family (little-endian), port and address (network order), 8 bytes of zero.
  const context = Buffer.alloc(16);
  context.writeUInt16LE(2, 0);
  context.writeUInt16BE(Number(port), 2);
  Buffer.from(host.split('.').map(Number)).copy(context, 4);
  // Records of a typical size: opaque to the proxy, which carries them to the outbound connection.
  const records = Buffer.alloc(128, 0x5a);
  sim.redirectEvery(records, context);
}
