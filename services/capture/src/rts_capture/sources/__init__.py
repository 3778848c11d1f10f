"""Video sources behind one small interface, and the factory that opens what --source names.

A source only reads frames. Pacing, reconnecting and watching for stalls are the reader's
job (rts_capture.reader), the same for every source.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message says what to do about it."""


class Source(ABC):
    kind: str = ""
    # A file ends; cameras, streams and the test pattern go on until they fail.
    finite: bool = False
    # Files and the test pattern return a frame as soon as asked, so the reader paces the
    # reads at `fps`; cameras and streams deliver at their own rate and block in between.
    paced: bool = False
    fps: float | None = None

    @abstractmethod
    def read(self) -> Image | None:
        """The next frame (BGR, uint8), or None when the source ended or failed."""

    def close(self) -> None:  # noqa: B027 - most sources have nothing to release
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
