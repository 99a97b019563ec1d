// Types for @lmz/client/structured-clone (SC-JSON, the W4 {json, meta} format).

/** The JSON-safe intermediate form: what travels inside gateway frames. */
export interface LmzIntermediate {
  json: unknown;
  meta: { aliases?: Record<string, unknown> };
}

/**
 * Encodes any structured-clone value (primitives incl. undefined, NaN, -0 and
 * bigint; Date, RegExp, URL, Headers, Map, Set, Error and subclasses,
 * ArrayBuffer, typed arrays, DataView, boxed primitives, arrays with holes,
 * plain objects; cycles and shared references) into `{json, meta}`.
 * @throws TypeError for symbols and native Request/Response objects.
 */
export function preprocess(value: unknown): LmzIntermediate;

/** Rebuilds a value from `{json, meta}`. @throws TypeError on a malformed payload. */
export function postprocess<T = unknown>(intermediate: LmzIntermediate): T;

/** `JSON.stringify(preprocess(value))`. */
export function stringify(value: unknown): string;

/** `postprocess(JSON.parse(text))`. */
export function parse<T = unknown>(text: string): T;
