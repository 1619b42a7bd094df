// Fragments and collections: the frames an app marks, rendered inside their own frame capture, and rendered again
// without their page.
//
//   const CardItem = partial("card", ({ card }) => <li id={`card_${card.id}`}>{card.title}</li>);
//   <Collection id="cards" tag="ul" of={db.selectFrom("cards").selectAll().orderBy("id")} item={CardItem} />
//
// A fragment's output depends only on its props, its own reads and the inputs it reads. Its props are recorded
// (they must be plain data: see propsKey), so it can be rendered again with them when one of its reads changes;
// when the data its props came from changes, the frame that read that data (its parent, at worst the page) is
// replayed instead, and it renders the fragment with the new props.
//
// A collection render site owns its query: `of` is a Kysely query that the collection executes inside its own
// frame, so no other part of the page can have used its rows. When a fact may change the query's result, the
// collection runs the query again and compares the rows with the ones its members were rendered from: a member
// whose row is unchanged keeps its HTML, every other one is rendered again from its fresh row (the row is the
// member's prop, named after the partial), and the ids of the re-run tell where each member now stands. (An
// array `of` holds rows the parent read: the collection is then a plain render site whose members are fragments.)
//
// Views without JSX: a component may return an html`` result or a plain string, both taken as markup (the app escapes
// the values it puts into a plain string; html`` does it for them). A partial and a collection render asynchronously:
// in html`` or JSX they are awaited for the app; in a plain template string the app writes `${await Card({ card })}`,
// and one interpolated without `await` throws an error saying so instead of printing "[object Promise]".

import { REWRITES } from "../analysis/refusals.ts";
import { valuesKey } from "../analysis/values.ts";
import { currentFrame, type FrameCapture, type FrameRecipe, openFrame, runInFrame } from "../capture/context.ts";
import { RefusedBoundaryError } from "../errors.ts";
import { escapeAttribute } from "./page.ts";
import { RAW_TEXT, rootElementId, VOID } from "./scan.ts";

/** What hono's html helpers and JSX accept as already-escaped HTML (a String marked isEscaped). */
export type HtmlString = string & { isEscaped?: true };

type Component<P> = (props: P) => unknown;

/** A component marked as a frame (see `partial`). */
export interface Partial<P extends object = any> {
  (props: P): Promise<HtmlString>;
  /** The frame's name: also the name of the prop a collection member receives its row as. */
  readonly partialName: string;
  readonly component: Component<P>;
}

/** A Kysely query a collection executes (a select query builder, or anything with the same two methods). */
export interface CollectionQuery<Row = any> {
  execute(): Promise<Row[]>;
  compile(): { sql: string; parameters: readonly unknown[] };
}

/** A function returning the collection's rows through any data layer whose driver Upkeep captures
 *  (`() => prisma.card.findMany(…)`, `() => db.query.cards.findMany(…)`, `() => pool.query(…).then((r) => r.rows)`). */
export type CollectionRows<Row = any> = () => Promise<readonly Row[]> | readonly Row[];

export interface CollectionProps<Row = any> {
  /** The id of the collection's element (unique in the page). */
  id: string;
  /** The rows: a query the collection executes, or a function it calls, inside its own frame (a live render site);
   *  or rows the page already read. */
  of: CollectionQuery<Row> | CollectionRows<Row> | readonly Row[];
  /** The member component: each row is passed to it as the prop named after the partial. */
  item: Partial<any>;
  /** The element wrapping the members. Default "div". */
  tag?: string;
  /** Props passed to every member besides its row (plain data, like a fragment's props). */
  props?: Record<string, unknown>;
  /** Further attributes of the element (class, data-*, aria-*): strings, numbers or true. */
  [attribute: string]: unknown;
}

export interface FragmentRecipe extends FrameRecipe {
  readonly kind: "fragment";
  readonly partial: Partial;
  readonly props: object;
}

export interface CollectionRecipe extends FrameRecipe {
  readonly kind: "collection";
  /** Runs the collection's read again (a Kysely query's execute, or the app's function). */
  readonly query: { execute(): Promise<readonly any[]> };
  readonly item: Partial;
  readonly shared: Record<string, unknown>;
  readonly open: string;
  readonly close: string;
}

export interface MemberRecipe extends FrameRecipe {
  readonly kind: "member";
  readonly collection: CollectionRecipe;
  readonly row: Record<string, unknown>;
  /** The row's identity for comparing renders: its serialised values. */
  readonly rowKey: string;
}

/** Data mode: an Inertia prop, evaluated again through a partial reload of its page (render/data.ts). */
export interface PropRecipe {
  readonly kind: "prop";
  readonly key: string;
  readonly name: string;
}

