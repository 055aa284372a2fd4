"""The instance-token store: one token per logged instance, keyed by (user, timestamp), versioned.

Fetching returns, for each (user, request time), the tokens of that user's last L instances
**strictly before** the request time, time ascending and right-aligned with a mask — the same
events, in the same order (timestamp, then item ID), as the history builder's ``hist_*`` arrays,
so ``fetch`` output lines up with a history example position by position.

Fallbacks (documented, tested): an unknown user or a request time before the user's first
instance gets an empty, fully masked history — never somebody else's tokens.

On disk: ``tokens.npz`` (user_id, timestamp, item_id, tokens) and ``metadata.json`` (version,
scheme, token_dim, count). ``load`` refuses a store of another version than the one expected, a
truncated file, or arrays that disagree with the metadata.

Example::

    store = TokenStore.build(log, tokens, version="3f2a...", scheme="user_order")
    store.save("token_store/")
    tokens, mask = TokenStore.load("token_store/", expected_version="3f2a...").fetch(users, times, 50)
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import zipfile
from typing import Mapping

import numpy as np

from tfrs_seqcompress import features as F
from tfrs_seqcompress.data.history import last_positions

TOKENS_FILE = "tokens.npz"
METADATA_FILE = "metadata.json"
_TIME_BITS = 34  # timestamps must lie in [0, 2^34): unix seconds until the year 2514


class TokenVersionError(ValueError):
    """Tokens of another source-model version, or of another dimension, than expected."""


@dataclasses.dataclass(frozen=True)
class TokenStore:
    """Tokens sorted by (user_id, timestamp, item_id).

    Attributes:
      user_id, timestamp, item_id: ``[N]`` int64 keys of the instances.
      tokens: ``[N, d]`` float32.
      version: the fingerprint of the source model that made the tokens.
      scheme: ``"temporal_order"`` or ``"user_order"``.
    """

    user_id: np.ndarray
    timestamp: np.ndarray
    item_id: np.ndarray
    tokens: np.ndarray
    version: str
    scheme: str

    @property
    def token_dim(self) -> int:
        return int(self.tokens.shape[1])

    @classmethod
    def build(cls, log: Mapping[str, np.ndarray], tokens: np.ndarray, version: str, scheme: str) -> "TokenStore":
        """Keys the tokens of every log event (``tokens[i]`` belongs to event i).

        Raises:
          ValueError: ``tokens`` is not ``[num_events, d]`` finite floats, or timestamps are out of range.
        """
        tokens = np.asarray(tokens, dtype=np.float32)
        count = len(log[F.USER_ID])
        if tokens.ndim != 2 or tokens.shape[0] != count:
            raise ValueError(f"tokens must have shape [{count}, token_dim] (one per log event), got {tokens.shape}.")
        if not np.isfinite(tokens).all():
            raise ValueError("tokens contain NaN or infinity; check the instance features fed to the source model.")
        timestamps = np.asarray(log[F.TIMESTAMP], np.int64)
        if count and (timestamps.min() < 0 or timestamps.max() >= 1 << _TIME_BITS):
            raise ValueError(f"timestamps must lie in [0, 2^{_TIME_BITS}) seconds.")
        order = np.lexsort((log[F.ITEM_ID], timestamps, log[F.USER_ID]))
        return cls(user_id=np.asarray(log[F.USER_ID], np.int64)[order], timestamp=timestamps[order],
                   item_id=np.asarray(log[F.ITEM_ID], np.int64)[order], tokens=tokens[order],
                   version=version, scheme=scheme)

    def _window_bounds(self, user_ids: np.ndarray, request_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(start, end)`` rows of each user's instances strictly before each request time.

        Keys are (the user's rank among the store's users, time): dense ranks, not raw IDs, so no
        user ID — however large — can overflow into another user's keys. Unknown users get an
        empty window."""
        users = np.unique(self.user_id)
        if len(users) >= 1 << 28:
            raise ValueError(f"A token store holds at most 2^28 users; this one holds {len(users):,}: shard it by user.")
        rank = np.searchsorted(users, user_ids)
        known = (rank < len(users)) & (users[np.minimum(rank, len(users) - 1)] == user_ids)
        span = (1 << _TIME_BITS) + 1
        keys = np.searchsorted(users, self.user_id) * span + self.timestamp
        query = np.where(known, rank, 0) * span
        end = np.searchsorted(keys, query + request_times, side="left")
        start = np.searchsorted(keys, query, side="left")
        return np.where(known, start, 0), np.where(known, end, 0)

    def fetch(self, user_ids, request_times, history_length: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``history_length`` tokens of each user strictly before each request time.

        Args:
          user_ids: ``[B]`` int.
          request_times: ``[B]`` int, seconds.
          history_length: L.

        Returns:
          ``tokens [B, L, d]`` float32 (zeros on padding) and ``mask [B, L]`` int64, right-aligned.
        """
        user_ids = np.asarray(user_ids, np.int64)
        request_times = np.clip(np.asarray(request_times, np.int64), 0, (1 << _TIME_BITS) - 1)
        if user_ids.shape != request_times.shape or user_ids.ndim != 1:
            raise ValueError(f"user_ids and request_times must both be [batch], got {user_ids.shape} and "
                             f"{request_times.shape}.")
        if len(self.user_id) == 0:  # An empty store knows no user: every history is empty.
            return (np.zeros(user_ids.shape + (history_length, self.token_dim), np.float32),
                    np.zeros(user_ids.shape + (history_length,), np.int64))
        start, end = self._window_bounds(user_ids, request_times)
        gather, mask = last_positions(end, history_length, first=start)
        tokens = np.where(mask[..., None], self.tokens[gather], 0.0).astype(np.float32)
        return tokens, mask.astype(np.int64)

    def attach(self, examples: Mapping[str, np.ndarray], expected_version: str | None = None) -> dict[str, np.ndarray]:
        """History examples plus their ``hist_token`` ``[N, L, d]``, fetched at each target's time,
        and ``token_version`` (``features.token_version_id`` of this store's version).

        Raises:
          TokenVersionError: the store's version differs from ``expected_version``.
          ValueError: the fetched history does not line up with the examples' (different log).
        """
        self.check_version(expected_version)
        length = examples[F.HISTORY_MASK].shape[1]
        tokens, mask = self.fetch(examples[F.USER_ID], examples[F.TIMESTAMP], length)
        if not np.array_equal(mask, examples[F.HISTORY_MASK]):
            raise ValueError("The token store's history does not line up with the examples' hist_mask: "
                             "were the tokens computed on a different log?")
        version = np.full(len(examples[F.USER_ID]), F.token_version_id(self.version), np.int64)
        return {**examples, F.HISTORY_TOKEN: tokens, F.TOKEN_VERSION: version}

    def check_version(self, expected_version: str | None) -> None:
        if expected_version is not None and expected_version != self.version:
            raise TokenVersionError(f"Token store version {self.version!r} differs from the expected "
                                    f"{expected_version!r}: the tokens come from another source model.")

    def save(self, directory: str | pathlib.Path) -> pathlib.Path:
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(directory / TOKENS_FILE, user_id=self.user_id, timestamp=self.timestamp,
                            item_id=self.item_id, tokens=self.tokens)
        metadata = {"version": self.version, "scheme": self.scheme, "token_dim": self.token_dim,
                    "count": int(len(self.user_id))}
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | pathlib.Path, expected_version: str | None = None,
             expected_token_dim: int | None = None) -> "TokenStore":
        """Reads a saved store, refusing another version / dimension or a damaged file.

        Raises:
          TokenVersionError: version or token_dim differs from what the caller expects.
          ValueError: files missing, truncated, or disagreeing with the metadata.
        """
        directory = pathlib.Path(directory)
        try:
            metadata = json.loads((directory / METADATA_FILE).read_text())
            with np.load(directory / TOKENS_FILE) as arrays:
                loaded = {name: arrays[name] for name in ("user_id", "timestamp", "item_id", "tokens")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
            raise ValueError(f"Token store at {directory} is missing or damaged ({type(error).__name__}: {error}).") from None
        missing = [key for key in ("version", "scheme", "count", "token_dim")
                   if not isinstance(metadata, dict) or key not in metadata]
        if missing:
            raise ValueError(f"Token store at {directory}: {METADATA_FILE} lacks {missing}; it was not written by "
                             "TokenStore.save or was edited.")
        store = cls(version=metadata["version"], scheme=metadata["scheme"], **loaded)
        if store.tokens.shape != (metadata["count"], metadata["token_dim"]):
            raise ValueError(f"Token store at {directory} holds tokens {store.tokens.shape}, but its metadata says "
                             f"[{metadata['count']}, {metadata['token_dim']}]: the file is truncated or replaced.")
        if not np.isfinite(store.tokens).all():
            raise ValueError(f"Token store at {directory} holds NaN or infinite tokens.")
        order = np.lexsort((store.item_id, store.timestamp, store.user_id))
        if not np.array_equal(order, np.arange(len(order))):
            raise ValueError(f"Token store at {directory} is not sorted by (user_id, timestamp, item_id): its "
                             "tokens would be fetched for the wrong events.")
        store.check_version(expected_version)
        if expected_token_dim is not None and expected_token_dim != store.token_dim:
            raise TokenVersionError(f"Token store at {directory} has token_dim {store.token_dim}; the model expects "
                                    f"{expected_token_dim}.")
        return store
