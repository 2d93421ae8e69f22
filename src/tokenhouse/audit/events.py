"""The events tokenhouse records about its own changes: each key's summary and its details
template. `{{path}}` in a template names a value of the record's documents (`render()`
fills them in; see audit/service.render_details). The catalog rows (names, descriptions)
are seeded by migration 0010."""

from dataclasses import dataclass

PLATFORM = "platform."


@dataclass(frozen=True, slots=True)
class Event:
    key: str
    summary: str
    details: str


def _token(action: str, summary: str, details: str) -> Event:
    return Event(f"platform.accounts.apiToken.{action}", summary, details)


def _account(action: str, summary: str, details: str) -> Event:
    return Event(f"platform.accounts.account.{action}", summary, details)


TOKEN_CREATED = _token("created", "API token created",
                       "The API token {{apiToken.id}} ({{apiToken.name}}) was created by "
                       "{{actor.name}}.")
TOKEN_UPDATED = _token("updated", "API token updated",
                       "The API token {{apiToken.id}} ({{apiToken.name}}) was changed by "
                       "{{actor.name}}.")
TOKEN_ENABLED = _token("enabled", "API token enabled",
                       "The API token {{apiToken.id}} ({{apiToken.name}}) was enabled by "
                       "{{actor.name}}.")
TOKEN_DISABLED = _token("disabled", "API token disabled",
                        "The API token {{apiToken.id}} ({{apiToken.name}}) was disabled by "
                        "{{actor.name}}.")
TOKEN_DELETED = _token("deleted", "API token deleted",
                       "The API token {{apiToken.id}} ({{apiToken.name}}) was deleted by "
                       "{{actor.name}}.")
TOKEN_ROTATED = _token("rotated", "API token rotated",
                       "The API token {{apiToken.id}} ({{apiToken.name}}) was given a new "
                       "secret by {{actor.name}}.")
TOKEN_PREVIOUS_REVOKED = _token(
    "previousSecretRevoked", "Previous secret revoked",
    "The previous secret of the API token {{apiToken.id}} ({{apiToken.name}}) was revoked "
    "by {{actor.name}}.")
TOKEN_LEAKED = _token("leaked", "API token secret reported leaked",
                      "A secret of the API token {{apiToken.id}} ({{apiToken.name}}) was "
                      "reported as leaked ({{report.source}}) and stopped working.")
TOKEN_EXPIRING = _token("expiring", "API token expiring",
                        "The API token {{apiToken.id}} ({{apiToken.name}}) expires at "
                        "{{apiToken.expiresAt}}.")
TOKEN_EXPIRED = _token("expired", "API token expired",
                       "The API token {{apiToken.id}} ({{apiToken.name}}) expired at "
                       "{{apiToken.expiresAt}}.")
TOKEN_REFUSED = _token("refused", "API token use refused",
                       "A request with the API token {{apiToken.id}} was refused: "
                       "{{refusal.reason}}.")

ACCOUNT_CREATED = _account("created", "Account created",
                           "The account {{account.id}} ({{account.name}}) was created by "
                           "{{actor.name}}.")
ACCOUNT_UPDATED = _account("updated", "Account updated",
                           "The account {{account.id}} ({{account.name}}) was changed by "
                           "{{actor.name}}.")
ACCOUNT_ENABLED = _account("enabled", "Account enabled",
                           "The account {{account.id}} ({{account.name}}) was enabled by "
                           "{{actor.name}}.")
ACCOUNT_DISABLED = _account("disabled", "Account disabled",
                            "The account {{account.id}} ({{account.name}}) was disabled by "
                            "{{actor.name}}.")

IMPORT_COMPLETED = Event("platform.accounts.import.completed", "Import completed",
                         "{{import.accounts}} accounts and {{import.tokens}} API tokens were "
                         "imported by {{actor.name}}.")
