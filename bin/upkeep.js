#!/usr/bin/env node
// The `upkeep` command (Node 24 runs the TypeScript source directly).
import { main } from "../src/ledger/cli.ts";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
