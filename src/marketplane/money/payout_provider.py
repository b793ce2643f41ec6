"""The payout port, and the built-in `test` provider.

A provider sends money to a supplier's destination (a bank account, a wallet) and may answer
later by calling back (a signed request to `/hooks/payouts/{provider}`): paid, or failed (the
money returns to the supplier's payable). Each callback is handled once by its event id.

The test provider is told what to do by the destination, as its payment twin is by the token:
`acct_test_ok` is paid at once; `acct_test_pending` is accepted and settles only by callback;
`acct_test_fails` is refused (`account_closed`). A payout is sent with its own id as the
provider's idempotency key, so sending it again does not pay twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import orjson

from marketplane.kernel import signing
from marketplane.kernel.errors import BadRequest, Unauthorized, field_error


class PayoutOutcome(StrEnum):
    PAID = "paid"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PayoutAnswer:
    outcome: PayoutOutcome
    reference: str | None = None
    failure_code: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutCallback:
    event_id: str
    payout_id: str
    outcome: PayoutOutcome
    failure_code: str | None


class PayoutProvider(Protocol):
    name: str

    def check_destination(self, destination: str) -> None:
        """Raises a validation error when the provider cannot pay to `destination`."""
        ...

    async def pay(
        self, *, payout_id: str, destination: str, amount: int, currency: str
    ) -> PayoutAnswer: ...

    def callback(self, *, headers: dict[str, str], body: bytes) -> PayoutCallback:
        """Verifies and reads a callback; raises Unauthorized when it is not the provider's."""
        ...


DESTINATIONS = ("acct_test_ok", "acct_test_pending", "acct_test_fails")
SIGNATURE_HEADER = "test-signature"


class TestPayoutProvider:
    """Deterministic and in-process: for development, tests and the demo."""

    __test__ = False
    name = "test"

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def check_destination(self, destination: str) -> None:
        if destination not in DESTINATIONS:
            raise field_error(
                "destination",
                "unknown_destination",
                f"the test payout provider pays to {', '.join(DESTINATIONS)}",
            )

    async def pay(
        self, *, payout_id: str, destination: str, amount: int, currency: str
    ) -> PayoutAnswer:
        reference = f"tpo_{payout_id}"
        if destination == "acct_test_fails":
            return PayoutAnswer(PayoutOutcome.FAILED, reference, "account_closed")
        if destination == "acct_test_pending":
            return PayoutAnswer(PayoutOutcome.PENDING, reference)
        return PayoutAnswer(PayoutOutcome.PAID, reference)

    def make_callback(
        self, *, event_id: str, payout_id: str, outcome: PayoutOutcome,
        failure_code: str | None = None,
    ) -> tuple[dict[str, str], bytes]:  # fmt: skip
        """What the provider would send: headers and body (tests and the demo send it)."""
        body = orjson.dumps(
            {"id": event_id, "payout": payout_id, "outcome": str(outcome),
             "failure_code": failure_code}
        )  # fmt: skip
        signature = signing.sign(self._secret, body)
        return {SIGNATURE_HEADER: signature, "content-type": "application/json"}, body

    def callback(self, *, headers: dict[str, str], body: bytes) -> PayoutCallback:
        if not signing.verify(self._secret, body, headers.get(SIGNATURE_HEADER, "")):
            raise Unauthorized("the callback's signature does not match", code="bad_signature")
        try:
            data = orjson.loads(body)
            return PayoutCallback(
                event_id=str(data["id"]),
                payout_id=str(data["payout"]),
                outcome=PayoutOutcome(data["outcome"]),
                failure_code=data.get("failure_code"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"not a callback: {exc}", code="invalid_callback") from exc
