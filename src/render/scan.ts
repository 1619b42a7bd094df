// A strict scan of HTML's element structure, cheap enough to run on every replay, for markup whose structure can
// be read off its tags: every element closed by an explicit end tag (or void), nothing the HTML parser would
// close, move or drop on its own (implied end tags, a <p> closed by a block, foster-parented table content,
// non-option content in a <select>). Anything else makes the scan give up (null), and the caller falls back to
// parsing (render/diff.ts) or refuses (a frame's root). Under these rules the parser's tree is the tags' tree, so
// two strings that agree outside one element with a unique id differ, as DOM trees, only inside that element.

export const VOID = new Set([
  "area",
  "base",
  "br",
  "col",
  "embed",
  "hr",
  "img",
  "input",
  "link",
  "meta",
  "param",
  "source",
  "track",
  "wbr",
]);
/** Elements whose content is text up to their end tag. */
export const RAW_TEXT = new Set([
  "script",
  "style",
  "textarea",
  "title",
  "xmp",
  "iframe",
  "noembed",
  "noframes",
  "noscript",
]);
/** Start tags that can close an open element of the same name without an end tag. */
const SELF_NESTING = new Set([
  "p",
  "li",
  "dt",
  "dd",
  "option",
  "optgroup",
  "tr",
  "td",
  "th",
  "a",
  "form",
  "button",
  "nobr",
]);
/** The HTML parser's "special" elements: an <li>, <dd> or <dt> start tag looks for an open one to close up the
 *  stack of open elements until it meets one of these (other than address, div and p). */
const SPECIAL = new Set(
  "address applet area article aside base basefont bgsound blockquote body br button caption center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link listing main marquee menu meta nav noembed noframes noscript object ol p param plaintext pre script search section select source style summary table tbody td template textarea tfoot th thead title tr track ul wbr xmp".split(
    " ",
  ),
);
/** What an <li>, <dd> or <dt> start tag closes when it finds it open (see SPECIAL). */
const LIST_ITEM_CLOSES: Record<string, readonly string[]> = { li: ["li"], dd: ["dd", "dt"], dt: ["dd", "dt"] };
/** Elements that bound a "scope" (an open <p> beyond one is not in button scope, nor a <button> in scope). */
const SCOPE_BOUNDARY = new Set("applet caption html table td th marquee object template".split(" "));
const HEADINGS = new Set(["h1", "h2", "h3", "h4", "h5", "h6"]);

/** True when the parser, seeing a start tag `name` with `stack` open, would close (or ignore) something itself. */
function impliesEnd(name: string, stack: readonly OpenElement[]): boolean {
  const closes = LIST_ITEM_CLOSES[name];
  for (let k = stack.length - 1; k >= 0; k--) {
    const open = (stack[k] as OpenElement).name;
    if (closes) {
      if (closes.includes(open)) return true;
      if (SPECIAL.has(open) && open !== "address" && open !== "div" && open !== "p") break;
    } else break;
  }
  // A start tag that closes a <p> closes one anywhere in button scope, not only the current node.
  if (CLOSES_P.has(name) || LIST_ITEM_CLOSES[name] || HEADINGS.has(name)) {
    for (let k = stack.length - 1; k >= 0; k--) {
      const open = (stack[k] as OpenElement).name;
      if (open === "p") return true;
      if (SCOPE_BOUNDARY.has(open) || open === "button") break;
    }
  }
  // A <button> or <nobr> in scope is closed by another; a nested <form> start tag is ignored.
  if (name === "button" || name === "nobr" || name === "form") {
    for (let k = stack.length - 1; k >= 0; k--) {
      const open = (stack[k] as OpenElement).name;
      if (open === name) return true;
      if (name !== "form" && SCOPE_BOUNDARY.has(open)) break;
    }
  }
  // A heading directly inside a heading closes it.
  const top = stack[stack.length - 1];
  return top !== undefined && HEADINGS.has(name) && HEADINGS.has(top.name);
}

/** Start tags that close an open <p>. */
const CLOSES_P = new Set(
  "address article aside blockquote details dialog dir div dl fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr main menu nav ol p pre search section table ul".split(
    " ",
  ),
);
/** Elements the parser places by rules of its own: never scanned. */
const PLACED = new Set("html head body frameset frame template plaintext image isindex".split(" "));
/** Table structure, and the children each element of it may have (anything else would be foster-parented or
 *  dropped). A <tr> directly in a <table> gets an implied <tbody> wherever it is parsed, so it is allowed. */
