"""The monitoring files (alert rules, their promtool unit tests, the dashboard, the analysis
templates) as the tests read them, and the metric names their expressions and the service use.
Shared by tests/test_monitoring.py and tests/test_rollout_analysis.py."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "environments" / "monitoring"
RULES = MONITORING / "gitops-ml.rules.yml"
RULE_TESTS = MONITORING / "tests" / "gitops-ml.rules.test.yml"
DASHBOARD = MONITORING / "dashboards" / "gitops-ml.json"
ANALYSIS = [ROOT / "environments" / "base" / "canary" / "analysis-template.yaml",
            ROOT / "environments" / "base" / "blue-green" / "analysis-templates.yaml"]
# Exported by the Argo Rollouts controller, not by the service.
NOT_FROM_SERVICE = {"rollout_info"}
TOKEN = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run promtool; its exit code and output."""
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)


def rule_groups() -> list[dict]:
    """The groups of the plain rule file."""
    return yaml.safe_load(RULES.read_text())["groups"]


def alerts() -> dict[str, dict]:
    """Alert name -> its rule."""
    return {r["alert"]: r for g in rule_groups() for r in g["rules"] if "alert" in r}


def exprs_of_rules() -> list[str]:
    """The expression of every recording and alert rule."""
    return [r["expr"] for g in rule_groups() for r in g["rules"]]


def exprs_of_dashboard() -> list[str]:
    """The query of every dashboard panel target."""
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def exprs_of_analysis() -> list[str]:
    """The Prometheus query of every analysis template metric."""
    docs = [d for path in ANALYSIS for d in yaml.safe_load_all(path.read_text())]
    return [m["provider"]["prometheus"]["query"] for d in docs for m in d["spec"]["metrics"]
            if "prometheus" in m["provider"]]


def metric_names(expr: str) -> set[str]:
    """Series names an expression reads (recorded names included, label values excluded)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_matchers = re.sub(r"\{[^}]*\}", "{}", without_strings)
    return {t for t in TOKEN.findall(without_matchers)
            if t.startswith("gitops_ml") or ":" in t or t in NOT_FROM_SERVICE}


def exported_names() -> set[str]:
    """Every series name the service's registry exposes (histograms with their suffixes)."""
    from prometheus_client import generate_latest

    from service.metrics import Metrics

    text = generate_latest(Metrics().registry).decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            elif kind == "counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            else:
                names.add(name)
    return names
