// The facts the TypeScript and the C share (facts.json, scripts/generate-facts.mjs): the generated C header and
// TypeScript module must give the same bytes for every fact, the project's own and values made to trip an escaper
// (control characters before hex digits, quotes, backslashes, printf's %, a template's backtick and ${).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { PROJECT } from './helpers/runbox.js';

interface Fact {
  name?: string;
  value?: number | string | string[];
  template?: string;
  params?: Record<string, 'int' | 'string'>;
  enum?: string;
  members?: Record<string, number>;
  about: string;
}
interface Facts {
  about: string;
  sections: Array<{ title: string; facts: Fact[] }>;
}

/** What a template's fields are given on both sides. */
const ARGUMENTS = { int: 42, string: 'a/b %d `${x}`' };

const hex = (text: string) => Buffer.from(text, 'utf8').toString('hex');

/** A C program that prints every fact of facts.h as `NAME HEX-OF-ITS-BYTES` lines. */
function cPrinter(facts: Facts): string {
  const lines = ['#include <stdio.h>', '#include <string.h>', '#include "facts.h"', '',
    'static void put(const char *name, const char *text) {', '\tprintf("%s ", name);',
    '\tfor (const unsigned char *p = (const unsigned char *)text; *p; p++) printf("%02x", *p);', '\tputs("");', '}',
    '', 'int main(void) {', '\tchar out[4096];'];
  for (const fact of facts.sections.flatMap((section) => section.facts)) {
    if (fact.members) {
      for (const name of Object.keys(fact.members)) lines.push(`\tsnprintf(out, sizeof out, "%d", (int)${name}); put("${name}", out);`);
    } else if (fact.template !== undefined) {
      const fields = [...fact.template.matchAll(/\{([a-z]+)\}/g)].map((match) => fact.params![match[1]!]!);
      const args = fields.map((type) => (type === 'int' ? String(ARGUMENTS.int) : JSON.stringify(ARGUMENTS.string))).join(', ');
      lines.push(`\tsnprintf(out, sizeof out, ${fact.name}, ${args}); put("${fact.name}", out);`);
    } else if (Array.isArray(fact.value)) {
      lines.push(`\t{ static const char *const v[] = ${fact.name}; for (size_t i = 0; i < ${fact.name}_COUNT; i++) put("${fact.name}", v[i]); }`);
    } else if (typeof fact.value === 'number') {
      lines.push(`\tsnprintf(out, sizeof out, "%lld", (long long)${fact.name}); put("${fact.name}", out);`);
    } else {
      lines.push(`\tput("${fact.name}", ${fact.name});`);
      lines.push(`\tprintf("%zu\\n", sizeof ${fact.name} - 1);`);
    }
  }
  return [...lines, '\treturn 0;', '}', ''].join('\n');
}

/** The same lines from the generated TypeScript module. */
function tsLines(facts: Facts, module: Record<string, unknown>): string[] {
  const lines: string[] = [];
  for (const fact of facts.sections.flatMap((section) => section.facts)) {
    if (fact.members) {
      for (const name of Object.keys(fact.members)) lines.push(`${name} ${hex(String(module[name]))}`);
    } else if (fact.template !== undefined) {
      const fields = [...fact.template.matchAll(/\{([a-z]+)\}/g)].map((match) => ARGUMENTS[fact.params![match[1]!]!]);
      lines.push(`${fact.name} ${hex((module[fact.name!] as (...args: unknown[]) => string)(...fields))}`);
    } else if (Array.isArray(fact.value)) {
      for (const item of module[fact.name!] as string[]) lines.push(`${fact.name} ${hex(item)}`);
    } else if (typeof fact.value === 'number') {
      lines.push(`${fact.name} ${hex(String(module[fact.name!]))}`);
    } else {
      const text = module[fact.name!] as string;
      lines.push(`${fact.name} ${hex(text)}`, String(Buffer.byteLength(text)));
    }
  }
  return lines;
}

/** Generates both sides from facts, compiles and runs the C, loads the TypeScript: their lines, and facts' own. */
async function bothSides(facts: Facts): Promise<{ c: string[]; ts: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-facts-'));
  try {
    const source = join(dir, 'facts.json');
    writeFileSync(source, JSON.stringify(facts));
    execFileSync('node', [join(PROJECT, 'scripts', 'generate-facts.mjs'), source, join(dir, 'facts.ts'), join(dir, 'facts.h')]);
    writeFileSync(join(dir, 'printer.c'), cPrinter(facts));
    execFileSync('gcc', ['-std=gnu11', '-Wall', '-Wextra', '-Werror', `-I${dir}`, '-o', join(dir, 'printer'), join(dir, 'printer.c')]);
    const c = execFileSync(join(dir, 'printer'), { encoding: 'utf8' }).trimEnd().split('\n');
    const js = ts.transpileModule(readFileSync(join(dir, 'facts.ts'), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const module = await import(`data:text/javascript;base64,${Buffer.from(js).toString('base64')}`) as Record<string, unknown>;
    return { c, ts: tsLines(facts, module) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the project\'s facts are the same bytes in the generated C header and TypeScript module', async (t) => {
  const facts = JSON.parse(readFileSync(join(PROJECT, 'facts.json'), 'utf8')) as Facts;
  const sides = await bothSides(facts);
  t.true(sides.c.length > 40);
  t.deepEqual(sides.c, sides.ts);
});

test('values that trip escapers come out the same on both sides', async (t) => {
  const facts: Facts = {
    about: 'hostile values',
    sections: [{
      title: 'a title with */ in it',
      facts: [
        { name: 'CONTROL_THEN_HEX', value: '\u001fface\u0001\u00027', about: 'a control character followed by hex digits' },
        { name: 'QUOTES', value: 'say "hi" \\ and \'bye\'', about: 'quotes and a backslash' },
        { name: 'PERCENT', value: '100% %s %%', about: 'printf conversions in a plain string' },
        { name: 'NEWLINES', value: 'a\nb\r\n\t', about: 'line ends and a tab' },
        { name: 'UNICODE', value: 'é ☃ 😀 \u007f', about: 'non-ASCII and DEL' },
        { name: 'LIST', value: ['"a"', 'b\\', '\u001fc'], about: 'a list */ of escapes' },
        { name: 'TEMPLATE', template: '`{path}` ${ x } 100% {n}\u001f{m}', params: { path: 'string', n: 'int', m: 'int' }, about: 'a template with %, backticks and ${' },
        { name: 'BIG', value: 2147483647, about: 'the largest int' },
        { enum: 'kinds', members: { KIND_A: 1, KIND_B: 255 }, about: 'an enum' },
      ],
    }],
  };
  const sides = await bothSides(facts);
  t.deepEqual(sides.c, sides.ts);
});
