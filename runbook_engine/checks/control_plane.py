"""Istio control-plane checks: ``istiod_ready``, ``native_sidecars`` and ``trust_domain``.

- ``istiod_ready``: the istiod Deployment (``istiod``, or ``istiod-<revision>``) has rolled out
  and every replica is ready; its version is the tag of the ``discovery`` container image, and must
  equal the expected version (``1.24`` accepts any ``1.24.x``).
- ``native_sidecars``: istiod's ``ENABLE_NATIVE_SIDECARS`` env is what the rollout expects; with it,
  the proxy is injected as an init container with ``restartPolicy: Always`` and starts before the
  application's init containers (https://istio.io/latest/blog/2023/native-sidecars/).
- ``trust_domain``: ``trustDomain`` in mesh config (ConfigMap ``istio``, key ``mesh``; unset means
  ``cluster.local``) equals the expected trust domain, and so does SPIRE's server ``trust_domain``
  when SPIRE is installed (https://istio.io/latest/docs/ops/integrations/spire/).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import Field

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.evidence import conclude, evidence, jsonpath
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.health import rollout_state
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

DEFAULT_TRUST_DOMAIN = "cluster.local"
SPIRE_NAMESPACES = ("spire-server", "spire", "spire-system")
DISCOVERY = "discovery"
_SPIRE_TRUST_DOMAIN = re.compile(r'"?trust_domain"?\s*[:=]\s*"([^"]+)"')


class IstiodArgs(CheckArgs):
    namespace: str = Field(default="istio-system", description="Namespace istiod runs in.")
    revision: str | None = Field(default=None, description="Revision; istiod-<revision> instead of istiod.")

    @property
    def deployment(self) -> str:
        return f"istiod-{self.revision}" if self.revision and self.revision != "default" else "istiod"


def istiod(ctx: CheckContext, args: IstiodArgs) -> Obj | None:
    return ctx.cluster.get(ObjectRef("apps/v1", "Deployment", args.namespace, args.deployment))


def discovery_container(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    """istiod's ``discovery`` container (or its first container)."""
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
    return next((c for c in containers if c.get("name") == DISCOVERY), containers[0])


def image_version(image: str) -> str:
    """The version in an image reference: ``docker.io/istio/pilot:1.24.2-distroless`` → ``1.24.2``."""
    reference = image.split("@", 1)[0]
    tag = reference.rpartition(":")[2] if ":" in reference.rpartition("/")[2] else ""
    return tag.split("-", 1)[0]


def version_matches(actual: str, expected: str) -> bool:
    """``1.24.2`` matches ``1.24.2`` and ``1.24``; a leading ``v`` is ignored on both sides."""
    a, e = actual.removeprefix("v"), expected.removeprefix("v")
    return a == e or a.startswith(e + ".")


def missing_istiod(check: Check[Any], ctx: CheckContext, args: IstiodArgs) -> Verdict:
    command = f"kubectl get deployment {args.deployment} -n {args.namespace}"
    return conclude(check, ctx, Status.FAIL, f"istiod is not installed: no Deployment {args.namespace}/"
                    f"{args.deployment}", [Evidence(command, f'Error from server (NotFound): deployments.apps '
                                                     f'"{args.deployment}" not found')],
                    hint="install istiod first (the control-plane phase)")


class IstiodReadyArgs(IstiodArgs):
    version: str | None = Field(default=None, description="Expected istiod version, e.g. 1.24.2 or 1.24.")


@register
class IstiodReady(Check[IstiodReadyArgs]):
    name = "istiod_ready"
    section = Section.FOUNDATION
    purpose = "istiod has rolled out, every replica is ready, and it runs the expected version."
    Args = IstiodReadyArgs

    def run(self, ctx: CheckContext, args: IstiodReadyArgs) -> Verdict:
        dep = istiod(ctx, args)
        if dep is None:
            return missing_istiod(self, ctx, args)
        state = rollout_state(dep)
        image = str(discovery_container(dep).get("image", ""))
        version = image_version(image) or "unknown"
        proof = [
            evidence(f"kubectl rollout status deployment/{args.deployment} -n {args.namespace} --watch=false",
                     state.detail),
            evidence(jsonpath("deployment", args.deployment, args.namespace,
                              f'{{.spec.template.spec.containers[?(@.name=="{DISCOVERY}")].image}}'), image),
        ]
        data = {"version": version, "ready": state.done}
        if not state.done:
            return conclude(self, ctx, Status.FAIL, f"istiod {version} is not ready: {state.detail}", proof,
                            hint=f"kubectl describe deployment {args.deployment} -n {args.namespace}", data=data)
        if args.version and not version_matches(version, args.version):
            return conclude(self, ctx, Status.FAIL, f"istiod runs {version}, expected {args.version}", proof,
                            hint="install the pinned istiod version (the control-plane phase)", data=data)
        return conclude(self, ctx, Status.PASS, f"istiod {version} is ready ({state.detail})", proof, data=data)


class NativeSidecarsArgs(IstiodArgs):
    expected: bool = Field(default=True, description="Whether ENABLE_NATIVE_SIDECARS should be on.")


def env_value(container: Mapping[str, Any], name: str) -> str | None:
    for env in container.get("env") or []:
        if env.get("name") == name:
            return str(env.get("value", ""))
    return None