export type AnyRecipe = FragmentRecipe | CollectionRecipe | MemberRecipe | PropRecipe;

function escaped(html: string): HtmlString {
  const value = new String(html) as unknown as { isEscaped: boolean };
  value.isEscaped = true;
  return value as unknown as HtmlString;
}

/**
 * The HTML a component returned: a JSX node, an html`` result or a plain string — markup, all three (a template-string
 * view escapes its values itself, as it does for the page around it).
 */
export async function htmlOf(output: unknown): Promise<string> {
  const value = await output;
  if (value === null || value === undefined || typeof value === "boolean") return "";
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  if (value instanceof String) return String(value);
  if (typeof value === "object" && typeof (value as { toString?: unknown }).toString === "function") {
    return String(await (value as { toString(): unknown }).toString());
  }
  return String(value);
}

/**
 * A frame's pending HTML, which refuses to be turned into text before it is awaited: a plain template string would
 * print "[object Promise]" in its place. html`` and JSX never do that (they await it), so they are unaffected.
 */
function awaitable(html: Promise<HtmlString>, what: string): Promise<HtmlString> {
  Object.defineProperty(html, Symbol.toPrimitive, {
    value() {
      throw new TypeError(
        `${what} was put into a template string without await: it renders asynchronously and would print "[object Promise]". Write \${await …} around the call, or build the view with html\`…\` (import { html } from "upkeep"), which awaits it`,
      );
    },
  });
  return html;
}

// ── props ───────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A key that two props values share exactly when a component renders them the same: their encoding
 * (analysis/values.ts). Only plain data can be recorded and rendered again: null, booleans, numbers, strings,
 * bigints, Dates, byte arrays, arrays and plain objects of those. Anything else throws a string naming where it is.
 */
export function propsKey(value: unknown, path = "props"): string {
  // JSX passes `children` (none, for a self-closing element); JSX children cannot be recorded.
  if (typeof value === "object" && value !== null && !Array.isArray(value) && "children" in value) {
    const { children, ...rest } = value as { children?: unknown };
    if (children !== undefined && !(Array.isArray(children) && children.length === 0)) {
      throw `${path}.children (JSX children) cannot be recorded`;
    }
    value = rest;
  }
  return valuesKey(
    value,
    (at, what) => {
      throw `${at} is ${what}`;
    },
    path,
  );
}

function propsRefusal(name: string, problem: string): RefusedBoundaryError {
  return new RefusedBoundaryError(
    "frame_props",
    "",
    `the props of partial "${name}" cannot be recorded to render it again: ${problem}`,
    REWRITES.frame_props,
    name,
  );
}

function rootRefusal(name: string, html: string): RefusedBoundaryError {
  return new RefusedBoundaryError(
    "frame_root",
    "",
    `partial "${name}" rendered ${html.length > 120 ? `${html.slice(0, 120)}…` : html || "nothing"}, not one element with an id that closes where the output ends`,
    REWRITES.frame_root,
    name,
  );
}

// ── partial ───────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Marks a component as a frame. Its output must be one element with a stable, unique id; its props must be plain
 * data. Outside a live render it is the component itself.
 */
export function partial<P extends object>(name: string, component: Component<P>): Partial<P> {
  if (typeof name !== "string" || !/^[A-Za-z_$][\w$]*$/.test(name)) {
    throw new TypeError(
      `partial(name, component): the name must be an identifier (it names the member's row prop), got ${JSON.stringify(name)}`,
    );
  }
  const render = (props: P): Promise<HtmlString> => awaitable(renderFrame(props), `partial "${name}"`);
  const renderFrame = async (props: P): Promise<HtmlString> => {
    const parent = currentFrame();
    if (!parent) return escaped((await htmlOf(component(props))).trim());
    const frame = openFrame("fragment", parent);
    let key: string;
    try {
      key = `fragment:${name}:${propsKey(props)}`;
    } catch (problem) {
      parent.page.refusals.push(propsRefusal(name, String(problem)));
      key = "";
    }
    const recipe: FragmentRecipe = { kind: "fragment", key, partial: self, props };
    return escaped(await fill(frame, recipe, () => component(props), name));
  };
  const self = Object.assign(render, { partialName: name, component }) as unknown as Partial<P>;
  return self;
}

/** Renders `output` inside `frame` and records the frame's id, HTML and recipe. */
async function fill(frame: FrameCapture, recipe: AnyRecipe, output: () => unknown, name: string): Promise<string> {
  const html = (await runInFrame(frame, async () => htmlOf(await output()))).trim();
  const id = rootElementId(html);
  if (id === null) frame.page.refusals.push(rootRefusal(name, html));
  frame.id = id ?? "";
  frame.html = html;
  frame.recipe = recipe;
  return html;
}

