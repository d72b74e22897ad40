"""The public surface: ``__all__`` names resolve, and importing the package stays cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import klaviyo_toolkit

PUBLIC_MODULES = [
    "klaviyo_toolkit.auth",
    "klaviyo_toolkit.catalog",
    "klaviyo_toolkit.client",
    "klaviyo_toolkit.clock",
    "klaviyo_toolkit.errors",
    "klaviyo_toolkit.filters",
    "klaviyo_toolkit.ratelimit",
    "klaviyo_toolkit.tools",
]


def test_every_name_in_all_resolves() -> None:
    for name in klaviyo_toolkit.__all__:
        assert getattr(klaviyo_toolkit, name) is not None, name
    assert sorted(dir(klaviyo_toolkit)) == sorted(klaviyo_toolkit.__all__)


def test_all_matches_the_lazy_exports() -> None:
    assert set(klaviyo_toolkit.__all__) == set(klaviyo_toolkit._EXPORTS) | {"__version__"}
    assert len(klaviyo_toolkit.__all__) == len(set(klaviyo_toolkit.__all__))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = klaviyo_toolkit.NoSuchThing


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_submodule_all_names_resolve(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(done.stdout.split())


def test_importing_the_package_does_not_import_langchain() -> None:
    loaded = loaded_after("import klaviyo_toolkit")
    assert "langchain_core" not in loaded and "langchain" not in loaded
    assert "httpx" not in loaded and "pydantic" not in loaded, "the package import is lazy"


def test_the_client_works_without_langchain() -> None:
    loaded = loaded_after(
        "from klaviyo_toolkit import KlaviyoClient\n"
        "KlaviyoClient(api_key='pk_test_0000000000').prepare('get_profiles', {'page_size': 5})"
    )
    assert "httpx" in loaded
    assert "langchain_core" not in loaded