@register
class NativeSidecars(Check[NativeSidecarsArgs]):
    name = "native_sidecars"
    section = Section.FOUNDATION
    purpose = "istiod injects the proxy as a native sidecar (init container, restartPolicy Always), or not, as planned."
    Args = NativeSidecarsArgs
    VARIABLE = "ENABLE_NATIVE_SIDECARS"

    def run(self, ctx: CheckContext, args: NativeSidecarsArgs) -> Verdict:
        dep = istiod(ctx, args)
        if dep is None:
            return missing_istiod(self, ctx, args)
        value = env_value(discovery_container(dep), self.VARIABLE)
        enabled = (value or "").lower() == "true"
        proof = [evidence(jsonpath("deployment", args.deployment, args.namespace,
                                   f'{{.spec.template.spec.containers[?(@.name=="{DISCOVERY}")].env[?(@.name=='
                                   f'"{self.VARIABLE}")].value}}'), value or "")]
        seen = f"{self.VARIABLE}={value}" if value is not None else f"{self.VARIABLE} is not set (off)"
        if enabled == args.expected:
            return conclude(self, ctx, Status.PASS, f"{seen} on istiod: native sidecars "
                            f"{'on' if enabled else 'off'}, as planned", proof, data={"enabled": enabled})
        want = "true" if args.expected else "false"
        return conclude(self, ctx, Status.FAIL, f"{seen} on istiod, expected {want}", proof,
                        hint=f"kubectl set env deployment/{args.deployment} -n {args.namespace} "
                        f"-c {DISCOVERY} {self.VARIABLE}={want}", data={"enabled": enabled})


class TrustDomainArgs(CheckArgs):
    expected: str = Field(description="The trust domain the mesh and SPIRE must use.")
    namespace: str = Field(default="istio-system", description="Namespace of the mesh config ConfigMap.")
    configmap: str = Field(default="istio", description="Name of the mesh config ConfigMap.")
    spire_namespaces: list[str] = Field(default=list(SPIRE_NAMESPACES),
                                        description="Where to look for SPIRE's server ConfigMap.")
    spire_configmap: str = Field(default="spire-server", description="SPIRE server ConfigMap name.")
    spire_key: str = Field(default="server.conf", description="Key of the SPIRE server configuration.")


def mesh_trust_domain(configmap: Mapping[str, Any]) -> str:
    loaded = yaml.safe_load(str((configmap.get("data") or {}).get("mesh") or "")) or {}
    return str(loaded.get("trustDomain") or DEFAULT_TRUST_DOMAIN) if isinstance(loaded, dict) else DEFAULT_TRUST_DOMAIN


def spire_trust_domain(server_conf: str) -> str | None:
    """``trust_domain`` from SPIRE's server.conf (HCL, or the JSON the Helm chart renders)."""
    found = _SPIRE_TRUST_DOMAIN.search(server_conf)
    return found.group(1) if found else None


@register
class TrustDomain(Check[TrustDomainArgs]):
    name = "trust_domain"
    section = Section.FOUNDATION
    purpose = "The mesh trust domain (and SPIRE's, when SPIRE issues the identities) is the expected one."
    Args = TrustDomainArgs

    def run(self, ctx: CheckContext, args: TrustDomainArgs) -> Verdict:
        cm = ctx.cluster.get(ObjectRef("v1", "ConfigMap", args.namespace, args.configmap))
        command = jsonpath("configmap", args.configmap, args.namespace, "{.data.mesh}")
        if cm is None:
            return conclude(self, ctx, Status.FAIL, f"no mesh config: ConfigMap {args.namespace}/{args.configmap} "
                            "not found", [Evidence(command, "Error from server (NotFound)")],
                            hint="install istiod with meshConfig.trustDomain set")
        istio = mesh_trust_domain(cm)
        proof = [evidence(command, str((cm.get("data") or {}).get("mesh") or ""))]
        spire, spire_proof = self._spire(ctx, args)
        proof.extend(spire_proof)
        data = {"istio": istio, "spire": spire}
        wrong = [f"Istio uses {istio}"] if istio != args.expected else []
        if spire is not None and spire != args.expected:
            wrong.append(f"SPIRE uses {spire}")
        if wrong:
            return conclude(self, ctx, Status.FAIL, f"trust domain is not {args.expected}: {'; '.join(wrong)}", proof,
                            hint="set meshConfig.trustDomain and SPIRE's trust_domain to the same value "
                            "(identities and authorization principals depend on it)", data=data)
        also = " and SPIRE" if spire is not None else " (SPIRE not installed)"
        return conclude(self, ctx, Status.PASS, f"trust domain {istio} in mesh config{also}", proof, data=data)

    @staticmethod
    def _spire(ctx: CheckContext, args: TrustDomainArgs) -> tuple[str | None, list[Evidence]]:
        for ns in args.spire_namespaces:
            cm = ctx.cluster.get(ObjectRef("v1", "ConfigMap", ns, args.spire_configmap))
            if cm is None:
                continue
            conf = str((cm.get("data") or {}).get(args.spire_key) or "")
            key = args.spire_key.replace(".", "\\.")
            found = spire_trust_domain(conf)
            return found, [evidence(jsonpath("configmap", args.spire_configmap, ns, f"{{.data.{key}}}"), conf)]
        return None, []
