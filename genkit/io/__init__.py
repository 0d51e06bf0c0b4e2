"""Model folders on disk: which files a folder holds and which leave the machine (``files``), the safety checks run
before anything is loaded (``checks``), atomic writes and one writer per folder (``atomic``), and the folder format
with ``genkit.json`` and where a folder or Hub id is (``folder``). Nothing here imports a plugin, the registry or
training: loading a model through its plugin is ``genkit.plugin.opening``."""

from genkit.io.atomic import LOCK_FILE, STAGING_DIR, folder_lock, is_interrupted_save, move_model_into, staged_folder
from genkit.io.checks import (
    CONFIG_LIMITS,
    PICKLE_SUFFIXES,
    allowed_libraries,
    already_checked,
    check_folder,
    check_weights_fit,
    checked,
    component_classes,
    validate_config,
    validate_pipeline_folder,
)
from genkit.io.files import MAX_JSON_BYTES, folder_files, read_json, shared_files, upload_plan
from genkit.io.folder import METADATA_FILE, PUSH_REPO_ID, read_metadata, resolve, write_metadata

__all__ = [
    "CONFIG_LIMITS",
    "LOCK_FILE",
    "MAX_JSON_BYTES",
    "METADATA_FILE",
    "PICKLE_SUFFIXES",
    "PUSH_REPO_ID",
    "STAGING_DIR",
    "already_checked",
    "allowed_libraries",
    "check_folder",
    "checked",
    "check_weights_fit",
    "component_classes",
    "folder_files",
    "folder_lock",
    "is_interrupted_save",
    "move_model_into",
    "read_json",
    "read_metadata",
    "resolve",
    "shared_files",
    "staged_folder",
    "upload_plan",
    "validate_config",
    "validate_pipeline_folder",
    "write_metadata",
]
