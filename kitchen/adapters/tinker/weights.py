"""Getting the weights out: ``save_weights_external`` then the per-file URLs, downloaded
into a local folder that is a PEFT adapter exactly as the local exporter writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kitchen.errors import InfrastructureError

CONFIG = "adapter_config.json"


def download(rest: Any, tinker_path: str, folder: Path) -> None:
    import httpx

    urls = rest.get_external_weights_urls(tinker_path).result().urls
    if CONFIG not in urls:
        raise InfrastructureError(f"{tinker_path} holds no {CONFIG}: not a PEFT adapter")
    with httpx.Client(timeout=120.0) as http:
        for name, url in sorted(urls.items()):
            target = (folder / name).resolve()
            if folder.resolve() not in target.parents:
                raise InfrastructureError(f"the service named a file outside the adapter: {name!r}")
            response = http.get(url)
            response.raise_for_status()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(response.content)
    normalise_config(folder / CONFIG)


def normalise_config(path: Path) -> None:
    """adapter_config.json as kitchen's exporter writes it (sorted keys, indent 2, newline),
    so equal weights give equal files whoever wrote them."""
    config = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(config, sort_keys=True, indent=2) + "\n", encoding="utf-8")