const TABLE_CHILDREN: Record<string, ReadonlySet<string>> = {
  table: new Set(["caption", "colgroup", "thead", "tbody", "tfoot", "tr"]),
  thead: new Set(["tr"]),
  tbody: new Set(["tr"]),
  tfoot: new Set(["tr"]),
  tr: new Set(["td", "th"]),
  colgroup: new Set(["col"]),
};
/** Table parts that only exist inside their parent (checked by TABLE_CHILDREN from the parent's side). */
const TABLE_PARTS = new Set(["caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "td", "th"]);
/** HTML start tags that end foreign (SVG, MathML) content when they appear inside it. */
const BREAKS_FOREIGN = new Set(
  "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var font".split(
    " ",
  ),
);
const TAG = /<(\/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*(\/?)>/y;
const ID_ATTR = /(?:^|\s)id\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))/i;

/** An element the scan opened. Its id is read from its attributes only when asked for. */
export class OpenElement {
  readonly name: string;
  /** Offset of `<` of its start tag, and of the character after its start tag's `>`. */
  readonly start: number;
  readonly startTagEnd: number;
  readonly #attributes: string;
  #id: string | null | undefined;
  constructor(name: string, attributes: string, start: number, startTagEnd: number) {
    this.name = name;
    this.#attributes = attributes;
    this.start = start;
    this.startTagEnd = startTagEnd;
  }
  get id(): string | null {
    if (this.#id === undefined) {
      const found = this.#attributes === "" ? null : ID_ATTR.exec(this.#attributes);
      this.#id = found ? (found[1] ?? found[2] ?? found[3] ?? null) : null;
    }
    return this.#id;
  }
}

/** The end tag of each raw-text element, found case-insensitively from a position. */
const RAW_END = new Map([...RAW_TEXT].map((name) => [name, new RegExp(`</${name}`, "gi")]));

/**
 * Scans `html` from offset 0, calling `open` before an element's content and `close` after its end tag (with the
 * offset of its end tag's `<` and the offset after its `>`). `close` returning true stops the scan. Returns false
 * when the markup breaks the rules above.
 */
export function scan(
  html: string,
  open: (element: OpenElement, stack: readonly OpenElement[]) => void,
  close: (element: OpenElement, endTagStart: number, end: number) => boolean,
): boolean {
  const stack: OpenElement[] = [];
  let foreign = 0;
  let anchors = 0;
  let i = 0;
  // Text inside table structure would be foster-parented out of it: only white space may stand there.
  const textAllowed = (from: number, to: number) => {
    const top = stack[stack.length - 1];
    return !top || foreign > 0 || !(top.name in TABLE_CHILDREN) || html.slice(from, to).trim() === "";
  };
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) return stack.length === 0 && textAllowed(i, html.length);
    if (!textAllowed(i, lt)) return false;
    if (html.startsWith("<!--", lt)) {
      const end = html.indexOf("-->", lt + 4);
      if (end < 0) return false;
      i = end + 3;
      continue;
    }
    TAG.lastIndex = lt;
    const m = TAG.exec(html);
    if (!m) {
      // A "<" that starts no tag is text when followed by a space or digit; anything else (<!x>, <?x>) is not ours.
      const next = html.charCodeAt(lt + 1);
      if (next === 32 || next === 10 || next === 9 || (next >= 48 && next <= 57) || next === 61) {
        i = lt + 1;
        continue;
      }
      return false;
    }
    const [, slash, rawName, attributes, selfClosing] = m;
    const name = (rawName as string).toLowerCase();
    i = TAG.lastIndex;
    if (PLACED.has(name)) return false;
    const top = stack[stack.length - 1];
    if (slash) {
      if (!top || top.name !== name) return false;
      stack.pop();
      if (name === "svg" || name === "math") foreign--;
      if (name === "a" && foreign === 0) anchors--;
      if (close(top, lt, i)) return true;
      continue;
    }
    if (foreign > 0) {
      // Inside SVG or MathML: any element, `/>` closes; an HTML element would end the foreign content.
      if (BREAKS_FOREIGN.has(name)) return false;
      const element = new OpenElement(name, attributes as string, lt, i);
      open(element, stack);
      if (selfClosing) {
        if (close(element, i, i)) return true;
        continue;
      }
      if (name === "svg" || name === "math") foreign++;
      stack.push(element);
      continue;
    }
    if (top && top.name in TABLE_CHILDREN) {
      if (!(TABLE_CHILDREN[top.name] as ReadonlySet<string>).has(name)) return false;
    } else if (TABLE_PARTS.has(name) && name !== "caption") {
      // A table part outside its parent is parsed differently in a page and in a <template>: only as the root of
      // what is scanned (a frame's <tr>, a collection's <tbody>), where both parse it in place.
      if (top) return false;
    }
    if (top) {
      if ((top.name === name && SELF_NESTING.has(name)) || (top.name === "p" && CLOSES_P.has(name))) return false;
      if (impliesEnd(name, stack)) return false;
      if (top.name === "select" && name !== "option" && name !== "optgroup") return false;
      if (top.name === "optgroup" && name !== "option") return false;
      if (top.name === "option") return false;
    }
    if (name === "a" && anchors > 0) return false;
    const element = new OpenElement(name, attributes as string, lt, i);
    if (VOID.has(name)) {
      open(element, stack);
      if (close(element, i, i)) return true;
      continue;
    }
    if (selfClosing && name !== "svg" && name !== "math") return false; // `<div/>` does not close in HTML
    open(element, stack);
    if (selfClosing) {
      if (close(element, i, i)) return true;
      continue;
    }
    if (name === "svg" || name === "math") foreign++;
    if (name === "a") anchors++;
    stack.push(element);
    const rawEnd = RAW_END.get(name);
    if (rawEnd) {
      rawEnd.lastIndex = i;
      const end = rawEnd.exec(html);
      if (!end) return false;
      i = end.index;
    }
  }
  return stack.length === 0;
}

