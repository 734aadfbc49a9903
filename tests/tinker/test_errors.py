"""What a user can get wrong is one line and exit 2, before the run exists."""

from __future__ import annotations

from typing import Any

import pytest

from kitchen.testing.cli import one_line_error

TINKER = "adapters.training=tinker"


@pytest.mark.parametrize(
    ("setting", "env", "says"),
    [
        ([], {"TINKER_API_KEY": "tml-" + "x" * 43}, "refused TINKER_API_KEY"),
        ([], {"TINKER_API_KEY": ""}, "needs TINKER_API_KEY"),
        (["model_name=someorg/nothing"], {}, "does not serve 'someorg/nothing'"),
        (["lora_alpha=16"], {}, "alpha 32"),
        (["lora_dropout=0.1"], {}, "no dropout"),
    ],
)
def test_a_mistake_is_one_line_and_no_run(
    kitchen_for: Any, served: Any, setting: list[str], env: dict[str, str], says: str
) -> None:
    kitchen, home = kitchen_for("client", served)
    r = kitchen("run", "sl_basic", TINKER, *setting, "--run-id", "bad", extra_env=env)
    assert r.code == 2, r.stderr[-2000:]
    assert says in one_line_error(r)
    assert not (home / "bad").exists()
    assert served.key not in r.stdout + r.stderr


def test_an_unreachable_service_is_an_infrastructure_error(kitchen_for: Any, served: Any) -> None:
    import httpx
    import tinker

    from kitchen.adapters.tinker.futures import translate
    from kitchen.errors import InfrastructureError

    request = httpx.Request("POST", served.url)
    assert isinstance(translate(tinker.APIConnectionError(request=request)), InfrastructureError)
