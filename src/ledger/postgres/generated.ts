// Logical capture and STORED generated columns. pgoutput leaves them out of its messages (always before
// PostgreSQL 18, and from 18 unless a publication asks for them), so a decoded row lacks them: a page filtering
// on one (`where b = 44` with `b int generated always as (a * 2) stored`) would never see a write change it.
// The trigger capture has them (to_json(NEW) renders the stored row). Logical capture computes them here.
//
// Why computing is exact, and reading the row back is not. A generated column's value is its expression applied
// to the other columns of the same row version, and PostgreSQL requires that expression to be immutable and to
// read only that row's ordinary columns. The decoded change carries exactly those columns for both versions (the
// new row, and under REPLICA IDENTITY FULL the whole old row; an unchanged TOASTed value the message left out is
// taken from the old row, as images.ts does). So evaluating the expression over the decoded values gives the
// value PostgreSQL stored, for the old image and the new one. Reading the row back from the table when the change
// is appended would not: by then a later transaction may have updated or deleted the row, and the value read
// would be of another row version than the fact's (no read can see the old version at all). The expressions are
// evaluated by the server, in one statement per table and batch, inside the append's transaction (they read no
// table, so that transaction's snapshot does not matter), under a savepoint: an evaluation that fails (a value
// whose text does not read back, say) marks that batch's images of the table unavailable — planned as
// table-wide, never a miss — and does not abort the append.
//
// The expression comes from the catalog, read when the stream first describes the table (a Relation message: at
// the start of every decoding session and after the table's definition changed), so a change is evaluated with
// the expression its table had when it was decoded. Changing a generated column's expression (drop and add it,
// or PostgreSQL 17's SET EXPRESSION) rewrites the table, which neither capture mode reports as row changes:
// that is schema drift, like any column added with a default.
import type pg from "pg";
import { quoteIdent } from "../core.ts";
import type { Relation, TupleValue } from "./pgoutput.ts";

interface Generated {
  name: string;
  /** format_type of the column. */
  type: string;
  expression: string;
}

interface TableGenerated {
  /** The generated columns the stream leaves out (none: nothing to compute). */
  missing: Generated[];
  /** format_type of every column by name, for reading the decoded text values back as their types. */
  types: Map<string, string>;
}

export class GeneratedColumns {
  readonly #schema: string;
  #tables = new WeakMap<Relation, TableGenerated>();

  constructor(schema: string) {
    this.#schema = schema;
  }

  /** Forgets what was read from the catalog (a schema change). */
  refresh(): void {
    this.#tables = new WeakMap();
  }

  /** Reads the generated columns of tables the stream described since the last call. */
  async load(client: pg.Client, relations: Iterable<Relation>): Promise<void> {
    for (const relation of relations) {
      if (this.#tables.has(relation) || relation.schema !== this.#schema) continue;
      const { rows } = await client.query<{ name: string; type: string; generated: string; expression: string | null }>(
        `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated AS generated,
                pg_get_expr(d.adbin, d.adrelid) AS expression
           FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
        [`${quoteIdent(relation.schema)}.${quoteIdent(relation.name)}`],
      );
      const sent = new Set(relation.columns.map((c) => c.name));
      this.#tables.set(relation, {
        missing: rows
          .filter((r) => r.generated !== "" && r.expression !== null && !sent.has(r.name))
          .map((r) => ({ name: r.name, type: r.type, expression: r.expression as string })),
        types: new Map(rows.map((r) => [r.name, r.type])),
      });
    }
  }

  /** True when the stream leaves some of the relation's generated columns out. */
  has(relation: Relation): boolean {
    return (this.#tables.get(relation)?.missing.length ?? 0) > 0;
  }

  /**
   * The generated columns of each row as `"name":json` parts to add to its image, in the order of `rows`; null
   * for a row with a value the stream left out (its image is unavailable anyway). Throws when the server cannot
   * evaluate them (the caller marks the images unavailable).
   */
  async compute(client: pg.Client, relation: Relation, rows: TupleValue[][]): Promise<(string | null)[]> {
    const table = this.#tables.get(relation);
    if (!table || table.missing.length === 0 || rows.length === 0) return rows.map(() => null);
    // The row's ordinary columns under their own names, read back from their text as their types; the
    // expressions (as pg_get_expr prints them) name those columns.
    const columns = relation.columns.map((c, i) => {
      const type = table.types.get(c.name);
      if (!type) throw new Error(`column ${c.name} of ${relation.name} is no longer in the catalog`);
      return `(u.r->>${i})::${type} AS ${quoteIdent(c.name)}`;
    });
    const values = table.missing.map((g) => `to_json((${g.expression})::${g.type})::text`);
    const complete = rows.filter((row) => row.every((v) => v !== undefined));
    if (complete.length === 0) return rows.map(() => null);
    const { rows: out } = await client.query<{ g: (string | null)[] }>(
      `SELECT (SELECT ARRAY[${values.join(", ")}] FROM (SELECT ${columns.join(", ")}) AS s) AS g
         FROM json_array_elements($1::json) WITH ORDINALITY AS u(r, n) ORDER BY u.n`,
      [JSON.stringify(complete)],
    );
    let next = 0;
    return rows.map((row) => {
      if (!row.every((v) => v !== undefined)) return null;
      const g = out[next++]?.g ?? [];
      return table.missing.map((c, j) => `${JSON.stringify(c.name)}:${g[j] ?? "null"}`).join(",");
    });
  }
}
