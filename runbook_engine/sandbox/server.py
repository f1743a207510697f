"""The sandbox API server: HTTPS on loopback, bearer-token auth, a kubeconfig, persisted state.

``SandboxServer`` composes the store, the REST API (``sandbox.api``), the workload controllers, the
pod runtime and the fault board, and serves them with a threaded HTTP/1.1 server (keep-alive,
chunked watch streams). Faults — the scenario's and those posted to ``/sandbox/admin/faults`` —
go through one ``FaultBoard``: API faults and crash loops are registered here, and the composition
root (``sandbox.app``) registers the mesh faults of its physics with ``register_faults``.

It is used by ``runbook sandbox up``, by the engine for an inventory cluster that names
``sandbox: <scenario>``, and by tests::

    with SandboxServer(Path(".runbook/sandbox/demo"), scenario=Path("inventory/demo/scenario.yaml")) as srv:
        kubernetes.config.load_kube_config(config_file=str(srv.kubeconfig))
"""

from __future__ import annotations

import base64
import logging
import secrets
import select
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import yaml

from runbook_engine.files import write_atomic
from runbook_engine.sandbox.api.app import ApiApp, Request, Response
from runbook_engine.sandbox.api.gc import GarbageCollector
from runbook_engine.sandbox.api.resources import ResourceApi
from runbook_engine.sandbox.api.routing import Query
from runbook_engine.sandbox.controllers import ControllerManager
from runbook_engine.sandbox.controllers.crashloop import CrashLoopFaults
from runbook_engine.sandbox.faults import ApiFaults, FaultBoard, FaultHandler, FaultSet, UnknownFaultShape
from runbook_engine.sandbox.persist import StateSaver, load_state
from runbook_engine.sandbox.runtime import DefaultRuntime, PodRuntime
from runbook_engine.sandbox.scenario import Scenario, load_scenario
from runbook_engine.sandbox.store import Store
from runbook_engine.sandbox.tls import ensure_tls

log = logging.getLogger(__name__)

CONTEXT = "sandbox"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_IDLE_TIMEOUT = 120.0  # seconds a keep-alive connection may sit idle


class _Handler(BaseHTTPRequestHandler):
    """One connection: parses HTTP/1.1 requests and writes the app's responses."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY every response waits ~40 ms
    # for the client's delayed ACK.
    disable_nagle_algorithm = True
    server_version = "runbook-sandbox"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    server: _HttpsServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, split.path, Query(split.query), headers, body, self._client_gone)
        self._send(self.server.app.handle(request))

    def _send(self, response: Response) -> None:
        self.send_response(response.code)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream is None:
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for piece in response.stream:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _client_gone(self) -> bool:
        """Whether the peer closed the connection (a watch has no other way to learn it)."""
        conn = self.connection
        try:
            readable, _, _ = select.select([conn], [], [], 0)
            if not readable:
                return False
            conn.settimeout(0.01)
            try:
                return bool(conn.recv(1) == b"")
            finally:
                conn.settimeout(self.timeout)
        except (ssl.SSLWantReadError, TimeoutError):
            return False
        except (OSError, ValueError):
            return True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _HttpsServer(ThreadingHTTPServer):
    """Threaded HTTP server that does the TLS handshake in each connection's own thread."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, app: ApiApp) -> None:
        self.ssl_context = context
        self.app = app
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10.0)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        _Handler(conn, client_address, self)


