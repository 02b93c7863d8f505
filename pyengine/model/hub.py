"""Finding a checkpoint by name: a local folder, or a Hugging Face hub id in the hub cache.

    path = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")   # -> .../snapshots/<commit>/
    model, tokenizer = resolve_checkpoint("org/name", tokenizer_revision="v2")   # both folders

A name that is an existing folder is used as it is. Any other name is a hub repository id
(`org/name`), fetched with `huggingface_hub.snapshot_download` into the hub cache and answered
with its snapshot folder. Only the files the engine reads are fetched (`HUB_FILES`): config,
generation config, tokenizer files and chat templates, safetensors shards and their index; a
repository's PyTorch `.bin` or GGUF copies are never downloaded.

The cache is the one every Hugging Face tool shares: `download_dir` when given, else
`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, read from the
environment at each call. With `HF_HUB_OFFLINE=1` (or `offline=True`) nothing is downloaded:
the snapshot must already be in the cache, and a missing one is a `ModelNotFoundError` naming
the id and the cache folder it was looked for in.
"""

from __future__ import annotations

import os
from pathlib import Path

# The files of a repository that the engine reads (fnmatch patterns, as snapshot_download takes them)
HUB_FILES = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "additional_chat_templates/*.jinja",
    "*.safetensors",
    "model.safetensors.index.json",
]
_TRUE = {"1", "on", "yes", "true"}


class ModelNotFoundError(FileNotFoundError):
    """The name is neither a folder nor a hub id that could be found (in the cache, when offline)."""


def hub_cache_dir(download_dir: str | Path | None = None) -> Path:
    """The hub cache folder used for downloads and lookups (see the module docstring)."""
    if download_dir is not None:
        return Path(download_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE asks for no network access, read now from the environment."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def is_local(name: str | Path) -> bool:
    """Whether `name` names an existing folder (which then wins over a hub id of the same spelling)."""
    return Path(name).expanduser().is_dir()


def resolve_model(name: str | Path, revision: str | None = None, download_dir: str | Path | None = None,
                  offline: bool | None = None) -> Path:
    """The local folder holding the checkpoint `name` (a folder, or a hub id fetched into the cache).

    Args:
        name: a checkpoint folder, or a hub repository id such as "Qwen/Qwen2.5-0.5B-Instruct".
        revision: a branch, tag or commit of the hub repository (default: "main"); ignored for folders.
        download_dir: the hub cache to use instead of the environment's (vLLM's `--download-dir`).
        offline: True to use the cache only; None reads HF_HUB_OFFLINE.

    Raises:
        ModelNotFoundError: not a folder, and the id is malformed, unknown to the hub, or (offline)
            not in the cache; the message is one line naming the id and the cache.
    """
    if is_local(name):
        return Path(name).expanduser()
    repo_id = str(name)
    cache = hub_cache_dir(download_dir)
    offline = hub_offline() if offline is None else offline
    from huggingface_hub import snapshot_download  # noqa: PLC0415  (only hub ids pay for the import)
    from huggingface_hub.errors import (  # noqa: PLC0415
        HFValidationError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)

    at = f" at revision {revision!r}" if revision else ""
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=str(cache), local_files_only=offline,
                                   allow_patterns=HUB_FILES)
    except HFValidationError:
        raise ModelNotFoundError(
            f"model {repo_id!r} is neither a folder nor a hub id of the form 'org/name'") from None
    except LocalEntryNotFoundError:
        why = "offline (HF_HUB_OFFLINE is set)" if offline else "the hub could not be reached"
        raise ModelNotFoundError(
            f"model {repo_id!r}{at} is not in the hub cache {cache} and {why}") from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise ModelNotFoundError(
            f"model {repo_id!r}{at} was not found on the hub ({type(exc).__name__}); "
            "a gated or private model needs HF_TOKEN") from None
    except HfHubHTTPError as exc:
        raise ModelNotFoundError(f"model {repo_id!r}{at} could not be downloaded: {exc}".splitlines()[0]) from None
    return Path(folder)


def resolve_checkpoint(model: str | Path, tokenizer: str | Path | None = None, revision: str | None = None,
                       tokenizer_revision: str | None = None,
                       download_dir: str | Path | None = None) -> tuple[Path, Path | None]:
    """(model folder, tokenizer folder or None) as `vllm serve` and vLLM's `LLM(...)` resolve them.

    `model` and `tokenizer` are folders or hub ids (`resolve_model`); `revision` applies to the
    model, `tokenizer_revision` to the tokenizer. `tokenizer_revision` without `tokenizer` picks
    that revision of the model's own repository for the tokenizer. None for the tokenizer means
    the model's folder holds it.

    Raises:
        ModelNotFoundError: as `resolve_model`, for the model or the tokenizer.
    """
    model_folder = resolve_model(model, revision=revision, download_dir=download_dir)
    if tokenizer is None and tokenizer_revision is not None and not is_local(model):
        tokenizer = model
    if tokenizer is None:
        return model_folder, None
    return model_folder, resolve_model(tokenizer, revision=tokenizer_revision, download_dir=download_dir)