// ── collection ────────────────────────────────────────────────────────────────────────────────────────────

function isQuery(of: unknown): of is CollectionQuery {
  return (
    typeof of === "object" &&
    of !== null &&
    typeof (of as CollectionQuery).execute === "function" &&
    typeof (of as CollectionQuery).compile === "function"
  );
}

const RESERVED = new Set(["id", "of", "item", "tag", "props", "children"]);

function openTag(props: CollectionProps): { open: string; close: string; tag: string } {
  const tag = props.tag ?? "div";
  if (!/^[a-z][a-z0-9-]*$/.test(tag) || VOID.has(tag) || RAW_TEXT.has(tag)) {
    throw new TypeError(
      `Collection: tag must be a container element name like "ul" or "div", got ${JSON.stringify(tag)}`,
    );
  }
  let open = `<${tag} id="${escapeAttribute(props.id)}"`;
  for (const [name, value] of Object.entries(props)) {
    if (RESERVED.has(name) || value === undefined || value === null || value === false) continue;
    const attribute = name === "className" ? "class" : name;
    if (!/^[A-Za-z_:][-A-Za-z0-9_:.]*$/.test(attribute))
      throw new TypeError(`Collection: invalid attribute name ${name}`);
    open += value === true ? ` ${attribute}` : ` ${attribute}="${escapeAttribute(String(value))}"`;
  }
  return { open: `${open}>`, close: `</${tag}>`, tag };
}

/**
 * A list render site: one element (`tag`, with `id`) whose children are the members `item` renders, one per row
 * of `of`. Usable as JSX (`<Collection … />`), called in an html`` template (`${Collection({ … })}`) or awaited in a
 * plain template string (`${await Collection({ … })}`).
 */
export function Collection<Row>(props: CollectionProps<Row>): Promise<HtmlString> {
  return awaitable(renderCollection(props), `Collection "${props?.id}"`);
}

async function renderCollection<Row>(props: CollectionProps<Row>): Promise<HtmlString> {
  if (typeof props.id !== "string" || props.id === "")
    throw new TypeError("Collection needs an id (the id of its element)");
  if (typeof props.item !== "function" || typeof props.item.partialName !== "string") {
    throw new TypeError('Collection: item must be a partial, e.g. partial("card", Card)');
  }
  const { open, close } = openTag(props);
  const shared = props.props ?? {};
  const parent = currentFrame();
  if (!parent) {
    const of = props.of;
    const rows = isQuery(of)
      ? await of.execute()
      : typeof of === "function"
        ? await rowsFunction(of, props.id).execute()
        : of;
    const members = await Promise.all(rows.map((row) => props.item({ ...shared, [props.item.partialName]: row })));
    return escaped(open + members.join("") + close);
  }
  const frame = openFrame("collection", parent);
  frame.id = props.id;
  let sharedKey = "";
  try {
    sharedKey = propsKey(shared);
  } catch (problem) {
    parent.page.refusals.push(propsRefusal(props.item.partialName, String(problem)));
  }
  const of = props.of;
  let query: CollectionRecipe["query"] | null = null;
  let key = "";
  if (isQuery(of)) {
    query = of;
    const compiled = of.compile();
    key = `collection:${props.id}:${props.item.partialName}:${open}:${compiled.sql}:${propsKey([...compiled.parameters])}:${sharedKey}`;
  } else if (typeof of === "function") {
    // A function may use values of the request it closes over in ways no statement shows (a filter in JavaScript):
    // its renders are never shared with another page group (a key of its own).
    query = rowsFunction(of as CollectionRows, props.id);
    key = `collection:${props.id}:${props.item.partialName}:${open}:function#${++functionCollections}:${sharedKey}`;
  }
  const recipe: CollectionRecipe | null = query
    ? { kind: "collection", key, query, item: props.item, shared, open, close }
    : null;
  const rows = query ? await runInFrame(frame, () => query.execute()) : (props.of as readonly Row[]);
  if (typeof of === "function") checkMemberKeys(frame, props.id, rows as readonly Record<string, unknown>[]);
  const members: string[] = [];
  for (const row of rows) {
    const member = await renderMember(frame, recipe, props.item, shared, row as Record<string, unknown>);
    members.push(member.html);
  }
  const html = open + members.join("") + close;
  frame.html = html;
  frame.recipe = recipe;
  // Rows the page read itself: the collection cannot be rendered without its page (its members still can).
  if (!recipe) frame.folded = true;
  return escaped(html);
}

let functionCollections = 0;

