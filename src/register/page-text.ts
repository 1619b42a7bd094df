// A page group's HTML as the browsers of the group show it, kept as parts so that a frame render costs no copy of
// the page.
//
// A version of a page is a list of string parts whose concatenation is its HTML. A frame that has been rendered on
// its own is a part of its own, so the next version replaces that one part: no string of the page's size is built
// or copied per write, for a text that is read only when a page is replayed, resumed or served again (then the parts
// are joined once and the result kept). Versions are compared by identity: a subscriber showing exactly the version
// a patch was made from gets the patch.

import type { DataDocument } from "../render/data.ts";

/** `html` with its one occurrence of `part` replaced, or null when `part` does not occur exactly once. */
export function replaceOnce(html: string, part: string, replacement: string): string | null {
  if (part === "") return null;
  const at = html.indexOf(part);
  if (at < 0 || html.indexOf(part, at + 1) >= 0) return null;
  return html.slice(0, at) + replacement + html.slice(at + part.length);
}

export class PageText {
  #parts: readonly string[] | null;
  /** Data mode: the document this version's text was made from (render/data.ts). */
  data?: DataDocument;
  #text: string | undefined;
  #make: (() => string) | undefined;

  constructor(parts: readonly string[]) {
    this.#parts = parts;
    if (parts.length === 1) this.#text = parts[0];
  }

  static of(text: string): PageText {
    return new PageText([text]);
  }

  /** Data mode: a version whose text is made only when something reads it (a token's digest, a registration). */
  static ofData(doc: DataDocument, text: () => string): PageText {
    const page = new PageText([]);
    page.#parts = null;
    page.#make = text;
    page.data = doc;
    return page;
  }

  get parts(): readonly string[] {
    this.#parts ??= [this.text];
    return this.#parts;
  }

  /** The page's HTML (its parts joined, once). */
  get text(): string {
    if (this.#text === undefined) this.#text = this.#make ? this.#make() : (this.#parts as readonly string[]).join("");
    this.#make = undefined;
    return this.#text;
  }
}

/**
 * Where each frame rendered on its own sits among a page's parts, and the next version of the page with some frames'
 * HTML replaced. A frame without a part of its own is found in a part (its HTML must occur exactly once in the whole
 * page) and that part is split around it; a frame whose HTML spans several parts (a fragment whose child had been
 * split out) makes the page one part again before it is found.
 */
export class PageParts {
  #parts: string[];
  readonly #index = new Map<object, number>();

  constructor(page: PageText) {
    this.#parts = [...page.parts];
  }

  /** The page with each frame's `old` HTML replaced by `html`, or null when one cannot be found exactly once. */
  splice(edits: ReadonlyArray<{ frame: object; old: string; html: string }>): PageText | null {
    for (const { frame, old, html } of edits) {
      const at = this.#locate(frame, old);
      if (at < 0) return null;
      this.#parts[at] = html;
    }
    return new PageText([...this.#parts]);
  }

  /** Forget a frame's part (the frame is no longer on the page, or was replaced with its ancestor). */
  forget(frame: object): void {
    this.#index.delete(frame);
  }

  #locate(frame: object, old: string): number {
    const known = this.#index.get(frame);
    if (known !== undefined && this.#parts[known] === old) return known;
    this.#index.delete(frame);
    let found = this.#find(old);
    if (found === null) {
      // The frame's HTML may span parts: join them and search again.
      this.#parts = [this.#parts.join("")];
      this.#index.clear();
      found = this.#find(old);
      if (found === null) return -1;
    }
    const [k, at] = found;
    const part = this.#parts[k] as string;
    if (at === 0 && part.length === old.length) {
      this.#index.set(frame, k);
      return k;
    }
    const pieces = [part.slice(0, at), old, part.slice(at + old.length)].filter((p, i) => i === 1 || p !== "");
    const self = k + (at === 0 ? 0 : 1);
    this.#parts.splice(k, 1, ...pieces);
    const shift = pieces.length - 1;
    for (const [other, index] of this.#index) {
      if (index === k)
        this.#index.delete(other); // the part it was is now split
      else if (index > k) this.#index.set(other, index + shift);
    }
    this.#index.set(frame, self);
    return self;
  }

  /** The part and offset where `old` occurs, when it occurs exactly once in the whole page. */
  #find(old: string): [number, number] | null {
    let found: [number, number] | null = null;
    for (let k = 0; k < this.#parts.length; k++) {
      const part = this.#parts[k] as string;
      const at = part.indexOf(old);
      if (at < 0) continue;
      if (found !== null || part.indexOf(old, at + 1) >= 0) return null;
      found = [k, at];
    }
    return found;
  }
}
