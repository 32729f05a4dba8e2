"""`GeneratorClient`: how the fleet and tests get parameters, in-process or through Ray Serve.

Both implementations take and return the dataclasses of actors/service/messages.py and raise
the `GeneratorError` subclasses of actors/service/errors.py, so a caller never sees which one
it holds.
"""

from __future__ import annotations

import asyncio
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from actors.service.generator import GeneratorCore
from actors.service.messages import (
    GenerateBatchRequest,
    GenerateBatchResponse,
    GenerateRequest,
    GenerateResponse,
)

RAY_HINT = "Ray Serve is not installed: pip install 'duet-sim[ray]' (ray[serve]==2.60.0)"


class GeneratorClient(ABC):
    """Generate many devices' parameters: ``generate(requests) -> responses``, in order."""

    @abstractmethod
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResponse]:
        """Blocking. Raises the first request's `GeneratorError` if any request is bad."""

    @abstractmethod
    async def agenerate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResponse]:
        """The same from an event loop (the fleet's devices are asyncio tasks)."""

    @abstractmethod
    async def agenerate_batch(self, batch: GenerateBatchRequest) -> GenerateBatchResponse:
        """One model's devices in columnar form: the fast path for a fleet actor."""


class LocalGeneratorClient(GeneratorClient):
    """Generates in this process with torch: one `GeneratorCore.generate` per call."""

    def __init__(self, core: GeneratorCore):
        self.core = core

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResponse]:
        return self.core.generate(requests)

    async def agenerate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResponse]:
        return await asyncio.to_thread(self.core.generate, requests)  # torch releases the GIL

    async def agenerate_batch(self, batch: GenerateBatchRequest) -> GenerateBatchResponse:
        return await asyncio.to_thread(self.core.generate_batch, batch)


class ServeGeneratorClient(GeneratorClient):
    """Calls the `DuetGenerator` deployment's ``generate_many`` (one client-side batch a call).

    Args:
        handle (DeploymentHandle | None): the app's handle. Default: looked up by name.
        app_name (str): Serve application name used when ``handle`` is None.

    Raises:
        ImportError: Ray Serve is missing, with the install command.
    """

    def __init__(self, handle: Any = None, app_name: str = "duet-generator"):
        if importlib.util.find_spec("ray") is None:
            raise ImportError(RAY_HINT)
        if handle is None:
            from ray import serve

            handle = serve.get_app_handle(app_name)
        self.handle = handle

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResponse]:
        return self.handle.generate_many.remote(list(requests)).result()

    async def agenerate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResponse]:
        return await self.handle.generate_many.remote(list(requests))

    async def agenerate_batch(self, batch: GenerateBatchRequest) -> GenerateBatchResponse:
        return await self.handle.generate_batch.remote(batch)
