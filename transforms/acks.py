"""Write the EDI 997 acknowledgements the readers return, one file each."""

from __future__ import annotations

import apache_beam as beam
import fsspec

__all__ = ["WriteAcks"]


class WriteAcks(beam.DoFn):
    """Write each (name, text) 997 acknowledgement as a file under `folder`."""

    def __init__(self, folder: str):
        self.folder = folder

    def process(self, element: tuple[str, str]) -> None:
        name, text = element
        fs, _, _ = fsspec.get_fs_token_paths(self.folder)
        fs.makedirs(self.folder, exist_ok=True)
        with fsspec.open(f"{self.folder}/{name}", "w") as f:
            f.write(text)
