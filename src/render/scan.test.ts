import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type DefaultTreeAdapterMap, parse, parseFragment, serializeOuter } from "parse5";
import { normalizeBody, PatchedDocument } from "../testing/dom.ts";
import { narrowBodyPatch } from "./diff.ts";
import { idCounts, narrowByScan, rootElementId } from "./scan.ts";

type Element = DefaultTreeAdapterMap["element"];
const isElement = (n: DefaultTreeAdapterMap["node"]): n is Element => "tagName" in n;

test("a frame's root: one element with an id, every element closed where the tags say", () => {
  assert.equal(rootElementId(`<li id="card_1" class="card">x<b>y</b><input name="t"/></li>`), "card_1");
  assert.equal(rootElementId(`<tr id="r"><td>1</td><td>2</td></tr>`), "r");
  assert.equal(rootElementId(`<div id='a'><svg viewBox="0 0 1 1"><path d="M0"/></svg></div>`), "a");
  assert.equal(rootElementId(`<div id="a"><select name="s"><option value="1">one</option></select></div>`), "a");
  assert.equal(rootElementId(`<div id="a"><script>if (a < b) document.write("</p>")</script></div>`), "a");
  assert.equal(rootElementId(`<li id="r"><ul><li>nested list</li></ul></li>`), "r"); // a <ul> bounds the search
  assert.equal(rootElementId(`<div id="a"><table><tr><td><p>x<div>y</div></p></td></tr></table></div>`), null);
  for (const html of [
    `<li id="a">1</li><li id="b">2</li>`, // two roots
    `text<li id="a">1</li>`, // text before the root
    `<li id="a">1</li>text`, // text after it
    `<li>no id</li>`,
    `<p id="a"><div>block in p</div></p>`, // the parser closes the <p>
    `<li id="a"><li>nested li</li></li>`, // the parser closes the outer <li>
    `<div id="a"/>`, // not self-closing in HTML
    `<div id="a"><span>unclosed</div>`,
    `<tr id="r"><div>foster-parented</div></tr>`,
    `<tr id="r">text in a row<td>1</td></tr>`,
    `<div id="a"><td>cell outside a row</td></div>`,
    `<div id="a"><select><div>dropped</div></select></div>`,
    `<div id="a"><svg><div>breaks out</div></svg></div>`,
    `<div id="a"><a href="x"><a href="y">nested</a></a></div>`,
    `<li id="r"><div><li></li></div></li>`, // an <li> closes the open <li> through a <div>
    `<dl id="d"><dt>t<div><dd>x</dd></div></dt></dl>`, // a <dd> closes the open <dt> through a <div>
    `<div id="a"><p><span><div>x</div></span></p></div>`, // a <div> closes the <p> in button scope
    `<div id="a"><form><div><form></form></div></form></div>`, // a nested <form> start tag is ignored
    `<div id="a"><button><span><button>x</button></span></button></div>`,
    `<div id="a"><h1><h2>x</h2></h1></div>`, // a heading closes the heading it is in
  ]) {
    assert.equal(rootElementId(html), null, html);
  }
});

test("narrowing by scan: the innermost element with a unique id that encloses the difference", () => {
  const before = `<h1>Board</h1><ul id="cards"><li id="card_1">one</li><li id="card_2">two</li></ul>`;
  assert.deepEqual(narrowByScan(before, before.replace("two", "TWO")), {
    id: "card_2",
    html: `<li id="card_2">TWO</li>`,
  });
  // A change of the element's own start tag is covered by its parent.
  assert.equal(
    (narrowByScan(before, before.replace(`<li id="card_2">`, `<li id="card_2" class="x">`)) as { id: string }).id,
    "cards",
  );
  // Two members changed: their list.
  assert.equal((narrowByScan(before, before.replace("one", "1").replace("two", "2")) as { id: string }).id, "cards");
  assert.equal(narrowByScan(before, before), "");
  // No element with an id encloses it, or the id is not unique, or the markup is not scannable: null.
  assert.equal(narrowByScan(before, before.replace("Board", "B")), null);
  assert.equal(narrowByScan(`<p id="x">a</p><p id="x">b</p>`, `<p id="x">a</p><p id="x">c</p>`), null);
  assert.equal(narrowByScan(`<div id="x"><p>a<div>b</div></div>`, `<div id="x"><p>a<div>c</div></div>`), null);
  assert.equal(idCounts(`<a id="x"></a><b ID='x'></b><i id=y></i>`).get("x"), 2);
});

