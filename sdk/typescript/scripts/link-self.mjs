// Lets the compiled example (build/examples/typescript) import "@pliuz/sdk" the way a
// user's project does: node_modules/@pliuz/sdk → this package (its dist/, via "exports").
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { fileURLToPath } from "node:url";

const link = fileURLToPath(new URL("../node_modules/@pliuz/sdk", import.meta.url));
if (!existsSync(link)) {
  mkdirSync(fileURLToPath(new URL("../node_modules/@pliuz/", import.meta.url)), { recursive: true });
  symlinkSync("../..", link, "dir");
}