function rowsFunction(of: CollectionRows, id: string): CollectionRecipe["query"] {
  return {
    async execute() {
      const rows = await of();
      if (!Array.isArray(rows)) {
        throw new TypeError(`Collection "${id}": of() must return an array of rows (or a promise of one)`);
      }
      return rows;
    },
  };
}

/**
 * A collection fed by a function: its members are the rows of the first read it captured, which must return their
 * primary key — each member row names it (refused otherwise: without a key, rows cannot be told apart as they move).
 */
function checkMemberKeys(frame: FrameCapture, id: string, rows: readonly Record<string, unknown>[]): void {
  const dep = frame.queries[0];
  const refuse = (detail: string): void => {
    frame.page.refusals.push(
      new RefusedBoundaryError(
        "collection_key",
        dep?.sql ?? "",
        `Collection "${id}": ${detail}`,
        REWRITES.collection_key,
      ),
    );
  };
  if (!dep) {
    refuse("its of() function sent no captured read (is the driver captured with upkeep.capture(…)?)");
    return;
  }
  const keys = dep.rowKeys;
  if (!keys) {
    refuse(
      `its first read is not a row read of one table returning the primary key (${dep.reads.map((r) => r.table).join(", ") || "no table"})`,
    );
    return;
  }
  const columns = Object.keys(keys.keys[0] ?? {});
  const known = new Set(keys.keys.map((k) => valuesKey(columns.map((c) => keyValue(k[c])))));
  for (const row of rows) {
    if (typeof row !== "object" || row === null || !columns.every((c) => Object.hasOwn(row, c))) {
      refuse(`a member row lacks the primary key (${columns.join(", ") || "?"}) of ${keys.table}`);
      return;
    }
    if (!known.has(valuesKey(columns.map((c) => keyValue(row[c]))))) {
      refuse(`a member row's key is not one of the rows its read of ${keys.table} returned`);
      return;
    }
  }
}

/** An integer key as one value whichever way a layer carries it: 7, 7n and "7" (pg's int8, a driver's safe integers,
 *  an ORM's BigInt) are the same key. */
function keyValue(v: unknown): unknown {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
  if (typeof v === "string" && /^-?(0|[1-9]\d*)$/.test(v)) return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  return v;
}

/** The key of a row: its serialised values (two rows with equal keys render the same member). */
export function rowKeyOf(row: Record<string, unknown>): string {
  try {
    return propsKey(row);
  } catch {
    return "";
  }
}

async function renderMember(
  parent: FrameCapture,
  collection: CollectionRecipe | null,
  item: Partial,
  shared: Record<string, unknown>,
  row: Record<string, unknown>,
): Promise<FrameCapture> {
  const frame = openFrame("member", parent);
  const rowKey = rowKeyOf(row);
  if (rowKey === "")
    parent.page.refusals.push(propsRefusal(item.partialName, "a row holds a value that is not plain data"));
  const props = { ...shared, [item.partialName]: row };
  const recipe: AnyRecipe = collection
    ? { kind: "member", key: `member:${collection.key}:${rowKey}`, collection, row, rowKey }
    : { kind: "fragment", key: `fragment:${item.partialName}:${propsKey(props)}`, partial: item, props };
  await fill(frame, recipe, () => item.component(props), item.partialName);
  return frame;
}

// ── rendering frames again ────────────────────────────────────────────────────────────────────────────────

/** Renders a fragment or a member again (the caller made `parent` current state's capture). */
export async function renderAgain(parent: FrameCapture, recipe: FragmentRecipe | MemberRecipe): Promise<FrameCapture> {
  if (recipe.kind === "member") {
    const c = recipe.collection;
    return renderMember(parent, c, c.item, c.shared, recipe.row);
  }
  const frame = openFrame("fragment", parent);
  await fill(frame, recipe, () => recipe.partial.component(recipe.props), recipe.partial.partialName);
  return frame;
}

/** Runs a collection's query again inside a collection frame; its rows, keyed for comparison with the old ones. */
export async function rerunCollection(
  parent: FrameCapture,
  recipe: CollectionRecipe,
  id: string,
): Promise<{ frame: FrameCapture; rows: { row: Record<string, unknown>; rowKey: string }[] }> {
  const frame = openFrame("collection", parent);
  frame.id = id;
  frame.recipe = recipe;
  const rows = (await runInFrame(frame, () => recipe.query.execute())) as Record<string, unknown>[];
  return { frame, rows: rows.map((row) => ({ row, rowKey: rowKeyOf(row) })) };
}

/** Renders one member of a re-run collection from its fresh row. */
export function renderNewMember(collectionFrame: FrameCapture, recipe: CollectionRecipe, row: Record<string, unknown>) {
  return renderMember(collectionFrame, recipe, recipe.item, recipe.shared, row);
}
