// The DOM oracle: a page's document (initial HTML) with delivered <turbo-stream> messages applied the way Turbo 8
// applies them in a browser, on happy-dom, and a canonical serialisation of a body for comparing a live page
// with a fresh GET of the same URL.
//
// The actions mirror Turbo's StreamActions table (turbo.es2017-esm.js): append/prepend first remove existing
// children whose id reappears in the template, before/after first remove such siblings, replace/update swap the
// target (or its children) for the template content, `method="morph"` ends in the same state as a plain swap
// except that an element with an id and `data-turbo-permanent` already in the page is kept, remove drops the
// targets. `target` names one element by id (the first with that id), `targets` is a CSS selector.
import { Window } from "happy-dom";
import { WIRE } from "../constants.ts";
import { StreamActionError } from "../errors.ts";
import { VOID } from "../render/scan.ts";

// happy-dom's node types, without depending on its exported class names.
type HDocument = InstanceType<typeof Window>["document"];
type HElement = ReturnType<HDocument["createElement"]>;
type HNode = HElement["firstChild"] & {};
type HFragment = ReturnType<HDocument["createDocumentFragment"]>;

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;

/** A document built from a page's full HTML, to which Turbo Stream messages are applied in order. */
//
// The document is kept as HTML between messages and parsed into a short-lived happy-dom window for each apply and
// read: a happy-dom window holds on to custom and form elements until it is closed, so a long-lived one per page
// would grow without bound in a test suite that opens thousands of pages and never closes them.
export class PatchedDocument {
  #html: string;

  constructor(fullHtml: string) {
    this.#html = fullHtml;
  }

  /** Apply one message: zero or more <turbo-stream> elements, in document order. A message that cannot be
   *  applied throws StreamActionError and leaves the document as it was. */
  apply(streamHtml: string): void {
    this.#html = withDocument(this.#html, (document) => {
      const holder = document.createElement("template");
      holder.innerHTML = streamHtml;
      const content = (holder as any).content as HFragment;
      for (const node of [...content.childNodes]) {
        if (node.nodeType === TEXT_NODE && !(node.textContent ?? "").trim()) continue;
        if (node.nodeType !== ELEMENT_NODE || (node as HElement).localName !== "turbo-stream") {
          throw new StreamActionError(streamHtml, "a patch may only contain <turbo-stream> elements");
        }
        perform(document, node as HElement, streamHtml);
      }
      return document.documentElement.outerHTML;
    });
  }

  /** The canonical body of the document as it stands (see normalizeBody). */
  body(): string {
    return normalizeBody(this.#html);
  }

  /** The current document as HTML (not normalised), for failure messages. */
  html(): string {
    return this.#html;
  }

  /** Nothing to release (kept for symmetry with other test resources). */
  close(): void {}
}

function perform(document: HDocument, stream: HElement, source: string): void {
  const action = stream.getAttribute("action");
  const templateContent = (): HFragment => {
    const first = stream.firstElementChild;
    if (first === null) return document.createDocumentFragment();
    if (first.localName !== "template") {
      throw new StreamActionError(source, "the first child element of <turbo-stream> must be a <template>");
    }
    return (first as any).content.cloneNode(true) as HFragment;
  };
  const targets = (): HElement[] => {
    const id = stream.getAttribute("target");
    if (id) {
      const element = document.getElementById(id);
      return element ? [element as HElement] : [];
    }
    const selector = stream.getAttribute("targets");
    if (selector) return [...document.querySelectorAll(selector)] as HElement[];
    throw new StreamActionError(source, "target or targets attribute is missing");
  };
  const newIds = (): string[] =>
    [...templateContent().children].map((c) => c.getAttribute("id") ?? "").filter((id) => id !== "");

  switch (action) {
    case "append":
    case "prepend": {
      const ids = newIds();
      for (const child of targets().flatMap((e) => [...e.children])) {
        const id = child.getAttribute("id");
        if (id && ids.includes(id)) child.remove();
      }
      for (const target of targets()) {
        if (action === "append") target.append(templateContent());
        else target.prepend(templateContent());
      }
      return;
    }
    case "before":
    case "after": {
      const ids = newIds();
      for (const sibling of targets().flatMap((e) => (e.parentElement ? [...e.parentElement.children] : []))) {
        const id = sibling.getAttribute("id");
        if (id && ids.includes(id)) sibling.remove();
      }
      // Turbo looks the targets up again after removing duplicates: a target that was itself a duplicate is gone.
      for (const target of targets()) {
        target.parentElement?.insertBefore(templateContent(), action === "after" ? target.nextSibling : target);
      }
      return;
    }
    case "remove":
      for (const target of targets()) target.remove();
      return;
    case "replace": {
      const morph = stream.getAttribute("method") === "morph";
      for (const target of targets()) {
        const content = templateContent();
        if (morph) keepPermanent(document, content);
        target.replaceWith(content);
      }
      return;
    }
    case "update": {
      const morph = stream.getAttribute("method") === "morph";
      for (const target of targets()) {
        const content = templateContent();
        if (morph) keepPermanent(document, content);
        target.innerHTML = "";
        target.append(content);
      }
      return;
    }
    case "refresh":
      throw new StreamActionError(source, "refresh reloads the whole page; the oracle cannot apply it");
    default:
      throw new StreamActionError(source, action ? `unknown action "${action}"` : "action attribute is missing");
  }
}

