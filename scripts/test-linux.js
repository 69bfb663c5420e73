#!/usr/bin/env node
// The compiled mocha suite in the official Linux build of each supported Node
// line (22, 24, 26), against the one addon binary the machine's own Node built
// (Node-API: the same binary loads in every line). Fails when any test fails
// or any run ends without a mocha summary.
//
//   node scripts/test-linux.js                  the suite in every line
//   node scripts/test-linux.js --newest         only in the newest line (test:cmake)
//   ... --specs=dist-test/a.test.js,...          only those specs (test:cmake)
// Extra environment for the suite comes from the caller's environment.
'use strict';
const { join } = require('node:path');
const { cache, LINUX_VERSIONS, officialNode } = require('./node-builds');
const { runLinuxSuite } = require('./suite');
const { exitWhenWritten } = require('./exit');

function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    // The official builds fetched here are linux-x64; elsewhere, the machine's own Node runs the suite.
    const ok = runLinuxSuite(`${process.platform}-${process.arch} Node ${process.versions.node} (this machine's)`, process.execPath, {}, join(cache, 'suite-local.log'));
    return exitWhenWritten(ok ? 0 : 1);
  }
  const versions = process.argv.includes('--newest') ? LINUX_VERSIONS.slice(-1) : LINUX_VERSIONS;
  const specs = process.argv.find((arg) => arg.startsWith('--specs='))?.slice('--specs='.length).split(',') ?? [];
  const build = process.env.WFP_REDIRECT_EXPECT_BUILD ?? 'node-gyp';
  const failed = [];
  const newest = versions[versions.length - 1];
  for (const version of versions) {
    // Specs whose subject does not depend on Node's line (test/helpers.ts, runsInOneLineOnly) run in the newest only.
    const lineIndependent = version === newest ? {} : { WFP_REDIRECT_LINE_INDEPENDENT: `elsewhere: the suite in Linux Node ${newest} runs it` };
    const env = { WFP_REDIRECT_EXPECT_BUILD: build, ...lineIndependent };
    const ok = runLinuxSuite(`Linux Node ${version} (${build} build)`, officialNode('linux', version), env, join(cache, `linux-node-${version}-${build}.log`), specs);
    if (!ok) failed.push(version);
  }
  console.log(
    failed.length === 0
      ? `\ntest:linux: the suite passed in Linux Node ${versions.join(', ')}`
      : `\ntest:linux: the suite FAILED in Linux Node ${failed.join(', ')}`,
  );
  exitWhenWritten(failed.length === 0 ? 0 : 1);
}

main();
