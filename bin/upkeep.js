#!/usr/bin/env node
// The `upkeep` command. In this repository Node (22.18+) runs the TypeScript source directly; the published
// package has no source, only the built JavaScript in dist/.
import { existsSync } from "node:fs";

const [command] = process.argv.slice(2);
// `init` sets Upkeep up in an app; every other command is the ledger's.
const name = command === "init" ? "init" : "cli";
const source = new URL(`../src/ledger/${name}.ts`, import.meta.url);
const module = await import(
  existsSync(source) ? source.href : new URL(`../dist/ledger/${name}.js`, import.meta.url).href
);
const run = name === "init" ? (argv) => module.init(argv.slice(1)) : module.main;

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
