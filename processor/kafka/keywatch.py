"""The keyring file the worker watches: loaded at start-up, and again when ``keys rotate``
or ``keys schedule`` (from cron) changed it, so its keys serve from the next batch."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from processor.errors import EXPECTED_ERRORS
from processor.ops.audit import append_audit

if TYPE_CHECKING:
    from keys import Keyring
    from processor.ops.settings import Settings

log = logging.getLogger("pseudostream.worker")


def load_keyring(settings: Settings) -> Keyring:
    from keys import load_keyring_from

    environ = dict(os.environ)
    if settings.master_key is not None:
        environ["PSEUDOSTREAM_MASTER_KEY"] = settings.master_key.reveal()
    keyring: Keyring = load_keyring_from(
        settings.require_keyring(), settings.master_key_file, environ
    )
    return keyring


class KeyringWatcher:
    """Reloads the keyring file when its (mtime, size) changed. A file that fails to load,
    or that ``check`` refuses, keeps the keys in use and logs why (never key material); it
    is tried again when it changes again."""

    def __init__(
        self,
        settings: Settings,
        use: Callable[[Keyring], None],
        check: Callable[[Keyring], None] = lambda keyring: None,
    ) -> None:
        self._settings = settings
        self._use = use
        self._check = check
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        """(mtime ns, size) of the keyring file, None when unreadable or not from a file."""
        path = self._settings.keyring
        try:
            stat = path.stat() if path is not None else None
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size) if stat is not None else None

    async def reload_if_changed(self) -> None:
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            keyring = load_keyring(self._settings)
            self._check(keyring)
        except EXPECTED_ERRORS as exc:
            log.error("keyring reload failed, keeping the keys in use: %s", exc)
            return
        self._use(keyring)
        key_ids = [k.key_id for k in keyring]
        append_audit("keyring_reload", keyring=str(self._settings.keyring), key_ids=key_ids)
        log.info("keyring reloaded: %s", ", ".join(key_ids))
