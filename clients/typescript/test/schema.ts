/**
 * The protocol's JSON Schema (docs/protocol.schema.json), if the repository has
 * it, and a check of frames against it: a frame must match the definition of its
 * direction (`#/$defs/ClientFrame`, `#/$defs/ServerFrame`) and the part of the
 * schema that describes its op (found by `properties.op` `const` or `enum`).
 */

import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import type { ValidateFunction } from "ajv";

const require = createRequire(import.meta.url);
// ajv is CommonJS: its 2020-12 build is the module itself
const Ajv2020 = require("ajv/dist/2020") as typeof import("ajv/dist/2020.js").default;

/** From dist/test/ to the repository root. */
export const SCHEMA_PATH =
  process.env.BOTGW_PROTOCOL_SCHEMA ??
  fileURLToPath(new URL("../../../../docs/protocol.schema.json", import.meta.url));

export function schemaMissing(): string | false {
  return existsSync(SCHEMA_PATH) ? false : `no protocol schema at ${SCHEMA_PATH} yet`;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function opsOf(node: { [key: string]: Json }): string[] {
  const properties = node.properties;
  if (typeof properties !== "object" || properties === null || Array.isArray(properties)) return [];
  const op = properties.op;
  if (typeof op !== "object" || op === null || Array.isArray(op)) return [];
  if (typeof op.const === "string") return [op.const];
  if (Array.isArray(op.enum)) return op.enum.filter((value): value is string => typeof value === "string");
  return [];
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, "~0").replace(/\//g, "~1");
}

export class FrameSchema {
  private readonly byOp = new Map<string, ValidateFunction[]>();
  private readonly whole: ValidateFunction | null;
  private readonly direction: { client: ValidateFunction | null; server: ValidateFunction | null };

  constructor(path = SCHEMA_PATH) {
    const schema = JSON.parse(readFileSync(path, "utf8")) as { [key: string]: Json };
    const id = typeof schema.$id === "string" ? schema.$id : "urn:botgw:protocol";
    const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
    ajv.addSchema({ ...schema, $id: id });
    const pointers = new Map<string, string[]>();
    const walk = (node: Json, pointer: string): void => {
      if (Array.isArray(node)) {
        node.forEach((child, index) => walk(child, `${pointer}/${index}`));
        return;
      }
      if (typeof node !== "object" || node === null) return;
      for (const op of opsOf(node)) pointers.set(op, [...(pointers.get(op) ?? []), pointer]);
      for (const [key, child] of Object.entries(node)) {
        if (key !== "const" && key !== "enum" && key !== "examples") walk(child, `${pointer}/${escapePointer(key)}`);
      }
    };
    walk(schema, "");
    for (const [op, found] of pointers) {
      // the innermost descriptions are the frames; an outer one is a union of them
      this.byOp.set(
        op,
        found.map((pointer) => ajv.compile({ $ref: `${id}#${pointer}` })),
      );
    }
    const isUnion = ["oneOf", "anyOf", "$ref", "if"].some((key) => key in schema);
    this.whole = isUnion ? ajv.getSchema(id) ?? null : null;
    const defs = (schema.$defs ?? {}) as { [key: string]: Json };
    const named = (name: string): ValidateFunction | null =>
      name in defs ? ajv.compile({ $ref: `${id}#/$defs/${name}` }) : null;
    this.direction = { client: named("ClientFrame"), server: named("ServerFrame") };
  }

  /** Whether the schema names the frames of each direction. */
  get hasDirections(): boolean {
    return this.direction.client !== null && this.direction.server !== null;
  }

  get ops(): string[] {
    return [...this.byOp.keys()].sort();
  }

  /** Why `frame` does not match the schema, or null if it does. */
  problem(frame: { op: string }, direction?: "client" | "server"): string | null {
    const data: unknown = frame;
    const whole = direction === undefined ? null : this.direction[direction];
    if (whole !== null && !whole(data)) {
      return `${frame.op} frame ${JSON.stringify(frame)} is not a ${direction} frame: ${JSON.stringify(whole.errors)}`;
    }
    const validators = this.byOp.get(frame.op);
    if (validators === undefined) return `the schema describes no frame with op ${JSON.stringify(frame.op)}`;
    const errors: string[] = [];
    if (!validators.some((validate) => validate(data) || (errors.push(JSON.stringify(validate.errors)), false))) {
      return `${frame.op} frame ${JSON.stringify(frame)} does not match: ${errors.join("; ")}`;
    }
    if (this.whole !== null && !this.whole(data)) {
      return `${frame.op} frame does not match the schema as a whole: ${JSON.stringify(this.whole.errors)}`;
    }
    return null;
  }
}
