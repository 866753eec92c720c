"""Weights from the Hugging Face Hub: a repository's config.json and model.safetensors, fetched
through huggingface_hub's cache (or found there offline), for weights.load_pretrained.

HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE are honoured; every failure is a one-line WeightsError.
"""

from __future__ import annotations

import os
from pathlib import Path

from exgan_cli.errors import WeightsError


def _hub_cache_dir() -> str | None:
    """The Hub cache from the environment as it is now. huggingface_hub reads HF_HUB_CACHE and
    HF_HOME once, at import; reading them here honours values set later in this process."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None  # huggingface_hub's own default


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    return env or constants.is_offline_mode()


def fetch_from_hub(spec: str, revision: str | None, files: tuple[str, ...]) -> tuple[Path, str]:
    """Download (or find in the cache) ``files`` of a Hub repo, the first one first (config.json,
    then model.safetensors); returns the snapshot folder holding them and a
    'hub:owner/name@commit' source string."""
    from huggingface_hub import constants, hf_hub_download

    repo_id, _, at = spec.partition("@")
    if at and revision and at != revision:
        raise WeightsError(f"weights {spec}: revision given twice ({at} and {revision})")
    revision = at or revision
    offline = _hub_offline()
    folder = None
    for name in files:
        try:
            path = hf_hub_download(
                repo_id,
                name,
                # the later files are fetched at the commit the first came from, so a branch that
                # moves between the two downloads cannot pair one commit's config with another's weights
                revision=folder.name if folder else revision,
                cache_dir=_hub_cache_dir(),
                local_files_only=offline,
                library_name="exgan",
            )
        except Exception as e:  # anything from the Hub client: not found, offline, network, auth
            if offline:
                cache = _hub_cache_dir() or constants.HF_HUB_CACHE
                raise WeightsError(
                    f"weights {spec}: {name} (revision {revision or 'main'}) is not in the Hub cache {cache}"
                    " and HF_HUB_OFFLINE is set"
                ) from None
            detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise WeightsError(
                f"weights {spec}: cannot download {name} from the Hub: {type(e).__name__}: {detail}"
            ) from None
        folder = folder or Path(path).parent  # the snapshot folder, named by the commit hash
    return folder, f"hub:{repo_id}@{folder.name}"
