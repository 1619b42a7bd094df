import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WIRE } from "../constants.ts";
import { StreamActionError } from "../errors.ts";
import { normalizeBody, PatchedDocument } from "./dom.ts";

const page = (body: string) => `<!doctype html><html><head><title>t</title></head><body>${body}</body></html>`;
const stream = (action: string, target: string, content = "", extra = "") =>
  `<turbo-stream action="${action}" ${/[.\s[#]/.test(target) ? "targets" : "target"}="${target}"${extra}><template>${content}</template></turbo-stream>`;

function applied(body: string, ...messages: string[]): string {
  const doc = new PatchedDocument(page(body));
  try {
    for (const m of messages) doc.apply(m);
    return doc.body();
  } finally {
    doc.close();
  }
}

describe("PatchedDocument stream actions", () => {
  test("append adds to the end and first removes children whose id reappears", () => {
    assert.equal(
      applied(
        `<ul id="l"><li id="a">A</li><li id="b">B</li></ul>`,
        stream("append", "l", `<li id="a">A2</li><li>C</li>`),
      ),
      `<ul id="l"><li id="b">B</li><li id="a">A2</li><li>C</li></ul>`,
    );
  });

  test("prepend adds to the start and first removes children whose id reappears", () => {
    assert.equal(
      applied(`<ul id="l"><li id="a">A</li><li id="b">B</li></ul>`, stream("prepend", "l", `<li id="b">B2</li>`)),
      `<ul id="l"><li id="b">B2</li><li id="a">A</li></ul>`,
    );
  });

  test("append of an existing id is idempotent", () => {
    const m = stream("append", "l", `<li id="x">X</li>`);
    assert.equal(applied(`<ul id="l"></ul>`, m, m, m), `<ul id="l"><li id="x">X</li></ul>`);
  });

  test("before and after insert next to the target, removing duplicate siblings first", () => {
    const body = `<ul id="l"><li id="a">A</li><li id="b">B</li><li id="c">C</li></ul>`;
    assert.equal(
      applied(body, stream("before", "b", `<li id="c">C2</li>`)),
      `<ul id="l"><li id="a">A</li><li id="c">C2</li><li id="b">B</li></ul>`,
    );
    assert.equal(
      applied(body, stream("after", "a", `<li id="c">C2</li>`)),
      `<ul id="l"><li id="a">A</li><li id="c">C2</li><li id="b">B</li></ul>`,
    );
  });

  test("after whose content repeats the target's own id removes the target and inserts nothing (as Turbo)", () => {
    assert.equal(
      applied(`<ul id="l"><li id="a">A</li><li id="b">B</li></ul>`, stream("after", "a", `<li id="a">A2</li>`)),
      `<ul id="l"><li id="b">B</li></ul>`,
    );
  });

  test("remove drops the target; a missing target is a no-op", () => {
    assert.equal(applied(`<p id="a">A</p><p id="b">B</p>`, stream("remove", "a")), `<p id="b">B</p>`);
    assert.equal(applied(`<p id="b">B</p>`, stream("remove", "a")), `<p id="b">B</p>`);
  });

  test("replace swaps the target element itself", () => {
    assert.equal(
      applied(`<div><p id="a" class="x">A</p></div>`, stream("replace", "a", `<section id="a">new</section>`)),
      `<div><section id="a">new</section></div>`,
    );
  });

  test("update swaps the children of the target", () => {
    assert.equal(
      applied(`<div id="a" class="k"><p>old</p></div>`, stream("update", "a", `<p>new</p>text`)),
      `<div class="k" id="a"><p>new</p>text</div>`,
    );
  });

  test("morph replace/update end in the new content", () => {
    assert.equal(
      applied(
        `<main id="r"><p id="a">A</p><p>B</p></main>`,
        stream("replace", "r", `<main id="r" data-x="1"><p>C</p></main>`, ` method="morph"`),
      ),
      `<main data-x="1" id="r"><p>C</p></main>`,
    );
    assert.equal(
      applied(`<main id="r"><p id="a">A</p></main>`, stream("update", "r", `<p id="b">B</p>`, ` method="morph"`)),
      `<main id="r"><p id="b">B</p></main>`,
    );
  });

  test("morph keeps an existing permanent element; a plain replace does not", () => {
    const body = `<main id="r"><div id="p" data-turbo-permanent>kept</div><p>old</p></main>`;
    const content = `<div id="p" data-turbo-permanent>fresh</div><p>new</p>`;
    assert.equal(
      applied(body, stream("update", "r", content, ` method="morph"`)),
      `<main id="r"><div data-turbo-permanent="" id="p">kept</div><p>new</p></main>`,
    );
    assert.equal(
      applied(body, stream("update", "r", content)),
      `<main id="r"><div data-turbo-permanent="" id="p">fresh</div><p>new</p></main>`,
    );
  });

  test("targets applies to every element matching the selector", () => {
    assert.equal(
      applied(`<ul class="c"><li>1</li></ul><ul class="c"></ul><ul></ul>`, stream("append", ".c", `<li>n</li>`)),
      `<ul class="c"><li>1</li><li>n</li></ul><ul class="c"><li>n</li></ul><ul></ul>`,
    );
    assert.equal(applied(`<p class="c">x</p><p>y</p>`, stream("remove", "p.c")), `<p>y</p>`);
  });

  test("target uses the first element with the id", () => {
    assert.equal(
      applied(`<p id="a">1</p><p id="a">2</p>`, stream("update", "a", "u")),
      `<p id="a">u</p><p id="a">2</p>`,
    );
  });

  test("several streams in one message apply in order", () => {
    assert.equal(
      applied(`<ul id="l"></ul>`, stream("append", "l", `<li id="a">A</li>`) + "\n" + stream("update", "a", "A2")),
      `<ul id="l"><li id="a">A2</li></ul>`,
    );
  });

  test("malformed streams are refused with a stable code", () => {
    const doc = new PatchedDocument(page(`<p id="a">A</p>`));
    try {
      for (const bad of [
        `<turbo-stream action="explode" target="a"><template></template></turbo-stream>`,
        `<turbo-stream target="a"><template></template></turbo-stream>`,
        `<turbo-stream action="remove"></turbo-stream>`,
        `<turbo-stream action="update" target="a"><div>no template</div></turbo-stream>`,
        `<p>not a stream</p>`,
      ]) {
        assert.throws(
          () => doc.apply(bad),
          (e: unknown) => e instanceof StreamActionError && e.code === "stream_action",
        );
      }
      assert.equal(doc.body(), `<p id="a">A</p>`);
    } finally {
      doc.close();
    }
  });
});

