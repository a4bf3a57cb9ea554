/**
 * The frames of docs/protocol-vectors/frames/: each example in JSON and msgpack
 * decodes to the same frame, and the client's msgpack encoding of a client frame
 * is byte for byte the reference's.
 */

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { decodeFrame, encodeFrame, idNumber, type ClientFrame } from "../../src/frames.js";

/** From dist/test/unit/ to the repository root. */
const VECTORS = fileURLToPath(new URL("../../../../../docs/protocol-vectors/frames", import.meta.url));

interface Example {
  name: string;
  json?: string | null; // null: the frame exists only in JSON (hello, before identify)
  msgpack?: string | null;
}

function vectorFiles(): { file: string; direction: string; examples: Example[] }[] {
  return readdirSync(VECTORS)
    .filter((name) => name.endsWith(".json") && !name.startsWith("invalid"))
    .sort()
    .map((name) => {
      const data = JSON.parse(readFileSync(join(VECTORS, name), "utf8")) as { direction: string; examples: Example[] };
      return { file: name, direction: data.direction, examples: data.examples };
    });
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

const missing = existsSync(VECTORS) ? false : `no protocol vectors at ${VECTORS} yet`;

test("every vector decodes to the same frame from JSON and from msgpack", { skip: missing }, () => {
  let checked = 0;
  for (const { file, examples } of vectorFiles()) {
    for (const example of examples) {
      if (typeof example.json !== "string" || typeof example.msgpack !== "string") continue;
      const fromJson = decodeFrame(example.json);
      const fromMsgpack = decodeFrame(new Uint8Array(Buffer.from(example.msgpack, "hex")));
      assert.deepEqual(fromMsgpack, fromJson, `${file} ${example.name}`);
      if (fromJson.op === "updates") {
        for (const update of fromJson.updates) assert.ok(idNumber(update.update_id) >= 0);
      }
      checked += 1;
    }
  }
  assert.ok(checked >= 20, `only ${checked} examples`);
});

test("the client's msgpack of a client frame is the reference's, byte for byte", { skip: missing }, () => {
  let checked = 0;
  for (const { file, direction, examples } of vectorFiles()) {
    if (direction !== "client") continue;
    for (const example of examples) {
      if (typeof example.json !== "string" || typeof example.msgpack !== "string") continue;
      const frame = JSON.parse(example.json) as ClientFrame;
      assert.equal(hex(encodeFrame(frame, "msgpack") as Uint8Array), example.msgpack, `${file} ${example.name}`);
      checked += 1;
    }
  }
  assert.ok(checked >= 5, `only ${checked} examples`);
});