// Morphing never touches an element that carries data-turbo-permanent and already exists in the page, and never
// adds a second copy of it: the end state holds the existing element where the new content places its id.
function keepPermanent(document: HDocument, content: HFragment): void {
  for (const incoming of descendants(content).filter((e) => e.id && e.hasAttribute("data-turbo-permanent"))) {
    const existing = document.getElementById(incoming.getAttribute("id")!);
    if (existing?.hasAttribute("data-turbo-permanent")) incoming.replaceWith(existing.cloneNode(true));
  }
}

/**
 * The canonical form of a page body for comparison: the <body> of `html` (or the whole fragment when `html` has
 * no body), without the live marker element and <script> tags, comments dropped, whitespace-only text between
 * tags dropped, other text trimmed with whitespace runs collapsed to one space, attributes sorted by name.
 */
export function normalizeBody(html: string): string {
  // Normalising is idempotent: a body this function just produced is returned as it is, without parsing again.
  if (recentlyNormalized.has(html)) return html;
  const body = withDocument(html, (document) => serializeCanonical(bodyNode(document)));
  recentlyNormalized.add(body);
  if (recentlyNormalized.size > RECENT_LIMIT) recentlyNormalized.delete(recentlyNormalized.values().next().value!);
  return body;
}

const RECENT_LIMIT = 256;
const recentlyNormalized = new Set<string>();

function bodyNode(document: HDocument): HNode {
  for (let node = document.documentElement.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === ELEMENT_NODE && (node as HElement).localName === "body") return node as HNode;
  }
  return document.documentElement as unknown as HNode;
}

function descendants(root: HFragment): HElement[] {
  const out: HElement[] = [];
  const walk = (node: HNode) => {
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (child.nodeType === ELEMENT_NODE) out.push(child as HElement);
      walk(child as HNode);
    }
  };
  walk(root as unknown as HNode);
  return out;
}

// Parsing happens in the document of a script-less happy-dom window, reused for WINDOW_REUSE parses and then
// closed and replaced: a new window per parse costs milliseconds, and happy-dom releases what a window parsed only
// once the window is closed (documents from createHTMLDocument or DOMParser are never released), so one window
// forever would grow without bound. `use` must not keep the document: the next parse overwrites it.
const WINDOW_REUSE = 50;
let window: InstanceType<typeof Window> | undefined;
let parses = 0;

function withDocument<T>(html: string, use: (document: HDocument) => T): T {
  if (!window || parses >= WINDOW_REUSE) {
    if (window) void window.happyDOM.close();
    window = new Window({
      settings: { disableJavaScriptEvaluation: true, disableJavaScriptFileLoading: true, disableCSSFileLoading: true },
    });
    parses = 0;
  }
  parses++;
  const document = window.document;
  document.documentElement.innerHTML = html;
  return use(document);
}

const SKIPPED = new Set(["script", WIRE.streamSourceTag]);

function serializeCanonical(body: HNode): string {
  const out: string[] = [];
  for (let child = body.firstChild; child; child = child.nextSibling) write(child as HNode, out);
  return out.join("");
}

function write(node: HNode, out: string[]): void {
  if (node.nodeType === TEXT_NODE) {
    const text = (node.textContent ?? "").replace(/\s+/g, " ").trim();
    if (text !== "") out.push(escapeText(text));
    return;
  }
  if (node.nodeType !== ELEMENT_NODE) return;
  const element = node as HElement;
  const tag = element.localName;
  if (SKIPPED.has(tag)) return;
  const attributes = element
    .getAttributeNames()
    .map((name) => [name, element.getAttribute(name) ?? ""] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  out.push(`<${tag}`);
  for (const [name, value] of attributes) out.push(` ${name}="${escapeAttribute(value)}"`);
  out.push(">");
  if (VOID.has(tag)) return;
  const parent = (tag === "template" ? (element as any).content : element) as HNode;
  for (let child = parent.firstChild; child; child = child.nextSibling) write(child as HNode, out);
  out.push(`</${tag}>`);
}

function escapeText(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/\u00a0/g, "&nbsp;");
}

function escapeAttribute(value: string): string {
  return value
    .replace(/&/g, "&amp;")
    .replace(/"/g, "&quot;")
    .replace(/\u00a0/g, "&nbsp;");
}