/**
 * Replace-by-id actions that bring a body showing `before` to `after` when they differ inside one element with an
 * id unique in both: the innermost element that encloses the first and the last differing character, whose start
 * tag lies before the first and whose end tag lies after the last. "" when equal; null when no such element can be
 * proven by the scan (the caller parses instead).
 */
export function narrowByScan(before: string, after: string): { id: string; html: string } | null | "" {
  if (before === after) return "";
  const shorter = Math.min(before.length, after.length);
  let prefix = 0;
  while (prefix < shorter && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++;
  let suffix = 0;
  while (
    suffix < shorter - prefix &&
    before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)
  )
    suffix++;
  const lastBefore = before.length - suffix; // the differing region of `before` is [prefix, lastBefore)
  let found: { element: OpenElement; end: number } | null = null;
  const ok = scan(
    before,
    () => {},
    (element, endTagStart, end) => {
      // The first element (innermost first, as elements close inside out) enclosing the region with an id.
      if (element.id && element.startTagEnd <= prefix && endTagStart >= lastBefore) {
        found = { element, end };
        return true;
      }
      return false;
    },
  );
  if (!ok || !found) return null;
  const { element, end } = found as { element: OpenElement; end: number };
  const id = element.id as string;
  const html = after.slice(element.start, end + (after.length - before.length));
  // The new element must itself scan cleanly as one element with the same id, and the id must be unique in both.
  let root: string | null | undefined;
  const single = scan(
    html,
    (e, stack) => {
      if (stack.length === 0) root = root === undefined ? e.id : null;
    },
    () => false,
  );
  if (!single || root !== id || html.charCodeAt(0) !== 60) return null;
  if (idCounts(before).get(id) !== 1 || idCounts(after).get(id) !== 1) return null;
  return { id, html };
}

const ID_ATTRIBUTE = /\sid\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))/gi;

/** How many elements of `html` carry each id (attributes spelled any way HTML allows; text that looks like an
 *  attribute can only add to a count, which makes callers more careful, never less). */
export function idCounts(html: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of html.matchAll(ID_ATTRIBUTE)) {
    const id = m[1] ?? m[2] ?? m[3] ?? "";
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/**
 * The id of the one element `html` consists of, or null when the scan cannot prove that: the output starts with
 * that element's start tag, which carries an id, and ends with its end tag.
 */
export function rootElementId(html: string): string | null {
  if (html.charCodeAt(0) !== 60) return null;
  let root: OpenElement | null = null;
  let roots = 0;
  let rootEnd = -1;
  const ok = scan(
    html,
    (element, stack) => {
      if (stack.length === 0) {
        roots++;
        root = element;
      }
    },
    (element, _endTagStart, end) => {
      if (element === root) rootEnd = end;
      return false;
    },
  );
  const id = (root as OpenElement | null)?.id;
  if (!ok || roots !== 1 || rootEnd !== html.length || !id || id.includes("&")) return null;
  return id;
}
