"""Every exception leadsync raises on purpose, in one tree. Its branches decide the exit code
(`leadsync.cli.main` maps them in one place), never the leaves:

    LeadsyncError                       anything leadsync raises on purpose
    ├── InputError                      exit 2: what the user gave is wrong; fix it, run again
    │   ├── UsageError                  the command line (dates the wrong way round, an unknown id)
    │   │   ├── UnknownRunError         (sync.revert) no run with that id
    │   │   └── BackfillSpecError       (sync.backfill) options that ask for no backfill
    │   ├── ConfigError                 the config, mapping or lead definition: every problem,
    │   │                               each located by file, key and line (leadsync.problems)
    │   └── NoWorkingTimeError          (mapping.calendar) a business calendar that never works
    ├── RunError                        exit 1: the run failed at run time; the input may be fine
    │   ├── ConnectorError              a CRM call did not succeed
    │   │   ├── TransientError          worth retrying: the retry policy does, with backoff
    │   │   │   ├── RateLimitedError    429, Salesforce's concurrent-request 403
    │   │   │   ├── ServerError         5xx
    │   │   │   └── ConnectionFailedError  reset or dropped connections, timeouts
    │   │   ├── UnreachableError        nothing listens at the URL, or no such host: fails fast
    │   │   ├── SessionExpiredError     Salesforce 401 INVALID_SESSION_ID: log in once, replay
    │   │   ├── AuthenticationError     credentials refused
    │   │   ├── QuotaExhaustedError     the CRM's own daily limit is spent
    │   │   ├── QuotaReserveReachedError  our reserve is reached: start no new work
    │   │   └── RequestRejectedError    a 4xx for the request as a whole (bad query, bad field)
    │   ├── StoreError                  the database cannot be reached, opened, read or written
    │   │   ├── SchemaOutOfDateError    (sync.database) not migrated: `leadsync db upgrade`
    │   │   └── SchemaTooNewError       (sync.database) migrated by a newer leadsync: refused
    │   ├── ServiceStartError           (jobs) `leadsync run` cannot start: its port is taken
    │   ├── BackfillBusyError           (sync.backfill) done already, or another process has it
    │   ├── LeaseHeldError              (sync.leases) a command that writes found another
    │   │                               process syncing: it waited its time and did nothing
    │   ├── LeaseLostError              (sync.leases) a command's sync lease was taken over
    │   │                               while it ran: it stopped at a batch boundary
    │   ├── RunPausedError              the run stops on purpose to go on later (a backfill
    │   │                               waited its time for the sync lease): recorded "paused"
    │   └── WebhookError                (sync.sla.webhook) an SLA event not delivered
    ├── RunInterruptedError             (sync.engine) a stop was asked for (SIGTERM): the run
    │                                   ends "interrupted" at a batch boundary, exit 0
    └── RecordError                     one record or lead only: quarantined or refused, the
        │                               run goes on (never reaches the command line)
        ├── TransformError              (mapping.transforms) a value the mapping cannot read
        ├── QuarantineError             (sync.ingest) a record leadsync cannot use, with reasons
        └── TransitionRefusedError      (mapping.lifecycle) a stage move the lifecycle forbids

Leaves that only one module raises live there; those that cross modules live here. Messages
never hold a secret or a record's contents: ids, codes and reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from leadsync.secrets import cut, masked

if TYPE_CHECKING:
    from leadsync.problems import ConfigProblem

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class LeadsyncError(Exception):
    """The root: anything leadsync raises on purpose. `exit_code` is its branch's."""

    exit_code = EXIT_FAILED

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled whole, whatever its __init__ takes (a what-if's forked copy sends its error
        # to the command): rebuilt from its message and its attributes, not by calling
        # __init__ again, which most branches give more than a message.
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(
    kind: type[LeadsyncError], args: tuple[Any, ...], state: dict[str, Any]
) -> LeadsyncError:
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


# ---------------------------------------------------------------------------------- exit 2


class InputError(LeadsyncError):
    """What the user gave is wrong: the command line or a file. Nothing was done."""

    exit_code = EXIT_USAGE


class UsageError(InputError):
    """Bad use of the command line: reported in one line."""


class ConfigError(InputError):
    """Every problem found in the files people edit, at once, so `leadsync check` lists them
    all and every command exits 2 without a traceback."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = list(problems)


# ---------------------------------------------------------------------------------- exit 1


class RunError(LeadsyncError):
    """The run could not be done at run time: a CRM, the database, the host."""

    exit_code = EXIT_FAILED


class ConnectorError(RunError):
    """A CRM call that did not succeed. `category` groups errors for metrics and reports."""

    category = "error"

    def __init__(
        self,
        message: str,
        *,
        crm: str,
        status: int | None = None,
        code: str | None = None,
        category: str | None = None,
        field_errors: tuple[tuple[str, str], ...] = (),
    ) -> None:
        # A CRM's text may echo what it was sent (a page of contacts). `message` is cut, and
        # kept for the record it concerns (a quarantine reason names the value to fix); what
        # reaches a log line or the command line, `str()`, also has its values masked.
        message = cut(message)
        super().__init__(masked(message))
        self.message = message
        self.crm = crm
        self.status = status
        self.code = code
        # (field, the CRM's code for what is wrong with it): a request refused for its values.
        self.field_errors = field_errors
        if category is not None:
            self.category = category

    def __str__(self) -> str:
        parts = [self.crm]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {masked(self.message)}"


class TransientError(ConnectorError):
    """Worth retrying. `retry_after` is the server's own hint in seconds, when it gave one."""

    category = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    category = "rate_limit"


class ServerError(TransientError):
    category = "server_error"


class ConnectionFailedError(TransientError):
    category = "connection"


class UnreachableError(ConnectorError):
    """Nothing answers at the URL at all (connection refused, unknown host): a wrong URL or a
    CRM (sandbox) that is not running. Retrying for a minute would only hide that."""

    category = "unreachable"


class SessionExpiredError(ConnectorError):
    category = "session_expired"


class AuthenticationError(ConnectorError):
    category = "authentication"


class QuotaExhaustedError(ConnectorError):
    category = "daily_limit"


class QuotaReserveReachedError(ConnectorError):
    category = "quota_reserve"


class RequestRejectedError(ConnectorError):
    category = "bad_request"


class RunPausedError(RunError):
    """The run stops on purpose and goes on later from its last commit (a backfill that
    waited its time for the sync lease): its run is recorded "paused", not failed."""


class StoreError(RunError):
    """The database cannot be reached, opened, read or written. The message names the cause
    and the database (its password masked), in one line."""


# ---------------------------------------------------------------------------- one record only


class RecordError(LeadsyncError, ValueError):
    """One record or lead cannot be used as it is: it is quarantined or refused with its
    reason, and the run goes on. Never the reason a command fails."""
