"""Backups of environments into object stores: the archive format, restore, verify, retention, cleanup.

    write_backup(store, env, source) -> Manifest     stream a tar.zst into the store, manifest last
    list_backups(store, env=None) -> [Manifest]      complete backups only, oldest first
    find_backup(store, backup_id, env=None)          one manifest, or BackupNotFound
    restore(store, backup, target_dir)               checked against sha256, whole or not at all
    verify(store, backup) -> VerifyResult            checksum + test extraction + integrity_check
    select_to_keep(backups, policy, now)             pure retention (keep last N, daily, weekly, monthly)
    prune(store, env, policy)                        apply it
    remove_incomplete(store)                         leftovers of interrupted backups, after a grace period

Writing: write.py; finding: manifests.py; reading back: extract.py, restore.py, verify.py;
object layout and manifest: layout.py. Restoring without Doppel: docs/restore-by-hand.md.
"""
from clouds.backups.cleanup import PruneResult, prune, remove_incomplete
from clouds.backups.extract import IntegrityError
from clouds.backups.layout import Component, Manifest, ManifestError, backup_time, new_backup_id
from clouds.backups.manifests import BackupNotFound, delete_backup, find_backup, list_backups
from clouds.backups.restore import restore
from clouds.backups.retention import RetentionPolicy, select_to_keep
from clouds.backups.verify import VerifyResult, verify
from clouds.backups.write import BackupError, write_backup

__all__ = ["BackupError", "BackupNotFound", "Component", "IntegrityError", "Manifest", "ManifestError",
           "PruneResult", "RetentionPolicy", "VerifyResult", "backup_time", "delete_backup",
           "find_backup", "list_backups", "new_backup_id", "prune", "remove_incomplete", "restore", "select_to_keep",
           "verify", "write_backup"]
