"""Uploading a folder to the Hub in one commit: exactly the files of its upload plan, a model's card rewritten to load
the repo, through huggingface_hub's ``upload_folder``."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from genkit.errors import GenkitError, PickleRefusedError
from genkit.hub.card import set_card_repo
from genkit.io.checks import PICKLE_SUFFIXES
from genkit.io.files import shared_files, upload_plan
from genkit.io.folder import PUSH_REPO_ID

__all__ = ["push_to_hub", "upload_folder_of"]


@contextlib.contextmanager
def upload_folder_of(folder: Path, card: str | None = None):
    """A temporary folder holding exactly the planned files of ``folder`` (hard links where the file system allows,
    else copies) and, when given, ``card`` as its README.md: what one ``upload_folder`` call sends."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="genkit-upload-") as tmp:
        for rel, file in shared_files(folder):
            if card is not None and rel == "README.md":
                continue
            target = Path(tmp) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, target)
            except OSError:  # another file system: copy
                shutil.copyfile(file, target)
        if card is not None:
            (Path(tmp) / "README.md").write_text(card)
        yield Path(tmp)


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    dry_run: bool = False,
    commit_message: str = "Upload with genkit",
    api=None,
    **create_kwargs: Any,
) -> dict[str, Any]:
    """Create ``repo_id`` if needed and upload ``folder`` in one commit (a model's card rewritten to load the repo).
    With ``dry_run`` nothing is sent; the plan is returned."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GenkitError(f"nothing to push: {str(folder)!r} is not a folder")
    if not PUSH_REPO_ID.fullmatch(repo_id):
        raise GenkitError(f"invalid repo id {repo_id!r}; expected 'user/name' (or a bare name in your namespace)")
    files = upload_plan(folder)
    plan = {
        "repo_id": repo_id,
        "repo_type": repo_type,
        "private": private,
        **create_kwargs,
        "files": [{"path": p, "bytes": s} for p, s in files],
    }
    pickles = [p for p, _ in files if p.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise PickleRefusedError(f"refusing to push pickle files: {', '.join(pickles)}")
    if dry_run:
        return plan
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **create_kwargs)
    repo_id = getattr(url, "repo_id", None) or repo_id  # a bare name lands in the token's namespace
    plan["repo_id"] = repo_id
    card = None
    if repo_type == "model" and (folder / "README.md").is_file():
        card = set_card_repo((folder / "README.md").read_text(), repo_id)
    with upload_folder_of(folder, card) as staged:
        api.upload_folder(folder_path=str(staged), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message)
    plan["url"] = str(url)
    return plan
