/**
 * The canonical JSON text that idempotency keys are computed over. It is
 * byte-for-byte what the Python SDK's `canonical_json` produces
 * (`json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`):
 * object keys sorted by code point, no whitespace, non-ASCII kept as is.
 * `sdk/test-vectors/idempotency.json` proves it for both SDKs.
 *
 * One limit comes from JavaScript itself: a number has no separate integer
 * type, so a model's `1.0` is `1` here and `1.0` in Python (different keys for
 * that one call). Integers, non-integral numbers, strings, booleans, null and
 * nested objects and arrays agree.
 */

function compareCodePoints(a: string, b: string): number {
  // Python sorts str by code point; JS's default sort is by UTF-16 unit, which
  // differs for characters outside the Basic Multilingual Plane.
  const ca = Array.from(a);
  const cb = Array.from(b);
  const n = Math.min(ca.length, cb.length);
  for (let i = 0; i < n; i++) {
    const x = ca[i]?.codePointAt(0) ?? 0;
    const y = cb[i]?.codePointAt(0) ?? 0;
    if (x !== y) return x - y;
  }
  return ca.length - cb.length;
}

/** A number as Python's `json.dumps` writes it (integers as `int`, the rest as `float` repr). */
function pythonNumber(n: number): string {
  if (Number.isInteger(n)) return BigInt(n).toString();
  // Shortest round-trip digits (the same digits in both languages); Python
  // switches to exponent form below 1e-4 (JS only below 1e-6). Non-integral
  // doubles are all below 2**53, so large exponents never occur here.
  const [mantissa = "", expText = "0"] = n.toExponential().split("e");
  const exp = Number.parseInt(expText, 10);
  const sign = n < 0 ? "-" : "";
  const digits = mantissa.replace("-", "").replace(".", "");
  if (exp >= -4) {
    if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
    const whole = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
    return `${sign}${whole}.${digits.slice(exp + 1) || "0"}`;
  }
  const lead = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = String(-exp).padStart(2, "0");
  return `${sign}${lead}e-${e}`;
}

/** Compact JSON with sorted keys (stable across runs and key orders). */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) {
        throw new TypeError(`${value} cannot be written as JSON`);
      }
      return pythonNumber(value);
    case "bigint":
      return value.toString();
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(",")}]`;
      const withJson = value as { toJSON?: () => unknown };
      if (typeof withJson.toJSON === "function") return canonicalJson(withJson.toJSON());
      const entries = Object.entries(value as Record<string, unknown>).filter(
        ([, v]) => v !== undefined && typeof v !== "function",
      );
      entries.sort(([a], [b]) => compareCodePoints(a, b));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
    }
    default:
      throw new TypeError(`a ${typeof value} cannot be written as JSON`);
  }
}
