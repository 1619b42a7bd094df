// Narrowing a page frame's patch. A replay renders the whole page; the browsers of the group show the previous
// render. When the two bodies differ only inside elements with unique ids, the patch replaces (morphs) just those
// elements instead of the whole body.
//
// Why the result equals the new render. Both bodies are parsed with parse5, which builds the same tree as the
// browser's HTML parser. The walk compares the trees in parallel from <body> down: an element whose serialisation
// is equal is left alone; an element with equal tag and attributes and the same number and kinds of children is
// descended into; any other difference must be covered by an element carrying an id that is unique in both
// bodies, which is replaced whole by its new serialisation (Turbo's `replace` with method="morph"). If a
// difference cannot be covered (children added or removed with no id'd ancestor below <body>, a changed text
// node directly in <body>, duplicate ids), the diff gives up and the caller sends the whole-body morph. So every
// node of the new tree is either equal to the browser's or inside a replaced element: the patched DOM equals the
// new render. The convergence oracle applies these patches and compares with fresh GETs.

import type { DefaultTreeAdapterMap } from "parse5";
import { parse, serializeOuter } from "parse5";
import { bodyHtml, escapeAttribute } from "./page.ts";
import { narrowByScan } from "./scan.ts";

type Node = DefaultTreeAdapterMap["node"];
type Element = DefaultTreeAdapterMap["element"];

/** Elements whose content is not parsed as ordinary children: compared whole, never descended into. */
const OPAQUE = new Set(["template", "script", "style", "textarea", "title", "noscript", "iframe", "svg", "math"]);

function isElement(node: Node): node is Element {
  return "tagName" in node;
}

/** Parsed bodies of recent renders: a group's latest render is the "after" of one patch and the "before" of the
 *  next, so each render is parsed once. Trees are never mutated. */
const parsed = new Map<string, Element | null>();
const PARSED_CACHE_SIZE = 32;

function bodyElement(html: string): Element | null {
  let body = parsed.get(html);
  if (body === undefined) {
    const document = parse(html);
    const root = document.childNodes.find((n): n is Element => isElement(n) && n.tagName === "html");
    body = root?.childNodes.find((n): n is Element => isElement(n) && n.tagName === "body") ?? null;
    if (parsed.size >= PARSED_CACHE_SIZE) parsed.delete(parsed.keys().next().value as string);
    parsed.set(html, body);
  }
  return body;
}

/** Structural equality of two parsed nodes (same tree ⇔ same DOM); exits at the first difference. */
function sameNode(a: Node, b: Node): boolean {
  if (a.nodeName !== b.nodeName) return false;
  if (!isElement(a) || !isElement(b)) return textOf(a) === textOf(b);
  if (a.namespaceURI !== b.namespaceURI || !sameAttributes(a, b)) return false;
  const x = a.tagName === "template" ? (a as DefaultTreeAdapterMap["template"]).content.childNodes : a.childNodes;
  const y = b.tagName === "template" ? (b as DefaultTreeAdapterMap["template"]).content.childNodes : b.childNodes;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (!sameNode(x[i]!, y[i]!)) return false;
  return true;
}

/** A text node's value or a comment's data. */
function textOf(node: Node): string | undefined {
  const n = node as { value?: string; data?: string };
  return n.value ?? n.data;
}

function idOf(element: Element): string | undefined {
  return element.attrs.find((a) => a.name === "id")?.value;
}

function countIds(element: Element, counts: Map<string, number>): void {
  for (const child of element.childNodes) {
    if (!isElement(child)) continue;
    const id = idOf(child);
    if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
    if (child.tagName !== "template") countIds(child, counts);
  }
}

function sameAttributes(a: Element, b: Element): boolean {
  if (a.attrs.length !== b.attrs.length) return false;
  for (let i = 0; i < a.attrs.length; i++) {
    const x = a.attrs[i]!;
    const y = b.attrs[i]!;
    if (x.name !== y.name || x.value !== y.value || x.namespace !== y.namespace) return false;
  }
  return true;
}

interface Replacement {
  id: string;
  html: string;
}

class Walk {
  private readonly unique: (id: string) => boolean;
  constructor(unique: (id: string) => boolean) {
    this.unique = unique;
  }

  /** Replacements that turn `before`'s children into `after`'s, or null when they cannot be expressed. */
  children(before: Element, after: Element, out: Replacement[]): boolean {
    const a = before.childNodes;
    const b = after.childNodes;
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      const y = b[i]!;
      if (x.nodeName !== y.nodeName) return false;
      if (!isElement(x) || !isElement(y)) {
        if (textOf(x) !== textOf(y)) return false;
        continue;
      }
      if (sameNode(x, y)) continue;
      if (!OPAQUE.has(y.tagName) && sameAttributes(x, y)) {
        const inner: Replacement[] = [];
        if (this.children(x, y, inner)) {
          out.push(...inner);
          continue;
        }
      }
      const id = idOf(y);
      if (id !== undefined && idOf(x) === id && this.unique(id)) {
        out.push({ id, html: serializeOuter(y) });
        continue;
      }
      return false;
    }
    return true;
  }
}

const BODY_OPEN = /<body\b[^>]*>/i;

/**
 * Turbo Stream actions that bring a browser showing `before` to `after` by replacing only elements with unique
 * ids; "" when the bodies are equal; null when the narrowing cannot be proven (send the whole-body morph).
 *
 * First the cheap way (render/scan.ts): when the bodies' tags can be read as their tree and the difference lies
 * inside one element with a unique id, that element is replaced, found without parsing. Otherwise both bodies are
 * parsed and compared (below), which can also cover several separate differences with several elements.
 */
export function narrowBodyPatch(before: string, after: string): string | null {
  const open = BODY_OPEN.exec(before)?.[0];
  if (open !== undefined && open === BODY_OPEN.exec(after)?.[0]) {
    const scanned = narrowByScan(bodyHtml(before), bodyHtml(after));
    if (scanned === "") return "";
    if (scanned !== null) {
      return `<turbo-stream action="replace" method="morph" target="${escapeAttribute(scanned.id)}"><template>${scanned.html}</template></turbo-stream>`;
    }
  }
  return narrowByParsing(before, after);
}

function narrowByParsing(before: string, after: string): string | null {
  const a = bodyElement(before);
  const b = bodyElement(after);
  if (!a || !b || !sameAttributes(a, b)) return null;
  const ids = new Map<string, number>();
  const idsAfter = new Map<string, number>();
  countIds(a, ids);
  countIds(b, idsAfter);
  const unique = (id: string) => ids.get(id) === 1 && idsAfter.get(id) === 1;
  const replacements: Replacement[] = [];
  if (!new Walk(unique).children(a, b, replacements)) return null;
  return replacements
    .map(
      (r) =>
        `<turbo-stream action="replace" method="morph" target="${escapeAttribute(r.id)}"><template>${r.html}</template></turbo-stream>`,
    )
    .join("");
}
