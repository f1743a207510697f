"""Mesh enrolment: is a pod (or a workload's pod template) meshed, in which form, and why (not).

Rules, from the documentation:

- Istio sidecar injection (https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/
  #controlling-the-injection-policy): namespace label ``istio-injection=enabled|disabled`` or
  ``istio.io/rev=<revision>``; pod label (or legacy annotation) ``sidecar.istio.io/inject``. If either
  label says disabled the pod is not injected; if either says enabled it is. ``istio-injection`` wins
  over ``istio.io/rev`` on a namespace. A revision only injects if an istiod of that revision (or a
  revision tag pointing at one) is installed.
- The proxy is ``istio-proxy`` as a regular container, or as an init container with
  ``restartPolicy: Always`` when istiod runs with ``ENABLE_NATIVE_SIDECARS=true``; both are meshed.
- Injection happens at pod creation: a namespace labelled after its pods started leaves them without a
  proxy until they are restarted.
- Ambient (https://istio.io/latest/docs/ambient/usage/add-workloads/): namespace or pod label
  ``istio.io/dataplane-mode=ambient``; pod label ``istio.io/dataplane-mode=none`` opts out; pods with
  a sidecar are not captured; enrolment needs the ztunnel DaemonSet on the pod's node and no restart.
- Linkerd (https://linkerd.io/2/features/proxy-injection/): annotation ``linkerd.io/inject:
  enabled|ingress`` on the namespace or pod template, ``disabled`` on the pod opts out; the
  ``linkerd-proxy`` container is added by the proxy injector at pod creation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.mesh.model import Mesh, MeshView, ProxyForm, Workload, annotations_of, labels, name_of

ISTIO_PROXY = "istio-proxy"
LINKERD_PROXY = "linkerd-proxy"


@dataclass(frozen=True)
class Enrolment:
    """Whether a pod (or a template) is meshed, in which mesh and form, and the reasons."""

    meshed: bool
    mesh: Mesh
    form: ProxyForm
    reasons: list[str] = field(default_factory=list)
    needs_restart: bool = False
    would_inject_on_restart: bool = False


@dataclass(frozen=True)
class _Decision:
    inject: bool
    reason: str
    injector_ok: bool = True
    labelled: bool = True  # False when nothing on the namespace or pod mentions this mesh


def proxy_in_spec(pod_spec: Mapping[str, Any]) -> tuple[Mesh, ProxyForm] | None:
    """The proxy a pod spec already carries, if any."""
    for container in pod_spec.get("containers") or []:
        if container.get("name") == ISTIO_PROXY:
            return Mesh.ISTIO_SIDECAR, ProxyForm.CONTAINER
        if container.get("name") == LINKERD_PROXY:
            return Mesh.LINKERD, ProxyForm.CONTAINER
    for container in pod_spec.get("initContainers") or []:
        native = container.get("restartPolicy") == "Always"
        if native and container.get("name") == ISTIO_PROXY:
            return Mesh.ISTIO_SIDECAR, ProxyForm.NATIVE_SIDECAR
        if native and container.get("name") == LINKERD_PROXY:
            return Mesh.LINKERD, ProxyForm.NATIVE_SIDECAR
    return None


def _pod_inject_flag(pod_labels: Mapping[str, str], pod_annotations: Mapping[str, str]) -> str | None:
    value = pod_labels.get("sidecar.istio.io/inject", pod_annotations.get("sidecar.istio.io/inject"))
    return None if value is None else value.lower()


def _revision_installed(view: MeshView, revision: str) -> bool:
    target = view.revision_tags.get(revision, revision)
    return target in view.istio_revisions


def istio_injection(
    view: MeshView, ns: str, pod_labels: Mapping[str, str], pod_annotations: Mapping[str, str]
) -> _Decision:
    """Would Istio's injector add a sidecar to a pod with these labels created now in ``ns``?"""
    ns_labels = view.namespace_labels(ns)
    ns_flag = ns_labels.get("istio-injection")
    pod_flag = _pod_inject_flag(pod_labels, pod_annotations)
    if ns_flag == "disabled":
        return _Decision(False, f"namespace {ns} is labelled istio-injection=disabled")
    if pod_flag == "false":
        return _Decision(False, "pod opts out with sidecar.istio.io/inject=false")
    revision = pod_labels.get("istio.io/rev") or ("default" if ns_flag == "enabled" else ns_labels.get("istio.io/rev"))
    if ns_flag == "enabled":
        why = f"namespace {ns} is labelled istio-injection=enabled"
    elif pod_labels.get("istio.io/rev") or ns_labels.get("istio.io/rev"):
        why = f"revision label istio.io/rev={revision}"
    elif pod_flag == "true":
        why, revision = "pod opts in with sidecar.istio.io/inject=true", "default"
    else:
        return _Decision(False, f"namespace {ns} has no istio-injection or istio.io/rev label", labelled=False)
    if not view.istio_revisions:
        return _Decision(True, f"{why}, but istiod is not installed: no injector", injector_ok=False)
    if not _revision_installed(view, revision or "default"):
        installed = ", ".join(sorted(view.istio_revisions)) or "none"
        return _Decision(True, f"{why}, but no istiod serves revision {revision} (installed: {installed})", False)
    return _Decision(True, why)


