// Reads a JSON array of Kubernetes objects on stdin and checks every Argo CD object against
// the Argo CD CRD schema shipped in @kubernetes-models/argo-cd. Prints one line per object;
// exits 1 if any object is invalid or of a kind this checker does not know.
import * as argo from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let failed = 0;
for (const obj of objects) {
  const label = `${obj?.kind ?? "?"}/${obj?.metadata?.name ?? "?"}`;
  const Model = obj?.apiVersion === "argoproj.io/v1alpha1" ? argo[obj.kind] : undefined;
  if (typeof Model !== "function") {
    console.log(`FAIL ${label}: not an Argo CD argoproj.io/v1alpha1 kind this checker knows`);
    failed += 1;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok   ${label}`);
  } catch (err) {
    console.log(`FAIL ${label}: ${err.message}`);
    failed += 1;
  }
}
process.exit(failed ? 1 : 0);
