"""The output folder of ``ttdnet evaluate`` and ``ttdnet evaluate-summary``: checked first, then written as one set.

Each command writes four files into ``--output_dir``: ``config.yaml``, a Markdown report, a self-contained
HTML report and a JSON document (``metrics.json`` / ``summary.json``). The folder may hold anything else
(other evaluations in sub-folders, the reconstructions themselves); only these four names are ever
replaced, and only when the file there was written by the same command (:meth:`OutputSet.check`), so a
user's own ``config.yaml`` or ``report.md`` is never overwritten.

:meth:`OutputSet.write` renders the four files into a hidden staging folder inside ``--output_dir``
(``.<staging>.ttdnet-<pid>-<host>-partial-*``) and only then moves them into place: first the previous JSON
document is removed, then the config and the two reports are renamed in, and the JSON document last. A run
killed while computing or rendering changes nothing visible; its staging folder is deleted by the next run
(:func:`ttdnet.io.remove_stale_temporaries`). The JSON document is present only when the set beside it is
complete and belongs to it.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from ttdnet.config import save_config
from ttdnet.errors import TtdnetError
from ttdnet.io import remove_stale_temporaries, temporary_prefix


@dataclasses.dataclass(frozen=True)
class OutputSet:
    """The four output files of one command and how to recognise them.

    Attributes
    ----------
    command : str
        The command as typed after ``ttdnet`` (recorded in ``config.yaml``'s first line).
    document : str
        The JSON document's file name; it is moved into place last.
    document_keys : tuple of str
        Keys every such document has (how a file of that name is recognised as the command's own).
    markdown, html : str
        The reports' file names.
    markdown_title, html_title : str
        The Markdown report's first line and the HTML report's ``<title>``.
    staging : str
        Base name of the hidden staging folder.
    what : str
        The set in words, for messages ("an evaluation").
    """

    command: str
    document: str
    document_keys: tuple[str, ...]
    markdown: str
    markdown_title: str
    html: str
    html_title: str
    staging: str
    what: str

    @property
    def files(self) -> tuple[str, ...]:
        """The file names, in the order they are moved into place (the JSON document last)."""
        return ("config.yaml", self.markdown, self.html, self.document)

    def written_by_command(self, path: Path) -> bool:
        """Whether the file ``path`` (one of :attr:`files`) was written by this command."""
        if not path.is_file():
            return False
        try:
            if path.name == self.document:
                content = json.loads(path.read_text(encoding="utf-8"))
                return isinstance(content, dict) and set(self.document_keys) <= content.keys()
            with path.open(encoding="utf-8") as handle:
                head = handle.read(4096)
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        if path.name == "config.yaml":
            return f"`ttdnet {self.command}`" in head.partition("\n")[0]
        if path.name == self.markdown:
            return head.startswith(self.markdown_title + "\n")
        return f"<title>{self.html_title}</title>" in head

    def check(self, output_dir: str | os.PathLike) -> None:
        """Refuse an ``--output_dir`` the set cannot be written to without destroying something.

        Raises
        ------
        TtdnetError
            ``output_dir`` is a file, or one of :attr:`files` in it was not written by this command.
        """
        output_dir = Path(output_dir)
        if output_dir.exists() and not output_dir.is_dir():
            raise TtdnetError(f"--output_dir {output_dir} exists and is not a folder; choose another --output_dir.")
        for name in self.files:
            target = output_dir / name
            if (target.exists() or target.is_symlink()) and not self.written_by_command(target):
                raise TtdnetError(
                    f"--output_dir {output_dir}: {target} was not written by `ttdnet {self.command}` and {self.what} "
                    "would replace it; choose another --output_dir, or move that file away."
                )

    def write(self, output_dir: str | os.PathLike, document: dict, config, markdown: str, html: str) -> dict:
        """Write the four files into ``output_dir`` as one set.

        Parameters
        ----------
        output_dir : path-like
            Created if missing; checked with :meth:`check`.
        document : dict
            The JSON document. It must hold no NaN or infinity (``json.dumps(allow_nan=False)``): undefined
            values are None.
        config : dataclass instance
            Saved as ``config.yaml``.
        markdown, html : str
            The rendered reports.

        Returns
        -------
        dict of str to pathlib.Path
            ``config``, ``markdown``, ``html``, and the document's stem (``metrics`` for ``metrics.json``).

        Raises
        ------
        ValueError
            ``document`` holds a NaN or an infinity; nothing is written.
        """
        output_dir = Path(output_dir)
        self.check(output_dir)
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in (self.staging, *self.files):
            remove_stale_temporaries(output_dir, name)
        staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(self.staging) + "partial-", dir=output_dir))
        try:
            save_config(config, staging / "config.yaml", self.command)
            (staging / self.document).write_text(text, encoding="utf-8")
            (staging / self.markdown).write_text(markdown, encoding="utf-8")
            (staging / self.html).write_text(html, encoding="utf-8")
            with contextlib.suppress(FileNotFoundError):
                (output_dir / self.document).unlink()  # from here until the last rename, no set is visible
            for name in self.files:
                os.replace(staging / name, output_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {
            "config": output_dir / "config.yaml",
            "markdown": output_dir / self.markdown,
            "html": output_dir / self.html,
            Path(self.document).stem: output_dir / self.document,
        }
