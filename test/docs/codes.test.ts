// docs/codes.md against the source: each of its tables holds exactly the codes of one union, read from the source's
// own lists (ERROR_CODES, RELOAD_REASONS, TRANSPORT_ERROR_CODES, WIRE.close, DEOPTIMIZATIONS, MISS_REASONS), so a code
// added without a row, or a row left after its code is gone, fails here. Each error code's row names the class that
// carries it, checked by constructing that class.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { MISS_REASONS } from "../../src/analysis/types.ts";
import { RELOAD_CODES } from "../../src/client/constants.ts";
import { WIRE } from "../../src/constants.ts";
import { DEOPTIMIZATIONS } from "../../src/deliver/stats.ts";
import * as errors from "../../src/errors.ts";
import { ERROR_CODES, UpkeepError } from "../../src/errors.ts";
import { RELOAD_REASONS, TRANSPORT_ERROR_CODES } from "../../src/protocol.ts";

const page = readFileSync(new URL("../../docs/codes.md", import.meta.url), "utf8");

/** The rows of the table under `## heading`: each row's cells, backticks removed. */
function rows(heading: string): string[][] {
  const start = page.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/codes.md has no section "## ${heading}"`);
  const end = page.indexOf("\n## ", start + 1);
  const section = page.slice(start, end < 0 ? undefined : end);
  return section
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) =>
      line
        .slice(1, -1)
        .split(" | ")
        .map((cell) => cell.trim().replace(/^`|`$/g, "")),
    );
}

/** The table's first column equals `codes`, naming what is missing and what is extra. */
function assertDocuments(heading: string, codes: readonly string[]): void {
  const documented = rows(heading).map(([code]) => code as string);
  const missing = codes.filter((code) => !documented.includes(code));
  const extra = documented.filter((code) => !codes.includes(code));
  assert.deepEqual(
    { missing, extra },
    { missing: [], extra: [] },
    `docs/codes.md, "${heading}": add a row for each missing code (what it means and what to do), remove the extra ones`,
  );
  assert.equal(new Set(documented).size, documented.length, `docs/codes.md, "${heading}": a code has two rows`);
}

const refused = (code: string) => code.startsWith("refused_");

test("every error code has a row naming its class, and every error class is named", () => {
  assertDocuments(
    "Error codes",
    ERROR_CODES.filter((code) => !refused(code)),
  );
  const classes = Object.entries(errors).filter(
    ([, value]) => typeof value === "function" && value.prototype instanceof UpkeepError,
  ) as [string, new (...args: any[]) => UpkeepError][];
  for (const [code, name] of rows("Error codes")) {
    const ErrorClass = classes.find(([exported]) => exported === name)?.[1];
    assert.ok(ErrorClass, `docs/codes.md names ${name} for ${code}, which is not an error class of src/errors.ts`);
    // Classes that take the code's problem first (capture_, token_) get it; the others take context only.
    const problem = /^(capture|token)_(.+)$/.exec(code as string)?.[2];
    const error = problem ? new ErrorClass(problem, "x", "x") : new ErrorClass("x", ["x"], "x");
    assert.equal(error.code, code, `${name} carries ${error.code}, not ${code}`);
  }
  const named = new Set(rows("Error codes").map(([, name]) => name));
  named.add("RefusedBoundaryError"); // its codes have their own table
  for (const [name] of classes) assert.ok(named.has(name), `docs/codes.md names no code of ${name}`);
});

test("every refusal code has a row", () => {
  assertDocuments("Refusals", ERROR_CODES.filter(refused));
  for (const [code] of rows("Refusals")) {
    const error = new errors.RefusedBoundaryError((code as string).slice("refused_".length) as never, "", "", "");
    assert.equal(error.code, code);
  }
});

test("every wire error code of the transport has a row, and the client reloads only on error codes", () => {
  assertDocuments("Wire error codes", TRANSPORT_ERROR_CODES);
  for (const code of RELOAD_CODES) assert.ok((ERROR_CODES as readonly string[]).includes(code), code);
});

test("every close code has a row with its name", () => {
  assertDocuments(
    "Close codes",
    Object.values(WIRE.close).map((code) => String(code)),
  );
  for (const [code, name] of rows("Close codes")) {
    assert.equal(String(WIRE.close[name as keyof typeof WIRE.close]), code, `close code ${code} is not ${name}`);
  }
});

test("every reload reason has a row", () => {
  // ReloadReason is RELOAD_REASONS and the family `status_${number}`, documented as one row.
  assertDocuments("Reload reasons", [...RELOAD_REASONS, "status_<n>"]);
});

test("every deoptimization and miss reason has a row", () => {
  assertDocuments("Deoptimizations", DEOPTIMIZATIONS);
  assertDocuments("Miss reasons", MISS_REASONS);
});
