// Where things are, from the compiled test file (build/sdk/typescript/test/support/paths.js).
import { fileURLToPath } from "node:url";

/** `sdk/typescript/` as a URL (with a trailing slash). */
export const PACKAGE_ROOT = new URL("../../../../../", import.meta.url);
/** `sdk/` as a URL. */
export const SDK_ROOT = new URL("../", PACKAGE_ROOT);
/** The repository root as a URL. */
export const REPO_ROOT = new URL("../", SDK_ROOT);

export const PLIUZ_BIN = process.env.PLIUZ_BIN ?? fileURLToPath(new URL("target/debug/pliuz", REPO_ROOT));
