/**
 * Redaction of sensitive arguments before they leave the process, the same as
 * the Python SDK's (`sdk/test-vectors/redaction.json` proves it for both).
 *
 * Paths are dotted keys with `[*]` for "every element of a list" and `[N]` for
 * one element:
 *
 * ```text
 * "card.number"    {"card": {"number": "4111..."}}
 * "items[*].ssn"   {"items": [{"ssn": "..."}, {"ssn": "..."}]}
 * "tokens[*]"      {"tokens": ["a", "b"]}
 * ```
 *
 * Redacted values are replaced with `"[REDACTED]"` in what is sent to the
 * server. After the decision, {@link restore} puts the local originals back into
 * the approved arguments: for a redacted path the local original always wins,
 * even if an approver edited it.
 */
import { PliuzArgumentsError } from "./errors.js";

export const REDACTED = "[REDACTED]";

const WILD: unique symbol = Symbol("[*]");
export type PatternPart = string | number | typeof WILD;
export type ConcretePath = readonly (string | number)[];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

const SEGMENT = /([^.[\]]+)|\[(\*|\d+)\]|(\.)/y;

/** Parse `"items[*].ssn"` into `["items", WILD, "ssn"]`; throws `TypeError` if malformed. */
export function parsePath(path: string): PatternPart[] {
  const bad = (why = ""): TypeError => new TypeError(`invalid redaction path ${JSON.stringify(path)}${why}`);
  if (!path || path.startsWith(".") || path.endsWith(".")) throw bad();
  const parts: PatternPart[] = [];
  let pos = 0;
  let expectKey = true;
  while (pos < path.length) {
    SEGMENT.lastIndex = pos;
    const m = SEGMENT.exec(path);
    if (m === null) throw bad(` at offset ${pos}`);
    const [, key, index, dot] = m;
    if (dot !== undefined) {
      if (expectKey) throw bad(": empty segment");
      expectKey = true;
    } else if (key !== undefined) {
      if (!expectKey) throw bad(`: missing '.' before ${JSON.stringify(key)}`);
      parts.push(key);
      expectKey = false;
    } else {
      parts.push(index === "*" ? WILD : Number.parseInt(index ?? "", 10));
      expectKey = false;
    }
    pos = SEGMENT.lastIndex;
  }
  if (expectKey) throw bad();
  return parts;
}

function* expand(value: unknown, pattern: readonly PatternPart[], prefix: ConcretePath): Generator<ConcretePath> {
  if (pattern.length === 0) {
    yield prefix;
    return;
  }
  const [head, ...rest] = pattern;
  if (head === WILD) {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) yield* expand(value[i], rest, [...prefix, i]);
    }
  } else if (typeof head === "number") {
    if (Array.isArray(value) && head >= 0 && head < value.length) {
      yield* expand(value[head], rest, [...prefix, head]);
    }
  } else if (head !== undefined && isObj(value) && Object.hasOwn(value, head)) {
    yield* expand(value[head], rest, [...prefix, head]);
  }
}

function get(value: unknown, path: ConcretePath): unknown {
  let v = value;
  for (const part of path) v = (v as Record<string | number, unknown>)[part];
  return v;
}

function set(value: unknown, path: ConcretePath, next: unknown): void {
  let v = value as Record<string | number, unknown>;
  for (const part of path.slice(0, -1)) v = v[part] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (last !== undefined) v[last] = next;
}

/** `["items", 0, "ssn"]` → `"items[0].ssn"`. */
export function formatPath(path: ConcretePath): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += (out ? "." : "") + part;
  }
  return out;
}

/** What {@link redact} returns: the masked `args` to send and the local `originals`. */
export interface Redacted {
  readonly args: Obj;
  readonly originals: readonly (readonly [ConcretePath, unknown])[];
  readonly patterns: readonly PatternPart[][];
  /** The concrete paths that were redacted, e.g. `["items[0].ssn"]`. */
  readonly paths: string[];
}

const key = (p: ConcretePath): string => JSON.stringify(p);

