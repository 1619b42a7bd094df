import assert from "node:assert/strict";
import { test } from "node:test";
import { PageParts, PageText, replaceOnce } from "./page-text.ts";

test("a page's parts: a frame gets a part of its own, and later versions replace only that part", () => {
  const page = PageText.of(`<h1>t</h1><ul id="a"><li id="x">1</li><li id="y">1</li></ul><p id="c">1</p>`);
  const parts = new PageParts(page);
  const [x, c, list] = [{}, {}, {}];
  const v1 = parts.splice([{ frame: x, old: `<li id="x">1</li>`, html: `<li id="x">2</li>` }])!;
  assert.equal(v1.text, `<h1>t</h1><ul id="a"><li id="x">2</li><li id="y">1</li></ul><p id="c">1</p>`);
  assert.equal(page.text, `<h1>t</h1><ul id="a"><li id="x">1</li><li id="y">1</li></ul><p id="c">1</p>`);
  const v2 = parts.splice([
    { frame: x, old: `<li id="x">2</li>`, html: `<li id="x">3</li>` },
    { frame: c, old: `<p id="c">1</p>`, html: `<p id="c">2</p>` },
  ])!;
  assert.equal(v2.text, `<h1>t</h1><ul id="a"><li id="x">3</li><li id="y">1</li></ul><p id="c">2</p>`);
  // The list spans the parts its member was split into: it is found after joining them.
  const v3 = parts.splice([
    { frame: list, old: `<ul id="a"><li id="x">3</li><li id="y">1</li></ul>`, html: `<ul id="a"></ul>` },
  ])!;
  assert.equal(v3.text, `<h1>t</h1><ul id="a"></ul><p id="c">2</p>`);
  const v4 = parts.splice([{ frame: c, old: `<p id="c">2</p>`, html: `<p id="c">3</p>` }])!;
  assert.equal(v4.text, `<h1>t</h1><ul id="a"></ul><p id="c">3</p>`);
  assert.notEqual(v3, v4, "every version is its own object");
  // A frame whose HTML is nowhere, or twice, on the page: null (the page is replayed).
  assert.equal(parts.splice([{ frame: {}, old: "<b>absent</b>", html: "" }]), null);
  assert.equal(new PageParts(PageText.of("<i>a</i><i>a</i>")).splice([{ frame: {}, old: "<i>a</i>", html: "" }]), null);
  assert.equal(replaceOnce("aXa", "X", "Y"), "aYa");
  assert.equal(replaceOnce("aXaX", "X", "Y"), null);
});