def linkerd_injection(view: MeshView, ns: str, pod_annotations: Mapping[str, str]) -> _Decision:
    """Would Linkerd's proxy injector add ``linkerd-proxy`` to a pod created now in ``ns``?"""
    pod_value = pod_annotations.get("linkerd.io/inject")
    ns_value = view.namespace_annotations(ns).get("linkerd.io/inject")
    if pod_value == "disabled":
        return _Decision(False, "pod opts out with linkerd.io/inject=disabled")
    if pod_value in ("enabled", "ingress"):
        why = f"pod annotation linkerd.io/inject={pod_value}"
    elif ns_value in ("enabled", "ingress"):
        why = f"namespace {ns} annotation linkerd.io/inject={ns_value}"
    else:
        return _Decision(False, "no linkerd.io/inject annotation", labelled=False)
    if not view.linkerd.installed:
        return _Decision(True, f"{why}, but the Linkerd proxy injector is not installed", injector_ok=False)
    return _Decision(True, why)


def ambient_enrolment(view: MeshView, ns: str, pod_labels: Mapping[str, str], node: str | None) -> _Decision:
    """Is a pod without a sidecar captured by ztunnel (ambient mode)?"""
    pod_mode = pod_labels.get("istio.io/dataplane-mode")
    ns_mode = view.namespace_labels(ns).get("istio.io/dataplane-mode")
    if pod_mode == "none":
        return _Decision(False, "pod opts out of ambient with istio.io/dataplane-mode=none")
    if pod_mode == "ambient":
        why = "pod label istio.io/dataplane-mode=ambient"
    elif ns_mode == "ambient":
        why = f"namespace {ns} is labelled istio.io/dataplane-mode=ambient"
    else:
        return _Decision(False, "not labelled for ambient", labelled=False)
    if not view.ztunnel_installed:
        return _Decision(True, f"{why}, but ztunnel is not installed", injector_ok=False)
    if node and view.ztunnel_nodes is not None and node not in view.ztunnel_nodes:
        return _Decision(True, f"{why}, but no ztunnel runs on node {node}", injector_ok=False)
    return _Decision(True, why)


def _form_for(mesh: Mesh, view: MeshView, pod_annotations: Mapping[str, str]) -> ProxyForm:
    if mesh is Mesh.ISTIO_SIDECAR:
        return ProxyForm.NATIVE_SIDECAR if view.native_sidecars else ProxyForm.CONTAINER
    native = pod_annotations.get("config.alpha.linkerd.io/proxy-enable-native-sidecar") == "true"
    return ProxyForm.NATIVE_SIDECAR if native else ProxyForm.CONTAINER


