// Bundles the dashboard (and the login link's page) into the gateway package's static folder. The bundle is
// committed, so `make run` needs no Node; `--check` rebuilds in memory and fails if the
// committed files differ from what the sources build (the test suite runs it).
import { build } from "esbuild";
import { mkdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "rts_gateway", "static");
const check = process.argv.includes("--check");
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: { dashboard: join(here, "src", "main.js"), login: join(here, "src", "login.js") },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outdir: out,
  write: false,
  legalComments: "eof",
  logLevel: "warning",
});

let stale = [];
for (const file of result.outputFiles) {
  if (check) {
    let committed = "";
    try {
      committed = readFileSync(file.path, "utf8");
    } catch {}
    if (committed !== file.text) stale.push(file.path);
  } else {
    await writeFile(file.path, file.text);
    console.log(`wrote ${file.path} (${file.text.length} bytes)`);
  }
}
if (stale.length) {
  console.error(`out of date (run \`make frontend\`): ${stale.join(", ")}`);
  process.exit(1);
}
