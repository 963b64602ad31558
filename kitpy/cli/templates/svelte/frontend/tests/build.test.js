// `npm test`: the build writes the app into ../static, where kitpy serves it.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";

const STATIC = new URL("../../static/", import.meta.url);

test("the build writes index.html into static/", () => {
  const page = readFileSync(new URL("index.html", STATIC), "utf8");
  assert.match(page, /<div id="app"><\/div>/);
});

test("its scripts are fingerprinted files under static/assets/", () => {
  const page = readFileSync(new URL("index.html", STATIC), "utf8");
  const scripts = [...page.matchAll(/src="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  assert.ok(scripts.length > 0, "index.html loads no script from /assets/");
  for (const script of scripts) {
    assert.match(script, /-[\w-]{6,}\.js$/, `${script} has no content hash in its name`);
    assert.ok(existsSync(new URL(script, STATIC)), `${script} is missing`);
  }
});
