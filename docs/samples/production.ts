// Production on PostgreSQL with several processes: every process opens the same ledger with the same secret; one of
// them sequences facts (a lease moves to another when it dies), and each replays the pages its own browsers show.
import { createUpkeep, type Upkeep } from "../../src/index.ts";

export async function startProcess(database: string, secret: string): Promise<Upkeep> {
  return createUpkeep({
    database, // postgres://… — the same for every process
    secret, // at least 32 characters, the same for every process
    install: false, // run `npx upkeep install --database …` once per deploy instead
    mode: "production", // refused pages are served as ordinary pages and logged once
    retentionMs: 7 * 24 * 3600 * 1000, // browsers offline longer than this reload instead of resuming
    origins: ["https://app.example"], // the origins your pages are served from
  });
}
