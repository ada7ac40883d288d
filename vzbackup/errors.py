"""Every error a user can see: its message, exit code and next step.

One class per failure a user must tell apart. ``cli.main`` maps them to exit codes;
``docs/reference/exit-codes.md`` is generated from this module (``make docs``).
Bands: 0 ok, 1 warning, 2 generic error, 3-99 specific errors, 100-127 specific
warnings, 128+N killed by signal N.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_WARNING = 1
EXIT_ERROR = 2


class VzError(Exception):
    """Base class: ``message`` says what failed and where, ``hint`` what to do next."""

    exit_code = EXIT_ERROR
    summary = "unexpected error"

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    default_hint = "Re-run with --verbose and read the log; report a bug if the cause is unclear."

    def __str__(self) -> str:
        return self.message


class ConfigError(VzError):
    exit_code = 3
    summary = "the configuration is invalid"
    default_hint = "Fix the named key, then run 'vzbackup config check'."

    def __init__(self, problems: list[str], *, hint: str | None = None):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), hint=hint)


class GuestNotFound(VzError):
    exit_code = 4
    summary = "no such guest"
    default_hint = "List the guests with 'vzbackup points' or check the node's guests."


class NodeUnreachable(VzError):
    exit_code = 5
    summary = "a node could not be reached"
    default_hint = "Check that the node is up and its settings under [nodes.NAME] in the config."


class RepositoryError(VzError):
    exit_code = 6
    summary = "a repository cannot be used"
    default_hint = "Check the repository URL and that the backend is reachable and writable."


class IntegrityError(VzError):
    exit_code = 7
    summary = "stored data failed verification"
    default_hint = (
        "Do not trust this copy: restore from another copy (--point or another repository) "
        "and run 'vzbackup verify --all' to find every damaged restore point."
    )


class GuestExists(VzError):
    exit_code = 8
    summary = "the target guest already exists"
    default_hint = "Pass --force to replace it, or --as ID to restore under another ID."


class UnsafeArchive(VzError):
    exit_code = 9
    summary = "an archive tried to write outside its target"
    default_hint = (
        "Nothing was written outside the target. The stream is hostile or damaged: "
        "do not restore it; inspect where it came from."
    )


class PointNotFound(VzError):
    exit_code = 10
    summary = "no such restore point"
    default_hint = "List restore points with 'vzbackup points GUEST'."


class LockBusy(VzError):
    exit_code = 11
    summary = "another vzbackup process holds the lock"
    default_hint = "Wait for the other run to finish, then try again."


class KeyUnavailable(VzError):
    exit_code = 12
    summary = "the repository key cannot be opened"
    default_hint = (
        "Provide the passphrase through the file or environment variable named by "
        "repositories.NAME.passphrase_file / passphrase_env."
    )


class NoSpace(VzError):
    exit_code = 13
    summary = "no space left on a device"
    default_hint = "Free space on the named device (prune old restore points), then run again."


class CatalogError(VzError):
    exit_code = 14
    summary = "the catalogue cannot be used"
    default_hint = "Check catalog.url; 'vzbackup catalog upgrade' applies pending migrations."


class DumpFailed(VzError):
    exit_code = 15
    summary = "a guest could not be dumped"
    default_hint = "Read the node's error above, fix the guest or node, then back up again."


class RestoreFailed(VzError):
    exit_code = 16
    summary = "a guest could not be restored"
    default_hint = "Nothing was put in place of the target guest; fix the cause above and retry."


class EnvironmentBroken(VzError):
    exit_code = 17
    summary = "a required component is missing or broken"
    default_hint = "Reinstall vzbackup with its dependencies (pip install vzbackup)."


class UsageError(VzError):
    exit_code = 18
    summary = "the command line is invalid"
    default_hint = "See the command's --help."


class PartialFailure(VzError):
    exit_code = 20
    summary = "some guests of a run failed"
    default_hint = "See the per-guest results above; fix each failed guest and run it again."


class BadArchive(VzError):
    exit_code = 21
    summary = "an archive cannot be imported or exported"
    default_hint = ("Nothing was stored. Check the named file (a complete vzdump archive, "
                    "named as vzdump names it), or export the point another way.")


class GuestCommandFailed(VzError):
    exit_code = 22
    summary = "a platform command on a guest failed"
    default_hint = "Read the tool's message above; the guest is unchanged unless it says otherwise."


class CheckpointFailed(VzError):
    exit_code = 23
    summary = "a checkpoint cannot be taken, rolled back to or dropped"
    default_hint = "List checkpoints with 'vzbackup checkpoints'."


class BranchFailed(VzError):
    exit_code = 24
    summary = "a branch cannot be created, refreshed, destroyed or imported"
    default_hint = "List branches with 'vzbackup branch list'; the message names the guest and node."


class BadBundle(VzError):
    exit_code = 25
    summary = "a branch bundle is damaged, tampered with or not a bundle"
    default_hint = ("Nothing was written. Copy the bundle again from where it was exported "
                    "(compare its digest), or export the branch again.")


class PastRpo(VzError):
    """Not raised: the code ``vzbackup status`` exits with when a guest is past its RPO."""

    exit_code = 101
    summary = "a guest has no good restore point within its RPO (status)"
    default_hint = "See 'vzbackup status' and docs/runbooks/nightly-jobs.md: fix a failed night."


def all_error_classes() -> list[type[VzError]]:
    """Every exported error class, ordered by exit code (for the docs and the tests)."""
    seen = [c for c in globals().values() if isinstance(c, type) and issubclass(c, VzError)]
    return sorted(seen, key=lambda c: (c.exit_code, c.__name__))


class ObjectNotFound(RepositoryError):
    """A backend has no object under the key (raised by ``Backend.get``)."""

    summary = "an object is missing from a repository"