describe("normalizeBody", () => {
  test("drops the live marker and scripts, collapses whitespace, sorts attributes", () => {
    const a = page(
      `\n  <${WIRE.streamSourceTag} token="t1" offset="3"></${WIRE.streamSourceTag}>\n  <div  b="2" a="1">\n   hello\n  world  </div>\n<script>x()</script><!-- c -->`,
    );
    const b = `<body><div a="1" b="2">hello world</div><${WIRE.streamSourceTag} token="other"></${WIRE.streamSourceTag}></body>`;
    assert.equal(normalizeBody(a), `<div a="1" b="2">hello world</div>`);
    assert.equal(normalizeBody(a), normalizeBody(b));
  });

  test("keeps differences that matter: text, order, attribute values, void elements", () => {
    assert.notEqual(normalizeBody(`<p>a</p><p>b</p>`), normalizeBody(`<p>b</p><p>a</p>`));
    assert.notEqual(normalizeBody(`<p class="x">a</p>`), normalizeBody(`<p class="y">a</p>`));
    assert.equal(normalizeBody(`<input value="a &quot;b&quot;"><br>`), `<input value="a &quot;b&quot;"><br>`);
    assert.equal(normalizeBody(`<p>1 &lt; 2 &amp; 3</p>`), `<p>1 &lt; 2 &amp; 3</p>`);
  });

  test("is idempotent", () => {
    const once = normalizeBody(page(`<main id="r" class="a  b"><h1> x </h1><input value="1"><p>a &amp; b</p></main>`));
    assert.equal(normalizeBody(once), once);
    assert.equal(normalizeBody(`<body>${once}</body>`), once);
  });

  test("a patched document equals the normalised fresh page it converged to", () => {
    const doc = new PatchedDocument(page(`<main id="r"><h1>Old</h1></main><script src="/x.js"></script>`));
    try {
      doc.apply(stream("replace", "r", `<main id="r"><h1>New</h1></main>`, ` method="morph"`));
      assert.equal(doc.body(), normalizeBody(page(`<main id="r">\n <h1>New</h1>\n</main>`)));
    } finally {
      doc.close();
    }
  });
});
