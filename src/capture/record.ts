// Recording a captured statement on the frame that made it: one path for the Kysely dialect (dialect.ts) and the
// capture at the driver (drivers/): a write during a render is refused, a read of an uncaptured table is refused,
// and a read's dependency is added to the frame and its page with the key that says which reads are the same.

import type { QueryDependency } from "../analysis/types.ts";
import { valuesKey } from "../analysis/values.ts";
import { RefusedBoundaryError } from "../errors.ts";
import type { FrameCapture } from "./context.ts";

/** Every replay of the page would repeat the write, whose fact would make the page dirty again. */
export function refuseWrite(frame: FrameCapture, sql: string): void {
  frame.page.refusals.push(
    new RefusedBoundaryError(
      "write_in_render",
      sql,
      "the render of a live page wrote to the database; replaying the page would repeat the write",
      "do the write in a POST handler (or before the page is rendered, outside the live GET)",
    ),
  );
}

/** Adds a read's dependency to its frame, or refuses it when it reads a table whose changes are not captured. */
export function admitRead(
  frame: FrameCapture,
  dep: QueryDependency,
  sql: string,
  parameters: unknown,
  captured: ReadonlySet<string> | undefined,
  readsKey?: string,
): void {
  const capture = frame.page;
  const uncaptured = captured ? [...new Set(dep.reads.map((r) => r.table))].filter((t) => !captured.has(t)) : [];
  if (uncaptured.length > 0) {
    capture.refusals.push(
      new RefusedBoundaryError(
        "uncaptured_source",
        sql,
        `the page reads ${uncaptured.join(", ")}, whose changes Upkeep does not capture (captured: ${[...(captured ?? [])].sort().join(", ") || "none"})`,
        "read captured tables: a table added after install is captured after `npx upkeep install` (or the running ledger's refresh); remove excluded tables from `exclude`; query the base tables instead of a view, a foreign table or a partitioned table",
      ),
    );
    return;
  }
  // The same SQL with the same parameters reads the same: planning decides such reads once per fact.
  dep.readsKey = readsKey ?? `sql ${sql}\u0000${valuesKey(parameters)}`;
  capture.queries.push(dep);
  frame.queries.push(dep);
}
