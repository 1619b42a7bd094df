import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { normalizeBody, PatchedDocument } from "../testing/dom.ts";
import { narrowBodyPatch } from "./diff.ts";

const page = (body: string) => `<!doctype html><html><head><title>t</title></head><body>${body}</body></html>`;

function applied(before: string, after: string): string {
  const patch = narrowBodyPatch(before, after);
  assert.notEqual(patch, null, "expected a narrowed patch");
  const document = new PatchedDocument(before);
  if (patch) document.apply(patch);
  return normalizeBody(document.body());
}

test("a changed element with an id is replaced alone", () => {
  const before = page(`<h1>Board</h1><ul id="cards"><li id="card_1">one</li><li id="card_2">two</li></ul>`);
  const after = page(`<h1>Board</h1><ul id="cards"><li id="card_1">one</li><li id="card_2">TWO</li></ul>`);
  const patch = narrowBodyPatch(before, after)!;
  assert.equal(
    patch,
    `<turbo-stream action="replace" method="morph" target="card_2"><template><li id="card_2">TWO</li></template></turbo-stream>`,
  );
  assert.equal(applied(before, after), normalizeBody(after));
});

test("an inserted or removed child widens to the nearest element with an id", () => {
  const before = page(`<main><ul id="cards"><li id="card_1">one</li></ul><p>x</p></main>`);
  const after = page(`<main><ul id="cards"><li id="card_1">one</li><li id="card_3">three</li></ul><p>x</p></main>`);
  assert.match(narrowBodyPatch(before, after)!, /target="cards"/);
  assert.equal(applied(before, after), normalizeBody(after));
});

test("equal bodies need no actions; unprovable differences give null", () => {
  assert.equal(narrowBodyPatch(page("<p>a</p>"), page("<p>a</p>")), "");
  // Text directly in <body>, and a change with no id'd ancestor, cannot be narrowed.
  assert.equal(narrowBodyPatch(page("a<p>b</p>"), page("b<p>b</p>")), null);
  assert.equal(narrowBodyPatch(page("<div><p>a</p></div>"), page("<div><p>a</p><p>b</p></div>")), null);
  // A duplicated id is never a target.
  assert.equal(narrowBodyPatch(page(`<p id="x">a</p><p id="x">b</p>`), page(`<p id="x">a</p><p id="x">c</p>`)), null);
  // Body attributes are not children: whole-body morph.
  assert.equal(
    narrowBodyPatch(`<body class="a"><p id="x">1</p></body>`, `<body class="b"><p id="x">1</p></body>`),
    null,
  );
});

test("property: applying the narrowed patch to the old body gives the new body", () => {
  // Random trees of divs/lists with some ids, random edits; whenever a patch is produced it must be exact. Trees
  // are well nested (no block inside <p>), because the DOM oracle's parser does not repair misnesting the way
  // browsers (and parse5) do.
  const leaf = fc.constantFrom("a", "b", "c", "");
  const tree: fc.Arbitrary<string> = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      leaf.map((t) => t),
      fc
        .record({
          tag: fc.constantFrom("div", "ul", "p", "span", "section"),
          id: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
          cls: fc.option(fc.constantFrom("x", "y"), { nil: undefined }),
          kids: fc.array(tie("node"), { maxLength: 3 }),
        })
        .map(({ tag, id, cls, kids }) => {
          const t = tag === "ul" ? "ul" : tag;
          const inline = tag === "p" || tag === "span";
          const inner =
            tag === "ul"
              ? kids.map((k) => `<li>${k}</li>`).join("")
              : inline
                ? kids.map((k) => (k as string).replace(/<[^>]*>/g, "")).join("")
                : kids.join("");
          return `<${t}${id ? ` id="n${id}"` : ""}${cls ? ` class="${cls}"` : ""}>${inner}</${t}>`;
        }),
    ),
  })).node as fc.Arbitrary<string>;
  fc.assert(
    fc.property(
      fc.array(tree, { minLength: 1, maxLength: 4 }),
      fc.array(tree, { minLength: 1, maxLength: 4 }),
      (x, y) => {
        const before = page(`<main id="root">${x.join("")}</main>`);
        const after = page(`<main id="root">${y.join("")}</main>`);
        const patch = narrowBodyPatch(before, after);
        if (patch === null) return;
        const document = new PatchedDocument(before);
        if (patch) document.apply(patch);
        assert.equal(normalizeBody(document.body()), normalizeBody(after));
      },
    ),
    { numRuns: 500 },
  );
});
