// The published types as a consumer meets them: test/types/consumer.ts (every
// export) and every ```ts snippet of README.md, extracted and compiled as
// written, against dist/index.d.ts under the strictest settings a consumer may
// have: strict, exactOptionalPropertyTypes, and no ambient types (`types: []`,
// TypeScript 7's default), so Node's types must come from the package's own
// reference to them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWindows, runsInOneLineOnly } from './helpers';
import { root } from './proxy-process';

/** The ```ts blocks of a Markdown text, in order. */
export function snippets(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1]);
}

function compile(files: Record<string, string>): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wfp-redirect-types-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const tsconfig = {
      compilerOptions: {
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        types: [],
        typeRoots: [join(root, 'node_modules', '@types')],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        noEmit: true,
        skipLibCheck: false,
        paths: { 'wfp-redirect': [join(root, 'dist', 'index.d.ts')] },
      },
      files: Object.keys(files),
    };
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    const run = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', dir], { encoding: 'utf8', timeout: 120_000 });
    return { status: run.status, output: `${run.stdout}${run.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the published types, as a strict consumer compiles them', function () {
  this.timeout(180_000);

  before(function () {
    if (isWindows) {
      console.warn('    !!! type checking is the same on every platform and slow under Wine: it runs in the Linux suite only');
      this.skip();
    }
    runsInOneLineOnly(this, 'type checking (tsc)');
  });

  it('every export, used as the README does, with the mistakes the types must refuse refused', function () {
    const { status, output } = compile({ 'consumer.ts': readFileSync(join(root, 'test', 'types', 'consumer.ts'), 'utf8') });
    assert.equal(status, 0, output);
  });

  it('every TypeScript snippet of the README, as written', function () {
    const found = snippets(readFileSync(join(root, 'README.md'), 'utf8'));
    assert.ok(found.length >= 2, `${found.length} snippets found`);
    // Each its own module, so that two snippets may declare the same names.
    const files = Object.fromEntries(found.map((text, index) => [`snippet-${index + 1}.ts`, `${text}\nexport {};\n`]));
    const { status, output } = compile(files);
    assert.equal(status, 0, output);
  });
});
