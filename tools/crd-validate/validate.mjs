// Reads a JSON array of Kubernetes objects on stdin and checks each against the CRD schema of its
// apiVersion and kind, taken from the @kubernetes-models packages pinned in package-lock.json.
// Prints one line per object; exits 1 if any object is invalid or of a kind listed nowhere below.
// Core kinds are not here on purpose: kubernetes-validate checks those (pipelines/checks/manifests.py).
import { AppProject } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/AppProject";
import { Application } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application";
import { ApplicationSet } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/ApplicationSet";
import { AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate";
import { Rollout } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout";
import { WorkflowTemplate } from "@kubernetes-models/argo-workflows/argoproj.io/v1alpha1/WorkflowTemplate";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

// Three packages share argoproj.io/v1alpha1, so the key is apiVersion and kind together, read from
// each model class itself rather than typed out again.
const models = new Map(
  [Application, AppProject, ApplicationSet, Rollout, AnalysisTemplate, WorkflowTemplate,
    PrometheusRule, PodMonitor, ServiceMonitor].map((Model) => [`${Model.apiVersion} ${Model.kind}`, Model]),
);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let failed = 0;
for (const obj of objects) {
  const type = `${obj?.apiVersion ?? "?"} ${obj?.kind ?? "?"}`;
  const label = `${type}/${obj?.metadata?.name ?? "?"}`;
  const Model = models.get(type);
  if (!Model) {
    console.log(`FAIL ${label}: no CRD schema for this apiVersion and kind (known: ${[...models.keys()].join(", ")})`);
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