class SandboxServer:
    """A Kubernetes API emulator on loopback; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(
        self,
        state_dir: Path,
        *,
        scenario: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        runtime: PodRuntime | None = None,
        metrics: Callable[[], str] | None = None,
        store: Store | None = None,
        controllers: bool = True,
        loaded: Scenario | None = None,
    ) -> None:
        """``loaded`` is ``scenario`` already parsed (by a caller that needed it first), not parsed again."""
        self.state_dir = Path(state_dir)
        self.scenario = scenario
        self.host = host
        self.port = port
        self.runtime: PodRuntime = runtime or DefaultRuntime()
        self.metrics = metrics
        self.store = store or Store()
        self.faults = FaultSet()
        self._crash_loops = CrashLoopFaults()
        self.fault_board = FaultBoard([ApiFaults(self.faults), *([self._crash_loops] if controllers else [])])
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.url = ""
        self.token = ""
        self.app: ApiApp | None = None  # the API as a function, once started
        self._use_controllers = controllers
        self._controllers: ControllerManager | None = None
        self._loaded = loaded
        self._faults_declared = False
        self._gc = GarbageCollector(self.store)
        self._saver = StateSaver(self.store, self.state_dir)
        self._httpd: _HttpsServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> SandboxServer:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._restore()
        self.token = self._token()
        tls = ensure_tls(self.state_dir / "tls")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        context.set_alpn_protocols(["http/1.1"])
        resources = ResourceApi(self.store, self._gc)
        app = ApiApp(self.store, resources, token=self.token, faults=self.faults, metrics=self.metrics,
                     admin=self.fault_board)
        self.app = app
        self._httpd = _HttpsServer((self.host, self.port), context, app)
        self.port = self._httpd.server_address[1]
        self.url = f"https://{self.host}:{self.port}"
        app.address = f"{self.host}:{self.port}"
        self._write_kubeconfig(tls.ca_pem())
        self._gc.install()
        self._saver.install()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-api", daemon=True
        )
        self._thread.start()
        self._start_controllers()
        return self

    def stop(self) -> None:
        """Stop serving and write the state to disk."""
        if self._controllers is not None:
            self._crash_loops.attach(None)
            self._controllers.stop()
            self._controllers = None
        self.store.close_watches()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self._gc.uninstall()
        self._saver.uninstall()
        self._saver.flush()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def register_faults(self, handler: FaultHandler) -> None:
        """Accept another kind of fault (in scenarios and at ``/sandbox/admin/faults``); before ``start()``."""
        self.fault_board.register(handler)

    def settle(self, timeout: float = 5.0) -> None:
        """Let the controllers run until nothing changes (no-op without controllers)."""
        if self._controllers is not None:
            self._controllers.settle(timeout)

    # -- internals -------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Declare the scenario's faults; load saved state, or on a first start seed the scenario."""
        state = load_state(self.state_dir)
        scenario = self._load_scenario()
        if scenario is not None:
            self._declare_faults(scenario)
        if state is not None:
            self.store.load(state)
        elif scenario is not None:
            scenario.seed(self.store)
        for name in DEFAULT_NAMESPACES:
            if self.store.peek("v1", "Namespace", "", name) is None:
                self.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                                   "status": {"phase": "Active"}}, copy_result=False)

    def _declare_faults(self, scenario: Scenario) -> None:
        """The scenario's faults, once per server; shapes no registered handler takes are not ours."""
        if self._faults_declared:
            return
        self._faults_declared = True
        for spec in scenario.faults:
            try:
                self.fault_board.add(spec)
            except UnknownFaultShape:
                log.debug("scenario fault %s has no handler in this sandbox", sorted(spec))

    def _load_scenario(self) -> Scenario | None:
        if self._loaded is None and self.scenario is not None:
            self._loaded = load_scenario(Path(self.scenario))
        return self._loaded

    def _start_controllers(self) -> None:
        if self._use_controllers:
            self._controllers = ControllerManager(self.store, self.runtime, faults=self._crash_loops.specs())
            self._crash_loops.attach(self._controllers)
            self._controllers.start()

    def _token(self) -> str:
        path = self.state_dir / "token"
        if path.exists():
            return path.read_text().strip()
        token = secrets.token_urlsafe(32)
        write_atomic(path, token.encode())
        return token

    def _write_kubeconfig(self, ca_pem: bytes) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": {
                "server": self.url, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
            "users": [{"name": CONTEXT, "user": {"token": self.token}}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
            "current-context": CONTEXT,
            "preferences": {},
        }
        write_atomic(self.kubeconfig, yaml.safe_dump(config, sort_keys=False).encode())


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for callers that must know it before starting)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
