"""What ``up`` started, saved to disk so that later commands (``smoke``, ``status``,
``kill-worker``, ``down``) and another process can find it again."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Where the last ``up`` in this working directory recorded its cluster's state file.
STATE_POINTER = Path(".marketplace") / "local-cluster.json"


@dataclass
class NodeInfo:
    """One Ray node: the ``ray start --block`` process that owns it, and its temp dir."""

    name: str
    pid: int
    temp_dir: str
    log: str
    resource: str | None = None
    proxy_port: int | None = None


@dataclass
class LocalCluster:
    """What ``up`` started; saved as ``state.json`` in ``base`` so ``down`` can undo it."""

    base: str
    overlay: str
    gcs_port: int
    dashboard_port: int
    http_port: int
    database_url: str
    created_database: bool
    admin_email: str
    admin_password: str
    env: dict[str, str]
    nodes: list[NodeInfo] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The marketplace's base URL (the head's Serve proxy)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dashboard(self) -> str:
        """The Ray dashboard (REST API for Serve deploys and the state API)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        """The address a node or driver joins the cluster at."""
        return f"127.0.0.1:{self.gcs_port}"

    def workers(self) -> list[NodeInfo]:
        """The worker nodes (each has a custom resource; the head has none)."""
        return [node for node in self.nodes if node.resource]

    def save(self) -> Path:
        """Write ``state.json`` (owner-only: it holds stand-in secrets); its path."""
        path = Path(self.base) / "state.json"
        path.touch(mode=0o600)  # it holds the rehearsal's stand-in secrets
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> LocalCluster:
        """A cluster as ``save`` wrote it."""
        data = json.loads(path.read_text(encoding="utf-8"))
        data["nodes"] = [NodeInfo(**node) for node in data["nodes"]]
        return cls(**data)


def record_pointer(cluster: LocalCluster) -> None:
    """Remember ``cluster`` as this working directory's local cluster."""
    STATE_POINTER.parent.mkdir(parents=True, exist_ok=True)
    STATE_POINTER.write_text(
        json.dumps({"state": str(Path(cluster.base) / "state.json")}) + "\n", encoding="utf-8"
    )


def load_pointer() -> LocalCluster:
    """This working directory's local cluster; SystemExit when there is none."""
    if not STATE_POINTER.exists():
        raise SystemExit("no local cluster recorded here (.marketplace/local-cluster.json)")
    state = Path(json.loads(STATE_POINTER.read_text(encoding="utf-8"))["state"])
    return LocalCluster.load(state)


def forget_pointer() -> None:
    """Forget this working directory's local cluster (after ``down``)."""
    STATE_POINTER.unlink(missing_ok=True)
