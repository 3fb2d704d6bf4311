// Parses each query of a JSON-lines corpus with Grafana's editor grammar
// (@grafana/lezer-logql) and prints, per query, whether it parsed without error nodes.
// Usage: node check.mjs <node_modules dir> <corpus.jsonl>   (output: JSON lines)
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [modules, corpus] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modules), "index.js"));
const { parser } = require("@grafana/lezer-logql");

for (const line of readFileSync(corpus, "utf8").split("\n")) {
  if (!line.trim()) continue;
  const { query } = JSON.parse(line);
  const tree = parser.parse(query);
  let ok = true;
  tree.iterate({
    enter: (node) => {
      if (node.type.isError) ok = false;
    },
  });
  console.log(JSON.stringify({ query, ok }));
}