/** The element children of the first <div> of `<body><div>…</div>` parsed as a document. */
function inPage(html: string, wrap: [string, string]): string[] {
  const document = parse(`<!doctype html><html><head></head><body>${wrap[0]}${html}${wrap[1]}</body></html>`);
  let node = document.childNodes.find(isElement) as Element;
  const path = ["body", ...[...wrap[0].matchAll(/<([a-z]+)/g)].map((m) => m[1] as string)];
  for (const name of path)
    node = node.childNodes.find((n): n is Element => isElement(n) && n.tagName === name) as Element;
  return node.childNodes.map((n) => (isElement(n) ? serializeOuter(n) : `#${n.nodeName}`));
}

test("property: a root the scan accepts parses to that one element, in the page and in a <template> alike", () => {
  const tags = ["div", "p", "span", "li", "ul", "b", "select", "option", "table", "tr", "td", "a", "svg", "path"];
  const node: fc.Memo<string> = fc.memo((depth) =>
    depth <= 1
      ? fc.constantFrom("x", "", "<br>", "<input/>", "<b>t</b>", "<!-- c -->")
      : fc
          .tuple(fc.constantFrom(...tags), fc.array(node(depth - 1), { maxLength: 3 }), fc.boolean())
          .map(([tag, children, closed]) => `<${tag}>${children.join("")}${closed ? `</${tag}>` : ""}`),
  );
  let accepted = 0;
  fc.assert(
    fc.property(
      fc.constantFrom("div", "li", "tr", "section"),
      fc.array(node(4), { maxLength: 3 }),
      (root, children) => {
        const html = `<${root} id="r">${children.join("")}</${root}>`;
        if (rootElementId(html) !== "r") return;
        accepted++;
        const template = parseFragment(html).childNodes;
        assert.equal(template.length, 1, html);
        const wrap: [string, string] =
          root === "tr"
            ? ["<table><tbody>", "</tbody></table>"]
            : root === "li"
              ? ["<ul>", "</ul>"]
              : ["<div>", "</div>"];
        assert.deepEqual(inPage(html, wrap), [serializeOuter(template[0] as Element)], html);
      },
    ),
    { numRuns: 2000 },
  );
  assert.ok(accepted > 200, `the scan accepted ${accepted} of 2000`);
});

test("property: a patch narrowed by scan brings the old body to the new one", () => {
  const item = fc
    .tuple(fc.integer({ min: 0, max: 5 }), fc.constantFrom("a", "b", "<i>c</i>", ""))
    .map(([id, text]) => `<li id="i${id}">${text}</li>`);
  const list = fc.array(item, { maxLength: 5 }).map((items) => `<ul id="list">${items.join("")}</ul>`);
  const body = fc
    .tuple(list, fc.constantFrom("<p>x</p>", `<p id="p">y</p>`, ""))
    .map(([l, p]) => `<main>${l}${p}</main>`);
  const page = (b: string) => `<!doctype html><html><head><title>t</title></head><body>${b}</body></html>`;
  let narrowed = 0;
  fc.assert(
    fc.property(body, body, (a, b) => {
      const patch = narrowBodyPatch(page(a), page(b));
      if (patch === null) return;
      if (narrowByScan(a, b) !== null) narrowed++;
      const document = new PatchedDocument(page(a));
      if (patch) document.apply(patch);
      assert.equal(normalizeBody(document.body()), normalizeBody(page(b)), `${a}\n${b}\n${patch}`);
    }),
    { numRuns: 1000 },
  );
  assert.ok(narrowed > 100, `the scan narrowed ${narrowed} of 1000`);
});
