"""The Entra national clouds: each one's sign-in authority and its Microsoft Graph.

Source: Microsoft Graph "National cloud deployments" (the Entra ID and Graph endpoints of the
global service, US Government L4 and L5 (DOD), and China operated by 21Vianet).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Cloud:
    """``authority``: the Entra sign-in host as a URL; ``graph``: the Graph origin (no version)."""

    name: str
    authority: str
    graph: str

    @property
    def graph_v1(self) -> str:
        return self.graph + "/v1.0"


CLOUDS: dict[str, Cloud] = {
    "public": Cloud("public", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": Cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov-dod": Cloud("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": Cloud("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}


def graph_scope(graph_base_url: str) -> str:
    """The app-only scope for a Graph base URL: its origin and ``/.default``
    (``https://graph.microsoft.com/v1.0`` -> ``https://graph.microsoft.com/.default``)."""
    parts = urlsplit(graph_base_url)
    return f"{parts.scheme}://{parts.netloc}/.default"
