"""TinkerServiceClient: the ServiceClient port (the factory) over the official tinker SDK.

The sibling of the local factory. The key is read from ``TINKER_API_KEY`` by the SDK alone:
kitchen never holds it in its config, its events or its logs. What a user can get wrong (a
bad key, a base model the service does not serve) is checked when the factory is built,
before the run exists, and reported in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kitchen.adapters.tinker.futures import Mapped, identity, translate
from kitchen.adapters.tinker.sampling import TinkerSamplingClient
from kitchen.adapters.tinker.training import TinkerTrainingClient
from kitchen.errors import ConfigError

TINKER_ALPHA = 32


def public_url(url: str) -> str:
    """The base URL without credentials, query or fragment: safe to record."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


class TinkerServiceClient:
    def __init__(self, base_url: str | None = None) -> None:
        try:
            import tinker
        except ImportError as exc:
            raise ConfigError(
                "the tinker adapter needs the SDK: pip install 'kitchen-posttrain[tinker]'"
            ) from exc
        if not os.environ.get("TINKER_API_KEY"):
            raise ConfigError("the tinker adapter needs TINKER_API_KEY in the environment")
        self._base_url = base_url or os.environ.get("TINKER_BASE_URL") or ""
        try:
            self._sdk = tinker.ServiceClient(base_url=self._base_url or None)
        except Exception as exc:
            raise _one_line(exc) from exc
        self._rest: Any = None
        self._models: list[str] | None = None
        self._samplers: dict[Path, str] = {}
        self._open: list[Any] = []
        self._tokenizers: dict[str, Any] = {}
        self._closed = False

    # ------------------------------------------------------------------ checks

    def served_models(self) -> list[str]:
        """The base models the service trains; asking also checks the key (401 → one line)."""
        if self._models is None:
            try:
                caps = self.rest().get_server_capabilities().result()
            except Exception as exc:
                raise _one_line(exc) from exc
            self._models = [m.model_name for m in caps.supported_models if m.model_name]
        return self._models

    def check_model(self, base_model: str) -> None:
        models = self.served_models()
        if base_model not in models:
            raise ConfigError(
                f"the Tinker service does not serve {base_model!r}; it serves: {', '.join(models)}"
            )

    # ------------------------------------------------------------------ factory

    def rest(self) -> Any:
        if self._rest is None:
            import tinker

            self._rest = tinker.RestClient(base_url=self._base_url or None)
        return self._rest

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        *,
        seed: int | None = None,
        alpha: int | None = None,
        dropout: float = 0.0,
        train_unembed: bool = False,
    ) -> TinkerTrainingClient:
        check_lora(alpha, dropout)
        self.check_model(base_model)
        sdk = Mapped(
            self._sdk.create_lora_training_client(
                base_model=base_model, rank=rank, seed=seed, train_unembed=train_unembed
            ),
            identity,
        ).result()
        client = TinkerTrainingClient(
            self._sdk, sdk, self.rest(), self.get_tokenizer(base_model), self._remember_sampler
        )
        self._open.append(client)
        return client

    def create_training_client_from_state(
        self,
        path: str,
        *,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        alpha: int | None = None,
        dropout: float = 0.0,
        with_optimizer: bool = True,
    ) -> TinkerTrainingClient:
        """The SDK makes a new model from the state (rank and base model are the state's)."""
        check_lora(alpha, dropout)
        self.check_model(base_model)
        client = TinkerTrainingClient(
            self._sdk, None, self.rest(), self.get_tokenizer(base_model), self._remember_sampler
        )
        self._open.append(client)
        client.load_state(path, with_optimizer=with_optimizer).result()
        return client

    def create_sampling_client(
        self,
        *,
        base_model: str | None = None,
        model_path: str | None = None,
        seed: int = 0,
    ) -> TinkerSamplingClient:
        """From a base model, a ``tinker://`` sampler path, or a local adapter folder this
        factory exported (the service keeps a sampler copy of it)."""
        remote: str | None = None
        if model_path is not None:
            remote = model_path if "://" in model_path else self._samplers.get(_key(model_path))
            if remote is None:
                raise ConfigError(
                    f"{model_path} was not exported through this Tinker service: "
                    "a sampler needs a tinker:// path"
                )
        elif base_model is None:
            raise ConfigError("create_sampling_client needs base_model or model_path")
        else:
            self.check_model(base_model)
        sdk = Mapped(
            self._sdk.create_sampling_client(model_path=remote, base_model=base_model),
            identity,
        ).result()
        client = TinkerSamplingClient(sdk, self.get_tokenizer(base_model or sdk.get_base_model()))
        self._open.append(client)
        return client

    def _remember_sampler(self, folder: Path, sampler_path: str) -> None:
        self._samplers[_key(folder)] = sampler_path

    def get_tokenizer(self, base_model: str) -> Any:
        """Loaded on this machine, as the SDK does (the embedded model's is a local folder)."""
        from kitchen.adapters.local_torch import loading

        if base_model not in self._tokenizers:
            self._tokenizers[base_model] = loading.load_tokenizer(loading.resolve_name(base_model))
        return self._tokenizers[base_model]

    def verify_checkpoint(self, uri: str, sha256: str) -> bool:
        """The reference is the one recorded and the service still lists it."""
        if not uri.startswith("tinker://"):
            return False
        if hashlib.sha256(uri.encode()).hexdigest() != sha256:
            return False
        model_id = uri[len("tinker://") :].split("/", 1)[0]
        try:
            listed = self.rest().list_checkpoints(model_id).result()
        except Exception as exc:
            new = translate(exc)
            if new is not exc:
                raise new from exc
            return False
        return any(c.tinker_path == uri for c in listed.checkpoints)

    def describe(self) -> dict[str, str]:
        return {"backend": "tinker", "base_url": public_url(self._base_url)}

    def close(self) -> None:
        """Close every client, then finish the SDK session (its heartbeats and connections)."""
        opened, self._open = self._open, []
        for client in opened:
            client.close()
        if not self._closed:
            self._closed = True
            # A session the service has forgotten is finished already.
            with contextlib.suppress(Exception):
                self._sdk.close("success").result(timeout=30)


def check_lora(alpha: int | None, dropout: float) -> None:
    """Tinker's LoRA has alpha 32 and no dropout; anything else would train another model."""
    if alpha is not None and alpha != TINKER_ALPHA:
        raise ConfigError(f"Tinker's LoRA has alpha {TINKER_ALPHA}: lora_alpha={alpha} is refused")
    if dropout:
        raise ConfigError(f"Tinker's LoRA has no dropout: lora_dropout={dropout} is refused")


def _key(path: str | Path) -> Path:
    return Path(path).resolve()


def _one_line(exc: BaseException) -> BaseException:
    new = translate(exc)
    if new is not exc:
        return new
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return ConfigError(f"the Tinker service: {text}")


def create_service(config: Any, home: Path) -> TinkerServiceClient:
    """The manifest's factory: reach the service, check the key and the model before the run."""
    check_lora(getattr(config, "lora_alpha", None), float(getattr(config, "lora_dropout", 0.0)))
    service = TinkerServiceClient()
    model = getattr(config, "model_name", None)
    if model:
        service.check_model(str(model))
    return service