def _predict(
    view: MeshView, ns: str, pod_labels: Mapping[str, str], pod_annotations: Mapping[str, str]
) -> tuple[Mesh, list[str], bool]:
    """What a freshly created pod would get: (mesh, reasons, blocked by a missing injector)."""
    reasons: list[str] = []
    blocked = False
    for mesh, decision in (
        (Mesh.ISTIO_SIDECAR, istio_injection(view, ns, pod_labels, pod_annotations)),
        (Mesh.LINKERD, linkerd_injection(view, ns, pod_annotations)),
    ):
        if decision.inject and decision.injector_ok:
            return mesh, [decision.reason], False
        if decision.labelled:
            reasons.append(decision.reason)
        blocked = blocked or decision.inject
    if not reasons and not view.namespace_labels(ns).get("istio.io/dataplane-mode"):
        reasons.append(
            f"nothing enrols it: namespace {ns} has no istio-injection, istio.io/rev, "
            "istio.io/dataplane-mode or linkerd.io/inject setting"
        )
    return Mesh.NONE, reasons, blocked


def _enrol(view: MeshView, ns: str, spec: Mapping[str, Any], meta_src: Mapping[str, Any], is_pod: bool) -> Enrolment:
    pod_labels, pod_annotations = labels(meta_src), annotations_of(meta_src)
    predicted, why, blocked = _predict(view, ns, pod_labels, pod_annotations)
    present = proxy_in_spec(spec)
    if present is not None:
        mesh, form = present
        reasons = [
            f"{'pod' if is_pod else 'template'} runs {ISTIO_PROXY if mesh.is_istio else LINKERD_PROXY}"
            f" as a {form.value}"
        ]
        keeps = predicted is mesh or not is_pod
        if not keeps:
            reasons.append(f"a restart would not re-inject it ({'; '.join(why)})")
        return Enrolment(True, mesh, form, reasons, False, keeps)
    injected = predicted is not Mesh.NONE
    if injected and not is_pod:
        # A sidecar wins over ambient: ztunnel does not capture pods that carry one.
        return Enrolment(True, predicted, _form_for(predicted, view, pod_annotations), why, False, True)
    node = str(spec.get("nodeName") or "") or None
    ambient = ambient_enrolment(view, ns, pod_labels, node)
    if ambient.inject and ambient.injector_ok:
        return Enrolment(True, Mesh.ISTIO_AMBIENT, ProxyForm.AMBIENT, [ambient.reason], False, injected)
    if ambient.inject or ambient.labelled:
        why.append(ambient.reason)
    if predicted is Mesh.NONE:
        if blocked:
            why.append("a restart will not help until the injector is installed")
        return Enrolment(False, Mesh.NONE, ProxyForm.NONE, why, False, False)
    why.append("the pod has no proxy: it was created before injection applied; restart it to mesh it")
    return Enrolment(False, Mesh.NONE, ProxyForm.NONE, why, True, True)


def pod_enrolment(view: MeshView, pod: Mapping[str, Any]) -> Enrolment:
    """The enrolment of a running pod, and whether a restart would change it."""
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    return _enrol(view, ns, pod.get("spec") or {}, pod, True)


def template_enrolment(view: MeshView, wl: Workload) -> Enrolment:
    """The enrolment the workload's pods will have once (re)created from the current template."""
    return _enrol(view, wl.namespace, wl.pod_spec, wl.template, False)


def workload_enrolment(view: MeshView, wl: Workload) -> Enrolment:
    """The enrolment traffic sees: the running pods', or the template's for restarted/pod-less workloads.

    If the pods disagree (a rollout in progress), the least-meshed state wins, because one unmeshed
    replica is enough to fail a share of the connections under STRICT."""
    key = ("enrolment", wl.key)
    cached = view.cache.get(key)
    if cached is not None:
        result: Enrolment = cached
        return result
    if wl.key in view.restarted or not wl.pods:
        result = template_enrolment(view, wl)
    else:
        states = [pod_enrolment(view, p) for p in wl.pods]
        unmeshed = [s for s in states if not s.meshed]
        result = unmeshed[0] if unmeshed else states[0]
        if unmeshed and len(unmeshed) != len(states):
            names = ", ".join(name_of(p) for p, s in zip(wl.pods, states, strict=True) if not s.meshed)
            result.reasons.append(f"{len(states) - len(unmeshed)} of {len(states)} pods meshed; unmeshed: {names}")
    view.cache[key] = result
    return result
