#!/usr/bin/env node
// The `upkeep` command. In this repository Node (22.18+) runs the TypeScript source directly; the published
// package has no source, only the built JavaScript in dist/.
import { existsSync } from "node:fs";

const source = new URL("../src/ledger/cli.ts", import.meta.url);
const { main } = await import(
  existsSync(source) ? source.href : new URL("../dist/ledger/cli.js", import.meta.url).href
);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