/** A deep copy of `args` with every value at `paths` replaced by `"[REDACTED]"`. */
export function redact(args: Obj, paths: readonly string[]): Redacted {
  const patterns = paths.map(parsePath);
  const masked = clone(args);
  const originals: [ConcretePath, unknown][] = [];
  const seen = new Set<string>();
  for (const pattern of patterns) {
    for (const concrete of expand(args, pattern, [])) {
      if (seen.has(key(concrete))) continue;
      seen.add(key(concrete));
      originals.push([concrete, clone(get(args, concrete))]);
      set(masked, concrete, REDACTED);
    }
  }
  return { args: masked, originals, patterns, paths: originals.map(([p]) => formatPath(p)) };
}

class Missing extends Error {}

function setCreating(value: unknown, path: ConcretePath, next: unknown): void {
  let v = value;
  for (let i = 0; i < path.length - 1; i++) {
    const part = path[i] as string | number;
    const after = path[i + 1];
    if (typeof part === "number") {
      if (!Array.isArray(v) || part >= v.length) throw new Missing();
      v = v[part];
    } else {
      if (!isObj(v)) throw new Missing();
      if (!Object.hasOwn(v, part) || v[part] === null) {
        if (typeof after === "number") throw new Missing();
        v[part] = {};
      }
      v = v[part];
    }
  }
  const last = path[path.length - 1];
  if (typeof last === "number") {
    if (!Array.isArray(v) || last >= v.length) throw new Missing();
    v[last] = next;
  } else if (last !== undefined) {
    if (!isObj(v)) throw new Missing();
    v[last] = next;
  }
}

/**
 * Put the local originals back into `finalArgs` (a copy is returned). Throws
 * {@link PliuzArgumentsError} if an original cannot be put back (the approver
 * removed its container) or a `"[REDACTED]"` placeholder is left at a redacted
 * path with no original to restore (e.g. an approver duplicated a list element).
 */
export function restore(finalArgs: Obj, redacted: Redacted): Obj {
  const out = clone(finalArgs);
  const restored = new Set<string>();
  for (const [path, original] of redacted.originals) {
    try {
      setCreating(out, path, clone(original));
    } catch (e) {
      if (!(e instanceof Missing)) throw e;
      throw new PliuzArgumentsError(
        `cannot restore redacted value at '${formatPath(path)}': the approved arguments no longer contain it`,
      );
    }
    restored.add(key(path));
  }
  for (const pattern of redacted.patterns) {
    for (const concrete of expand(out, pattern, [])) {
      if (!restored.has(key(concrete)) && get(out, concrete) === REDACTED) {
        throw new PliuzArgumentsError(
          `approved arguments hold a ${REDACTED} placeholder at '${formatPath(concrete)}' with no local original to restore`,
        );
      }
    }
  }
  return out;
}

/**
 * A copy of a JSON schema in which every redacted path accepts any value, so a
 * `"[REDACTED]"` placeholder left in place passes the server's validation of
 * edited arguments. Best effort: paths the schema does not describe are skipped.
 */
export function relaxSchema(
  schema: Obj | null | undefined,
  patterns: readonly PatternPart[][],
): Obj | null | undefined {
  if (schema === null || schema === undefined || patterns.length === 0) return schema;
  const out = clone(schema);
  const defs: Obj = isObj(out.$defs) ? out.$defs : {};
  const deref = (node: Obj): Obj => {
    const ref = node.$ref;
    if (typeof ref === "string" && ref.startsWith("#/$defs/")) {
      const target = defs[ref.split("/").pop() ?? ""];
      if (isObj(target)) {
        for (const k of Object.keys(node)) delete node[k];
        Object.assign(node, clone(target));
      }
    }
    return node;
  };
  for (const pattern of patterns) {
    let node: unknown = out;
    let parent: Obj | undefined;
    let lastKey: string | undefined;
    for (const part of pattern) {
      if (!isObj(node)) {
        node = undefined;
        break;
      }
      const n = deref(node);
      if (typeof part === "string") {
        const props = n.properties;
        if (!isObj(props) || !Object.hasOwn(props, part)) {
          node = undefined;
          break;
        }
        parent = props;
        lastKey = part;
        node = props[part];
      } else {
        const items = n.items;
        if (!isObj(items)) {
          node = undefined;
          break;
        }
        parent = n;
        lastKey = "items";
        node = items;
      }
    }
    if (node !== undefined && parent !== undefined && lastKey !== undefined) {
      parent[lastKey] = { description: "redacted by the agent; the original is restored locally" };
    }
  }
  return out;
}
