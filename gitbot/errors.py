"""The GitbotError tree.

Every error gitbot reports is one of these. Each says what happened and where (file:line when there is a
file), carries a hint for what to do, and says whether retrying later can help. Library exceptions are
wrapped at the adapter boundary with `raise ... from exc`; nothing here imports a library.
"""

from __future__ import annotations


class GitbotError(Exception):
    """Base of all errors gitbot reports to a person.

    `exit_code` follows the CLI convention: 2 for usage and configuration errors (fix the input),
    1 for remote or runtime failures (retrying may help). `retryable` says whether retrying later can
    help; an error it cannot help never exits 1 (see `exit_status`). A single error may say otherwise than
    its class (`retryable=`): a 404 from a registry is a RegistryError that no retry fixes.
    """

    exit_code: int = 1
    retryable: bool = False

    def __init__(
        self, message: str, *, where: str | None = None, hint: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def exit_status(self) -> int:
        """The CLI's exit code: 1 only when retrying may help, else 2 (or the class's own, higher code)."""
        return self.exit_code if self.retryable or self.exit_code != 1 else 2

    def one_line(self) -> str:
        """The message as the CLI prints it: `where: message` on a single line."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class UsageError(GitbotError):
    """The command line itself is wrong (unknown option value, malformed locator)."""

    exit_code = 2


class ConfigError(GitbotError):
    """A policy file or setting is invalid; the location names file, line and field."""

    exit_code = 2


class ManifestError(GitbotError):
    """A manifest cannot be read or parsed."""

    exit_code = 2


class MissingPathError(ManifestError):
    """A path to scan does not exist; `where` is the path exactly as it was given."""


class EditError(GitbotError):
    """A requested edit was refused; the file is left untouched."""

    exit_code = 2


class FilterError(ConfigError):
    """A tag filter does not compile."""


class RemoteError(GitbotError):
    """A remote system (registry, git server, GitHub, Prometheus) failed or refused."""

    exit_code = 1
    retryable = True


class RegistryError(RemoteError):
    """The container registry failed, refused or returned something unusable."""


class RegistryTlsError(RegistryError):
    """The TLS handshake with a registry failed, most often because it serves plain HTTP: the policy must
    say so (`insecure`) or the registry needs a certificate; retrying does not help."""

    exit_code = 2
    retryable = False


class DeadlineError(RemoteError):
    """A cycle ran past its deadline (policy `spec.timeout`) and stopped before delivering anything."""


class AuthError(RemoteError):
    """Credentials were refused. Retrying with the same credentials does not help."""

    retryable = False


class GitError(RemoteError):
    """A git operation (clone, fetch, commit, push, revert) failed."""


class PushRejectedError(GitError):
    """The remote refused a push because the branch moved: non-fast-forward, or moved (or locked) by another
    update while the push was received. Fetch, plan again from the new head, retry; never force."""


class GitAuthError(GitError, AuthError):
    """The git server refused the credentials (a GitError that is also an AuthError, not retryable)."""


class ForgeError(RemoteError):
    """The forge API (GitHub) failed or refused."""


class MetricsError(RemoteError):
    """Prometheus could not be queried."""
